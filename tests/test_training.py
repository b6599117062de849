"""Training and testing scripts of parts 1 and 2 on a tiny synthetic set, on the CPU.

Most runs are in-process (`main(parser.parse_args([...]))`) so tests can interrupt them at a known
step; the command-line behaviour (exit codes, one-line errors) is checked with subprocesses.
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
import test_3d
import test_single_frame
import train_3d
import train_single_frame
from actionrec import guards
from actionrec.engine import checkpoints, devices, loop, model_io, optim
from actionrec.evaluation import accuracy
from actionrec.evaluation import predictions as prediction_files
from actionrec.inference import clip_views
from actionrec.zoo import clip_nets, frame_nets
from helpers import child_pids, read_log, run_group, start_group

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = ["--image-size", "32", "--workers", "0", "--device", "cpu", "--seed", "3"]
SINGLE = FAST + ["--arch", "resnet18", "--pretrained", "none", "--batch-size", "8"]
CLIP = FAST + ["--depth", "10", "--kinetics-checkpoint", "none", "--batch-size", "4", "--clip-len", "8"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    make_synthetic_ucf101.make_dataset(str(out), classes=4, train_per_class=6, test_per_class=3, frames=20,
                                       size=(32, 40), seed=0)
    return str(out)


def train_single(data_dir, out, *extra):
    args = train_single_frame.get_args_parser().parse_args(
        ["--data-dir", data_dir, "--output-dir", str(out)] + SINGLE + list(extra))
    return train_single_frame.main(args)


def state_dicts_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def interrupt_at_step(monkeypatch, at_step, sig=signal.SIGTERM):
    """Make the training loop deliver `sig` to this process right after step `at_step`."""
    original = loop.train_one_epoch

    def patched(*args, **kwargs):
        def on_step(step):
            if step == at_step:
                os.kill(os.getpid(), sig)
        return original(*args, on_step=on_step, **kwargs)
    monkeypatch.setattr(loop, "train_one_epoch", patched)


def test_two_epochs_then_a_resumed_third(data_dir, tmp_path):
    out = tmp_path / "run"
    train_single(data_dir, out, "--epochs", "2")
    assert (out / "COMPLETE").exists()
    train_single(data_dir, out, "--epochs", "3")
    log = read_log(out)
    assert [e["epoch"] for e in log] == [1, 2, 3]
    assert all(e["samples"] == 4 * 6 for e in log)  # every training sample, tail batch included
    for key in ("train_loss", "train_acc", "test_acc", "seconds", "samples_per_s", "data_wait_fraction", "lr"):
        assert all(key in e for e in log), key
    ckpt = torch.load(out / "checkpoint.pth", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 3 and ckpt["step"] == 0
    assert len(ckpt["class_list"]) == 4
    assert ckpt["args"]["epochs"] == 3 and ckpt["kind"] == "frame"
    assert not any(k.startswith("module.") for k in ckpt["model"])
    # A finished run asked for the same number of epochs does nothing more.
    train_single(data_dir, out, "--epochs", "3")
    assert [e["epoch"] for e in read_log(out)] == [1, 2, 3]


def test_sigterm_mid_epoch_then_resume_matches_an_uninterrupted_run(data_dir, tmp_path, monkeypatch):
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    train_single(data_dir, straight, "--epochs", "2", "--trainable", "all")

    interrupt_at_step(monkeypatch, 2)
    with pytest.raises(SystemExit) as stopped:
        train_single(data_dir, interrupted, "--epochs", "2", "--trainable", "all")
    assert stopped.value.code == checkpoints.EXIT_PREEMPTED
    ckpt = torch.load(interrupted / "checkpoint.pth", map_location="cpu", weights_only=True)
    assert (ckpt["epoch"], ckpt["step"]) == (0, 2)
    assert read_log(interrupted) == [] and not (interrupted / "COMPLETE").exists()

    monkeypatch.undo()
    train_single(data_dir, interrupted, "--epochs", "2", "--trainable", "all")
    a, b = read_log(straight), read_log(interrupted)
    assert [e["epoch"] for e in b] == [1, 2]
    for x, y in zip(a, b):
        assert x["samples"] == y["samples"]
        for key in ("train_loss", "train_acc", "test_acc"):
            assert x[key] == pytest.approx(y[key], rel=1e-4, abs=1e-6), key
    sa = torch.load(straight / "checkpoint.pth", weights_only=True)["model"]
    sb = torch.load(interrupted / "checkpoint.pth", weights_only=True)["model"]
    assert all(torch.allclose(sa[k].float(), sb[k].float(), atol=1e-5) for k in sa)
    assert not [p for p in os.listdir(interrupted) if ".tmp" in p]


def test_signal_between_epochs_stops_after_saving(data_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    original = loop.evaluate

    def evaluate_then_signal(*args, **kwargs):
        result = original(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGUSR1)
        return result
    monkeypatch.setattr(loop, "evaluate", evaluate_then_signal)
    with pytest.raises(SystemExit) as stopped:
        train_single(data_dir, out, "--epochs", "3")
    assert stopped.value.code == checkpoints.EXIT_PREEMPTED
    assert [e["epoch"] for e in read_log(out)] == [1]
    assert torch.load(out / "checkpoint.pth", weights_only=True)["epoch"] == 1


def start_long_training(data_dir, out, *extra):
    """A 50-epoch train_single_frame.py process in a process group of its own (ended when the caller's
    `with` block leaves), returned once its first epoch is done."""
    cmd = [sys.executable, "train_single_frame.py", "--data-dir", data_dir, "--output-dir", str(out),
           *SINGLE, *extra, "--epochs", "50", "--batch-size", "2"]
    proc = start_group(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("epoch 1/"):
            break
    return proc


def test_sigusr1_to_a_real_process_saves_and_exits_75(data_dir, tmp_path):
    out = tmp_path / "run"
    with start_long_training(data_dir, out) as proc:
        proc.send_signal(signal.SIGUSR1)
        stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == checkpoints.EXIT_PREEMPTED, stderr
    assert "SIGUSR1: saved" in stdout and "Traceback" not in stderr
    ckpt = torch.load(out / "checkpoint.pth", map_location="cpu", weights_only=True)
    assert 1 <= ckpt["epoch"] < 50
    assert [e["epoch"] for e in read_log(out)] == list(range(1, ckpt["epoch"] + 1))


def test_sigterm_to_the_whole_process_group_with_loader_workers(data_dir, tmp_path):
    # What Slurm and PBS do: every process of the job gets the signal, loader workers included.
    # The workers must neither die (a re-forked worker can deadlock) nor keep the job alive.
    out = tmp_path / "run"
    with start_long_training(data_dir, out, "--workers", "2") as proc:
        os.killpg(proc.pid, signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == checkpoints.EXIT_PREEMPTED, stderr
    assert "SIGTERM: saved" in stdout and "Traceback" not in stderr
    assert torch.load(out / "checkpoint.pth", map_location="cpu", weights_only=True)["epoch"] >= 1


@pytest.mark.skipif(not os.path.exists(f"/proc/{os.getpid()}/task"), reason="needs Linux /proc")
def test_a_killed_loader_worker_ends_the_run_with_one_line(data_dir, tmp_path):
    # The out-of-memory killer takes a loader worker: the job must end (not wait for its walltime)
    # with one line, keeping the last checkpoint.
    out = tmp_path / "run"
    with start_long_training(data_dir, out, "--workers", "2") as proc:
        workers = child_pids(proc.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("train_single_frame.py: error: a loader worker process died")
    assert torch.load(out / "checkpoint.pth", map_location="cpu", weights_only=True)["epoch"] >= 1


@pytest.mark.skipif(not os.path.exists(f"/proc/{os.getpid()}/task"), reason="needs Linux /proc")
def test_loader_workers_die_with_a_killed_main_process(data_dir, tmp_path):
    # The out-of-memory killer (or kill -9) takes the main process: its loader workers must not live on
    # as orphans (waiting forever on the pool's pipe, ignoring SIGTERM, holding the job's stdout).
    with start_long_training(data_dir, tmp_path / "run", "--workers", "2") as proc:
        workers = child_pids(proc.pid)
        assert len(workers) == 2 and all(alive(pid) for pid in workers)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        survivors = [pid for pid in workers if alive(pid)]
        # Nothing of the group is left either (the test's own end_group would hide it otherwise).
        group = [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc"))) if in_group(pid, proc.pid)]
    assert survivors == [] and group == []


def alive(pid):
    """True while `pid` exists and is not a zombie waiting for its parent."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def in_group(pid, pgid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return int(fields[2]) == pgid and fields[0] != "Z"


def test_frozen_batchnorm_statistics_do_not_drift(data_dir, tmp_path):
    out, drift = tmp_path / "frozen", tmp_path / "drift"
    train_single(data_dir, out, "--epochs", "1", "--trainable", "layer4.1,fc")
    train_single(data_dir, drift, "--epochs", "1", "--trainable", "layer4.1,fc", "--bn-drift")
    torch.manual_seed(3)  # the initial weights of --pretrained none come from the run's seed
    initial = frame_nets.build_model(
        train_single_frame.get_args_parser().parse_args(SINGLE), 4, devices.Dist(), pretrained=False).state_dict()
    frozen = torch.load(out / "checkpoint.pth", weights_only=True)["model"]
    drifted = torch.load(drift / "checkpoint.pth", weights_only=True)["model"]
    frozen_stats = [k for k in frozen if k.endswith(("running_mean", "running_var"))
                    and not k.startswith(("layer4.1.", "fc."))]
    assert frozen_stats and all(torch.equal(frozen[k], initial[k]) for k in frozen_stats)
    assert any(not torch.equal(drifted[k], initial[k]) for k in frozen_stats)
    trained_stats = [k for k in frozen if k.startswith("layer4.1.") and k.endswith("running_mean")]
    assert any(not torch.equal(frozen[k], initial[k]) for k in trained_stats)  # trained BN does learn
    frozen_weights = [k for k in frozen if k.startswith("conv1.")]
    assert all(torch.equal(frozen[k], initial[k]) for k in frozen_weights)


def test_trainable_prefix_that_matches_nothing_is_a_user_error(data_dir, tmp_path):
    with pytest.raises(guards.UserError, match="layer9"):
        train_single(data_dir, tmp_path / "run", "--trainable", "layer9,fc")


def test_non_finite_loss_stops_without_writing_nan_weights(data_dir, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(guards.UserError, match="non-finite"):
        train_single(data_dir, out, "--epochs", "2", "--lr", "1e30", "--trainable", "all")
    if (out / "checkpoint.pth").exists():
        model = torch.load(out / "checkpoint.pth", weights_only=True)["model"]
        assert all(torch.isfinite(v.float()).all() for v in model.values())


def run_cli(*args, env=None, timeout=180):
    return run_group([sys.executable, *args], cwd=REPO, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_imagenet_weights_offline_give_one_line(data_dir, tmp_path):
    result = run_cli("train_single_frame.py", "--data-dir", data_dir, "--output-dir", str(tmp_path / "run"),
                     "--workers", "0", "--device", "cpu", "--epochs", "1",
                     env={"TORCH_HOME": str(tmp_path / "torch_home"), "HTTPS_PROXY": "http://127.0.0.1:9",
                          "https_proxy": "http://127.0.0.1:9"}, timeout=120)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "ImageNet weights" in errors[0] and str(tmp_path / "torch_home") in errors[0]
    assert "--pretrained none" in errors[0]


def test_user_errors_are_one_line(tmp_path):
    result = run_cli("train_single_frame.py", "--data-dir", str(tmp_path / "nowhere"), "--workers", "0",
                     "--device", "cpu", "--output-dir", str(tmp_path / "run"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "ucfTrainTestlist" in result.stderr.strip().splitlines()[-1]
    result = run_cli("test_single_frame.py", "--checkpoint", str(tmp_path / "missing.pth"),
                     "--predictions-dir", str(tmp_path / "p"), "--output-dir", str(tmp_path / "o"))
    assert result.returncode == 2 and "not found" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("train_3d.py", "--split", "4")
    assert result.returncode == 2 and "invalid choice" in result.stderr


# ----------------------------------------------------------------------------------------------
# Testing whole videos

@pytest.fixture(scope="module")
def single_checkpoint(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    train_single(data_dir, out, "--epochs", "1")
    return str(out / "checkpoint.pth")


def run_test_single(checkpoint, tmp, *extra):
    args = test_single_frame.get_args_parser().parse_args(
        ["--checkpoint", checkpoint, "--predictions-dir", str(tmp / "predictions"),
         "--output-dir", str(tmp / "test"), "--workers", "0", "--device", "cpu", "--chunk-frames", "7"]
        + list(extra))
    return test_single_frame.main(args)


def recompute(data_dir, predictions_dir, class_count):
    from actionrec.data import split_lists
    class_list, _, (paths, labels) = split_lists.getUCF101(data_dir, 1)
    scores = prediction_files.load_video_scores(predictions_dir, paths)
    return accuracy.topk_accuracy(scores, labels), paths, labels


def test_single_frame_test_writes_every_frame_and_recomputable_results(data_dir, single_checkpoint, tmp_path):
    results = run_test_single(single_checkpoint, tmp_path)
    from actionrec.data import normalization, split_lists, video_chunks, video_files
    class_list, _, (paths, labels) = split_lists.getUCF101(data_dir, 1)
    for path in paths:
        logits = prediction_files.read_predictions(prediction_files.prediction_path(tmp_path / "predictions", path))
        assert logits.shape == (video_files.video_info(path)[0], len(class_list)) and logits.dtype == np.float32
    topk, _, _ = recompute(data_dir, tmp_path / "predictions", len(class_list))
    saved = json.loads((tmp_path / "test" / "results.json").read_text())
    for k in ("top1", "top5", "top10"):
        assert saved[k] == pytest.approx(topk[k]) and results[k] == pytest.approx(topk[k])
    assert saved["videos"] == len(paths) and saved["failed"] == 0
    cm = np.load(tmp_path / "test" / "confusion_matrix.npy")
    assert cm.sum() == len(paths) and np.trace(cm) / len(paths) == pytest.approx(saved["top1"])
    assert 0 <= saved["frame_accuracy"] <= 1 and set(saved["per_class_accuracy"]) == set(class_list)
    assert saved["checkpoint"] == os.path.abspath(single_checkpoint)
    # The model's own frame logits match a direct forward pass on the loader's frames.
    ckpt = torch.load(single_checkpoint, weights_only=True)
    model = frame_nets.build_model(train_single_frame.get_args_parser().parse_args(SINGLE), 4,
                                           devices.Dist(), pretrained=False)
    model.load_state_dict(ckpt["model"])
    model.eval()
    frames = video_chunks.load_chunk(paths[0], 0, video_files.video_info(paths[0])[0], 32)
    with torch.no_grad():
        direct = model(
            model_io.Normalize(normalization.FRAME_MEAN, normalization.FRAME_STD)(torch.from_numpy(frames))
        ).numpy()
    stored = prediction_files.read_predictions(prediction_files.prediction_path(tmp_path / "predictions", paths[0]))
    np.testing.assert_allclose(stored, direct, rtol=1e-4, atol=1e-4)


def test_interrupted_test_resumes_to_identical_results(data_dir, single_checkpoint, tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    run_test_single(single_checkpoint, straight)
    resumed = tmp_path / "resumed"
    original, calls = prediction_files.write_predictions, []

    def write_then_signal(path, logits, attrs=None):
        original(path, logits, attrs)
        calls.append(path)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
    monkeypatch.setattr(prediction_files, "write_predictions", write_then_signal)
    with pytest.raises(SystemExit) as stopped:
        run_test_single(single_checkpoint, resumed)
    assert stopped.value.code == checkpoints.EXIT_PREEMPTED and len(calls) == 3
    assert not (resumed / "test" / "results.json").exists()
    monkeypatch.undo()
    run_test_single(single_checkpoint, resumed)
    a = json.loads((straight / "test" / "results.json").read_text())
    b = json.loads((resumed / "test" / "results.json").read_text())
    for key in ("top1", "top5", "top10", "mean_class_accuracy", "frame_accuracy", "per_class_accuracy",
                "most_confused", "videos"):
        assert a[key] == b[key], key
    leftovers = [f for _, _, files in os.walk(resumed) for f in files if ".tmp" in f]
    assert leftovers == []


def test_corrupt_test_video_is_reported_and_counted(data_dir, single_checkpoint, tmp_path, caplog):
    import shutil
    broken = tmp_path / "data"
    shutil.copytree(data_dir, broken)
    from actionrec.data import split_lists
    _, _, (paths, _) = split_lists.getUCF101(str(broken), 1)
    with open(paths[1], "wb") as f:
        f.write(b"not an hdf5 file")
    args = test_single_frame.get_args_parser().parse_args(
        ["--checkpoint", single_checkpoint, "--data-dir", str(broken), "--predictions-dir", str(tmp_path / "p"),
         "--output-dir", str(tmp_path / "o"), "--workers", "2", "--device", "cpu"])
    with pytest.raises(SystemExit) as exited:  # every other video is tested, then exit status 1
        test_single_frame.main(args)
    assert exited.value.code == 1
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert results["failed"] == 1 and results["failed_videos"] == [str(paths[1])]
    assert results["videos"] == len(paths) - 1
    assert str(paths[1]) in caplog.text


# ----------------------------------------------------------------------------------------------
# Part 2

@pytest.fixture(scope="module")
def clip_checkpoint(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("clip")
    args = train_3d.get_args_parser().parse_args(
        ["--data-dir", data_dir, "--output-dir", str(out), *CLIP, "--epochs", "1", "--trainable", "layer4,fc"])
    train_3d.main(args)
    return str(out / "checkpoint.pth")


def test_train_3d_resumes_and_handles_signals(data_dir, clip_checkpoint, tmp_path, monkeypatch):
    out = tmp_path / "run"
    base = ["--data-dir", data_dir, "--output-dir", str(out), *CLIP]
    interrupt_at_step(monkeypatch, 1, signal.SIGUSR1)
    with pytest.raises(SystemExit) as stopped:
        train_3d.main(train_3d.get_args_parser().parse_args(base + ["--epochs", "1"]))
    assert stopped.value.code == checkpoints.EXIT_PREEMPTED
    monkeypatch.undo()
    train_3d.main(train_3d.get_args_parser().parse_args(base + ["--epochs", "2"]))
    log = read_log(out)
    assert [e["epoch"] for e in log] == [1, 2] and all(e["samples"] == 24 for e in log)
    ckpt = torch.load(out / "checkpoint.pth", weights_only=True)
    assert ckpt["kind"] == "clip" and ckpt["args"]["layer4_blocks"] == 1


def test_unused_layer4_blocks_are_frozen():
    # Blocks that never run must not be trainable: DDP would wait for their gradients forever.
    import resnet_3d
    model = resnet_3d.resnet18(num_classes=4, layer4_blocks=1)
    optim.set_trainable(model, "all")
    clip_nets.freeze_unused_blocks(model)
    assert not any(p.requires_grad for p in model.layer4[1].parameters())
    assert all(p.requires_grad for p in model.layer4[0].parameters())


@pytest.mark.parametrize("mode", ["full", "sliding"])
def test_3d_test_modes_write_consistent_files(data_dir, clip_checkpoint, tmp_path, mode):
    args = test_3d.get_args_parser().parse_args(
        ["--checkpoint", clip_checkpoint, "--predictions-dir", str(tmp_path / "p"), "--output-dir",
         str(tmp_path / "o"), "--workers", "0", "--device", "cpu", "--mode", mode, "--stride", "4",
         "--max-frames", "12", "--chunk-frames", "14"])
    results = test_3d.main(args)
    assert args.batch_size == clip_views.BATCH_CPU  # no --batch-size on the CPU: 8 windows per pass
    from actionrec.data import split_lists, video_files
    class_list, _, (paths, labels) = split_lists.getUCF101(data_dir, 1)
    for path in paths:
        rows = prediction_files.read_predictions(prediction_files.prediction_path(tmp_path / "p", path))
        frames = video_files.video_info(path)[0]
        expected = (-(-frames // 12) if mode == "full" else len(clip_views.window_starts(frames, 8, 4)))
        assert rows.shape == (expected, len(class_list))
    topk, _, _ = recompute(data_dir, tmp_path / "p", len(class_list))
    assert results["top1"] == pytest.approx(topk["top1"]) and "clip_accuracy" in results


def test_window_and_piece_plans():
    assert clip_views.window_starts(40, 16, 8) == [0, 8, 16, 24]
    assert clip_views.window_starts(30, 16, 8) == [0, 8, 14]
    assert clip_views.window_starts(9, 16, 8) == [0]
    assert clip_views.full_plan(16, 512)(1000) == [(0, 500), (500, 1000)]
    assert clip_views.full_plan(16, 512)(9) == [(0, 16)]  # looped to a whole clip
    plan = clip_views.sliding_plan(16, 8, 200)(30)
    assert plan == [(0, 24), (14, 30)]  # windows 0 and 8 together; the unaligned tail alone
