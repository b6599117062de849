"""Tests for the batch job scripts in jobs/.

No scheduler, GPU or torch: the scripts run under a fake Slurm/PBS -- scheduler variables plus
fake scontrol/sbatch/qsub/qstat/qalter on PATH that record their arguments -- either with
DRY_RUN=1 (they print the launch command) or with a fake torchrun (a shell script) whose exit
status, COMPLETE marker and signal handling stand in for the training scripts'.
"""

import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import run_group, start_group

REPO = Path(__file__).resolve().parents[1]
JOBS = REPO / "jobs"
LAUNCH_NODE = JOBS / "launch_node.sh"
ALL_SCRIPTS = sorted(JOBS.rglob("*.sh"))
STAGES = ["prepare", "train_single_frame", "test_single_frame", "train_3d", "test_3d", "combine"]
STUDY_STAGES = ["train_tsn", "test_tsn", "train_c3d", "test_c3d", "extract_features", "train_rnn", "test_rnn",
                "summarize"]  # tests/test_jobs_study.py
FLOW_STAGES = ["extract_flow"]  # a CPU job array, outside the study's chain
MOTION_STAGES = ["train_tsn_flow", "test_tsn_flow", "train_tsn_rgbdiff", "test_tsn_rgbdiff"]  # test_jobs_motion.py
GPU_STAGES = ["train_single_frame", "test_single_frame", "train_3d", "test_3d"]
BASH = shutil.which("bash")
TIMEOUT = 30

# Fake scheduler commands. Each call is logged as one shell-quoted line to $FAKE_DIR/NAME.log.
FAKE_COMMANDS = {
    "scontrol": r"""
if [[ $1 == show && $2 == hostnames ]]; then printf '%s\n' $FAKE_HOSTS; exit 0; fi
log scontrol "$@"
""",
    "sbatch": r"""
log sbatch "SPLIT=${SPLIT-unset}" "$@"
echo "$(next_id 100);cluster1"
""",
    "qsub": r"""
log qsub "$@"
echo "$(next_id 200).pbs01"
""",
    "qstat": r"""
[[ $1 == -f && -f $FAKE_DIR/qstat/$2 ]] || { echo "qstat: Unknown Job Id $2" >&2; exit 153; }
cat "$FAKE_DIR/qstat/$2"
""",
    "qalter": 'log qalter "$@"\n',
    # Stands in for torchrun: FAKE_MODE says what the "training" does.
    "torchrun": r"""
log torchrun "$@"
out=
prev=
for arg in "$@"; do [[ $prev == --output-dir ]] && out=$arg; prev=$arg; done
case $FAKE_MODE in
    stopped) exit 75 ;;
    complete) mkdir -p "$out" && touch "$out/COMPLETE" ;;
    crash) exit 1 ;;
    incomplete) exit 0 ;;
    worker)  # one rank that checkpoints and exits 75 on SIGTERM; torchrun then reports 1
        bash -c 'trap "echo TERM > \"$1/worker-stopped\"; exit 75" TERM
                 touch "$1/worker-started"
                 for _ in $(seq 1000); do sleep 0.02; done; exit 3' worker "$FAKE_DIR" &
        wait $! || exit 1 ;;
esac
""",
}
FAKE_PRELUDE = r"""#!/bin/bash
log() { local name=$1; shift; printf '%q ' "$@" >> "$FAKE_DIR/$name.log"; echo >> "$FAKE_DIR/$name.log"; }
next_id() {
    local f=$FAKE_DIR/next_id n; n=$(cat "$f" 2>/dev/null || echo "$1"); echo $((n + 1)) > "$f"; echo $((n + 1))
}
"""


class FakeCluster:
    """A tmp dir with fake scheduler commands, a data/runs layout and a clean environment."""

    def __init__(self, root: Path):
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir()
        for name, body in FAKE_COMMANDS.items():
            path = self.bin / name
            path.write_text(FAKE_PRELUDE + body)
            path.chmod(0o755)
        (root / "qstat").mkdir()
        self.data = root / "data"
        self.runs = root / "runs"
        self.env = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HOME": str(root),
            "LANG": "C",
            "FAKE_DIR": str(root),
            "DATA_DIR": str(self.data),
            "RUNS_DIR": str(self.runs),
            "STOP_POLL_SECONDS": "0.05",
        }

    def slurm(self, hosts=("gpu07",), gpus=1, cpus=8, job_id="4242", **extra):
        self.env.update(SLURM_JOB_ID=job_id, SLURM_NNODES=str(len(hosts)),
                        SLURM_JOB_NODELIST=f"gpu[{len(hosts)}]", FAKE_HOSTS=" ".join(hosts),
                        SLURM_GPUS_ON_NODE=str(gpus), SLURM_CPUS_PER_TASK=str(cpus), **extra)
        return self

    def pbs(self, nodefile_lines=("gpu07",), gpus=1, cpus=8, job_id="8123.pbs01", **extra):
        nodefile = self.root / "nodefile"
        nodefile.write_text("".join(f"{line}\n" for line in nodefile_lines))
        self.env.update(PBS_JOBID=job_id, PBS_NODEFILE=str(nodefile), GPUS_PER_NODE=str(gpus),
                        NCPUS=str(cpus), **extra)
        return self

    def make_dataset(self):
        (self.data / "ucfTrainTestlist").mkdir(parents=True)
        (self.data / "UCF-101-hdf5").mkdir()
        self.env.update(PYTHON="/bin/true", TORCHRUN="torchrun")  # the fake one
        return self

    def run(self, script, **extra_env):
        return run_group([BASH, str(JOBS / script)], env={**self.env, **extra_env},
                              cwd=self.root, timeout=TIMEOUT)

    def dry_run(self, script, **extra_env):
        result = self.run(script, DRY_RUN="1", **extra_env)
        assert result.returncode == 0, result.stderr
        return [shlex.split(line) for line in result.stdout.splitlines()]

    def calls(self, name):
        log = self.root / f"{name}.log"
        return [shlex.split(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def cluster(tmp_path):
    return FakeCluster(tmp_path)


def torchrun_args(cmd):
    """The arguments after `python -m torch.distributed.run` in a launch command."""
    i = cmd.index("torch.distributed.run")
    assert cmd[i - 1] == "-m" and cmd[i - 2] == str(REPO / ".venv/bin/python")
    return cmd[i + 1:]


def expected_torchrun(nnodes, nproc, endpoint, rdzv_id):
    return ["--nnodes", str(nnodes), "--nproc_per_node", str(nproc), "--rdzv_backend", "c10d",
            "--rdzv_endpoint", endpoint, "--rdzv_id", rdzv_id]


def expected_script(stage, cluster, split, workers):
    data, runs = str(cluster.data), cluster.runs / f"split{split}"
    common = ["--data-dir", data, "--split", str(split)]
    if stage.startswith("train"):
        out = runs / ("single_frame" if stage == "train_single_frame" else "3d")
        args = [*common, "--output-dir", str(out), "--workers", str(workers)]
        if stage == "train_3d":
            args += ["--kinetics-checkpoint", f"{data}/resnet-50-kinetics.pth"]
    else:
        train = runs / ("single_frame" if stage == "test_single_frame" else "3d")
        args = [*common, "--checkpoint", str(train / "checkpoint.pth"),
                "--predictions-dir", str(train / "predictions"), "--output-dir", str(train / "test"),
                "--workers", str(workers)]
        if stage == "test_3d":
            args += ["--mode", "full"]
    return [str(REPO / f"{stage}.py"), *args]


def assert_local_launch(cmd, cluster, stage, job_id):
    assert Path(cmd[0]).name == "bash" and cmd[1] == str(LAUNCH_NODE)
    assert cmd[2] == str(cluster.runs / "logs" / f".stop-{stage}-{job_id}")


# --- static checks ---------------------------------------------------------------------------

@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda p: str(p.relative_to(JOBS)))
def test_bash_syntax(script):
    result = subprocess.run([BASH, "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None,
                    reason="shellcheck is not installed (apt-get install shellcheck)")
def test_shellcheck():
    # jobs/.shellcheckrc lets it follow `source "$REPO_DIR/jobs/common.sh"`.
    result = subprocess.run(["shellcheck", "-x", *map(str, ALL_SCRIPTS)], cwd=REPO,
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
def test_every_stage_has_a_job_script(scheduler):
    assert {p.stem for p in (JOBS / scheduler).glob("*.sh")} == {*STAGES, *STUDY_STAGES, *FLOW_STAGES, *MOTION_STAGES,
                                                                       "submit_all"}


@pytest.mark.parametrize("stage", STAGES[:-1] + FLOW_STAGES)
def test_slurm_jobs_ask_for_a_warning_signal_and_requeue(stage):
    text = (JOBS / "slurm" / f"{stage}.sh").read_text()
    for directive in ["#SBATCH --signal=B:USR1@300", "#SBATCH --requeue",
                      "#SBATCH --open-mode=append", "#SBATCH --time=", "#SBATCH --mem="]:
        assert directive in text


# --- the launch command (DRY_RUN=1) ----------------------------------------------------------

@pytest.mark.parametrize("stage", GPU_STAGES)
def test_slurm_one_node_one_gpu(cluster, stage):
    cluster.slurm(hosts=["gpu07"], gpus=1, cpus=8)
    [cmd] = cluster.dry_run(f"slurm/{stage}.sh")
    assert_local_launch(cmd, cluster, stage, "4242")
    # port = 10000 + job id % 20000; workers = 8 CPUs / 1 rank - 1
    assert torchrun_args(cmd) == [*expected_torchrun(1, 1, "gpu07:14242", "4242"),
                                  *expected_script(stage, cluster, 1, 7)]


@pytest.mark.parametrize("stage", GPU_STAGES)
def test_slurm_four_nodes_four_gpus(cluster, stage):
    cluster.slurm(hosts=["gpu01", "gpu02", "gpu03", "gpu04"], gpus=4, cpus=32, job_id="987654")
    [cmd] = cluster.dry_run(f"slurm/{stage}.sh", SPLIT="2")
    launcher = cmd.index(str(LAUNCH_NODE))
    assert cmd[:launcher - 1] == ["srun", "--nodes=4", "--ntasks=4", "--ntasks-per-node=1",
                                  "--kill-on-bad-exit=1", "--cpus-per-task=32"]
    assert torchrun_args(cmd) == [*expected_torchrun(4, 4, "gpu01:17654", "987654"),
                                  *expected_script(stage, cluster, 2, 7)]


def test_slurm_gpus_from_typed_gpus_per_node(cluster):
    cluster.slurm()
    del cluster.env["SLURM_GPUS_ON_NODE"]
    [cmd] = cluster.dry_run("slurm/train_3d.sh", SLURM_GPUS_PER_NODE="a100:2")
    assert torchrun_args(cmd)[:4] == ["--nnodes", "1", "--nproc_per_node", "2"]


def test_slurm_array_task_picks_the_split(cluster):
    cluster.slurm()
    [cmd] = cluster.dry_run("slurm/train_single_frame.sh", SPLIT="1", SLURM_ARRAY_TASK_ID="3")
    assert torchrun_args(cmd)[10:] == expected_script("train_single_frame", cluster, 3, 7)


def test_without_a_scheduler_runs_on_this_machine(cluster):
    [cmd] = cluster.dry_run("slurm/train_single_frame.sh", GPUS_PER_NODE="2", WORKERS="3")
    args = torchrun_args(cmd)
    assert args[:9] == expected_torchrun(1, 2, "localhost:29500", "x")[:-1]
    assert args[9].startswith("local-") and args[-2:] == ["--workers", "3"]


@pytest.mark.parametrize("stage", GPU_STAGES)
def test_pbs_one_node_one_gpu(cluster, stage):
    cluster.pbs(nodefile_lines=["gpu07"], gpus=1, cpus=8)
    [cmd] = cluster.dry_run(f"pbs/{stage}.sh")
    assert_local_launch(cmd, cluster, stage, "8123.pbs01")
    assert torchrun_args(cmd) == [*expected_torchrun(1, 1, "gpu07:18123", "8123.pbs01"),
                                  *expected_script(stage, cluster, 1, 7)]


@pytest.mark.parametrize("stage", GPU_STAGES)
def test_pbs_four_nodes_four_gpus_through_pbsdsh(cluster, stage):
    # PBS_NODEFILE repeats a host once per MPI slot; each host gets one torchrun.
    cluster.pbs(nodefile_lines=["gpu01", "gpu01", "gpu02", "gpu03", "gpu03", "gpu04"], gpus=4,
                cpus=32)
    head, *remote = cluster.dry_run(f"pbs/{stage}.sh", NCCL_SOCKET_IFNAME="ib0")
    expected = [*expected_torchrun(4, 4, "gpu01:18123", "8123.pbs01"),
                *expected_script(stage, cluster, 1, 7)]
    assert_local_launch(head, cluster, stage, "8123.pbs01")
    assert torchrun_args(head) == expected
    assert [cmd[:4] for cmd in remote] == [["pbsdsh", "-n", str(i), "--"] for i in (2, 3, 5)]
    for cmd, host in zip(remote, ["gpu02", "gpu03", "gpu04"]):
        assert cmd[4] == "/usr/bin/env"
        assert f"NODE_LOG={cluster.runs}/logs/{stage}-8123.{host}.log" in cmd
        assert "NCCL_SOCKET_IFNAME=ib0" in cmd and f"PATH={cluster.env['PATH']}" in cmd
        assert torchrun_args(cmd) == expected


def test_pbs_four_nodes_through_ssh(cluster):
    cluster.pbs(nodefile_lines=["gpu01", "gpu02", "gpu03", "gpu04"], gpus=4, cpus=32)
    head, *remote = cluster.dry_run("pbs/train_3d.sh", PBS_LAUNCHER="ssh")
    for cmd, host in zip(remote, ["gpu02", "gpu03", "gpu04"]):
        assert cmd[:4] == ["ssh", "-o", "BatchMode=yes", host] and len(cmd) == 5
        assert torchrun_args(shlex.split(cmd[4])) == torchrun_args(head)


def test_prepare_command(cluster):
    cluster.slurm(cpus=32)
    [cmd] = cluster.dry_run("slurm/prepare.sh", STORAGE="jpeg", PREPARE_ARGS="--limit 5")
    assert cmd == [str(REPO / ".venv/bin/python"), str(REPO / "prepare_ucf101.py"),
                   "--videos", f"{cluster.data}/UCF-101", "--out", f"{cluster.data}/UCF-101-hdf5",
                   "--workers", "32", "--storage", "jpeg", "--limit", "5"]


def flow_command(cluster, workers, shard, *extra):
    return [str(REPO / ".venv/bin/python"), str(REPO / "extract_flow.py"), "--data-dir", str(cluster.data),
            "--out", f"{cluster.data}/UCF-101-flow", "--workers", str(workers), "--shard", shard, *extra]


def test_flow_array_task_is_a_shard_not_a_split(cluster):
    cluster.slurm(cpus=16, SLURM_ARRAY_TASK_ID="7", SLURM_ARRAY_TASK_MIN="0", SLURM_ARRAY_TASK_COUNT="16")
    [cmd] = cluster.dry_run("slurm/extract_flow.sh", FLOW_METHOD="tvl1", FLOW_ARGS="--size 170x128")
    assert cmd == flow_command(cluster, 16, "7/16", "--method", "tvl1", "--size", "170x128")
    # An array 1-8 (Slurm counts its tasks) is shards 0..7 as well.
    cluster.env.update(SLURM_ARRAY_TASK_ID="8", SLURM_ARRAY_TASK_MIN="1", SLURM_ARRAY_TASK_COUNT="8")
    assert cluster.dry_run("slurm/extract_flow.sh", FLOW_DIR="/scratch/flow")[0][-3:] == ["16", "--shard", "7/8"]


def test_flow_pbs_array_and_by_hand(cluster):
    cluster.pbs(cpus=8, PBS_ARRAY_INDEX="3")
    [cmd] = cluster.dry_run("pbs/extract_flow.sh")  # SHARDS: 16, the script's -J 0-15
    assert cmd == flow_command(cluster, 8, "3/16")
    result = cluster.run("pbs/extract_flow.sh", DRY_RUN="1", PBS_ARRAY_INDEX="16")
    assert result.returncode == 2 and "array index 16 is not in 0..15" in result.stderr
    # By hand, outside a scheduler: SHARD, default 0/1.
    [cmd] = cluster.dry_run("pbs/extract_flow.sh", PBS_JOBID="", PBS_ARRAY_INDEX="", WORKERS="2", SHARD="1/2")
    assert cmd == flow_command(cluster, 2, "1/2")


@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
def test_combine_command(cluster, scheduler):
    cluster.slurm() if scheduler == "slurm" else cluster.pbs()
    runs = cluster.runs / "split3"
    for model in ("single_frame", "3d"):  # combine takes the models that have predictions
        (runs / model / "predictions").mkdir(parents=True)
    [cmd] = cluster.dry_run(f"{scheduler}/combine.sh", SPLIT="3")
    assert cmd == [str(REPO / ".venv/bin/python"), str(REPO / "combine_results.py"),
                   "--data-dir", str(cluster.data), "--split", "3",
                   "--model", f"single_frame={runs}/single_frame/predictions",
                   "--model", f"3d={runs}/3d/predictions", "--fuse", "single_frame,3d",
                   "--output-dir", f"{runs}/report"]


def test_extra_args_reach_the_script(cluster):
    cluster.slurm()
    [cmd] = cluster.dry_run("slurm/train_single_frame.sh", TRAIN_SF_ARGS="--epochs 3 --batch-size 8")
    assert cmd[-4:] == ["--epochs", "3", "--batch-size", "8"]


# --- pre-flight checks -----------------------------------------------------------------------

def test_bad_split_is_one_clear_line(cluster):
    result = cluster.slurm().run("slurm/train_3d.sh", SPLIT="4", DRY_RUN="1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: SPLIT must be 1, 2 or 3 (the official UCF-101 splits), got '4'"]


def test_missing_dataset_is_reported_before_launch(cluster):
    result = cluster.slurm().run("slurm/train_single_frame.sh", PYTHON="/bin/true")
    assert result.returncode == 2
    assert f"error: {cluster.data}/ucfTrainTestlist not found." in result.stderr
    assert not cluster.calls("torchrun")


def test_test_stage_needs_a_checkpoint(cluster):
    result = cluster.slurm().make_dataset().run("slurm/test_3d.sh")
    assert result.returncode == 2 and "3d/checkpoint.pth not found" in result.stderr


# --- requeue decision (fake torchrun) --------------------------------------------------------

@pytest.mark.parametrize("mode, restarts, status, requeued", [
    ("stopped", "0", 0, True),       # exit 75: checkpoint written, back in the queue
    ("complete", "0", 0, False),     # exit 0 + COMPLETE
    ("crash", "0", 1, False),        # a bug is not fixed by running again
    ("incomplete", "0", 1, False),   # exit 0 without COMPLETE
    ("stopped", "5", 75, False),     # MAX_RESTARTS used up
])
def test_slurm_requeue_decision(cluster, mode, restarts, status, requeued):
    cluster.slurm().make_dataset()
    result = cluster.run("slurm/train_single_frame.sh", FAKE_MODE=mode,
                         SLURM_RESTART_COUNT=restarts, MAX_RESTARTS="5")
    assert result.returncode == status, result.stderr
    assert cluster.calls("scontrol") == ([["requeue", "4242"]] if requeued else [])
    assert len(cluster.calls("torchrun")) == 1


def test_slurm_warning_signal_reaches_the_worker_and_requeues(cluster):
    cluster.slurm().make_dataset()
    with start_group([BASH, str(JOBS / "slurm/train_3d.sh")],
                     env={**cluster.env, "FAKE_MODE": "worker", "KINETICS_CHECKPOINT": "/dev/null"},
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as job:
        wait_for(cluster.root / "worker-started", job)
        job.send_signal(signal.SIGUSR1)  # what --signal=B:USR1@300 does
        _, stderr = job.communicate(timeout=TIMEOUT)
    assert job.returncode == 0, stderr
    assert (cluster.root / "worker-stopped").read_text() == "TERM\n"
    assert cluster.calls("scontrol") == [["requeue", "4242"]]
    assert "received SIGUSR1" in stderr
    assert not list((cluster.runs / "logs").glob(".stop-*"))


def test_stop_file_reaches_workers_on_other_nodes(cluster):
    """Nodes started by srun/pbsdsh/ssh only see the stop file the batch shell touches."""
    stop_file = cluster.root / "stop"
    with start_group([BASH, str(LAUNCH_NODE), str(stop_file), "torchrun"],
                     env={**cluster.env, "FAKE_MODE": "worker"}) as node:
        wait_for(cluster.root / "worker-started", node)
        stop_file.touch()
        assert node.wait(timeout=TIMEOUT) == 1  # torchrun reports its worker's exit 75 as 1
    assert (cluster.root / "worker-stopped").read_text() == "TERM\n"


WALLTIME = 3600  # seconds the PBS tests' warning timer would wait: it fires when the fake worker is ready


def gate_warning_timer_on_the_worker(cluster, delay):
    """A `sleep` on the fake cluster's PATH: the warning timer's wait (`sleep DELAY`) ends as soon as the
    fake worker has set its trap, as the Slurm test waits for it before signalling, instead of after a
    fixed second that a loaded machine may not give it; every other sleep is the real one."""
    real = shutil.which("sleep", path="/usr/bin:/bin")
    path = cluster.bin / "sleep"
    path.write_text(f"""#!/bin/bash
if [[ $1 == {delay} ]]; then
    until [[ -e $FAKE_DIR/worker-started ]]; do {real} 0.02; done
    exit 0
fi
exec {real} "$@"
""")
    path.chmod(0o755)


def test_pbs_timer_stops_and_resubmits_with_dependents_handed_over(cluster):
    cluster.pbs().make_dataset()
    qstat = cluster.root / "qstat"
    # Our job has two afterok dependents (one listed across a wrapped line) and one afterany.
    (qstat / "8123.pbs01").write_text(
        "Job Id: 8123.pbs01\n    Job_Name = ucf-train-sf\n"
        "    depend = beforeok:8124.pbs01@pbs01:81\n\t26.pbs01@pbs01,beforeany:9000.pbs01@pbs01\n"
        "    Resource_List.walltime = 04:00:00\n")
    (qstat / "8124.pbs01").write_text(
        "Job Id: 8124.pbs01\n    depend = afterok:8123.pbs01@pbs01,beforeok:8130.pbs01@pbs01\n")
    (qstat / "8126.pbs01").write_text(
        "Job Id: 8126.pbs01\n    depend = afterok:8125.pbs01@pbs01:8123.pbs01@pbs01\n")
    gate_warning_timer_on_the_worker(cluster, WALLTIME)
    with start_group([BASH, str(JOBS / "pbs/train_single_frame.sh")],
                     env={**cluster.env, "FAKE_MODE": "worker", "WALLTIME_SECONDS": str(WALLTIME),
                          "WARN_SECONDS": "0", "QSUB_ARGS": "-A proj"},
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as job:
        _, stderr = job.communicate(timeout=TIMEOUT)
    assert job.returncode == 0, stderr  # non-zero would make PBS delete the dependents
    assert (cluster.root / "worker-stopped").read_text() == "TERM\n"

    [qsub] = cluster.calls("qsub")
    assert qsub[:2] == ["-W", "depend=afterany:8123.pbs01"]
    assert qsub[2] == "-v" and "SPLIT=1" in qsub[3].split(",")
    assert qsub[3].endswith(",RESTART_COUNT=1")
    assert qsub[4:] == ["-A", "proj", str(JOBS / "pbs/train_single_frame.sh")]
    assert cluster.calls("qalter") == [
        ["-W", "depend=afterok:8123.pbs01@pbs01:201.pbs01,beforeok:8130.pbs01@pbs01",
         "8124.pbs01"],
        ["-W", "depend=afterok:8125.pbs01@pbs01:8123.pbs01@pbs01:201.pbs01", "8126.pbs01"],
    ]
    log = (cluster.runs / "logs" / "train_single_frame-8123.log").read_text()
    assert "received SIGUSR1" in log and "resubmitted as 201.pbs01" in log


def test_pbs_gives_up_after_max_restarts(cluster):
    cluster.pbs().make_dataset()
    result = cluster.run("pbs/train_3d.sh", FAKE_MODE="stopped", RESTART_COUNT="2",
                         MAX_RESTARTS="2", KINETICS_CHECKPOINT="/dev/null")
    assert result.returncode == 75
    assert cluster.calls("qsub") == []


def wait_for(path, process, seconds=TIMEOUT):
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, f"exited early with {process.returncode}"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


# --- submit_all ------------------------------------------------------------------------------

def submit_all(cluster, scheduler, *args, **extra_env):
    """The assignment's study (--models single_frame,3d), with the inputs submit_all.sh checks for."""
    cluster.make_dataset()
    (cluster.data / "UCF-101").mkdir()  # what --prepare decodes
    (cluster.data / "resnet-50-kinetics.pth").touch()
    result = run_group([BASH, str(JOBS / scheduler / "submit_all.sh"), "--models", "single_frame,3d", *args],
                            env={**cluster.env, **extra_env}, cwd=cluster.root,
                            timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    return [line.split() for line in result.stdout.splitlines()]


def option(call, name):
    """Value of --name=value in a recorded call, or None."""
    values = [arg.split("=", 1)[1] for arg in call if arg.startswith(f"--{name}=")]
    return values[0] if values else None


def test_slurm_submit_all_chains_with_afterok(cluster):
    printed = submit_all(cluster, "slurm", "--split", "2", "--prepare", "--", "--account=proj")
    calls = cluster.calls("sbatch")
    assert [Path(call[-1]).stem for call in calls] == STAGES
    assert printed == [[stage, str(job_id)] for stage, job_id in zip(STAGES, range(101, 107))]
    assert [option(call, "dependency") for call in calls] == [
        None, "afterok:101", "afterok:102", "afterok:101", "afterok:104", "afterok:103:105"]
    for call in calls:
        assert call[0] == "SPLIT=2" and "--parsable" in call and "--account=proj" in call
        assert option(call, "chdir") == str(REPO)
        assert option(call, "output") == f"{cluster.runs}/logs/%x-%j.log"
    assert (cluster.runs / "logs").is_dir()


def test_slurm_submit_all_without_prepare(cluster):
    submit_all(cluster, "slurm")
    calls = cluster.calls("sbatch")
    assert [Path(call[-1]).stem for call in calls] == STAGES[1:]
    assert [option(call, "dependency") for call in calls] == [
        None, "afterok:101", None, "afterok:103", "afterok:102:104"]


def test_slurm_submit_all_array_over_splits(cluster):
    submit_all(cluster, "slurm", "--splits", "1-3", PREPARE="1", SPLIT="2")
    calls = cluster.calls("sbatch")
    assert [option(call, "array") for call in calls] == [None] + ["1-3"] * 5 + [None]  # + summarize
    assert [option(call, "dependency") for call in calls] == [
        None, "afterok:101", "aftercorr:102", "afterok:101", "aftercorr:104", "aftercorr:103:105",
        "afterok:106"]
    assert {call[0] for call in calls} == {"SPLIT=unset"}  # tasks take SLURM_ARRAY_TASK_ID
    assert option(calls[1], "output") == f"{cluster.runs}/logs/%x-%A_%a.log"


def test_slurm_submit_all_rejects_a_bad_split(cluster):
    result = run_group([BASH, str(JOBS / "slurm/submit_all.sh"), "--split", "5"],
                            env=cluster.env, timeout=TIMEOUT)
    assert result.returncode == 2 and "--split must be 1, 2 or 3" in result.stderr
    assert cluster.calls("sbatch") == []


def test_pbs_submit_all_chains_with_afterok(cluster):
    printed = submit_all(cluster, "pbs", "--splits", "1,3", "--prepare", "--", "-A", "proj")
    calls = cluster.calls("qsub")
    stages = [Path(call[-1]).stem for call in calls]
    assert stages == STAGES + STAGES[1:] + ["summarize"]
    ids = [f"{n}.pbs01" for n in range(201, 213)]
    assert [line[2] for line in printed] == ids
    depends = [call[call.index("-W") + 1] if "-W" in call else None for call in calls]
    assert depends == [
        None,
        f"depend=afterok:{ids[0]}", f"depend=afterok:{ids[1]}", f"depend=afterok:{ids[0]}",
        f"depend=afterok:{ids[3]}", f"depend=afterok:{ids[2]}:{ids[4]}",
        f"depend=afterok:{ids[0]}", f"depend=afterok:{ids[6]}", f"depend=afterok:{ids[0]}",
        f"depend=afterok:{ids[8]}", f"depend=afterok:{ids[7]}:{ids[9]}",
        f"depend=afterok:{ids[5]}:{ids[10]}",
    ]
    for call, split in zip(calls, ["1"] * 6 + ["3"] * 6):
        variables = dict(item.split("=", 1) for item in call[call.index("-v") + 1].split(","))
        assert variables["SPLIT"] == split and variables["RUNS_DIR"] == str(cluster.runs)
        assert variables["REPO_DIR"] == str(REPO) and variables["QSUB_ARGS"] == "-A proj"
        assert call[-3:-1] == ["-A", "proj"]
