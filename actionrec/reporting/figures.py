"""The report's charts, each drawn into a rectangle of a matplotlib figure (object-oriented matplotlib on
the Agg canvas: no pyplot state, no display): accuracy, precision against recall, speed, learning
curves, the data, appearance against motion. Confusion matrices are in ``confusion_figures``."""
import math
from typing import Any, Callable, Dict, List, Sequence, Tuple

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.ticker import MaxNLocator

from actionrec import formatting
from actionrec.evaluation import comparison

TEXT_W = 8.27 - 2 * 0.7  # the report's text width in inches: A4 less 0.7-inch margins; every figure has it
FEW_CLASSES = 30  # up to this many classes every confusion matrix is drawn with counts in its cells
MEASURE_DPI = 720  # text is measured at 10x so that hinting at small sizes does not shrink the widths
_RENDERER = []
_WIDTHS = {}
# How a figure is given: (height in inches at the text width, draw(fig, rect in figure fractions), caption)
FigureSpec = Tuple[float, Callable[[Figure, Sequence[float]], None], str]


def text_width(text: str, size: float, weight: str = "normal") -> float:
    """Width of one line of text in inches (DejaVu Sans, as drawn)."""
    key = (text, size, weight)
    if key not in _WIDTHS:
        if not _RENDERER:
            _RENDERER.append(RendererAgg(10, 10, MEASURE_DPI))
        w, _, _ = _RENDERER[0].get_text_width_height_descent(text, FontProperties(size=size, weight=weight),
                                                             ismath=False)
        _WIDTHS[key] = w / MEASURE_DPI
    return _WIDTHS[key]


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def region_axes(fig: Figure, rect: Sequence[float], left: float = 0.0, bottom: float = 0.0, right: float = 0.0,
                top: float = 0.0) -> Axes:
    """Axes filling ``rect`` (figure fractions) less margins given in inches."""
    fw, fh = fig.get_size_inches()
    x, y, w, h = rect
    return fig.add_axes([x + left / fw, y + bottom / fh, w - (left + right) / fw, h - (bottom + top) / fh])


def grid_rects(fig: Figure, rect: Sequence[float], nrows: int, ncols: int, hgap: float = 0.0, vgap: float = 0.0
               ) -> List[List[float]]:
    """``rect`` cut into nrows x ncols cells (gaps in inches), row-major from the top left."""
    fw, fh = fig.get_size_inches()
    x, y, w, h = rect
    cw, ch = (w - (ncols - 1) * hgap / fw) / ncols, (h - (nrows - 1) * vgap / fh) / nrows
    return [[x + c * (cw + hgap / fw), y + h - (r + 1) * ch - r * vgap / fh, cw, ch]
            for r in range(nrows) for c in range(ncols)]


def rect_inches(fig: Figure, rect: Sequence[float]) -> Tuple[float, float]:
    fw, fh = fig.get_size_inches()
    return rect[2] * fw, rect[3] * fh


def entry_color(results: Dict[str, Any], name: str) -> Tuple[float, float, float]:
    colors = matplotlib.colormaps["tab10"].colors
    return colors[results["order"].index(name) % len(colors)]


def style_axes(ax: Axes, size: float = 7) -> None:
    ax.tick_params(labelsize=size, length=2, width=0.5)
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)
    for spine in ("left", "bottom"):
        ax.spines[spine].set_linewidth(0.6)


def class_tick_size(count: int, length_in: float, largest: float = 7.0) -> float:
    return max(2.5, min(largest, 0.85 * 72.0 * length_in / max(count, 1)))


def draw_topk(fig: Figure, rect: Sequence[float], results: Dict[str, Any]) -> None:
    order, ev = results["order"], results["evaluation"]
    label_h = max(text_width(n, 6.5) for n in order) * 0.75 + 0.2
    ax = region_axes(fig, rect, left=0.55, bottom=label_h + 0.1, right=0.1, top=0.2)
    x = np.arange(len(order))
    width = 0.8 / len(comparison.TOPK)
    shades = ("#1f4e79", "#4f81bd", "#a7c3e0")
    for i, k in enumerate(comparison.TOPK):
        values = [100.0 * ev[n][f"top{k}"] for n in order]
        bars = ax.bar(
            x + (i - (len(comparison.TOPK) - 1) / 2) * width, values, width=width, color=shades[i], label=f"top-{k}"
        )
        if k == 1:
            ax.bar_label(bars, fmt="%.1f", fontsize=5.5, padding=1)
    ax.set_xticks(x)
    ax.set_xticklabels(order, rotation=40, ha="right", fontsize=6.5)
    ax.set_ylim(0, 108)
    ax.set_ylabel("video accuracy (%)", fontsize=7)
    ax.legend(fontsize=6, ncols=3, loc="upper center", bbox_to_anchor=(0.5, 1.12), frameon=False)
    ax.grid(axis="y", alpha=0.3, linewidth=0.5)
    style_axes(ax)


def draw_precision_recall(fig: Figure, rect: Sequence[float], results: Dict[str, Any]) -> None:
    order, ev = results["order"], results["evaluation"]
    ncols = 1 if len(order) == 1 else 2 if len(order) <= 4 else 3
    nrows = math.ceil(len(order) / ncols)
    for name, cell in zip(order, grid_rects(fig, rect, nrows, ncols, hgap=0.15, vgap=0.1)):
        ax = region_axes(fig, cell, left=0.42, bottom=0.35, right=0.05, top=0.22)
        per_class = [(c, v) for c, v in ev[name]["per_class"].items() if v["support"] > 0]
        recall = np.array([100.0 * v["recall"] for _, v in per_class])
        precision = np.array([100.0 * v["precision"] for _, v in per_class])
        ax.plot([0, 100], [0, 100], color="#bbbbbb", linewidth=0.5, linestyle="--")
        ax.scatter(recall, precision, s=6, color=entry_color(results, name), alpha=0.7, linewidths=0)
        worst = sorted(per_class, key=lambda cv: (cv[1]["f1"], cv[0]))[:3]
        for k, (c, v) in enumerate(worst):
            ax.annotate(c, (100.0 * v["recall"], 100.0 * v["precision"]), fontsize=5, xytext=(3, 3 + 6 * k),
                        textcoords="offset points", arrowprops={"arrowstyle": "-", "linewidth": 0.3,
                                                                "color": "#888888"})
        ax.set_xlim(-3, 103)
        ax.set_ylim(-3, 103)
        ax.set_title(f"{name}: macro F1 {formatting.pct(ev[name]['macro_f1'])}%", fontsize=7)
        ax.set_xlabel("recall (%)", fontsize=6.5, labelpad=1)
        ax.set_ylabel("precision (%)", fontsize=6.5, labelpad=1)
        style_axes(ax, 6)


def draw_speed(fig: Figure, rect: Sequence[float], results: Dict[str, Any]) -> None:
    ax = region_axes(fig, rect, left=0.6, bottom=0.45, right=0.2, top=0.15)
    style_axes(ax)
    shown = 0
    for name in results["order"]:
        t = results["models"][name]["timing"] if name in results["models"] else results["fusions"][name].get("timing")
        seconds = (t or {}).get("model_seconds_per_video")
        if not isinstance(seconds, (int, float)) or seconds <= 0:
            continue
        top1 = 100.0 * results["evaluation"][name]["top1"]
        marker = "s" if name in results["fusions"] else "o"
        ax.scatter([1000.0 * seconds], [top1], color=entry_color(results, name), marker=marker, s=22)
        ax.annotate(name, (1000.0 * seconds, top1), fontsize=6, xytext=(3, 3), textcoords="offset points")
        shown += 1
    if shown:
        ax.set_xscale("log")
        ax.set_xlabel("model time per video (ms, log scale)", fontsize=7)
        ax.set_ylabel("top-1 (%)", fontsize=7)
        ax.grid(alpha=0.3, linewidth=0.5)
    else:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "No model.json with timing: speed not measured.", ha="center", va="center",
                fontsize=8, transform=ax.transAxes)


def draw_learning_curves(fig: Figure, rect: Sequence[float], results: Dict[str, Any],
                         logs: Dict[str, List[Dict[str, Any]]]) -> None:
    names = [n for n in results["order"] if logs.get(n)]
    if not names:
        ax = region_axes(fig, rect)
        ax.set_axis_off()
        ax.text(0.5, 0.5, "No training log found.", ha="center", va="center", fontsize=8)
        return
    ncols = 1 if len(names) == 1 else 2 if len(names) <= 4 else 3
    nrows = math.ceil(len(names) / ncols)
    for name, cell in zip(names, grid_rects(fig, rect, nrows, ncols, hgap=0.2, vgap=0.1)):
        ax = region_axes(fig, cell, left=0.42, bottom=0.35, right=0.4, top=0.22)
        loss_ax = ax.twinx()
        records = logs[name]
        for key, style in (("train_acc", "-"), ("val_acc", "--"), ("test_acc", ":")):
            pts = [(r["epoch"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
            if pts:
                epochs, values = zip(*pts)
                ax.plot(epochs, 100.0 * np.asarray(values), style, color=entry_color(results, name), marker="o",
                        markersize=2, linewidth=1, label=key.replace("_", " "))
        for key, style in (("train_loss", "-"), ("val_loss", "--"), ("test_loss", ":")):
            pts = [(r["epoch"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
            if pts:
                epochs, values = zip(*pts)
                loss_ax.plot(epochs, values, style, color="#888888", linewidth=0.8, label=key.replace("_", " "))
        ax.set_ylim(0, 102)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(name, fontsize=7)
        ax.set_xlabel("epoch", fontsize=6.5, labelpad=1)
        ax.set_ylabel("accuracy (%)", fontsize=6.5, labelpad=1)
        loss_ax.set_ylabel("loss", fontsize=6.5, color="#666666", labelpad=1)
        loss_ax.tick_params(labelsize=6, length=2, width=0.5, colors="#666666")
        ax.tick_params(labelsize=6, length=2, width=0.5)
        handles = ax.get_legend_handles_labels()[0] + loss_ax.get_legend_handles_labels()[0]
        if handles:
            ax.legend(handles=handles, fontsize=5, loc="lower right", frameon=False)
        ax.grid(alpha=0.3, linewidth=0.5)


def draw_dataset(fig: Figure, rect: Sequence[float], results: Dict[str, Any]) -> None:
    data, classes = results["dataset"], results["class_list"]
    w, h = rect_inches(fig, rect)
    top, bottom = grid_rects(fig, rect, 2, 1, vgap=0.1) if data["frames_per_video"] else ([rect, None])
    tick = class_tick_size(len(classes), w - 0.7)
    label_h = max(text_width(c, tick) for c in classes) + 0.15
    ax = region_axes(fig, top, left=0.5, bottom=label_h + 0.1, right=0.1, top=0.2)
    x = np.arange(len(classes))
    bottom_counts = np.zeros(len(classes))
    for subset, color in (("train", "#4f81bd"), ("val", "#9bbb59"), ("test", "#c0504d")):
        if data[subset] is None:
            continue
        counts = np.array([data[subset]["per_class"][c] for c in classes], dtype=np.float64)
        ax.bar(x, counts, bottom=bottom_counts, color=color, width=0.8, label=f"{subset} ({data[subset]['videos']})")
        bottom_counts += counts
    ax.set_xticks(x)
    ax.set_xticklabels(classes, rotation=90 if len(classes) > FEW_CLASSES else 30,
                       ha="center" if len(classes) > FEW_CLASSES else "right", fontsize=tick)
    ax.set_xlim(-0.6, len(classes) - 0.4)
    ax.set_ylabel("videos per class", fontsize=7)
    ax.legend(fontsize=6, ncols=3, loc="upper center", bbox_to_anchor=(0.5, 1.13), frameon=False)
    style_axes(ax, 6.5)
    ax.tick_params(axis="x", labelsize=tick)
    if bottom is not None:
        frames = data["frames_per_video"]
        ax = region_axes(fig, bottom, left=0.5, bottom=0.4, right=0.1, top=0.15)
        ax.hist(frames["values"], bins=min(60, max(5, len(frames["values"]) // 5)), color="#c0504d")
        ax.axvline(frames["median"], color="black", linewidth=0.8, linestyle="--")
        ax.set_xlabel(f"frames per test video (dashed: median {frames['median']:.0f})", fontsize=7)
        ax.set_ylabel("videos", fontsize=7)
        style_axes(ax, 6.5)


def draw_difference(fig: Figure, rect: Sequence[float], results: Dict[str, Any]) -> None:
    """Every motion model's per-class accuracy minus the 2D model's (a marker per model and class), classes
    sorted by the largest gain of any motion model."""
    avm = results["appearance_vs_motion"]
    rows = [r for r in avm["rows"] if r["best_gain"] is not None]
    w, _ = rect_inches(fig, rect)
    tick = class_tick_size(len(rows), w - 0.7)
    label_h = max([text_width(r["class"], tick) for r in rows] + [0.3]) + 0.15
    ax = region_axes(fig, rect, left=0.55, bottom=label_h + 0.1, right=0.1, top=0.1)
    x = np.arange(len(rows))
    markers = "os^Dv<>p"
    for i, m in enumerate(avm["motion_models"]):
        diffs = [np.nan if r["difference"][m] is None else 100.0 * r["difference"][m] for r in rows]
        ax.plot(x, diffs, linestyle="none", marker=markers[i % len(markers)], markersize=3.5, alpha=0.85, label=m)
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_xticks(x)
    ax.set_xticklabels([r["class"] for r in rows], rotation=90 if len(rows) > FEW_CLASSES else 30,
                       ha="center" if len(rows) > FEW_CLASSES else "right", fontsize=tick)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylabel(f"motion model minus {avm['appearance_model']}\n(percentage points)", fontsize=7)
    ax.legend(fontsize=6, loc="upper right", frameon=False, ncol=min(4, len(avm["motion_models"])))
    ax.grid(axis="y", alpha=0.3, linewidth=0.5)
    style_axes(ax, 6.5)
    ax.tick_params(axis="x", labelsize=tick)
