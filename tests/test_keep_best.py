"""--keep-best: the held-out loss of every evaluated epoch, best.pth following the logged value, and a
resumed run keeping its best checkpoint (issue 26's "checkpoint of minimum validation loss"). CPU, tiny."""
import os
import signal
import types

import matplotlib.figure
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import make_synthetic_ucf101
import train_single_frame
from actionrec.engine import best_checkpoint, checkpoints, devices, loop
from actionrec.reporting import figures
from helpers import read_log

FAST = ["--image-size", "32", "--workers", "0", "--device", "cpu", "--seed", "1", "--no-tensorboard"]
REAL_EVALUATE = loop.evaluate  # before any test wraps it
SINGLE = FAST + ["--arch", "resnet18", "--pretrained", "none", "--batch-size", "4", "--max-steps", "2"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    # Training groups g02 (4 clips per class) and g03 (2 per class): --val-groups 3 holds out 6 videos.
    make_synthetic_ucf101.make_dataset(str(out), classes=3, train_per_class=6, test_per_class=2, frames=8,
                                       size=(32, 40), seed=0)
    return str(out)


def train(data_dir, out, *extra):
    args = train_single_frame.get_args_parser().parse_args(
        ["--data-dir", data_dir, "--output-dir", str(out), *SINGLE, *extra])
    return train_single_frame.main(args)


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def scripted_losses(monkeypatch, losses):
    """Make the evaluation report these validation losses, one per evaluated epoch, in order (the
    accuracy and sample count stay the real ones)."""
    original, queue = REAL_EVALUATE, list(losses)

    def evaluate(*args, **kwargs):
        result = original(*args, **kwargs)
        name = kwargs.get("name", args[-1] if len(args) > 6 else "test")
        result[f"{name}_loss"] = queue.pop(0)
        return result
    monkeypatch.setattr(loop, "evaluate", evaluate)


def test_evaluate_returns_the_mean_cross_entropy_over_samples():
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    xs = [torch.randn(n, 5) for n in (4, 4, 1)]  # a short last batch: the mean is over samples, not batches
    ys = [np.random.default_rng(i).integers(0, 3, len(x)) for i, x in enumerate(xs)]
    batches = [types.SimpleNamespace(inputs=x, labels=y) for x, y in zip(xs, ys)]

    def forward(model, batch, device, labels=None):
        return model(batch.inputs), None
    result = loop.evaluate(model, batches, forward, torch.device("cpu"), (False, torch.float32), devices.Dist(), "val")
    x, y = torch.cat(xs), torch.from_numpy(np.concatenate(ys))
    assert result["val_loss"] == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-6)
    assert result["val_acc"] == pytest.approx((model(x).argmax(1) == y).float().mean().item())
    assert result["val_samples"] == 9


def test_the_loss_is_logged_every_evaluated_epoch_and_no_best_by_default(data_dir, tmp_path):
    out = tmp_path / "run"
    train(data_dir, out, "--epochs", "3", "--eval-every", "2", "--val-groups", "3")
    log = read_log(out)
    assert ["val_loss" in e for e in log] == [False, True, True]
    assert all(e["val_loss"] > 0 and e["val_samples"] == 6 for e in log[1:])
    assert not (out / best_checkpoint.BEST_NAME).exists() and not any("best" in e for e in log)
    assert load(out / "checkpoint.pth")["best"] is None


def check_best_follows_the_log(out, key="val_loss", lower=True):
    """best.pth is the epoch of the best logged value (the first of equals), its record says so, and the
    log marks exactly the epochs that improved on every earlier one."""
    log = [e for e in read_log(out) if key in e]
    values = [e[key] for e in log]
    best_index = int(np.argmin(values) if lower else np.argmax(values))
    best = load(out / best_checkpoint.BEST_NAME)
    assert best["epoch"] == log[best_index]["epoch"]
    assert best["best"] == {"monitor": key.replace("test", "val"), "key": key, "value": values[best_index],
                            "epoch": log[best_index]["epoch"]}
    assert load(out / "checkpoint.pth")["best"] == best["best"]
    improved = [i == 0 or (v < min(values[:i]) if lower else v > max(values[:i])) for i, v in enumerate(values)]
    assert [e["best"] for e in log] == improved
    return best


def test_best_pth_is_the_epoch_of_the_lowest_logged_validation_loss(data_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    scripted_losses(monkeypatch, [1.0, 0.5, 0.7])
    train(data_dir, out, "--epochs", "3", "--val-groups", "3", "--keep-best", "val_loss", "--trainable", "all")
    best = check_best_follows_the_log(out)
    assert best["epoch"] == 2 and [e["best"] for e in read_log(out)] == [True, True, False]
    last = load(out / "checkpoint.pth")
    assert set(best) == set(last) and best["class_list"] == last["class_list"] and best["args"] == last["args"]
    assert any(not torch.equal(best["model"][k], last["model"][k]) for k in best["model"])  # epoch 2's weights
    assert not [p for p in os.listdir(out) if ".tmp" in p]


def test_the_real_losses_and_accuracy_choose_too(data_dir, tmp_path):
    out = tmp_path / "run"
    train(data_dir, out, "--epochs", "3", "--keep-best", "val_loss", "--lr", "0.01", "--trainable", "all")
    check_best_follows_the_log(out, "test_loss")  # no --val-groups: the run evaluates (and chooses) on test
    out = tmp_path / "acc"
    train(data_dir, out, "--epochs", "3", "--val-groups", "3", "--keep-best", "val_acc", "--lr", "0.01")
    check_best_follows_the_log(out, "val_acc", lower=False)


def test_a_resumed_run_keeps_its_best_checkpoint(data_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    flags = ["--val-groups", "3", "--keep-best", "val_loss", "--trainable", "all"]
    scripted_losses(monkeypatch, [0.4, 0.6])
    train(data_dir, out, "--epochs", "2", *flags)
    first = (out / best_checkpoint.BEST_NAME).read_bytes()
    assert load(out / best_checkpoint.BEST_NAME)["epoch"] == 1
    scripted_losses(monkeypatch, [0.5])  # worse than epoch 1's 0.4: best.pth stays epoch 1's
    train(data_dir, out, "--epochs", "3", *flags)
    assert (out / best_checkpoint.BEST_NAME).read_bytes() == first
    assert load(out / "checkpoint.pth")["best"]["epoch"] == 1
    scripted_losses(monkeypatch, [0.3])
    train(data_dir, out, "--epochs", "4", *flags)
    check_best_follows_the_log(out)
    assert load(out / best_checkpoint.BEST_NAME)["epoch"] == 4


def test_a_run_stopped_after_epoch_one_resumes_against_its_best(data_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    flags = ["--epochs", "3", "--val-groups", "3", "--keep-best", "val_loss"]
    original = REAL_EVALUATE

    def evaluate_then_signal(*args, **kwargs):
        result = original(*args, **kwargs)
        result["val_loss"] = 0.5
        os.kill(os.getpid(), signal.SIGUSR1)
        return result
    monkeypatch.setattr(loop, "evaluate", evaluate_then_signal)
    with pytest.raises(SystemExit) as stopped:
        train(data_dir, out, *flags)
    assert stopped.value.code == checkpoints.EXIT_PREEMPTED
    assert load(out / "checkpoint.pth")["best"] == {"monitor": "val_loss", "key": "val_loss", "value": 0.5,
                                                     "epoch": 1}
    first = (out / best_checkpoint.BEST_NAME).read_bytes()
    monkeypatch.undo()
    scripted_losses(monkeypatch, [0.6, 0.7])
    train(data_dir, out, *flags)
    assert (out / best_checkpoint.BEST_NAME).read_bytes() == first
    assert [e["best"] for e in read_log(out)] == [True, False, False]
    check_best_follows_the_log(out)


def test_best_pth_of_a_later_epoch_than_the_checkpoint_is_adopted(data_dir, tmp_path, monkeypatch):
    """A run stopped between writing best.pth and checkpoint.pth: best.pth says what it holds."""
    out = tmp_path / "run"
    flags = ["--val-groups", "3", "--keep-best", "val_loss"]
    scripted_losses(monkeypatch, [0.5, 0.4])
    train(data_dir, out, "--epochs", "2", *flags)
    state = load(out / "checkpoint.pth")
    older = {**state, "epoch": 1, "best": {**state["best"], "value": 0.5, "epoch": 1}}
    checkpoints.save_checkpoint(str(out / "checkpoint.pth"), older)  # as if killed before its write
    kept = (out / best_checkpoint.BEST_NAME).read_bytes()
    scripted_losses(monkeypatch, [0.45])  # the redone epoch 2 does not beat best.pth's 0.4
    train(data_dir, out, "--epochs", "2", *flags)
    assert (out / best_checkpoint.BEST_NAME).read_bytes() == kept
    assert load(out / "checkpoint.pth")["best"]["value"] == 0.4


def test_a_fresh_run_removes_an_earlier_runs_best_pth(data_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    scripted_losses(monkeypatch, [0.5])
    train(data_dir, out, "--epochs", "1", "--val-groups", "3", "--keep-best", "val_loss")
    assert (out / best_checkpoint.BEST_NAME).exists()
    monkeypatch.undo()
    train(data_dir, out, "--epochs", "1", "--val-groups", "3", "--no-resume")
    assert not (out / best_checkpoint.BEST_NAME).exists()


def test_the_reports_learning_curves_draw_the_held_out_loss(data_dir, tmp_path):
    out = tmp_path / "run"
    train(data_dir, out, "--epochs", "2", "--max-steps", "1")
    fig = matplotlib.figure.Figure(figsize=(4, 3))
    figures.draw_learning_curves(fig, (0, 0, 1, 1), {"order": ["tsn"]}, {"tsn": read_log(out)})
    labels = {line.get_label(): line for ax in fig.axes for line in ax.get_lines()}
    assert {"train loss", "test loss", "test acc"} <= set(labels)
    assert list(labels["test loss"].get_ydata()) == [e["test_loss"] for e in read_log(out)]
