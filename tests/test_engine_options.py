"""Engine options every training script gets: optimizers and learning-rate schedules (exact on resume),
the classifier's lr factor, gradient clipping, TensorBoard (tags, resumed runs without duplicate steps),
validation groups and --subset at test time. CPU, tiny inputs."""
import argparse
import json
import os
import signal

import pytest
import torch

import make_synthetic_ucf101
import test_single_frame
import train_single_frame
from actionrec import guards
from actionrec.data import datasets, video_groups
from actionrec.engine import cli_flags, loop, optim
from actionrec.evaluation import predictions as prediction_files
from helpers import read_log

FAST = ["--image-size", "32", "--workers", "0", "--device", "cpu", "--seed", "1"]
SINGLE = FAST + ["--arch", "resnet18", "--pretrained", "none", "--batch-size", "4"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    # Training groups g02 (4 clips per class) and g03 (2 clips per class); test group g01.
    make_synthetic_ucf101.make_dataset(str(out), classes=3, train_per_class=6, test_per_class=2, frames=12,
                                       size=(32, 40), seed=0)
    return str(out)


def train(data_dir, out, *extra):
    args = train_single_frame.get_args_parser().parse_args(
        ["--data-dir", data_dir, "--output-dir", str(out), *SINGLE, *extra])
    return train_single_frame.main(args)


# ----------------------------------------------------------------------------------------------
# Device-dependent defaults

@pytest.mark.parametrize("device, cuda, workers, windows", [("cpu", True, 0, 8), ("auto", False, 0, 8),
                                                            ("auto", True, 8, 32), ("cuda", True, 8, 32)])
def test_loader_workers_and_3d_windows_per_pass_follow_the_device(monkeypatch, device, cuda, workers, windows):
    from actionrec.inference import clip_views
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    args = cli_flags.fill_defaults(argparse.Namespace(device=device, workers=None, batch_size=None))
    assert args.workers == workers and clip_views.windows_per_pass(args) == windows
    explicit = cli_flags.fill_defaults(argparse.Namespace(device=device, workers=3, batch_size=5))
    assert explicit.workers == 3 and clip_views.windows_per_pass(explicit) == 5


# ----------------------------------------------------------------------------------------------
# Schedules

def schedule_args(**kwargs):
    defaults = dict(lr_schedule="constant", lr_steps=None, lr_gamma=0.1, warmup_epochs=0.0, epochs=10)
    return argparse.Namespace(**{**defaults, **kwargs})


def test_lr_factor_of_each_schedule():
    step = schedule_args(lr_schedule="step", lr_steps=(3, 6))
    assert [optim.lr_factor(step, e, 0, 5) for e in range(8)] == pytest.approx([1, 1, 1, .1, .1, .1, .01, .01])
    every = schedule_args(lr_schedule="step", lr_steps=("every", 4))
    assert [optim.lr_factor(every, e, 4, 5) for e in (0, 3, 4, 8)] == pytest.approx([1, 1, .1, .01])
    cosine = schedule_args(lr_schedule="cosine", epochs=4)
    assert optim.lr_factor(cosine, 0, 0, 10) == pytest.approx(1.0)
    assert optim.lr_factor(cosine, 2, 0, 10) == pytest.approx(0.5)
    assert optim.lr_factor(cosine, 3, 9, 10) == pytest.approx(0.5 * (1 + __import__("math").cos(3.9 / 4 * 3.14159265)))
    warm = schedule_args(warmup_epochs=1.0)
    assert [optim.lr_factor(warm, 0, s, 4) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert optim.lr_factor(warm, 1, 0, 4) == 1.0


def test_bad_schedule_flags_are_one_line_errors(data_dir, tmp_path):
    with pytest.raises(guards.UserError, match="--lr-steps"):
        train(data_dir, tmp_path / "a", "--lr-schedule", "step")
    for bad in ("60,30", "x", "every:0"):
        with pytest.raises(SystemExit):
            train_single_frame.get_args_parser().parse_args(["--lr-steps", bad])


def record_lrs(monkeypatch, stop_at=None):
    """Every lr the optimizer uses, in order (and a SIGTERM after step `stop_at` of epoch 2)."""
    seen, original_set_lr, original_epoch = [], optim.set_lr, loop.train_one_epoch

    def set_lr(optimizer, factor):
        original_set_lr(optimizer, factor)
        seen.append(tuple(group["lr"] for group in optimizer.param_groups))

    def one_epoch(*args, **kwargs):
        def on_step(step):
            if stop_at is not None and len(seen) == stop_at:
                os.kill(os.getpid(), signal.SIGTERM)
        return original_epoch(*args, on_step=on_step, **kwargs)
    monkeypatch.setattr(optim, "set_lr", set_lr)
    monkeypatch.setattr(loop, "train_one_epoch", one_epoch)
    return seen


SCHEDULE = ["--optimizer", "sgd", "--lr", "0.01", "--lr-schedule", "step", "--lr-steps", "2", "--warmup-epochs",
            "0.5", "--head-lr-mult", "10", "--epochs", "3", "--no-tensorboard", "--trainable", "layer4.1,fc"]


def test_a_step_schedule_resumed_mid_run_sees_the_same_lr_at_every_step(data_dir, tmp_path, monkeypatch):
    straight = record_lrs(monkeypatch)
    train(data_dir, tmp_path / "straight", *SCHEDULE)
    monkeypatch.undo()
    # 18 training videos, batch 4: 5 steps per epoch. Stop at the 8th step (epoch 2, step 3).
    first = record_lrs(monkeypatch, stop_at=8)
    with pytest.raises(SystemExit):
        train(data_dir, tmp_path / "stopped", *SCHEDULE)
    monkeypatch.undo()
    rest = record_lrs(monkeypatch)
    train(data_dir, tmp_path / "stopped", *SCHEDULE)
    assert len(straight) == 15 and first + rest == straight
    body, head = zip(*straight)
    assert body[:3] == pytest.approx([0.01 * f for f in (0.4, 0.8, 1.0)])  # warm-up over half an epoch
    assert body[10:] == pytest.approx([0.001] * 5)  # x 0.1 from epoch 3 (after 2 epochs)
    assert head == pytest.approx([10 * b for b in body])  # the classifier's group
    assert [e["lr"] for e in read_log(tmp_path / "stopped")] == pytest.approx([0.01, 0.01, 0.001])
    a = torch.load(tmp_path / "straight" / "checkpoint.pth", weights_only=True)
    b = torch.load(tmp_path / "stopped" / "checkpoint.pth", weights_only=True)
    assert all(torch.allclose(a["model"][k].float(), b["model"][k].float(), atol=1e-5) for k in a["model"])
    assert a["lr_schedule"]["schedule"] == "step"


def test_gradient_clipping_bounds_the_update(data_dir, tmp_path, monkeypatch):
    norms = []
    original = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm, *args, **kwargs):
        params = list(params)
        total = original(params, max_norm, *args, **kwargs)
        norms.append(
            (float(total), float(torch.norm(torch.stack([p.grad.norm() for p in params if p.grad is not None]))))
        )
        return total
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    train(data_dir, tmp_path / "run", "--epochs", "1", "--clip-grad-norm", "0.01", "--no-tensorboard")
    assert len(norms) == 5
    assert all(before > 0.01 and after == pytest.approx(0.01, rel=1e-3) for before, after in norms)


# ----------------------------------------------------------------------------------------------
# TensorBoard

def scalars(out):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_curves_hold_every_tag(data_dir, tmp_path):
    train(data_dir, tmp_path / "run", "--epochs", "2", "--tensorboard-every", "2")
    curves = scalars(tmp_path / "run")
    for tag in ("train/loss", "train/acc", "test/acc", "lr", "samples_per_s", "data_wait_fraction"):
        assert [s for s, _ in curves[tag]] == [5, 10], tag  # per epoch, at the global step (5 per epoch)
    assert [s for s, _ in curves["train/loss_step"]] == [2, 4, 6, 8, 10]
    log = read_log(tmp_path / "run")
    assert [v for _, v in curves["train/loss"]] == pytest.approx([e["train_loss"] for e in log])


class Crash(Exception):
    pass


def test_a_killed_and_resumed_run_adds_no_duplicate_steps(data_dir, tmp_path, monkeypatch):
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    train(data_dir, straight, "--epochs", "2", "--tensorboard-every", "1")
    # A kill without warning in epoch 2 after its 3rd step: TensorBoard already holds steps 6-8, the
    # checkpoint only epoch 1 (step 5). The rerun redoes steps 6-8 and must not show them twice.
    original = loop.train_one_epoch

    def crash(*args, **kwargs):
        def on_step(step):
            if kwargs.get("start_step", 0) == 0 and len(read_log(crashed)) == 1 and step == 4:
                raise Crash()
        return original(*args, on_step=on_step, **kwargs)
    monkeypatch.setattr(loop, "train_one_epoch", crash)
    with pytest.raises(Crash):
        train(data_dir, crashed, "--epochs", "2", "--tensorboard-every", "1")
    monkeypatch.undo()
    train(data_dir, crashed, "--epochs", "2", "--tensorboard-every", "1")
    a, b = scalars(straight), scalars(crashed)
    assert sorted(a) == sorted(b)
    for tag in a:
        steps = [s for s, _ in b[tag]]
        assert steps == sorted(set(steps)) == [s for s, _ in a[tag]], tag
    assert [v for _, v in b["train/loss_step"]] == pytest.approx([v for _, v in a["train/loss_step"]], rel=1e-5)


def test_no_tensorboard_writes_no_events(data_dir, tmp_path):
    train(data_dir, tmp_path / "run", "--epochs", "1", "--no-tensorboard")
    assert not (tmp_path / "run" / "tensorboard").exists()


# ----------------------------------------------------------------------------------------------
# Validation groups and --subset

def test_validation_groups_are_held_out_and_measured(data_dir, tmp_path):
    out = tmp_path / "run"
    train(data_dir, out, "--epochs", "1", "--val-groups", "3", "--no-tensorboard")
    entry = read_log(out)[0]
    assert "val_acc" in entry and "test_acc" not in entry
    assert entry["samples"] == 3 * 4 and entry["val_samples"] == 3 * 2  # g02 trains, g03 validates
    ckpt = torch.load(out / "checkpoint.pth", weights_only=True)
    assert ckpt["val_groups"] == [3] and ckpt["args"]["val_groups"] == "3"


def test_a_validation_group_not_in_the_training_list_is_one_line(data_dir, tmp_path):
    with pytest.raises(guards.UserError, match="g01"):  # g01 is the test group
        train(data_dir, tmp_path / "run", "--val-groups", "1")
    with pytest.raises(guards.UserError, match="every training video"):
        train(data_dir, tmp_path / "run", "--val-groups", "2-3")


@pytest.mark.parametrize("subset, videos", [("val", 6), ("train", 12), ("test", 6)])
def test_the_subsets_of_a_run_with_validation_groups(data_dir, tmp_path, subset, videos):
    out = tmp_path / "run"
    train(data_dir, out, "--epochs", "1", "--val-groups", "3", "--no-tensorboard")
    predictions = tmp_path / "p"
    results = test_single_frame.main(test_single_frame.get_args_parser().parse_args(
        ["--checkpoint", str(out / "checkpoint.pth"), "--predictions-dir", str(predictions), "--output-dir",
         str(tmp_path / "o"), "--workers", "0", "--device", "cpu", "--subset", subset]))
    _, paths, _ = datasets.subset_videos(data_dir, 1, subset, (3,))
    assert results["videos"] == len(paths) == videos and results["subset"] == subset
    files = sorted(str(p) for p in predictions.rglob("*.hdf5"))
    assert files == sorted(prediction_files.prediction_path(predictions, p) for p in paths)
    if subset != "test":
        assert all(video_groups.video_group(p) == (3 if subset == "val" else 2) for p in paths)
    info = json.loads((predictions / "model.json").read_text())
    assert info["subset"] == subset and info["val_groups"] == [3] and info["split"] == 1
    assert info["checkpoint"] == str((out / "checkpoint.pth").resolve())
    assert info["log"] == str((out / "log.jsonl").resolve())


def test_the_val_subset_needs_a_run_with_validation_groups(data_dir, tmp_path):
    out = tmp_path / "run"
    train(data_dir, out, "--epochs", "1", "--no-tensorboard")
    with pytest.raises(guards.UserError, match="--val-groups"):
        test_single_frame.main(test_single_frame.get_args_parser().parse_args(
            ["--checkpoint", str(out / "checkpoint.pth"), "--predictions-dir", str(tmp_path / "p"),
             "--output-dir", str(tmp_path / "o"), "--workers", "0", "--device", "cpu", "--subset", "val"]))


@pytest.mark.parametrize(
    "script", ["train_3d.py resnet", "train_3d.py c3d", "train_rnn.py", "train_single_frame.py tsn"]
)
def test_every_training_script_writes_the_tensorboard_tags(data_dir, tmp_path, script):
    import train_3d
    import train_rnn
    out = tmp_path / "run"
    base = ["--data-dir", data_dir, "--output-dir", str(out), "--workers", "0", "--device", "cpu", "--epochs", "1",
            "--tensorboard-every", "1"]
    if script == "train_3d.py resnet":
        train_3d.main(
            train_3d.get_args_parser().parse_args(
                base
                + [
                    "--image-size",
                    "32",
                    "--depth",
                    "10",
                    "--kinetics-checkpoint",
                    "none",
                    "--clip-len",
                    "8",
                    "--batch-size",
                    "6",
                ]
            )
        )
    elif script == "train_3d.py c3d":
        train_3d.main(train_3d.get_args_parser().parse_args(base + [
            "--image-size", "32", "--arch", "c3d", "--c3d-checkpoint", "none", "--c3d-width", "0.125",
            "--c3d-adaptive-pool", "--clip-len", "16", "--batch-size", "6"]))
    elif script == "train_rnn.py":
        import extract_features
        features = tmp_path / "features"
        extract_features.main(extract_features.get_args_parser().parse_args(
            ["--data-dir", data_dir, "--pretrained", "none", "--arch", "resnet18", "--image-size", "32", "--output-dir",
             str(features), "--workers", "0", "--device", "cpu"]))
        train_rnn.main(train_rnn.get_args_parser().parse_args(base + [
            "--features", str(features), "--hidden", "8", "--batch-size", "6", "--val-groups", "3"]))
    else:
        train(data_dir, out, "--epochs", "1", "--segments", "3", "--tensorboard-every", "1", "--batch-size", "6")
    curves = scalars(out)
    held_out = "val/acc" if script == "train_rnn.py" else "test/acc"
    for tag in ("train/loss", "train/acc", held_out, "lr", "samples_per_s", "data_wait_fraction", "train/loss_step"):
        assert curves.get(tag), tag
    steps = [s for s, _ in curves["train/loss_step"]]
    assert steps == list(range(1, len(steps) + 1)) and [s for s, _ in curves["train/loss"]] == [steps[-1]]
