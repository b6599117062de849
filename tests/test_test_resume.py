"""Resuming a test run: finished prediction files are skipped (their videos are not computed again),
a damaged or incomplete one is redone, a signal stops test_3d.py after the video in progress and a
rerun gives the results of an uninterrupted run, and a loader worker that dies ends a real
test_single_frame.py with one line and exit status 1, keeping the finished files.

Checkpoints are made by hand (a training script's dict around an untrained model): the test driver,
not the model, is what is tested here.
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import make_synthetic_ucf101
import resnet_3d
import test_3d
import test_single_frame
import train_single_frame
from actionrec import guards
from actionrec.data import split_lists, video_files
from actionrec.engine import checkpoints, devices
from actionrec.evaluation import predictions as prediction_files
from actionrec.inference import clip_views, frame_views
from actionrec.zoo import frame_nets
from helpers import child_pids, start_group

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPU = ["--workers", "0", "--device", "cpu"]
CLASSES = 3


def checkpoint_file(path, model, kind, args, class_list):
    torch.save({"model": model.state_dict(), "epoch": 1, "args": {"split": 1, "seed": 0, **args},
                "class_list": class_list, "kind": kind, "val_groups": []}, path)
    return str(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    data = str(root / "data")
    make_synthetic_ucf101.make_dataset(data, classes=CLASSES, train_per_class=1, test_per_class=4, frames=12,
                                       size=(32, 40), seed=0)
    class_list, _, (paths, _) = split_lists.getUCF101(data, 1)
    class_list = [str(c) for c in class_list]
    torch.manual_seed(0)
    frame = frame_nets.build_model(
        train_single_frame.get_args_parser().parse_args(["--arch", "resnet18", "--pretrained", "none"]),
        CLASSES, devices.Dist(), pretrained=False)
    clip = resnet_3d.generate_model(10, shortcut_type="A", num_classes=CLASSES, layer4_blocks=1)
    common = {"data_dir": data, "image_size": 32}
    return {"data": data, "paths": [str(p) for p in paths],
            "frame": checkpoint_file(root / "frame.pth", frame, "frame", {**common, "arch": "resnet18"}, class_list),
            "clip": checkpoint_file(root / "clip.pth", clip, "clip", {**common, "depth": 10, "layer4_blocks": 1,
                                                                      "clip_len": 8}, class_list)}


def run_test(module, checkpoint, out, *extra):
    argv = ["--checkpoint", checkpoint, "--predictions-dir", str(out / "predictions"), "--output-dir",
            str(out / "test"), *CPU, *extra]
    return module.main(module.get_args_parser().parse_args(argv))


def files_written(folder):
    """{relative path: bytes} of the prediction files under folder (model.json and provenance.json aside)."""
    found = {}
    for directory, _, names in os.walk(folder):
        for name in names:
            if name not in ("model.json", guards.PROVENANCE_NAME):
                path = os.path.join(directory, name)
                with open(path, "rb") as f:
                    found[os.path.relpath(path, folder)] = f.read()
    return found


def results(out):
    return json.loads((out / "test" / "results.json").read_text())


SCORES = ("top1", "top5", "top10", "mean_class_accuracy", "videos", "per_class_accuracy")


def count_model_work(monkeypatch, module, name):
    """Patch a test script's rows function so that every chunk the model is run on is counted (frames)."""
    real, frames = getattr(module, name), []

    def counting(*args, **kwargs):
        rows = real(*args, **kwargs)

        def counted(model, chunk, normalize):
            frames.append(len(chunk))
            return rows(model, chunk, normalize)
        return counted
    monkeypatch.setattr(module, name, counting)
    return frames


def count_writes(monkeypatch):
    real, written = prediction_files.write_predictions, []

    def write(path, logits, attrs=None):
        written.append(path)
        return real(path, logits, attrs)
    monkeypatch.setattr(prediction_files, "write_predictions", write)
    return written


def test_finished_files_are_skipped_and_damaged_ones_redone(world, tmp_path, monkeypatch):
    run_test(test_single_frame, world["frame"], tmp_path)
    first = files_written(tmp_path / "predictions")
    paths = world["paths"]
    truncated = prediction_files.prediction_path(tmp_path / "predictions", paths[1])
    with open(truncated, "r+b") as f:  # what a full disk or a killed copy leaves
        f.truncate(os.path.getsize(truncated) // 2)
    wrong = prediction_files.prediction_path(tmp_path / "predictions", paths[4])
    prediction_files.write_predictions(wrong, np.zeros((3, CLASSES + 1)))  # another class count
    frames = count_model_work(monkeypatch, frame_views, "frame_logits")
    written = count_writes(monkeypatch)
    second_results = run_test(test_single_frame, world["frame"], tmp_path)
    assert sorted(written) == sorted([truncated, wrong])  # only those two were written again
    assert (
        sum(frames) == video_files.video_info(paths[1])[0] + video_files.video_info(paths[4])[0]
    )  # and only they were computed
    assert files_written(tmp_path / "predictions") == first  # the same bytes as the first run
    assert {k: second_results[k] for k in SCORES} == {k: results(tmp_path)[k] for k in SCORES}


def test_a_rerun_of_a_finished_test_computes_nothing(world, tmp_path, monkeypatch):
    run_test(test_3d, world["clip"], tmp_path, "--mode", "sliding", "--stride", "4")
    frames = count_model_work(monkeypatch, clip_views, "clip_logits")
    written = count_writes(monkeypatch)
    run_test(test_3d, world["clip"], tmp_path, "--mode", "sliding", "--stride", "4")
    assert frames == [] and written == []


def test_a_prediction_file_holding_nan_is_redone_not_scored(world, tmp_path, monkeypatch):
    run_test(test_single_frame, world["frame"], tmp_path)
    first = files_written(tmp_path / "predictions")
    damaged = prediction_files.prediction_path(tmp_path / "predictions", world["paths"][2])
    prediction_files.write_predictions(damaged, np.full((12, CLASSES), np.nan, dtype=np.float32))
    written = count_writes(monkeypatch)
    run_test(test_single_frame, world["frame"], tmp_path)
    assert written == [damaged]
    assert files_written(tmp_path / "predictions") == first


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_3d_test_stops_on_a_signal_and_resumes_to_the_same_results(world, tmp_path, monkeypatch, sig):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run_test(test_3d, world["clip"], straight)
    real, calls = prediction_files.write_predictions, []

    def write_then_signal(path, logits, attrs=None):
        real(path, logits, attrs)
        calls.append(path)
        if len(calls) == 2:
            os.kill(os.getpid(), sig)  # what Slurm or PBS sends before the walltime
    monkeypatch.setattr(prediction_files, "write_predictions", write_then_signal)
    with pytest.raises(SystemExit) as stopped:
        run_test(test_3d, world["clip"], resumed)
    assert stopped.value.code == checkpoints.EXIT_PREEMPTED and len(calls) == 2  # the video in progress is finished
    assert not (resumed / "test" / "results.json").exists()
    assert sorted(files_written(resumed / "predictions")) == sorted(
        os.path.relpath(p, resumed / "predictions") for p in calls)
    monkeypatch.undo()
    written = count_writes(monkeypatch)
    run_test(test_3d, world["clip"], resumed)
    assert len(written) == len(world["paths"]) - 2
    assert files_written(resumed / "predictions") == files_written(straight / "predictions")
    assert {k: results(resumed)[k] for k in SCORES} == {k: results(straight)[k] for k in SCORES}


@pytest.mark.skipif(not os.path.exists(f"/proc/{os.getpid()}/task"), reason="needs Linux /proc")
def test_a_loader_worker_killed_during_a_test_ends_it_with_one_line(world, tmp_path):
    # One frame per chunk and per forward pass: the test runs for seconds, long enough to kill a worker
    # once the first video's file is written.
    predictions = tmp_path / "predictions"
    cmd = [sys.executable, "test_single_frame.py", "--checkpoint", world["frame"], "--predictions-dir",
           str(predictions), "--output-dir", str(tmp_path / "test"), "--workers", "2", "--device", "cpu",
           "--chunk-frames", "1", "--batch-size", "1", "--image-size", "64"]
    with start_group(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        deadline = time.monotonic() + 120
        while not any(name.endswith(".hdf5") for _, _, names in os.walk(predictions) for name in names):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no prediction file was written"
            time.sleep(0.05)
        workers = child_pids(proc.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)  # what the out-of-memory killer does
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr
    lines = [line for line in stderr.strip().splitlines() if ": error: " in line]
    assert lines == [stderr.strip().splitlines()[-1]]
    assert lines[0].startswith("test_single_frame.py: error: a loader worker process died")
    files = files_written(predictions)
    assert files and len(files) < len(world["paths"]) and not [p for p in files if ".tmp-" in p]
    for name in files:  # every file left is whole: the finished videos are kept
        assert prediction_files.predictions_complete(os.path.join(predictions, name), CLASSES)
    assert not (tmp_path / "test" / "results.json").exists()
