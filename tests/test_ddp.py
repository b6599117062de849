"""DDP correctness with two CPU processes (gloo) under torchrun.

With only the classifier trainable every BatchNorm is frozen (eval mode), so a 2-process epoch and a
1-process epoch over the same data must give the same numbers: each sample counts once, and the
gradient is the mean over the whole global batch.
"""
import json
import os
import re
import sys

import pytest
import torch

import make_synthetic_ucf101
from actionrec import guards
from actionrec.data import split_lists
from actionrec.evaluation import predictions as prediction_files
from helpers import read_log, run_group

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMON = ["--image-size", "32", "--workers", "0", "--device", "cpu", "--seed", "5"]
TRAIN = COMMON + ["--arch", "resnet18", "--pretrained", "none", "--trainable", "fc", "--lr", "1e-3"]


def train_args(nproc):
    """The same global batch (10) for 1 and 2 processes: --batch-size is per process."""
    return TRAIN + ["--batch-size", str(10 // nproc)]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    # 3 classes x 9 training videos = 27 samples: a global batch of 10 leaves a tail step of 7, which two
    # ranks share unequally (4 + 3): a loss weighted per rank instead of per sample would show.
    make_synthetic_ucf101.make_dataset(str(out), classes=3, train_per_class=9, test_per_class=3, frames=12,
                                       size=(32, 40), seed=1)
    return str(out)


def run(script, args, nproc=1, timeout=300):
    launcher = [sys.executable]
    if nproc > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = run_group(launcher + [script] + args, cwd=REPO, timeout=timeout, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def assert_same_epochs(a, b):
    assert [e["epoch"] for e in a] == [e["epoch"] for e in b]
    for x, y in zip(a, b):
        assert x["samples"] == y["samples"]
        for key in ("train_loss", "train_acc", "test_acc", "test_loss"):
            assert x[key] == pytest.approx(y[key], rel=1e-4, abs=1e-5), (key, x, y)


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    one, two = base / "one", base / "two"
    run("train_single_frame.py", ["--data-dir", data_dir, "--output-dir", str(one), "--epochs", "2"] + train_args(1))
    result = run("train_single_frame.py",
                 ["--data-dir", data_dir, "--output-dir", str(two), "--epochs", "2"] + train_args(2), nproc=2)
    return one, two, result


def test_two_processes_train_each_sample_once_with_single_process_metrics(runs):
    one, two, result = runs
    log_one, log_two = read_log(one), read_log(two)
    assert all(e["samples"] == 27 for e in log_two)  # the whole epoch across ranks, no sample twice
    assert_same_epochs(log_one, log_two)
    assert "2 process(es)" in result.stdout
    w1 = torch.load(one / "checkpoint.pth", weights_only=True)["model"]
    w2 = torch.load(two / "checkpoint.pth", weights_only=True)["model"]
    assert all(torch.allclose(w1[k], w2[k], atol=1e-5) for k in w1)


def test_only_rank_zero_writes(runs):
    _, two, result = runs
    assert sorted(os.listdir(two)) == ["COMPLETE", "checkpoint.pth", "log.jsonl", "tensorboard"]
    assert len(os.listdir(two / "tensorboard")) == 1  # one event file, from rank 0
    assert [e["epoch"] for e in read_log(two)] == [1, 2]
    assert result.stdout.count("epoch 1/2") == 1 and result.stdout.count("arguments:") == 1


def test_checkpoints_move_between_process_counts(runs, data_dir, tmp_path):
    one, two, _ = runs
    import shutil
    from_two, from_one = tmp_path / "from_two", tmp_path / "from_one"
    shutil.copytree(two, from_two)
    shutil.copytree(one, from_one)
    run("train_single_frame.py",
        ["--data-dir", data_dir, "--output-dir", str(from_two), "--epochs", "3"] + train_args(1))
    run("train_single_frame.py",
        ["--data-dir", data_dir, "--output-dir", str(from_one), "--epochs", "3"] + train_args(2), nproc=2)
    assert [e["epoch"] for e in read_log(from_two)] == [1, 2, 3]
    assert_same_epochs(read_log(from_two), read_log(from_one))


def test_test_script_splits_videos_over_ranks(runs, data_dir, tmp_path):
    one, _, _ = runs
    checkpoint = str(one / "checkpoint.pth")
    single = run("test_single_frame.py", ["--checkpoint", checkpoint, "--predictions-dir", str(tmp_path / "p1"),
                                          "--output-dir", str(tmp_path / "o1")] + COMMON)
    double = run("test_single_frame.py", ["--checkpoint", checkpoint, "--predictions-dir", str(tmp_path / "p2"),
                                          "--output-dir", str(tmp_path / "o2")] + COMMON, nproc=2)
    _, _, (paths, _) = split_lists.getUCF101(data_dir, 1)
    per_rank = re.search(r"wrote predictions for (\d+) videos \(per rank: (\d+), (\d+)\)", double.stdout)
    assert per_rank and int(per_rank.group(1)) == len(paths)
    assert int(per_rank.group(2)) + int(per_rank.group(3)) == len(paths) and int(per_rank.group(3)) > 0
    written = [os.path.join(d, f) for d, _, files in os.walk(tmp_path / "p2") for f in files
               if f not in ("model.json", guards.PROVENANCE_NAME)]
    assert len(written) == len(paths) and not [f for f in written if ".tmp" in f]
    for path in paths:
        a = prediction_files.read_predictions(prediction_files.prediction_path(tmp_path / "p1", path))
        b = prediction_files.read_predictions(prediction_files.prediction_path(tmp_path / "p2", path))
        assert a.shape == b.shape and abs(a - b).max() < 1e-4
    r1 = json.loads((tmp_path / "o1" / "results.json").read_text())
    r2 = json.loads((tmp_path / "o2" / "results.json").read_text())
    assert {k: r1[k] for k in ("top1", "top5", "videos")} == {k: r2[k] for k in ("top1", "top5", "videos")}
    assert single.stdout.count("wrote ") >= 1 and double.stdout.count("arguments:") == 1


def test_the_recurrent_model_trains_the_same_on_two_processes(runs, data_dir, tmp_path):
    one, _, _ = runs
    features = tmp_path / "features"
    run("extract_features.py", ["--data-dir", data_dir, "--checkpoint", str(one / "checkpoint.pth"),
                                "--output-dir", str(features)] + COMMON)
    rnn = ["--data-dir", data_dir, "--features", str(features), "--epochs", "2", "--hidden", "8", "--max-frames", "5",
           "--no-tensorboard"] + COMMON
    run("train_rnn.py", rnn + ["--output-dir", str(tmp_path / "r1"), "--batch-size", "10"])
    run("train_rnn.py", rnn + ["--output-dir", str(tmp_path / "r2"), "--batch-size", "5"], nproc=2)
    assert_same_epochs(read_log(tmp_path / "r1"), read_log(tmp_path / "r2"))
    w1 = torch.load(tmp_path / "r1" / "checkpoint.pth", weights_only=True)["model"]
    w2 = torch.load(tmp_path / "r2" / "checkpoint.pth", weights_only=True)["model"]
    assert all(torch.allclose(w1[k], w2[k], atol=1e-5) for k in w1)
