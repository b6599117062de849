"""The motion stream's stages in jobs/ (issue 22): TSN flow and RGB difference, trained and tested with
TSN's recipes, the flow stages reading FLOW_DIR, chained after the extract_flow array by submit_all.sh,
and combine fusing RGB + flow (TSN's 1 : 1.5 with TWO_STREAM_WEIGHTS=tsn).

The fake Slurm/PBS of tests/test_jobs.py: DRY_RUN=1 prints the launch commands, and every printed command
is parsed by its script's own parser, for both datasets and every split."""

import subprocess
from pathlib import Path

import pytest

from helpers import run_group
from test_jobs import BASH, JOBS, TIMEOUT, FakeCluster, option
from test_jobs_study import common_test, common_train, make_predictions, parse_with_the_scripts_parser, script_args

MOTION_STAGES = ["train_tsn_flow", "test_tsn_flow", "train_tsn_rgbdiff", "test_tsn_rgbdiff"]
SCRIPTS = [JOBS / scheduler / f"{stage}.sh" for scheduler in ("slurm", "pbs") for stage in MOTION_STAGES]
# tsn-pytorch's flow recipe and TSN's RGB difference (FACTS.md, "Optical flow and RGB difference"), and
# TSN's test (25 snippets x 10 crops), as the stages must pass them.
FLOW_RECIPE = ["--modality", "flow", "--new-length", "5", "--segments", "3", "--dropout", "0.7", "--partial-bn",
               "--trainable", "all", "--optimizer", "sgd", "--lr", "1e-3", "--momentum", "0.9", "--weight-decay",
               "5e-4", "--lr-schedule", "step", "--lr-steps", "190,300", "--epochs", "340", "--clip-grad-norm", "20"]
RGBDIFF_RECIPE = ["--modality", "rgbdiff", "--new-length", "5", "--segments", "7", "--dropout", "0.8",
                  "--partial-bn", "--trainable", "all", "--optimizer", "sgd", "--lr", "1e-3", "--momentum", "0.9",
                  "--weight-decay", "5e-4", "--lr-schedule", "step", "--lr-steps", "30,60", "--epochs", "80",
                  "--clip-grad-norm", "20"]
TEST_RECIPE = ["--frames", "25", "--crops", "10"]


@pytest.fixture
def cluster(tmp_path):
    return FakeCluster(tmp_path)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(JOBS)))
def test_scripts_are_bash_and_run_their_own_stage(script):
    result = subprocess.run([BASH, "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    scheduler, stage = script.parent.name, script.stem
    text = script.read_text()
    assert text.rstrip().splitlines()[-2:] == [f"init_job {scheduler} {stage}", f"stage_{stage}"]
    if scheduler == "slurm":
        for directive in ["#SBATCH --signal=B:USR1@300", "#SBATCH --requeue", "#SBATCH --gpus-per-node=1"]:
            assert directive in text
    else:
        assert "ngpus=1" in text and "GPUS_PER_NODE=${GPUS_PER_NODE:-1}" in text


def test_train_flow_is_tsn_pytorchs_flow_recipe_from_flow_dir(cluster):
    cluster.slurm()
    [cmd] = cluster.dry_run("slurm/train_tsn_flow.sh")
    assert script_args(cmd) == [str(Path(JOBS).parent / "train_single_frame.py"), *common_train(cluster, "tsn_flow"),
                                *FLOW_RECIPE, "--flow-dir", f"{cluster.data}/UCF-101-flow", "--batch-size", "128"]
    args = parse_with_the_scripts_parser(cmd)
    assert (args.modality, args.new_length, args.segments, args.dropout, args.partial_bn, args.trainable,
            args.optimizer, args.lr, args.momentum, args.weight_decay, args.lr_steps, args.epochs,
            args.clip_grad_norm, args.batch_size) == (
            "flow", 5, 3, 0.7, True, "all", "sgd", 1e-3, 0.9, 5e-4, (190, 300), 340, 20.0, 128)
    [cmd] = cluster.dry_run("slurm/train_tsn_flow.sh", FLOW_DIR="/scratch/flow", TRAIN_TSN_FLOW_ARGS="--epochs 5")
    args = parse_with_the_scripts_parser(cmd)
    assert (args.flow_dir, args.epochs) == ("/scratch/flow", 5)  # *_ARGS win over the recipe


def test_train_rgbdiff_is_tsns_rgb_difference(cluster):
    cluster.pbs(nodefile_lines=["gpu01", "gpu02", "gpu03", "gpu04"], gpus=4, cpus=32)
    cmd = cluster.dry_run("pbs/train_tsn_rgbdiff.sh", SPLIT="3")[0]
    assert script_args(cmd) == [str(Path(JOBS).parent / "train_single_frame.py"),
                                *common_train(cluster, "tsn_rgbdiff", split=3, workers=7), *RGBDIFF_RECIPE,
                                "--batch-size", "8"]  # 128 over 16 GPUs
    args = parse_with_the_scripts_parser(cmd)
    assert (args.modality, args.new_length, args.segments, args.flow_dir) == ("rgbdiff", 5, 7, None)


@pytest.mark.parametrize("stage, model, extra", [
    ("test_tsn_flow", "tsn_flow", ["--flow-dir", "{data}/UCF-101-flow"]),
    ("test_tsn_rgbdiff", "tsn_rgbdiff", []),
])
def test_test_stages_are_tsns_test(cluster, stage, model, extra):
    cluster.slurm()
    test, val = cluster.dry_run(f"slurm/{stage}.sh", VAL_GROUPS="23-25")
    extra = [a.format(data=cluster.data) for a in extra]
    assert script_args(test) == [str(Path(JOBS).parent / "test_single_frame.py"), *common_test(cluster, model),
                                 *TEST_RECIPE, *extra]
    assert script_args(val)[-2:] == ["--subset", "val"]
    for cmd in (test, val):
        args = parse_with_the_scripts_parser(cmd)
        assert (args.frames, args.crops) == (25, 10)


@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
@pytest.mark.parametrize("dataset, flow_folder, runs", [("ucf101", "UCF-101-flow", None),
                                                        ("hmdb51", "hmdb51-flow", "hmdb51")])
@pytest.mark.parametrize("split", ["1", "2", "3"])
def test_every_stage_parses_for_both_datasets_and_every_split(cluster, scheduler, dataset, flow_folder, runs, split):
    cluster.slurm() if scheduler == "slurm" else cluster.pbs()
    if runs:
        del cluster.env["RUNS_DIR"]  # HMDB-51's own default, runs/hmdb51
    for stage in MOTION_STAGES:
        [cmd] = cluster.dry_run(f"{scheduler}/{stage}.sh", DATASET=dataset, SPLIT=split)
        args = parse_with_the_scripts_parser(cmd)
        assert (args.dataset, args.split, args.data_dir) == (dataset, int(split), str(cluster.data))
        model = stage.split("_", 1)[1]
        folder = args.output_dir if stage.startswith("train") else args.checkpoint
        assert f"/split{split}/{model}" in folder and ("/hmdb51/" in folder) == bool(runs)
        assert args.flow_dir == (f"{cluster.data}/{flow_folder}" if model == "tsn_flow" else None)


def test_flow_stages_need_the_flow_folder(cluster):
    cluster.slurm().make_dataset()
    for stage in ("train_tsn_flow", "test_tsn_flow"):
        result = cluster.run(f"slurm/{stage}.sh")
        lines = [line for line in result.stderr.splitlines() if not line.startswith("[")]
        assert result.returncode == 2 and len(lines) == 1
        assert lines[0].startswith(f"error: {cluster.data}/UCF-101-flow not found. Run the extract_flow job first")
    assert not cluster.calls("torchrun")
    (cluster.data / "UCF-101-flow").mkdir()
    result = cluster.run("slurm/train_tsn_flow.sh", FAKE_MODE="complete")
    assert result.returncode == 0, result.stderr
    assert "--modality flow" in " ".join(cluster.calls("torchrun")[0])


# --- combine -------------------------------------------------------------------------------------

def combine_args(cluster, **env):
    [cmd] = cluster.dry_run("slurm/combine.sh", **env)
    return cmd, parse_with_the_scripts_parser(cmd)


def test_combine_fuses_rgb_and_flow_and_rgb_difference(cluster):
    cluster.slurm()
    make_predictions(cluster, ["single_frame", "tsn", "3d", "tsn_flow", "tsn_rgbdiff"])
    cmd, args = combine_args(cluster)
    assert [m.split("=")[0] for m in args.model] == ["single_frame", "tsn", "3d", "tsn_flow", "tsn_rgbdiff"]
    assert args.fuse == ["single_frame,3d", "tsn,tsn_flow", "tsn,tsn_rgbdiff", "all"] and args.weights is None
    cmd, args = combine_args(cluster, TWO_STREAM_WEIGHTS="tsn")  # TSN's RGB : flow
    assert args.weights == ["equal", "1,1.5", "equal", "equal"]  # one per --fuse, in order
    cmd, args = combine_args(cluster, TWO_STREAM_WEIGHTS="tsn", VAL_GROUPS="23-25")
    assert args.weights == ["auto", "1,1.5", "auto", "auto"]
    assert [v.split("=")[0] for v in args.val] == [m.split("=")[0] for m in args.model]


@pytest.mark.parametrize("present, fusions, weights", [
    (["tsn", "tsn_flow"], ["tsn,tsn_flow"], ["1,1.5"]),  # the two streams only: no duplicate 'all'
    (["single_frame", "tsn_flow"], ["all"], None),       # no TSN RGB: nothing for TSN's weights
    (["tsn_rgbdiff"], [], None),
])
def test_combine_takes_the_motion_models_that_have_predictions(cluster, present, fusions, weights):
    cluster.slurm()
    make_predictions(cluster, present)
    _, args = combine_args(cluster, TWO_STREAM_WEIGHTS="tsn")
    assert [m.split("=")[0] for m in args.model] == present
    assert (args.fuse or []) == fusions and args.weights == weights


def test_combine_refuses_other_two_stream_weights(cluster):
    cluster.slurm().make_dataset()
    make_predictions(cluster, ["tsn", "tsn_flow"])
    result = cluster.run("slurm/combine.sh", TWO_STREAM_WEIGHTS="1,2")
    lines = [line for line in result.stderr.splitlines() if not line.startswith("[")]
    assert result.returncode == 2 and lines == ["error: TWO_STREAM_WEIGHTS must be tsn (TSN's RGB : flow = 1 : 1.5) "
                                                "or empty, got '1,2'"]


# --- submit_all: after the extract_flow array ------------------------------------------------------

def inputs(cluster):
    cluster.make_dataset()
    cache = cluster.root / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / "resnet50-0676ba61.pth").touch()
    cluster.env["TORCH_HOME"] = str(cluster.root / "torch")
    for name in ("resnet-50-kinetics.pth", "c3d-pretrained.pth"):
        (cluster.data / name).touch()
    return cluster


def submit(cluster, scheduler, *args, **env):
    result = run_group([BASH, str(JOBS / scheduler / "submit_all.sh"), *args], env={**cluster.env, **env},
                       cwd=cluster.root, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    return [line.split() for line in result.stdout.splitlines()], result


def test_slurm_flow_stream_waits_for_the_whole_flow_array(cluster):
    inputs(cluster)
    printed, _ = submit(cluster, "slurm", "--models", "tsn,tsn_flow,tsn_rgbdiff", "--split", "2")
    calls = cluster.calls("sbatch")
    assert [Path(call[-1]).stem for call in calls] == [
        "train_tsn", "test_tsn", "extract_flow", "train_tsn_flow", "test_tsn_flow", "train_tsn_rgbdiff",
        "test_tsn_rgbdiff", "combine"]
    assert [option(call, "dependency") for call in calls] == [
        None, "afterok:101", None, "afterok:103", "afterok:104", None, "afterok:106", "afterok:102:105:107"]
    assert option(calls[2], "array") is None  # the script's shards (--array=0-15), not splits
    assert option(calls[2], "output").endswith("/logs/%x-%A_%a.log")
    printed, _ = submit(cluster, "slurm", "--models", "all,tsn_flow", "--splits", "1-3")
    calls = cluster.calls("sbatch")[8:]
    stages = [Path(call[-1]).stem for call in calls]
    assert stages.count("extract_flow") == 1 and stages[-1] == "summarize" and len(stages) == 16
    flow = stages.index("extract_flow")
    assert option(calls[flow], "array") is None and option(calls[flow + 1], "array") == "1-3"
    assert option(calls[flow + 1], "dependency") == f"afterok:{printed[flow][1]}"
    assert option(calls[flow + 2], "dependency") == f"aftercorr:{printed[flow + 1][1]}"


def test_pbs_flow_array_is_queued_once_for_every_split(cluster):
    inputs(cluster)
    (cluster.data / "UCF-101").mkdir()
    printed, _ = submit(cluster, "pbs", "--models", "tsn_flow", "--splits", "1,3", "--prepare",
                        FLOW_DIR="/scratch/flow", TRAIN_TSN_FLOW_ARGS="--epochs 5", TWO_STREAM_WEIGHTS="tsn")
    assert [line[:2] for line in printed] == [
        ["prepare", "1"], ["extract_flow", "all"], ["train_tsn_flow", "1"], ["test_tsn_flow", "1"], ["combine", "1"],
        ["train_tsn_flow", "3"], ["test_tsn_flow", "3"], ["combine", "3"], ["summarize", "1,3"]]
    calls = cluster.calls("qsub")
    ids = [line[2] for line in printed]
    depends = [call[call.index("-W") + 1] if "-W" in call else None for call in calls]
    assert depends[1:3] == [f"depend=afterok:{ids[0]}", f"depend=afterok:{ids[1]}"]
    assert depends[5] == f"depend=afterok:{ids[1]}"
    for call in calls:  # PBS jobs inherit nothing: the flow settings go with -v (and with every resubmission)
        variables = dict(item.split("=", 1) for item in call[call.index("-v") + 1].split(","))
        assert (variables["FLOW_DIR"], variables["TRAIN_TSN_FLOW_ARGS"], variables["TWO_STREAM_WEIGHTS"]) == (
            "/scratch/flow", "--epochs 5", "tsn")


def test_models_all_is_the_five_model_study_and_motion_models_are_named(cluster):
    inputs(cluster)
    submit(cluster, "slurm")
    assert not any("tsn_flow" in call[-1] or "extract_flow" in call[-1] for call in cluster.calls("sbatch"))
    result = run_group([BASH, str(JOBS / "slurm" / "submit_all.sh"), "--models", "flow"], env=cluster.env,
                       cwd=cluster.root, timeout=TIMEOUT)
    assert result.returncode == 2 and ("--models: unknown model 'flow' (choose from single_frame,tsn,3d,c3d,rnn,"
                                       "tsn_flow,tsn_rgbdiff, or all)") in result.stderr
