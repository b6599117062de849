"""Every figure of a report, by name, with its size and caption, and the figures written as
``figures/<name>.png`` and ``.pdf``."""
import math
import os
import shutil
from typing import Any, Dict, List, Optional

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from actionrec import formatting
from actionrec.evaluation import model_info
from actionrec.reporting import confusion_figures, figures

FIGURE_FORMATS = ("png", "pdf")
PNG_DPI = 150


def figure_specs(results: Dict[str, Any], cms: Dict[str, np.ndarray], logs: Dict[str, List[Dict[str, Any]]]
                 ) -> Dict[str, figures.FigureSpec]:
    """Every figure as ``{name: (height in inches at the text width, draw(fig, rect), caption)}``."""
    order, classes = results["order"], results["class_list"]
    many = len(classes) > figures.FEW_CLASSES
    ref = results["reference"]
    specs = {"topk": (3.0, lambda fig, rect: figures.draw_topk(fig, rect, results),
                      "Top-1, top-5 and top-10 video accuracy of every model and fusion (top-1 written on its bar).")}
    ncols = 1 if len(order) == 1 else 2 if len(order) <= 4 else 3
    specs["precision_recall"] = (
        2.35 * math.ceil(len(order) / ncols), lambda fig, rect: figures.draw_precision_recall(fig, rect, results),
        "Per-class precision against recall; the three classes of lowest F1 are named. A class never "
        "predicted sits at precision 0.")
    specs["speed_accuracy"] = (2.8, lambda fig, rect: figures.draw_speed(fig, rect, results),
                               "Top-1 against model time per video (fusions, squares: the sum of their members).")
    with_logs = [n for n in order if logs.get(n)]
    ncols_logs = 1 if len(with_logs) <= 1 else 2 if len(with_logs) <= 4 else 3
    no_log = [n for n in results["models"] if not logs.get(n)]
    specs["learning_curves"] = (
        max(1.0, 2.2 * math.ceil(max(len(with_logs), 1) / ncols_logs)),
        lambda fig, rect: figures.draw_learning_curves(fig, rect, results, logs),
        "Accuracy (train, val, test as logged: clip or frame level, not video level) and training loss (grey, "
        "right axis) per epoch, from each model's log.jsonl."
        + (f" No log found for {formatting.names_text(no_log)}." if no_log else ""),
    )
    frames = results["dataset"]["frames_per_video"] is not None
    specs["dataset"] = ((5.6 if frames else 3.2) if many else (4.2 if frames else 2.4),
                        lambda fig, rect: figures.draw_dataset(fig, rect, results),
                        "Videos per class in each subset" + (" and frames per test video." if frames else "."))
    if results["appearance_vs_motion"]["rows"]:
        avm = results["appearance_vs_motion"]
        specs["accuracy_difference"] = (
            3.6 if many else 2.2, lambda fig, rect: figures.draw_difference(fig, rect, results),
            f"Each motion model's accuracy minus {avm['appearance_model']}'s per class (one marker per model), "
            f"classes sorted by the largest gain of any motion model: on the left motion helps, on the right "
            f"appearance is enough.")
    for name in order:
        title = f"{name}: {model_info.entry_title(results, name)}"
        specs[f"confusion_{name}"] = (
            9.4 if many else min(6.8, 1.6 + 0.28 * len(classes)),
            lambda fig, rect, name=name, title=title: confusion_figures.draw_confusion(
                fig, rect, cms[name], classes, title, counts=not many
            ),
            f"Confusion matrix of {title} (rows: true class; colour: fraction of the true class's test videos, "
            f"square-root scale" + ("" if many else "; counts in the cells") + ").",
        )
    if many:
        indices = confusion_figures.most_confused_classes(cms[ref])
        specs["confusion_most_confused"] = (
            7.2,
            lambda fig, rect: confusion_figures.draw_confusion(
                fig, rect, cms[ref], classes, f"{ref}: the {len(indices)} most confused classes", indices=indices
            ),
            f"The {len(indices)} classes of the most confused pairs of {ref} "
            f"({model_info.entry_title(results, ref)}), taken "
            f"pair by pair from the largest off-diagonal counts; counts in the cells, colour as in the full matrix.",
        )
    specs["per_class_accuracy"] = (
        min(9.4, max(3.4, 1.2 + 0.105 * len(classes))),  # at least ~0.3 in per row for a few classes
        lambda fig, rect: confusion_figures.draw_per_class_heatmap(fig, rect, results),
        "Per-class accuracy (%) of every model and fusion, classInd order.")
    return specs


def save_figure(fig: Figure, figures_dir: str, name: str) -> List[str]:
    paths = []
    for ext in FIGURE_FORMATS:
        path = os.path.join(figures_dir, f"{name}.{ext}")
        fig.savefig(path, dpi=PNG_DPI if ext == "png" else None)
        paths.append(path)
    return paths


def write_figures(figures_dir: str, specs: Dict[str, figures.FigureSpec], aliases: Optional[Dict[str, str]] = None
                  ) -> List[str]:
    """Each figure as figures/<name>.png and .pdf, at the text width of the report; ``aliases`` maps
    another name to one of them (a copy)."""
    os.makedirs(figures_dir, exist_ok=True)
    written = []
    with matplotlib.rc_context({"pdf.fonttype": 42}):
        for name, (height, draw, _) in specs.items():
            fig = figures.new_figure(figures.TEXT_W, height)
            draw(fig, [0.0, 0.0, 1.0, 1.0])
            written += save_figure(fig, figures_dir, name)
    for alias, name in (aliases or {}).items():
        for ext in FIGURE_FORMATS:
            written.append(shutil.copyfile(os.path.join(figures_dir, f"{name}.{ext}"),
                                           os.path.join(figures_dir, f"{alias}.{ext}")))
    return written
