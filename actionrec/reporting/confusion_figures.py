"""Confusion matrices as heat maps: one model's (every class named), a sub-matrix of the most confused
classes, small multiples of every model for a few-class run, and the per-class accuracy of every model."""
import math
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure

from actionrec import formatting
from actionrec.reporting import figures

NUM_CONFUSED_CLASSES = 20  # classes of the confusion sub-matrix with counts


def _row_fractions(cm):
    cm = np.asarray(cm, dtype=np.float64)
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)


def draw_confusion(fig: Figure, rect: Sequence[float], cm: np.ndarray, class_list: Sequence[str], title: str,
                   counts: Any = True, indices: Optional[Sequence[int]] = None, cbar: bool = True) -> None:
    """Heat map of the row-normalised confusion matrix (square-root colour scale, so that small
    confusions show), every class named; ``counts`` writes the count in each non-zero cell;
    ``indices`` selects a sub-matrix (colours stay fractions of the whole row)."""
    fractions = _row_fractions(cm)
    cm = np.asarray(cm)
    idx = np.arange(len(class_list)) if indices is None else np.asarray(indices)
    names = [class_list[i] for i in idx]
    if indices is not None:
        support = cm.sum(axis=1)
        row_names = [f"{class_list[i]} ({support[i]})" for i in idx]
    else:
        row_names = names
    sub, sub_counts = fractions[np.ix_(idx, idx)], cm[np.ix_(idx, idx)]
    w, h = figures.rect_inches(fig, rect)
    n = len(idx)
    right = 0.55 if cbar else 0.1
    y_tick = figures.class_tick_size(n, h - 1.2, 7.0)
    x_tick = figures.class_tick_size(n, w - 1.2 - right, 7.0)
    left = max(figures.text_width(s, y_tick) for s in row_names) + 0.2
    bottom = max(figures.text_width(s, x_tick) for s in names) + 0.25
    ax = figures.region_axes(fig, rect, left=left, bottom=bottom, right=right, top=0.25)
    image = ax.imshow(sub, cmap="Blues", norm=PowerNorm(0.5, vmin=0.0, vmax=1.0), aspect="auto",
                      interpolation="nearest")
    ax.set_xticks(np.arange(n))
    ax.set_yticks(np.arange(n))
    ax.set_xticklabels(names, rotation=90, fontsize=x_tick)
    ax.set_yticklabels(row_names, fontsize=y_tick)
    ax.tick_params(length=1.5, width=0.3, pad=1)
    ax.set_xlabel("predicted class", fontsize=7)
    ax.set_ylabel("true class" + (" (test videos)" if indices is not None else ""), fontsize=7)
    ax.set_title(title, fontsize=8)
    if n > figures.FEW_CLASSES:
        for k in range(10, n, 10):
            ax.axhline(k - 0.5, color="#dddddd", linewidth=0.3)
            ax.axvline(k - 0.5, color="#dddddd", linewidth=0.3)
    if counts:
        cell_pt = 72.0 * min((w - left - right) / n, (h - bottom - 0.25) / n)
        size = max(3.0, min(8.0, cell_pt * 0.45))
        for i in range(n):
            for j in range(n):
                if sub_counts[i, j]:
                    ax.text(j, i, str(sub_counts[i, j]), ha="center", va="center", fontsize=size,
                            color="white" if sub[i, j] > 0.55 else "black")
    if cbar:
        fw, fh = fig.get_size_inches()
        x, y, rw, rh = rect
        cax = fig.add_axes([x + rw - 0.4 / fw, y + bottom / fh, 0.1 / fw, rh - (bottom + 0.25) / fh])
        bar = fig.colorbar(image, cax=cax)
        bar.ax.tick_params(labelsize=6, length=2, width=0.4)
        bar.set_label("fraction of the true class", fontsize=6)


def most_confused_classes(cm: np.ndarray, count: int = NUM_CONFUSED_CLASSES) -> List[int]:
    """Indices of up to ``count`` classes taken from the off-diagonal cells by count (largest first;
    ties by row then column), so that confused pairs sit next to each other."""
    cm = np.asarray(cm, dtype=np.int64)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    cells = sorted(zip(*np.nonzero(off)), key=lambda ij: (-off[ij], ij[0], ij[1]))
    chosen = []
    for i, j in cells:
        for k in (i, j):
            if k not in chosen and len(chosen) < count:
                chosen.append(int(k))
        if len(chosen) >= count:
            break
    return chosen


def draw_per_class_heatmap(fig: Figure, rect: Sequence[float], results: Dict[str, Any]) -> None:
    """Classes x models and fusions, per-class accuracy written in each cell."""
    order, classes = results["order"], results["class_list"]
    values = np.array([[results["evaluation"][e]["per_class_accuracy"][c] if results["evaluation"][e][
        "per_class_accuracy"][c] is not None else np.nan for e in order] for c in classes], dtype=np.float64)
    w, h = figures.rect_inches(fig, rect)
    y_tick = figures.class_tick_size(len(classes), h - 0.9, 7.0)
    left = max(figures.text_width(c, y_tick) for c in classes) + 0.2
    bottom = max(figures.text_width(e, 6.5) for e in order) * 0.8 + 0.3
    width = min(w - left - 0.1, 0.75 * len(order))
    ax = figures.region_axes(fig, [rect[0], rect[1], (left + width + 0.1) / fig.get_size_inches()[0], rect[3]],
                     left=left, bottom=bottom, right=0.1, top=0.1)
    ax.imshow(values * 100.0, cmap="YlGn", vmin=-20, vmax=120, aspect="auto", interpolation="nearest")
    ax.set_xticks(np.arange(len(order)))
    ax.set_xticklabels(order, rotation=40, ha="right", fontsize=6.5)
    ax.set_yticks(np.arange(len(classes)))
    ax.set_yticklabels(classes, fontsize=y_tick)
    ax.tick_params(length=1.5, width=0.3, pad=1)
    size = max(3.0, min(7.0, y_tick * 0.95))
    for i in range(len(classes)):
        for j in range(len(order)):
            text = "n/a" if np.isnan(values[i, j]) else f"{100.0 * values[i, j]:.0f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=size)


def confusion_grid_spec(results: Dict[str, Any], cms: Dict[str, np.ndarray]) -> figures.FigureSpec:
    """All confusion matrices of a few-class run as small multiples sharing their class labels (the
    left column names the true classes, the bottom row the predicted ones); counts in the cells."""
    order, classes = results["order"], results["class_list"]
    ncols = min(3 if len(classes) <= 10 else 2, len(order))
    nrows = math.ceil(len(order) / ncols)
    tick = 6.5 if len(classes) <= 10 else 5.0
    left = max(figures.text_width(c, tick) for c in classes) + 0.3
    bottom = left
    gap, title_h = 0.15, 0.2
    cell = min(3.2, (figures.TEXT_W - left - (ncols - 1) * gap) / ncols)
    height = nrows * (cell + title_h) + (nrows - 1) * gap + bottom

    def draw(fig, rect):
        fw, fh = fig.get_size_inches()
        x0, y0 = rect[0] * fw, (rect[1] + rect[3]) * fh  # top left, inches
        for k, name in enumerate(order):
            r, c = divmod(k, ncols)
            x = x0 + left + c * (cell + gap)
            y = y0 - (r + 1) * (cell + title_h) - r * gap
            ax = fig.add_axes([x / fw, y / fh, cell / fw, cell / fh])
            fractions, counts = _row_fractions(cms[name]), np.asarray(cms[name])
            ax.imshow(fractions, cmap="Blues", norm=PowerNorm(0.5, vmin=0.0, vmax=1.0), interpolation="nearest",
                      aspect="auto")
            n = len(classes)
            size = max(3.0, min(8.0, 72.0 * cell / n * 0.4))
            for i in range(n):
                for j in range(n):
                    if counts[i, j]:
                        ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=size,
                                color="white" if fractions[i, j] > 0.55 else "black")
            ax.set_title(f"{name}: top-1 {formatting.pct(results['evaluation'][name]['top1'])}%", fontsize=7, pad=3)
            ax.set_xticks(np.arange(n))
            ax.set_yticks(np.arange(n))
            ax.set_yticklabels(classes if c == 0 else [], fontsize=tick)
            ax.set_xticklabels(classes if k + ncols >= len(order) else [], rotation=90, fontsize=tick)
            ax.tick_params(length=1.5, width=0.3, pad=1)
            if c == 0:
                ax.set_ylabel("true class", fontsize=6.5)
            if k + ncols >= len(order):
                ax.set_xlabel("predicted class", fontsize=6.5)

    return (height, draw, "Confusion matrices of every model and fusion (rows: true class; counts in the cells; "
                          "colour: fraction of the true class's test videos, square-root scale).")
