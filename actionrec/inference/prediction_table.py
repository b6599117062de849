"""What predict.py prints for a video: a model's (or the fusion's) top classes with probabilities, as a
table of one column per model (with label heads: one table per head and one for the actions), or as
one JSON line."""
import json

import numpy as np

from actionrec.evaluation import scores as video_scores
from actionrec.inference import label_sets

TopClasses = list[list]  # [[class, p], ...], best first
Tops = dict[str, TopClasses]  # {label set (label_sets.CLASS, or a head) or "action": its top classes}


def top_classes(distribution: np.ndarray, class_list: list[str], k: int) -> TopClasses:
    """[[class, p], ...] of the k best entries of a distribution [C], best first (ties: lower index)."""
    order = video_scores.rank_classes(np.asarray(distribution)[None])[0][:k]
    return [[class_list[i], float(distribution[i])] for i in order]


def format_table(path: str, frames: int, tops: dict[str, Tops], fused: Tops | None, rule: str | None) -> str:
    """The text output of one video: per label set (label_sets.CLASS, or each head and the actions) a
    block with a column of top classes per model and, with `fused`, one for the fusion by `rule`; the
    first column of a block is the rank, headed "rank" (one class list) or by the block's name."""
    lines = [f"{path} ({frames} frames)"]
    for part in next(iter(tops.values())):
        columns = [(name, model_tops[part]) for name, model_tops in tops.items()]
        if fused is not None:
            columns.append((f"fused ({rule})", fused[part]))
        lines += _block("rank" if part == label_sets.CLASS else part, columns)
    return "\n".join(lines)


def _block(label: str, columns: list[tuple[str, TopClasses]]) -> list[str]:
    first = max(4, len(label))
    widths = [max([len(name)] + [len(c) + 8 for c, _ in entries]) for name, entries in columns]
    lines = [(f"  {label:<{first}}  " + "  ".join(f"{name:<{w}}" for (name, _), w in zip(columns, widths))).rstrip()]
    for rank in range(max(len(entries) for _, entries in columns)):
        cells = []
        for (_, entries), w in zip(columns, widths):
            c, p = entries[rank]
            cells.append(f"{c:<{w - 8}}  {p:6.4f}")
        lines.append(f"  {rank + 1:>{first}}  " + "  ".join(cells))
    return lines


def json_line(path: str, frames: int, tops: dict[str, Tops], fused: Tops | None) -> str:
    """The --json output of one video: {"path", "frames", "models": {name: [[class, p], ...]}, "fused"}; with
    label heads each model's (and the fusion's) entry is {head: [[class, p], ...], ..., "action": [...]}."""
    def entry(model_tops):
        return model_tops[label_sets.CLASS] if list(model_tops) == [label_sets.CLASS] else model_tops
    return json.dumps({"path": path, "frames": int(frames), "models": {name: entry(t) for name, t in tops.items()},
                       "fused": None if fused is None else entry(fused)})
