"""Tests for the whole five-model study in jobs/: TSN, C3D, features + RNN, summary, validation groups.

The same fake Slurm/PBS as tests/test_jobs.py (imported from it): DRY_RUN=1 prints the launch
commands, a fake torchrun stands in for the Python scripts, fake sbatch/qsub record what
submit_all.sh queues. The printed commands are also parsed with the real scripts' parsers, so a
flag that a script does not have fails here rather than on the cluster.
"""

import importlib
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import run_group
from test_jobs import BASH, JOBS, REPO, TIMEOUT, FakeCluster, expected_torchrun, option, torchrun_args

NEW_STAGES = ["train_tsn", "test_tsn", "train_c3d", "test_c3d", "extract_features", "train_rnn",
              "test_rnn", "summarize"]
GPU_STAGES = NEW_STAGES[:-1]
TRAIN_STAGES = {"train_single_frame": "single_frame", "train_tsn": "tsn", "train_3d": "3d",
                "train_c3d": "c3d", "train_rnn": "rnn"}
TEST_STAGES = {"test_single_frame": "single_frame", "test_tsn": "tsn", "test_3d": "3d",
               "test_c3d": "c3d", "test_rnn": "rnn"}
MODELS = ["single_frame", "tsn", "3d", "c3d", "rnn"]
NEW_SCRIPTS = [JOBS / scheduler / f"{stage}.sh" for scheduler in ("slurm", "pbs") for stage in NEW_STAGES]

# The published recipes (jobs/README.md), as the stages must pass them.
TSN_RECIPE = ["--segments", "3", "--dropout", "0.8", "--partial-bn", "--trainable", "all",
              "--optimizer", "sgd", "--lr", "1e-3", "--momentum", "0.9", "--weight-decay", "5e-4",
              "--lr-schedule", "step", "--lr-steps", "30,60", "--epochs", "80", "--clip-grad-norm", "20"]
C3D_RECIPE = ["--optimizer", "sgd", "--lr", "1e-3", "--momentum", "0.9", "--weight-decay", "5e-4",
              "--head-lr-mult", "10", "--lr-schedule", "step", "--lr-steps", "every:10", "--epochs", "100",
              "--batch-size", "20"]


@pytest.fixture
def cluster(tmp_path):
    return FakeCluster(tmp_path)


def study_inputs(cluster):
    """Everything submit_all.sh checks for: lists, videos, both released checkpoints, the venv,
    the ImageNet weights in the cache."""
    cluster.make_dataset()
    for name in ("resnet-50-kinetics.pth", "c3d-pretrained.pth"):
        (cluster.data / name).touch()
    cache = cluster.root / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / "resnet50-0676ba61.pth").touch()
    cluster.env["TORCH_HOME"] = str(cluster.root / "torch")
    return cluster


def script_args(cmd):
    """[script, args...] of a torchrun launch command (after the torchrun options)."""
    return torchrun_args(cmd)[10:]


def common_train(cluster, model, split=1, workers=7):
    return ["--data-dir", str(cluster.data), "--split", str(split),
            "--output-dir", str(cluster.runs / f"split{split}" / model), "--workers", str(workers)]


def common_test(cluster, model, split=1, workers=7, val=False):
    out = cluster.runs / f"split{split}" / model
    return ["--data-dir", str(cluster.data), "--split", str(split), "--checkpoint", str(out / "checkpoint.pth"),
            "--predictions-dir", str(out / ("val_predictions" if val else "predictions")),
            "--output-dir", str(out / ("val" if val else "test")), "--workers", str(workers)]


def one_error_line(result, job=False):
    """The only line on stderr, an error (a job's own timestamped log lines aside)."""
    lines = result.stderr.strip().splitlines()
    if job:
        lines = [line for line in lines if not line.startswith("[")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# --- the scripts -----------------------------------------------------------------------------

@pytest.mark.parametrize("script", NEW_SCRIPTS, ids=lambda p: str(p.relative_to(JOBS)))
def test_bash_syntax(script):
    result = subprocess.run([BASH, "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None,
                    reason="shellcheck is not installed (apt-get install shellcheck)")
def test_shellcheck():
    scripts = [*NEW_SCRIPTS, JOBS / "common.sh", JOBS / "slurm/submit_all.sh", JOBS / "pbs/submit_all.sh"]
    result = subprocess.run(["shellcheck", "-x", *map(str, scripts)], cwd=REPO,
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
@pytest.mark.parametrize("stage", NEW_STAGES)
def test_job_script_runs_its_own_stage(scheduler, stage):
    # PBS resubmits jobs/pbs/$STAGE.sh: the stage name must be the file's.
    text = (JOBS / scheduler / f"{stage}.sh").read_text()
    assert text.rstrip().splitlines()[-2:] == [f"init_job {scheduler} {stage}", f"stage_{stage}"]
    if scheduler == "slurm" and stage in GPU_STAGES:
        for directive in ["#SBATCH --signal=B:USR1@300", "#SBATCH --requeue", "#SBATCH --gpus-per-node=1"]:
            assert directive in text
    if scheduler == "pbs" and stage in GPU_STAGES:
        assert "ngpus=1" in text and "GPUS_PER_NODE=${GPUS_PER_NODE:-1}" in text


# --- the launch commands (DRY_RUN=1) ---------------------------------------------------------

@pytest.mark.parametrize("hosts, gpus, batch", [
    (["gpu07"], 1, "128"),                            # 128 / 1
    (["gpu01", "gpu02", "gpu03", "gpu04"], 4, "8"),   # 128 / 16
    (["gpu07"], 3, "32"),                             # 3 does not divide 128: 32 per GPU
])
def test_train_tsn_recipe_and_batch(cluster, hosts, gpus, batch):
    cluster.slurm(hosts=hosts, gpus=gpus, cpus=8 * gpus)
    [cmd] = cluster.dry_run("slurm/train_tsn.sh")
    assert script_args(cmd) == [str(REPO / "train_single_frame.py"), *common_train(cluster, "tsn"),
                                *TSN_RECIPE, "--batch-size", batch]


def test_test_tsn_frames_and_crops(cluster):
    cluster.pbs()
    [cmd] = cluster.dry_run("pbs/test_tsn.sh", SPLIT="2")
    assert torchrun_args(cmd)[:10] == expected_torchrun(1, 1, "gpu07:18123", "8123.pbs01")
    assert script_args(cmd) == [str(REPO / "test_single_frame.py"), *common_test(cluster, "tsn", split=2),
                                "--frames", "25", "--crops", "10"]


@pytest.mark.parametrize("c3d_checkpoint", [None, "/weights/c3d.pickle", "none"])
def test_train_c3d_recipe(cluster, c3d_checkpoint):
    cluster.slurm()
    extra = {"C3D_CHECKPOINT": c3d_checkpoint} if c3d_checkpoint else {}
    [cmd] = cluster.dry_run("slurm/train_c3d.sh", **extra)
    weights = c3d_checkpoint or f"{cluster.data}/c3d-pretrained.pth"
    assert script_args(cmd) == [str(REPO / "train_3d.py"), *common_train(cluster, "c3d"),
                                "--arch", "c3d", "--c3d-checkpoint", weights, *C3D_RECIPE]


def test_test_c3d_sliding(cluster):
    cluster.slurm()
    [cmd] = cluster.dry_run("slurm/test_c3d.sh", TEST_3D_MODE="full")  # the 3D ResNet's knob only
    assert script_args(cmd) == [str(REPO / "test_3d.py"), *common_test(cluster, "c3d"), "--mode", "sliding"]


@pytest.mark.parametrize("features_dir", [None, "/scratch/features"])
def test_features_then_rnn(cluster, features_dir):
    cluster.slurm()
    extra = {"FEATURES_DIR": features_dir} if features_dir else {}
    features = features_dir or str(cluster.runs / "split3" / "features")
    [extract] = cluster.dry_run("slurm/extract_features.sh", SPLIT="3", **extra)
    assert script_args(extract) == [str(REPO / "extract_features.py"), "--data-dir", str(cluster.data),
                                    "--split", "3", "--output-dir", features, "--workers", "7",
                                    "--subsets", "train,test"]
    [train] = cluster.dry_run("slurm/train_rnn.sh", SPLIT="3", **extra)
    assert script_args(train) == [str(REPO / "train_rnn.py"), *common_train(cluster, "rnn", split=3),
                                  "--features", features]
    [test] = cluster.dry_run("slurm/test_rnn.sh", SPLIT="3", **extra)
    assert script_args(test) == [str(REPO / "test_rnn.py"), *common_test(cluster, "rnn", split=3)]


def test_extra_args_come_after_the_recipe(cluster):
    cluster.slurm()
    [cmd] = cluster.dry_run("slurm/train_tsn.sh", TRAIN_TSN_ARGS="--epochs 3 --batch-size 16")
    assert script_args(cmd)[-6:] == ["--batch-size", "128", "--epochs", "3", "--batch-size", "16"]
    [cmd] = cluster.dry_run("slurm/test_c3d.sh", TEST_C3D_ARGS="--mode full --stride 4")
    assert script_args(cmd)[-6:] == ["--mode", "sliding", "--mode", "full", "--stride", "4"]


@pytest.mark.parametrize("stage", TRAIN_STAGES)
def test_val_groups_reach_every_training_stage(cluster, stage):
    cluster.slurm()
    [plain] = cluster.dry_run(f"slurm/{stage}.sh", TRAIN_SF_ARGS="--epochs 2")
    [cmd] = cluster.dry_run(f"slurm/{stage}.sh", VAL_GROUPS="23-25", TRAIN_SF_ARGS="--epochs 2")
    extra = ["--epochs", "2"] if stage == "train_single_frame" else []
    # Before the stage's *_ARGS, so that they can still change it.
    assert cmd == plain[:len(plain) - len(extra)] + ["--val-groups", "23-25"] + extra


@pytest.mark.parametrize("stage", TEST_STAGES)
def test_val_groups_add_the_validation_run_after_the_test(cluster, stage):
    model = TEST_STAGES[stage]
    cluster.slurm()
    [plain] = cluster.dry_run(f"slurm/{stage}.sh")
    test, val = cluster.dry_run(f"slurm/{stage}.sh", VAL_GROUPS="23-25")
    assert test == plain
    args = script_args(test)
    test_dirs = common_test(cluster, model)
    assert args[1:1 + len(test_dirs)] == test_dirs
    assert script_args(val) == [args[0], *common_test(cluster, model, val=True),
                                *args[1 + len(test_dirs):], "--subset", "val"]
    assert "--val-groups" not in args  # the test scripts take the groups from the checkpoint


def test_pbs_validation_run_on_every_node(cluster):
    cluster.pbs(nodefile_lines=["gpu01", "gpu02"], gpus=4, cpus=32)
    head, remote, val_head, val_remote = cluster.dry_run("pbs/test_tsn.sh", VAL_GROUPS="23-25")
    assert remote[:4] == ["pbsdsh", "-n", "1", "--"] and val_remote[:4] == remote[:4]
    assert torchrun_args(val_remote) == torchrun_args(val_head)
    assert script_args(val_head)[-2:] == ["--subset", "val"]


def make_predictions(cluster, models, split=1, val=False):
    for model in models:
        (cluster.runs / f"split{split}" / model / "predictions").mkdir(parents=True)
        if val:
            (cluster.runs / f"split{split}" / model / "val_predictions").mkdir()


def combine_cmd(cluster, *args, split=1, extra=()):
    return [str(REPO / ".venv/bin/python"), str(REPO / "combine_results.py"), "--data-dir", str(cluster.data),
            "--split", str(split), *args, "--output-dir", str(cluster.runs / f"split{split}" / "report"), *extra]


def model_flags(cluster, flag, models, folder, split=1):
    return [item for m in models for item in (flag, f"{m}={cluster.runs}/split{split}/{m}/{folder}")]


@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
def test_combine_every_model_with_validation_weights(cluster, scheduler):
    cluster.slurm() if scheduler == "slurm" else cluster.pbs()
    make_predictions(cluster, MODELS, split=2, val=True)
    [cmd] = cluster.dry_run(f"{scheduler}/combine.sh", SPLIT="2", VAL_GROUPS="23-25", COMBINE_ARGS="--fusion prob")
    assert cmd == combine_cmd(cluster, *model_flags(cluster, "--model", MODELS, "predictions", 2),
                              *model_flags(cluster, "--val", MODELS, "val_predictions", 2),
                              "--fuse", "single_frame,3d", "--fuse", "all", "--weights", "auto",
                              split=2, extra=["--fusion", "prob"])


@pytest.mark.parametrize("present, fusions", [
    (["single_frame", "3d"], ["--fuse", "single_frame,3d"]),  # the assignment's study: no duplicate 'all'
    (["single_frame", "3d", "rnn"], ["--fuse", "single_frame,3d", "--fuse", "all"]),
    (["tsn", "c3d"], ["--fuse", "all"]),
    (["c3d"], []),
])
def test_combine_takes_the_models_that_have_predictions(cluster, present, fusions):
    cluster.slurm()
    make_predictions(cluster, present)
    [cmd] = cluster.dry_run("slurm/combine.sh")
    assert cmd == combine_cmd(cluster, *model_flags(cluster, "--model", present, "predictions"), *fusions)


def test_combine_dry_run_before_any_test_shows_the_whole_study(cluster):
    cluster.slurm()
    [cmd] = cluster.dry_run("slurm/combine.sh")
    assert cmd == combine_cmd(cluster, *model_flags(cluster, "--model", MODELS, "predictions"),
                              "--fuse", "single_frame,3d", "--fuse", "all")


def test_combine_refuses_missing_validation_predictions(cluster):
    cluster.slurm().make_dataset()
    make_predictions(cluster, ["single_frame", "3d"], val=True)
    (cluster.runs / "split1" / "tsn" / "predictions").mkdir(parents=True)
    result = cluster.run("slurm/combine.sh", VAL_GROUPS="23-25")
    assert result.returncode == 2
    assert f"{cluster.runs}/split1/tsn/val_predictions not found" in one_error_line(result, job=True)
    result = cluster.run("slurm/combine.sh", SPLIT="3")
    assert result.returncode == 2 and "no test predictions" in one_error_line(result, job=True)


def test_summarize_reads_the_splits_that_have_a_report(cluster):
    cluster.slurm()
    for split in (1, 3):
        report = cluster.runs / f"split{split}" / "report"
        report.mkdir(parents=True)
        (report / "results.json").write_text("{}")
    (cluster.runs / "split2" / "report").mkdir(parents=True)  # combine never finished
    [cmd] = cluster.dry_run("slurm/summarize.sh", SUMMARY_ARGS="--output-dir /elsewhere")
    assert cmd == [str(REPO / ".venv/bin/python"), str(REPO / "combine_results.py"), "--summarize",
                   f"{cluster.runs}/split1/report", f"{cluster.runs}/split3/report",
                   "--output-dir", f"{cluster.runs}/summary", "--output-dir", "/elsewhere"]


def test_summarize_needs_two_reports(cluster):
    cluster.pbs().make_dataset()
    (cluster.runs / "split1" / "report").mkdir(parents=True)
    (cluster.runs / "split1" / "report" / "results.json").write_text("{}")
    result = cluster.run("pbs/summarize.sh")
    log = (cluster.runs / "logs" / "summarize-8123.log").read_text()  # PBS jobs log to a file
    assert result.returncode == 2 and "two splits or more, found 1" in log


def parse_with_the_scripts_parser(cmd):
    """argparse Namespace of a launch command, from the script's own get_args_parser()."""
    args = script_args(cmd) if "torch.distributed.run" in cmd else cmd[1:]
    module = importlib.import_module(Path(args[0]).stem)
    return module.get_args_parser().parse_args(args[1:])


def test_every_command_parses_with_its_script(cluster):
    """The flags exist in the scripts, and a *_ARGS flag wins over the recipe's."""
    cluster.slurm()
    make_predictions(cluster, MODELS, val=True)
    env = {"VAL_GROUPS": "23-25", "TRAIN_TSN_ARGS": "--epochs 3", "TEST_C3D_ARGS": "--stride 4"}
    parsed = {stage: [parse_with_the_scripts_parser(cmd) for cmd in cluster.dry_run(f"slurm/{stage}.sh", **env)]
              for stage in [*TRAIN_STAGES, *TEST_STAGES, "extract_features", "combine"]}
    [tsn] = parsed["train_tsn"]
    assert (tsn.segments, tsn.dropout, tsn.partial_bn, tsn.trainable, tsn.optimizer, tsn.lr, tsn.lr_steps,
            tsn.epochs, tsn.clip_grad_norm, tsn.batch_size, tsn.val_groups) == (
            3, 0.8, True, "all", "sgd", 1e-3, (30, 60), 3, 20.0, 128, "23-25")
    [c3d] = parsed["train_c3d"]
    assert (c3d.arch, c3d.lr, c3d.head_lr_mult, c3d.lr_steps, c3d.epochs, c3d.batch_size, c3d.weight_decay) == (
            "c3d", 1e-3, 10.0, ("every", 10), 100, 20, 5e-4)
    for stage in TEST_STAGES:
        test, val = parsed[stage]
        assert (test.subset, val.subset) == ("test", "val")
        assert val.predictions_dir.endswith("/val_predictions") and val.output_dir.endswith("/val")
    assert (parsed["test_tsn"][0].frames, parsed["test_tsn"][0].crops) == (25, 10)
    assert (parsed["test_c3d"][1].mode, parsed["test_c3d"][1].stride) == ("sliding", 4)
    assert parsed["extract_features"][0].subsets == "train,test"
    [combine] = parsed["combine"]
    assert combine.model == [f"{m}={cluster.runs}/split1/{m}/predictions" for m in MODELS]
    assert combine.val == [f"{m}={cluster.runs}/split1/{m}/val_predictions" for m in MODELS]
    assert (combine.fuse, combine.weights) == (["single_frame,3d", "all"], ["auto"])


# --- pre-flight checks and the stop protocol of the new stages ------------------------------

def test_train_c3d_needs_the_c3d_file(cluster):
    cluster.slurm().make_dataset()
    result = cluster.run("slurm/train_c3d.sh")
    assert result.returncode == 2
    assert one_error_line(result, job=True).startswith(f"error: {cluster.data}/c3d-pretrained.pth not found.")
    assert "C3D_CHECKPOINT" in result.stderr and not cluster.calls("torchrun")
    result = cluster.run("slurm/train_c3d.sh", C3D_CHECKPOINT="none", FAKE_MODE="complete")
    assert result.returncode == 0, result.stderr
    assert "--c3d-checkpoint none" in " ".join(cluster.calls("torchrun")[0])


def test_train_rnn_needs_the_features(cluster):
    cluster.pbs().make_dataset()
    result = cluster.run("pbs/train_rnn.sh")
    log = (cluster.runs / "logs" / "train_rnn-8123.log").read_text()
    assert result.returncode == 2
    assert f"error: {cluster.runs}/split1/features/features.json not found" in log
    assert not cluster.calls("torchrun")


def test_test_tsn_needs_a_checkpoint(cluster):
    result = cluster.slurm().make_dataset().run("slurm/test_tsn.sh")
    assert result.returncode == 2 and "tsn/checkpoint.pth not found" in result.stderr


@pytest.mark.parametrize("stage, args_var, own_weights", [
    ("train_tsn", "TRAIN_TSN_ARGS", "--pretrained none"),
    ("extract_features", "EXTRACT_ARGS", "--checkpoint runs/split1/single_frame/checkpoint.pth"),
])
def test_imagenet_weights_warning(cluster, stage, args_var, own_weights):
    cluster.slurm().make_dataset()
    result = cluster.run(f"slurm/{stage}.sh", FAKE_MODE="complete")
    assert result.returncode == 0, result.stderr
    assert "warning: no ResNet-50 ImageNet weights" in result.stderr
    result = cluster.run(f"slurm/{stage}.sh", FAKE_MODE="complete", **{args_var: own_weights})
    assert "ImageNet" not in result.stderr


@pytest.mark.parametrize("mode, status, calls, requeued", [
    ("incomplete", 0, 2, False),  # exit 0: the test run, then the validation run
    ("crash", 1, 1, False),       # the test run failed: no validation run, not requeued
    ("stopped", 0, 1, True),      # checkpointed: requeued, the validation run comes next time
])
def test_test_stage_with_validation_run(cluster, mode, status, calls, requeued):
    cluster.slurm().make_dataset()
    (cluster.runs / "split1" / "c3d").mkdir(parents=True)
    (cluster.runs / "split1" / "c3d" / "checkpoint.pth").touch()
    result = cluster.run("slurm/test_c3d.sh", FAKE_MODE=mode, VAL_GROUPS="23-25")
    assert result.returncode == status, result.stderr
    runs = cluster.calls("torchrun")
    assert len(runs) == calls
    assert "--subset" not in runs[0] and (calls == 1 or runs[1][-2:] == ["--subset", "val"])
    assert cluster.calls("scontrol") == ([["requeue", "4242"]] if requeued else [])


def test_pbs_new_stage_resubmits_itself_with_the_study_variables(cluster):
    cluster.pbs().make_dataset()
    (cluster.root / "qstat" / "8123.pbs01").write_text("Job Id: 8123.pbs01\n")
    (cluster.root / "c3d.pth").touch()
    result = cluster.run("pbs/train_c3d.sh", FAKE_MODE="stopped", C3D_CHECKPOINT=str(cluster.root / "c3d.pth"),
                         WALLTIME_SECONDS="3600", VAL_GROUPS="23-25", FEATURES_DIR="/f",
                         TRAIN_C3D_ARGS="--epochs 5", SUMMARY_ARGS="--x")
    assert result.returncode == 0, result.stderr
    [qsub] = cluster.calls("qsub")
    assert qsub[-1] == str(JOBS / "pbs/train_c3d.sh")
    variables = dict(item.split("=", 1) for item in qsub[qsub.index("-v") + 1].split(","))
    assert variables["C3D_CHECKPOINT"] == str(cluster.root / "c3d.pth")
    assert (variables["VAL_GROUPS"], variables["FEATURES_DIR"], variables["TRAIN_C3D_ARGS"],
            variables["SUMMARY_ARGS"], variables["RESTART_COUNT"]) == ("23-25", "/f", "--epochs 5", "--x", "1")


# --- submit_all ------------------------------------------------------------------------------

def submit(cluster, scheduler, *args, **extra_env):
    return run_group([BASH, str(JOBS / scheduler / "submit_all.sh"), *args],
                          env={**cluster.env, **extra_env}, cwd=cluster.root,
                          timeout=TIMEOUT)


def queued(cluster, *args, scheduler="slurm", **extra_env):
    result = submit(cluster, scheduler, *args, **extra_env)
    assert result.returncode == 0, result.stderr
    calls = cluster.calls("sbatch" if scheduler == "slurm" else "qsub")
    return [line.split() for line in result.stdout.splitlines()], calls


STUDY_STAGES = ["train_single_frame", "test_single_frame", "train_tsn", "test_tsn", "train_3d", "test_3d",
                "train_c3d", "test_c3d", "extract_features", "train_rnn", "test_rnn", "combine"]


def test_slurm_whole_study(cluster):
    study_inputs(cluster)
    (cluster.data / "UCF-101").mkdir()  # what prepare decodes
    printed, calls = queued(cluster, "--models", "all", "--split", "2", "--prepare")
    stages = [Path(call[-1]).stem for call in calls]
    assert stages == ["prepare", *STUDY_STAGES]
    ids = dict(zip(stages, range(101, 114)))
    assert printed == [[stage, str(ids[stage])] for stage in stages]
    p = "afterok:101"
    assert [option(call, "dependency") for call in calls] == [
        None, p, "afterok:102", p, "afterok:104", p, "afterok:106", p, "afterok:108",
        p, "afterok:110", "afterok:111", "afterok:103:105:107:109:112"]
    assert {call[0] for call in calls} == {"SPLIT=2"}
    assert all(option(call, "array") is None for call in calls)


def test_slurm_whole_study_is_the_default(cluster):
    study_inputs(cluster)
    _, calls = queued(cluster)
    assert [Path(call[-1]).stem for call in calls] == STUDY_STAGES


def test_slurm_three_splits_end_with_the_summary(cluster):
    study_inputs(cluster)
    printed, calls = queued(cluster, "--splits", "1-3", "--", "--account=proj")
    stages = [Path(call[-1]).stem for call in calls]
    assert stages == [*STUDY_STAGES, "summarize"]
    assert [option(call, "array") for call in calls] == ["1-3"] * 12 + [None]
    assert [option(call, "dependency") for call in calls] == [
        None, "aftercorr:101", None, "aftercorr:103", None, "aftercorr:105", None, "aftercorr:107",
        None, "aftercorr:109", "aftercorr:110", "aftercorr:102:104:106:108:111",
        "afterok:112"]  # every task of the combine array
    assert option(calls[-1], "output") == f"{cluster.runs}/logs/%x-%j.log"
    assert all("--account=proj" in call for call in calls)
    assert printed[-1] == ["summarize", "113"]


def test_slurm_one_split_array_has_no_summary(cluster):
    study_inputs(cluster)
    _, calls = queued(cluster, "--splits", "2", "--models", "c3d")
    assert [Path(call[-1]).stem for call in calls] == ["train_c3d", "test_c3d", "combine"]


@pytest.mark.parametrize("models, stages", [
    ("single_frame,3d", ["train_single_frame", "test_single_frame", "train_3d", "test_3d", "combine"]),
    ("3d,single_frame,3d", ["train_single_frame", "test_single_frame", "train_3d", "test_3d", "combine"]),
    ("rnn", ["extract_features", "train_rnn", "test_rnn", "combine"]),
])
def test_slurm_models_subset(cluster, models, stages):
    study_inputs(cluster)
    _, calls = queued(cluster, "--models", models)
    assert [Path(call[-1]).stem for call in calls] == stages
    assert option(calls[-1], "dependency") == "afterok:" + ":".join(
        str(101 + i) for i, stage in enumerate(stages) if stage.startswith("test_"))


def test_pbs_whole_study_over_two_splits(cluster):
    study_inputs(cluster)
    (cluster.data / "UCF-101").mkdir()
    printed, calls = queued(cluster, "--splits", "1,3", "--prepare", "--", "-A", "proj", scheduler="pbs",
                            VAL_GROUPS="23-25", FEATURES_DIR="/scratch/features", TRAIN_TSN_ARGS="--epochs 40")
    stages = [Path(call[-1]).stem for call in calls]
    assert stages == ["prepare", *STUDY_STAGES, *STUDY_STAGES, "summarize"]
    ids = [f"{n}.pbs01" for n in range(201, 201 + len(stages))]
    assert [line[2] for line in printed] == ids
    assert [line[1] for line in printed] == ["1"] * 13 + ["3"] * 12 + ["1,3"]
    depends = [call[call.index("-W") + 1] if "-W" in call else None for call in calls]
    prep = f"depend=afterok:{ids[0]}"

    def chain(first):
        """One split's 12 dependencies; i[0] is its train_single_frame, in STUDY_STAGES order."""
        i = ids[first:first + 12]
        return [prep, f"depend=afterok:{i[0]}", prep, f"depend=afterok:{i[2]}", prep, f"depend=afterok:{i[4]}",
                prep, f"depend=afterok:{i[6]}", prep, f"depend=afterok:{i[8]}", f"depend=afterok:{i[9]}",
                f"depend=afterok:{i[1]}:{i[3]}:{i[5]}:{i[7]}:{i[10]}"]
    assert depends == [None, *chain(1), *chain(13), f"depend=afterok:{ids[12]}:{ids[24]}"]
    for call, split in zip(calls, ["1"] * 13 + ["3"] * 13):
        variables = dict(item.split("=", 1) for item in call[call.index("-v") + 1].split(","))
        assert variables["SPLIT"] == split and variables["VAL_GROUPS"] == "23-25"
        assert variables["FEATURES_DIR"] == "/scratch/features" and variables["TRAIN_TSN_ARGS"] == "--epochs 40"
        assert call[-3:-1] == ["-A", "proj"]


def test_pbs_splits_as_a_range(cluster):
    study_inputs(cluster)
    printed, calls = queued(cluster, "--splits", "1-3", "--models", "single_frame,3d", scheduler="pbs")
    assert [line[:2] for line in printed][-1] == ["summarize", "1,2,3"]
    assert [Path(call[-1]).stem for call in calls].count("combine") == 3


@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
@pytest.mark.parametrize("args, env, message", [
    (["--models", "single_frame,i3d"], {}, "--models: unknown model 'i3d'"),
    (["--models", ""], {}, "--models needs a comma list"),
    (["--models", "all"], {"C3D_CHECKPOINT": "/nowhere/c3d.pth"}, "/nowhere/c3d.pth not found."),
    (["--models", "3d"], {"KINETICS_CHECKPOINT": "/nowhere/k.pth"}, "/nowhere/k.pth not found."),
    (["--splits", "3-1"], {}, "--split"),
    (["--prepare", "--models", "3d"], {}, "/UCF-101 not found. Download and unpack UCF-101"),
])
def test_submit_all_refuses_before_queueing(cluster, scheduler, args, env, message):
    study_inputs(cluster)
    result = submit(cluster, scheduler, *args, **env)
    assert result.returncode == 2
    assert message in one_error_line(result)
    assert cluster.calls("sbatch") == [] and cluster.calls("qsub") == []
    assert not (cluster.runs / "logs").exists()


def test_submit_all_needs_only_what_the_chosen_models_need(cluster):
    study_inputs(cluster)
    (cluster.data / "c3d-pretrained.pth").unlink()
    (cluster.data / "resnet-50-kinetics.pth").unlink()
    _, calls = queued(cluster, "--models", "single_frame,tsn,rnn")
    assert len(calls) == 8
    result = submit(cluster, "slurm", "--models", "tsn,c3d")
    assert result.returncode == 2 and "c3d-pretrained.pth not found" in one_error_line(result)
    result = submit(cluster, "slurm", "--models", "c3d", C3D_CHECKPOINT="none")
    assert result.returncode == 0, result.stderr


def test_submit_all_checks_the_dataset_and_warns_about_imagenet_weights(cluster):
    study_inputs(cluster)
    shutil.rmtree(cluster.data / "UCF-101-hdf5")
    result = submit(cluster, "slurm", "--models", "3d")
    assert result.returncode == 2 and "UCF-101-hdf5 not found" in one_error_line(result)
    (cluster.data / "UCF-101").mkdir()  # the original videos will do (or --prepare makes the HDF5)
    shutil.rmtree(cluster.root / "torch")
    result = submit(cluster, "pbs", "--models", "rnn")
    assert result.returncode == 0, result.stderr
    assert "warning: no ResNet-50 ImageNet weights" in result.stderr
    result = submit(cluster, "pbs", "--models", "rnn", EXTRACT_ARGS="--pretrained none")
    assert result.returncode == 0 and "ImageNet" not in result.stderr


def test_pbs_refuses_a_comma_in_a_variable(cluster):
    study_inputs(cluster)
    result = submit(cluster, "pbs", "--models", "3d", VAL_GROUPS="1,3")
    assert result.returncode == 2 and "VAL_GROUPS contains a comma" in one_error_line(result)
    assert cluster.calls("qsub") == []


# --- HMDB-51: DATASET=hmdb51 (or auto, from DATA_DIR) -----------------------------------------

EVERY_STAGE = ["prepare", "extract_flow", *TRAIN_STAGES, *TEST_STAGES, "extract_features", "combine", "summarize"]
HMDB_RUNS = REPO / "runs" / "hmdb51"  # RUNS_DIR's default for HMDB-51


def hmdb_data(cluster):
    """DATA_DIR in HMDB-51's layout: its split folder and its converted videos."""
    (cluster.data / "testTrainMulti_7030_splits").mkdir(parents=True)
    (cluster.data / "hmdb51-hdf5").mkdir()
    cluster.env.update(PYTHON="/bin/true", TORCHRUN="torchrun")
    return cluster


def every_stage_dry_run(cluster, scheduler="slurm", **env):
    return {stage: cluster.dry_run(f"{scheduler}/{stage}.sh", **env) for stage in EVERY_STAGE}


@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
def test_hmdb51_selects_hmdb51_for_every_stage(cluster, scheduler):
    """Every command names the dataset and parses with its script; HMDB-51's folders and its own runs."""
    cluster.slurm() if scheduler == "slurm" else cluster.pbs()
    del cluster.env["RUNS_DIR"]  # dry runs write nothing, not even the logs folder
    commands = every_stage_dry_run(cluster, scheduler, DATASET="hmdb51")
    parsed = {stage: [parse_with_the_scripts_parser(cmd) for cmd in cmds] for stage, cmds in commands.items()}
    for stage, namespaces in parsed.items():
        if stage != "summarize":
            assert [ns.dataset for ns in namespaces] == ["hmdb51"], stage
    [prepare] = parsed["prepare"]
    assert (prepare.videos, prepare.out) == (f"{cluster.data}/hmdb51", f"{cluster.data}/hmdb51-hdf5")
    assert parsed["extract_flow"][0].out == f"{cluster.data}/hmdb51-flow"
    for stage, model in {**TRAIN_STAGES, **TEST_STAGES}.items():
        [ns] = parsed[stage]
        assert ns.data_dir == str(cluster.data) and str(HMDB_RUNS / "split1" / model) in " ".join(
            commands[stage][0]), stage
    [combine] = parsed["combine"]
    assert combine.model == [f"{m}={HMDB_RUNS}/split1/{m}/predictions" for m in MODELS]
    assert combine.output_dir == f"{HMDB_RUNS}/split1/report"
    [summary] = parsed["summarize"]
    assert summary.summarize == [f"{HMDB_RUNS}/split{s}/report" for s in (1, 2, 3)]
    assert summary.output_dir == f"{HMDB_RUNS}/summary"


def test_hmdb51_is_detected_from_the_data_dir(cluster):
    """DATASET unset: auto, as the scripts decide it; no --dataset flag (the scripts detect it too)."""
    hmdb_data(cluster.slurm())
    del cluster.env["RUNS_DIR"]
    auto = every_stage_dry_run(cluster)
    assert not any("--dataset" in cmd for cmds in auto.values() for cmd in cmds)
    [prepare] = auto["prepare"]
    assert prepare[prepare.index("--videos") + 1:prepare.index("--out") + 2] == [
        f"{cluster.data}/hmdb51", "--out", f"{cluster.data}/hmdb51-hdf5"]
    explicit = every_stage_dry_run(cluster, DATASET="hmdb51")
    for stage in EVERY_STAGE:  # the same commands, less the flag
        assert [[a for a in cmd if a not in ("--dataset", "hmdb51")] for cmd in explicit[stage]] == auto[stage]
    [train] = auto["train_3d"]
    assert f"{HMDB_RUNS}/split1/3d" in train


def test_dataset_ucf101_is_passed_on_and_the_default_is_unchanged(cluster):
    cluster.slurm()
    [plain] = cluster.dry_run("slurm/train_3d.sh")
    [cmd] = cluster.dry_run("slurm/train_3d.sh", DATASET="ucf101")
    at = plain.index("--data-dir") + 2
    assert cmd == plain[:at] + ["--dataset", "ucf101"] + plain[at:]
    assert parse_with_the_scripts_parser(cmd).dataset == "ucf101"


@pytest.mark.parametrize("env, make, message", [
    ({"DATASET": "hmdb"}, [], "error: DATASET must be ucf101, hmdb51 or auto, got 'hmdb'"),
    ({}, ["ucfTrainTestlist", "testTrainMulti_7030_splits"],
     "holds both ucfTrainTestlist/ and testTrainMulti_7030_splits/: set DATASET=ucf101 or DATASET=hmdb51"),
    ({"DATASET": "hmdb51"}, ["ucfTrainTestlist", "UCF-101-hdf5"],
     "/testTrainMulti_7030_splits not found. Set DATA_DIR to the folder holding testTrainMulti_7030_splits/ and "
     "hmdb51-hdf5/."),
    ({"DATASET": "hmdb51"}, ["testTrainMulti_7030_splits", "UCF-101-hdf5"],
     "/hmdb51-hdf5 not found (nor the original videos, "),
    ({}, [], "/ucfTrainTestlist not found. Set DATA_DIR to the folder holding ucfTrainTestlist/ and UCF-101-hdf5/. "
             "For HMDB-51, set DATASET=hmdb51."),
])
def test_hmdb51_job_refuses_the_wrong_data_in_one_line(cluster, env, make, message):
    cluster.slurm().env.update(PYTHON="/bin/true", TORCHRUN="torchrun")
    for folder in make:
        (cluster.data / folder).mkdir(parents=True)
    result = cluster.run("slurm/train_single_frame.sh", **env)
    assert result.returncode == 2 and message in one_error_line(result, job=True)
    assert not cluster.calls("torchrun")


def test_hmdb51_prepare_job_converts_hmdb51(cluster):
    hmdb_data(cluster.slurm())
    result = cluster.run("slurm/prepare.sh", DATASET="hmdb51")
    assert result.returncode == 2
    assert one_error_line(result, job=True) == (f"error: {cluster.data}/hmdb51 not found. Unpack hmdb51_org.rar and "
                                                "its per-action .rar files there, or set VIDEOS_DIR.")


def test_hmdb51_submit_all(cluster):
    study_inputs(cluster)
    shutil.rmtree(cluster.data / "ucfTrainTestlist")
    hmdb_data(cluster)
    result = submit(cluster, "pbs", "--models", "3d", "--prepare", DATASET="hmdb51")
    assert result.returncode == 2 and "hmdb51 not found. Unpack hmdb51_org.rar" in one_error_line(result)
    (cluster.data / "hmdb51").mkdir()
    printed, calls = queued(cluster, "--splits", "1,3", "--models", "3d", "--prepare", scheduler="pbs",
                            DATASET="hmdb51")
    assert [line[0] for line in printed] == ["prepare", "train_3d", "test_3d", "combine", "train_3d", "test_3d",
                                             "combine", "summarize"]
    for call in calls:  # PBS jobs inherit nothing: DATASET goes with -v, and with every resubmission
        variables = dict(item.split("=", 1) for item in call[call.index("-v") + 1].split(","))
        assert variables["DATASET"] == "hmdb51" and variables["RUNS_DIR"] == str(cluster.runs)
    _, calls = queued(cluster, "--models", "3d", DATASET="hmdb51")
    assert [Path(call[-1]).stem for call in calls] == ["train_3d", "test_3d", "combine"]
    (cluster.data / "ucfTrainTestlist").mkdir()
    result = submit(cluster, "slurm", "--models", "3d")  # auto cannot choose: nothing is queued
    assert result.returncode == 2 and "set DATASET=ucf101 or DATASET=hmdb51" in one_error_line(result)
