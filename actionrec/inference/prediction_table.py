"""What predict.py prints for a video: a model's (or the fusion's) top classes with probabilities, as a
table of one column per model, or as one JSON line."""
import json

import numpy as np

from actionrec.evaluation import scores as video_scores

TopClasses = list[list]  # [[class, p], ...], best first


def top_classes(distribution: np.ndarray, class_list: list[str], k: int) -> TopClasses:
    """[[class, p], ...] of the k best entries of a distribution [C], best first (ties: lower index)."""
    order = video_scores.rank_classes(np.asarray(distribution)[None])[0][:k]
    return [[class_list[i], float(distribution[i])] for i in order]


def format_table(path: str, frames: int, tops: dict[str, TopClasses], fused: TopClasses | None,
                 rule: str | None) -> str:
    """The text output of one video: a column of top classes per model and, with `fused`, one for the
    fusion by `rule`."""
    columns = list(tops.items())
    if fused is not None:
        columns.append((f"fused ({rule})", fused))
    widths = [max([len(name)] + [len(c) + 8 for c, _ in entries]) for name, entries in columns]
    lines = [f"{path} ({frames} frames)",
             ("  rank  " + "  ".join(f"{name:<{w}}" for (name, _), w in zip(columns, widths))).rstrip()]
    for rank in range(max(len(entries) for _, entries in columns)):
        cells = []
        for (_, entries), w in zip(columns, widths):
            c, p = entries[rank]
            cells.append(f"{c:<{w - 8}}  {p:6.4f}")
        lines.append(f"  {rank + 1:>4}  " + "  ".join(cells))
    return "\n".join(lines)


def json_line(path: str, frames: int, tops: dict[str, TopClasses], fused: TopClasses | None) -> str:
    """The --json output of one video: {"path", "frames", "models": {name: [[class, p], ...]}, "fused"}."""
    return json.dumps({"path": path, "frames": int(frames), "models": tops, "fused": fused})
