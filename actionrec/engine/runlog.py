"""The training record: one JSON line per epoch, progress bars on rank 0, TensorBoard."""

import contextlib
import json
import os
import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

from actionrec import atomic
from actionrec.engine import runner
from actionrec.engine.devices import Dist
from actionrec.guards import UserError

LOG_NAME = "log.jsonl"


def read_log(path: str | os.PathLike, skip_damaged: bool = False) -> list[dict]:
    """The entries of a training run's log.jsonl ([] when there is none).

    A log is written whole, so a line that is not a JSON object with an integer ``epoch`` is damage: a
    UserError naming the file, or with ``skip_damaged`` (the report, which only draws the curves) the
    entries that are whole, the others left out.
    """
    if not os.path.exists(path):
        return []
    advice = "move it away (the checkpoint is enough to resume; the log then restarts) or use --no-resume"
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line for line in f if line.strip()]
    except (OSError, ValueError) as e:  # UnicodeDecodeError is a ValueError
        raise UserError(f"{path} is not a log.jsonl of the training scripts ({runner.one_line(e)}): {advice}") from None
    entries = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError as e:
            if skip_damaged:
                continue
            raise UserError(f"{path} is not a log.jsonl of the training scripts ({runner.one_line(e)}): "
                            f"{advice}") from None
        if isinstance(entry, dict) and isinstance(entry.get("epoch"), int):
            entries.append(entry)
        elif not skip_damaged:
            raise UserError(f"{path} is not a log.jsonl of the training scripts (a line without an epoch): {advice}")
    return entries


def write_log(path: str, entries: list[dict]) -> None:
    """Atomic, as the checkpoint: a failed write (a full disk) keeps the previous log, and no temporary."""
    tmp = atomic.temporary_path(path)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for entry in entries:
                f.write(json.dumps(entry) + "\n")
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise UserError(f"cannot write {path}: {runner.write_failure(e, path)}; the previous log is kept") from None


def progress(iterable: Iterable, ranks: Dist, **kwargs: Any) -> tqdm:
    return tqdm(iterable, disable=not (ranks.main and sys.stderr.isatty()), dynamic_ncols=True, **kwargs)


class TensorBoard:
    """TensorBoard scalars of a training run in OUTPUT_DIR/tensorboard/ (rank 0 only; a no-op when off).

    Every point is at the global step (optimizer steps since the start of training), per-epoch tags
    included, so that a resumed run can purge what a killed run wrote after its last checkpoint:
    `purge_step` makes TensorBoard's reader drop those points, and the curves continue without
    duplicated steps.
    """

    def __init__(self, args, ranks, purge_step):
        self.writer = None
        if not (getattr(args, "tensorboard", False) and ranks.main):
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise UserError(f"TensorBoard logging needs the tensorboard package ({e}): pip install tensorboard, "
                            f"or pass --no-tensorboard") from None
        self.every = args.tensorboard_every
        self.writer = SummaryWriter(os.path.join(args.output_dir, "tensorboard"), purge_step=purge_step or None)

    def step(self, global_step: int, loss: float) -> None:
        if self.writer is not None and global_step % self.every == 0:
            self.writer.add_scalar("train/loss_step", loss, global_step)

    def epoch(self, global_step: int, entry: dict) -> None:
        if self.writer is None:
            return
        for key, tag in (("train_loss", "train/loss"), ("train_acc", "train/acc"), ("test_acc", "test/acc"),
                         ("val_acc", "val/acc"), ("test_loss", "test/loss"), ("val_loss", "val/loss"), ("lr", "lr"),
                         ("samples_per_s", "samples_per_s"),
                         ("data_wait_fraction", "data_wait_fraction")):
            if key in entry:
                self.writer.add_scalar(tag, entry[key], global_step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def format_entry(entry: dict, epochs: int) -> str:
    text = (f"epoch {entry['epoch']}/{epochs}: loss {entry['train_loss']:.4f} train acc {entry['train_acc']:.4f}")
    for name in ("test", "val"):
        if f"{name}_acc" in entry:
            text += f" {name} acc {entry[f'{name}_acc']:.4f}"
        if f"{name}_loss" in entry:
            text += f" {name} loss {entry[f'{name}_loss']:.4f}"
        heads = [k for k in entry if k.startswith(f"{name}_") and k.endswith("_acc") and k != f"{name}_acc"]
        if heads:  # label heads (engine/label_heads.py): each head's accuracy; {name}_acc is every head right
            text += " (" + ", ".join(f"{k[len(name) + 1:-4]} {entry[k]:.4f}" for k in heads) + ")"
    if entry.get("best"):
        text += " (best)"
    return text + (f" | {entry['samples']} samples, {entry['samples_per_s']:.1f}/s, "
                   f"waited on data {100 * entry['data_wait_fraction']:.0f}%, lr {entry['lr']:.3g}")
