"""--keep-best: the checkpoint of the best evaluated epoch (lowest held-out loss or highest held-out
accuracy), kept as best.pth beside checkpoint.pth; the checkpoint records the best so far, so a resumed
run keeps comparing against it."""

import os

from actionrec.engine import checkpoints

BEST_NAME = "best.pth"


MONITORS = ("none", "val_loss", "val_acc")


KEEP_BEST_HELP = ("keep OUTPUT_DIR/best.pth, the checkpoint of the evaluated epoch with the lowest held-out loss "
                  "(val_loss) or the highest held-out accuracy (val_acc); the held-out videos are those of "
                  "--val-groups, else the test videos (then the choice is made on the test set); log.jsonl "
                  "marks the epochs that improved it with \"best\": true (default: none)")


class BestKeeper:
    """The best value of the monitored metric so far, and whether an epoch's log entry improves it.

    monitor: "val_loss" or "val_acc" ("none": keeps nothing); eval_name: the log's prefix of the held-out
    set ("val" or "test"), so that val_loss monitors test_loss when the run evaluates on the test videos.
    record: the checkpoint's "best" ({"monitor", "key", "value", "epoch"}) of a resumed run, or None.
    """

    def __init__(self, monitor: str, eval_name: str, record: dict | None = None):
        self.monitor = monitor
        self.key = f"{eval_name}_{monitor.partition('_')[2]}" if monitor != "none" else None
        self.record = record if record and record.get("key") == self.key else None

    @property
    def enabled(self) -> bool:
        return self.key is not None

    def improves(self, entry: dict) -> bool:
        """Whether `entry` (an epoch's log entry) has the monitored value and beats the best so far (the
        first evaluated epoch always does; a tie does not)."""
        if not self.enabled or not isinstance(entry.get(self.key), (int, float)):
            return False
        if self.record is None:
            return True
        value, best = entry[self.key], self.record["value"]
        return value < best if self.monitor.endswith("_loss") else value > best

    def update(self, entry: dict) -> bool:
        """Record `entry` as the best when it improves; marks the entry ("best": true or false)."""
        if not self.enabled or self.key not in entry:
            return False
        better = self.improves(entry)
        if better:
            self.record = {"monitor": self.monitor, "key": self.key, "value": float(entry[self.key]),
                           "epoch": int(entry["epoch"])}
        entry["best"] = better
        return better


def best_path(output_dir: str) -> str:
    return os.path.join(output_dir, BEST_NAME)


def resumed_record(output_dir: str, checkpoint: dict, key: str | None) -> dict | None:
    """The best so far of a resumed run: the checkpoint's record, or that of best.pth when best.pth holds a
    later epoch (a run stopped between writing best.pth and checkpoint.pth, both atomic: best.pth is the
    evaluated model it says it is, and the epoch will be redone)."""
    record = checkpoint.get("best")
    path = best_path(output_dir)
    if key is None or not os.path.exists(path):
        return record
    best = checkpoints.load_checkpoint(path, what="the best checkpoint (move it away to start it afresh)")
    saved = best.get("best") if isinstance(best, dict) else None
    if saved and saved.get("key") == key and (record is None or saved["epoch"] > record["epoch"]):
        return saved
    return record
