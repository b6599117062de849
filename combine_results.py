"""Evaluate and fuse the single-frame and 3D models' per-video predictions; write the report.

Reads the prediction files written by test_single_frame.py and test_3d.py (one HDF5 file per
test video, ``predictions`` float32 [rows, classes] of logits) for every test video of a split,
scores each video with ``metrics.video_score`` (mean log-softmax over rows), fuses the two
models, and writes into ``--output-dir``:

    results.json                     top-1/5/10, per-class accuracy, best/worst classes, most
                                     confused pairs of the three models, spatial_vs_temporal,
                                     fusion rule and weights
    confusion_{single_frame,3d,combined}.npy   int64 [C, C] counts (rows = true class)
    tables.md, tables/*.tex          the same tables in Markdown and LaTeX (tabular)
    figures/*.png, figures/*.pdf     confusion matrices, per-class accuracy, top-k, learning curves
    report.pdf                       all of the above, multi-page (matplotlib, no LaTeX needed)

Example:
    python combine_results.py --data-dir /data/ucf101 --single-frame runs/single_frame/predictions \\
        --3d runs/3d/predictions --output-dir report/
"""
import argparse
import datetime
import json
import os
import re
import sys

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

import metrics
from helperFunctions import getUCF101

MODELS = ("single_frame", "3d", "combined")
MODEL_TITLES = {"single_frame": "Single frame (ResNet-50)", "3d": "3D ResNet-50", "combined": "Combined"}
FUSION_RULES = {
    "logmean": "w2d * s2d + w3d * s3d of the video scores s (mean log-softmax over rows)",
    "prob": "weighted mean of softmax(s2d) and softmax(s3d), weights normalised to sum 1",
    "max": "element-wise max of w2d * softmax(s2d) and w3d * softmax(s3d), weights normalised to sum 1",
}
TOPK = (1, 5, 10)
NUM_LISTED = 10  # best/worst classes and confused pairs, as the assignment asks
NUM_MISSING_SHOWN = 5  # missing videos named in the refusal message
FIGURE_FORMATS = ("png", "pdf")
ROWS_PER_PAGE = 80  # per-class table rows on one page of report.pdf
NAMED_TICKS_MAX_CLASSES = 30  # above this the confusion matrix uses a tiny font for class names


def fail(message):
    """A user error: one line on stderr, exit status 2, no traceback."""
    print(f"combine_results.py: error: {message}", file=sys.stderr)
    raise SystemExit(2)


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------
def parse_weights(text):
    """``"W2D,W3D"`` -> (w2d, w3d): two finite, non-negative numbers, not both zero."""
    try:
        weights = tuple(float(w) for w in text.split(","))
    except ValueError:
        weights = ()
    if len(weights) != 2 or not all(np.isfinite(weights)) or min(weights) < 0 or sum(weights) == 0:
        fail(f"--weights must be two non-negative numbers W2D,W3D, not both zero (e.g. 0.5,0.5); got {text!r}")
    return weights


def video_name(video_path):
    """``<ClassFolder>/<video>`` (no extension), as in the split lists."""
    return os.path.splitext(metrics.prediction_path("", video_path))[0]


def _columns(path):
    """Column count of a readable 2-D ``predictions`` dataset, else None."""
    try:
        shape = metrics.read_predictions(path).shape
    except (OSError, KeyError, ValueError, TypeError):
        return None
    return shape[1] if len(shape) == 2 and shape[0] >= 1 else None


def check_predictions(predictions_dir, flag, video_paths, num_classes, split):
    """Problems with one model's prediction folder as one message, or None if it is complete."""
    incomplete = metrics.missing_predictions(predictions_dir, video_paths, num_classes)
    if not incomplete:
        return None
    wrong = {}  # video -> its column count, for files that are fine except for the class count
    for video_path in incomplete:
        columns = _columns(metrics.prediction_path(predictions_dir, video_path))
        if columns is not None:
            wrong[video_path] = columns
    missing = [p for p in incomplete if p not in wrong]
    parts = []
    if missing:
        shown = ", ".join(video_name(p) for p in missing[:NUM_MISSING_SHOWN])
        more = f" and {len(missing) - NUM_MISSING_SHOWN} more" if len(missing) > NUM_MISSING_SHOWN else ""
        parts.append(f"{len(missing)} of {len(video_paths)} test videos of split {split} have no complete "
                     f"prediction file: {shown}{more}")
    if wrong:
        counts = sorted(set(wrong.values()))
        example = video_name(next(iter(wrong)))
        parts.append(f"{len(wrong)} prediction files have {'/'.join(map(str, counts))} classes but classInd.txt "
                     f"lists {num_classes} (e.g. {example})")
    return f"{flag} {predictions_dir}: " + "; ".join(parts)


def find_log(predictions_dir):
    """``log.jsonl`` beside the checkpoints, i.e. ``<predictions_dir>/../log.jsonl``, or None."""
    path = os.path.join(os.path.dirname(os.path.abspath(os.path.normpath(predictions_dir))), "log.jsonl")
    return path if os.path.isfile(path) else None


def read_log(path):
    """Records of a ``log.jsonl`` (one JSON object per line); unreadable lines are skipped."""
    records = []
    try:
        with open(path, "r", encoding="utf-8") as f:
            lines = f.readlines()
    except (OSError, UnicodeDecodeError) as e:
        print(f"warning: cannot read training log {path} ({e}); no learning curves from it", file=sys.stderr)
        return records
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "epoch" in record:
            records.append(record)
    return records


# ---------------------------------------------------------------------------
# Fusion and results
# ---------------------------------------------------------------------------
def fuse_scores(scores_2d, scores_3d, rule="logmean", weights=(0.5, 0.5)):
    """Fuse two models' video scores (mean log-softmax, ``[N, C]``) into ``[N, C]``.

    logmean: ``w2d * s2d + w3d * s3d`` (weights as given).
    prob:    weighted mean of the two softmax(score) distributions (weights normalised to sum 1).
    max:     element-wise max of the two weighted distributions ``w * softmax(score)`` (normalised
             weights; equal weights give the plain max).
    """
    w2d, w3d = weights
    if rule == "logmean":
        return w2d * np.asarray(scores_2d, dtype=np.float64) + w3d * np.asarray(scores_3d, dtype=np.float64)
    total = w2d + w3d
    p2d, p3d = (w2d / total) * metrics.softmax(scores_2d), (w3d / total) * metrics.softmax(scores_3d)
    if rule == "prob":
        return p2d + p3d
    if rule == "max":
        return np.maximum(p2d, p3d)
    raise ValueError(f"unknown fusion rule {rule!r}; expected one of {', '.join(FUSION_RULES)}")


def spatial_vs_temporal(summaries, class_list):
    """Per class: single-frame and 3D accuracy and their difference (3D minus single frame).

    Sorted by difference, largest 3D gain first (classes that need motion), then the classes
    where appearance alone does better; ties by name; classes without test videos last.
    """
    rows = []
    for name in class_list:
        sf = summaries["single_frame"]["per_class_accuracy"][name]
        td = summaries["3d"]["per_class_accuracy"][name]
        rows.append({
            "class": name,
            "single_frame": sf,
            "3d": td,
            "combined": summaries["combined"]["per_class_accuracy"][name],
            "difference": None if sf is None or td is None else td - sf,
        })
    return sorted(rows, key=lambda r: (r["difference"] is None, -(r["difference"] or 0.0), r["class"]))


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}
_LATEX_RE = re.compile("|".join(re.escape(c) for c in _LATEX_SPECIAL))
_MARKDOWN_RE = re.compile(r"([\\|*_`\[\]<>])")


def latex_escape(text):
    return _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group(0)], str(text))


def markdown_escape(text):
    return _MARKDOWN_RE.sub(r"\\\1", str(text))


def pct(value, signed=False):
    """A fraction as a percentage string; None (no test videos) as n/a."""
    if value is None:
        return "n/a"
    return f"{100.0 * value:+.2f}" if signed else f"{100.0 * value:.2f}"


def counted(n, one, many):
    """'the class' for n == 1, else 'the 7 classes' (n > 1)."""
    return one if n == 1 else f"the {n} {many}"


def build_tables(results, class_list):
    """The report's tables as ``{name: (caption, header, align, rows)}`` of plain strings.

    ``align`` is a LaTeX column spec (one letter per column); rows are lists of cell strings.
    """
    summaries = {m: results[m] for m in MODELS}
    tables = {}
    tables["topk"] = (
        f"Video-level accuracy (%) on the {results['videos']} test videos of split {results['split']} "
        f"({results['fusion']['rule']} fusion, weights {results['fusion']['weights'][0]:g}/"
        f"{results['fusion']['weights'][1]:g}).",
        ["Model", "Top-1", "Top-5", "Top-10", "Mean class acc."], "lrrrr",
        [[MODEL_TITLES[m]] + [pct(summaries[m][f"top{k}"]) for k in TOPK]
         + [pct(summaries[m]["mean_class_accuracy"])] for m in MODELS],
    )
    for key, word in (("best_classes", "best"), ("worst_classes", "worst")):
        n = max(len(summaries[m][key]) for m in MODELS)
        rows = []
        for i in range(n):
            row = [str(i + 1)]
            for m in MODELS:
                entries = summaries[m][key]
                row += [entries[i][0], pct(entries[i][1])] if i < len(entries) else ["", ""]
            rows.append(row)
        tables[key] = (
            f"The {n} {word} classes of each model: per-class accuracy (%); ties ordered by name.",
            ["#", "Single frame", "%", "3D", "%", "Combined", "%"], "rlrlrlr", rows,
        )
    for m in MODELS:
        pairs = summaries[m]["most_confused"]
        if pairs:
            caption = (f"{MODEL_TITLES[m]}: {counted(len(pairs), 'the most confused pair', 'most confused pairs')}, "
                       f"as the percentage of the true class's test videos predicted as the other class.")
        else:
            caption = f"{MODEL_TITLES[m]}: no confused pairs (every test video was classified correctly)."
        tables[f"most_confused_{m}"] = (
            caption,
            ["#", "True class", "Predicted as", "% of true class"], "rllr",
            [[str(i + 1), t, p, pct(f)] for i, (t, p, f) in enumerate(pairs)],
        )
    rated = [r for r in results["spatial_vs_temporal"] if r["difference"] is not None]
    gains = [r for r in rated if r["difference"] > 0][:NUM_LISTED]
    losses = [r for r in reversed(rated) if r["difference"] < 0][:NUM_LISTED]
    gains_text = (counted(len(gains), "the class", "classes") + " where the 3D model gains most over the "
                  "single-frame model" if gains else "no class where the 3D model is better")
    losses_text = (counted(len(losses), "the class", "classes") + " where the single-frame model is better"
                   if losses else "no class where the single-frame model is better")
    tables["spatial_vs_temporal"] = (
        f"Appearance vs motion: {gains_text}; {losses_text} (accuracy %, difference = 3D minus single "
        f"frame). The full list is in results.json.",
        ["Class", "Single frame", "3D", "Difference", "Better"], "lrrrl",
        [[r["class"], pct(r["single_frame"]), pct(r["3d"]), pct(r["difference"], signed=True),
          "3D" if r["difference"] > 0 else "single frame"] for r in gains + losses],
    )
    return tables


def table_to_latex(caption, header, align, rows):
    """A ``tabular`` (no float) preceded by its caption as a LaTeX comment; every cell escaped."""
    def line(cells, escape):
        return " & ".join(latex_escape(c) if escape else c for c in cells) + r" \\"

    out = [f"% {caption}", r"\begin{tabular}{" + align + "}", r"\hline",
           line([r"\textbf{" + latex_escape(h) + "}" for h in header], escape=False), r"\hline"]
    out += [line(row, escape=True) for row in rows]
    out += [r"\hline", r"\end{tabular}", ""]
    return "\n".join(out)


def table_to_markdown(caption, header, align, rows):
    right = {"r": "---:", "l": ":---", "c": ":---:"}
    out = [f"*{caption}*", "", "| " + " | ".join(markdown_escape(h) for h in header) + " |",
           "| " + " | ".join(right[a] for a in align) + " |"]
    out += ["| " + " | ".join(markdown_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(out + [""])


def table_to_text(caption, header, align, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def line(cells):
        return "  ".join(c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(cells, widths, align))

    body = [line(r) for r in rows] or ["(none)"]
    return "\n".join([line(header), "-" * len(line(header))] + body)


def write_tables(tables, output_dir):
    """``tables.md`` and ``tables/<name>.tex``; returns the paths written."""
    tables_dir = os.path.join(output_dir, "tables")
    os.makedirs(tables_dir, exist_ok=True)
    titles = {"topk": "Top-k accuracy", "best_classes": "Best classes", "worst_classes": "Worst classes",
              "spatial_vs_temporal": "Appearance vs motion"}
    titles.update({f"most_confused_{m}": f"Most confused pairs: {MODEL_TITLES[m]}" for m in MODELS})
    markdown = ["# UCF-101 results", ""]
    written = []
    for name, table in tables.items():
        markdown += [f"## {titles[name]}", "", table_to_markdown(*table)]
        path = os.path.join(tables_dir, f"{name}.tex")
        with open(path, "w", encoding="utf-8") as f:
            f.write(table_to_latex(*table))
        written.append(path)
    path = os.path.join(output_dir, "tables.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(markdown))
    return [path] + written


# ---------------------------------------------------------------------------
# Figures (object-oriented matplotlib on the Agg canvas: no pyplot state, no display needed)
# ---------------------------------------------------------------------------
def new_figure(width, height):
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def confusion_figure(cm, class_list, title):
    """Heat map of the row-normalised confusion matrix, with class names on both axes."""
    num_classes = len(class_list)
    totals = cm.sum(axis=1, keepdims=True)
    normalised = np.divide(cm, totals, out=np.zeros(cm.shape, dtype=np.float64), where=totals > 0)
    size = max(6.0, 0.12 * num_classes + 2.5)
    fig = new_figure(size + 1.0, size)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="fraction of the true class")
    font = 8 if num_classes <= NAMED_TICKS_MAX_CLASSES else max(2.5, 300.0 / num_classes)
    ticks = np.arange(num_classes)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xticklabels(class_list, rotation=90, fontsize=font)
    ax.set_yticklabels(class_list, fontsize=font)
    ax.tick_params(length=1.5, width=0.3)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    note = "" if num_classes <= NAMED_TICKS_MAX_CLASSES else " (zoom into the PDF to read the class names)"
    ax.set_title(f"{title}: confusion matrix, rows normalised{note}", fontsize=10)
    fig.tight_layout()
    return fig


def per_class_figure(results, class_list):
    """Horizontal bars: per-class accuracy of the two models side by side, classInd order."""
    num_classes = len(class_list)
    fig = new_figure(8.0, max(4.0, 0.16 * num_classes + 1.5))
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(num_classes)
    height = 0.4
    for offset, model, color in ((-height / 2, "single_frame", "tab:orange"), (height / 2, "3d", "tab:blue")):
        acc = [results[model]["per_class_accuracy"][c] for c in class_list]
        ax.barh(y + offset, [100.0 * a if a is not None else 0.0 for a in acc], height=height,
                color=color, label=MODEL_TITLES[model])
    ax.set_yticks(y)
    ax.set_yticklabels(class_list, fontsize=8 if num_classes <= NAMED_TICKS_MAX_CLASSES else 5)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_ylim(num_classes - 0.5, -0.5)
    ax.set_xlabel("video accuracy (%)")
    ax.set_title("Per-class accuracy")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def difference_figure(results):
    """Bars of 3D minus single-frame accuracy per class, sorted (motion classes on top)."""
    rows = [r for r in results["spatial_vs_temporal"] if r["difference"] is not None]
    fig = new_figure(8.0, max(4.0, 0.16 * len(rows) + 1.5))
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(rows))
    diffs = [100.0 * r["difference"] for r in rows]
    ax.barh(y, diffs, color=["tab:blue" if d > 0 else "tab:orange" for d in diffs])
    ax.set_yticks(y)
    ax.set_yticklabels([r["class"] for r in rows], fontsize=8 if len(rows) <= NAMED_TICKS_MAX_CLASSES else 5)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("3D minus single-frame accuracy (percentage points)")
    ax.set_title("Appearance vs motion: where the 3D model helps (blue) or hurts (orange)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def topk_figure(results):
    fig = new_figure(7.0, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(TOPK))
    width = 0.8 / len(MODELS)
    for i, model in enumerate(MODELS):
        values = [100.0 * results[model][f"top{k}"] for k in TOPK]
        bars = ax.bar(x + (i - (len(MODELS) - 1) / 2) * width, values, width=width, label=MODEL_TITLES[model])
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(x)
    ax.set_xticklabels([f"top-{k}" for k in TOPK])
    ax.set_ylim(0, 105)
    ax.set_ylabel("video accuracy (%)")
    ax.set_title("Top-k accuracy")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def learning_curves_figure(logs):
    """Loss and accuracy against epoch for each model whose log was found (``{model: records}``)."""
    fig = new_figure(10.0, 4.0)
    ax_loss, ax_acc = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    colors = {"single_frame": "tab:orange", "3d": "tab:blue"}  # as in the per-class figure
    for model, records in logs.items():
        for key, ax, style in (("train_loss", ax_loss, "-"), ("train_acc", ax_acc, "--"), ("test_acc", ax_acc, "-")):
            points = [(r["epoch"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
            if points:
                epochs, values = zip(*points)
                ax.plot(epochs, values, style, color=colors[model], marker="o", markersize=3,
                        label=f"{MODEL_TITLES[model]} {key}")
    for ax, label in ((ax_loss, "training loss"), (ax_acc, "accuracy (as logged)")):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle("Learning curves")
    fig.tight_layout()
    return fig


def text_figure(title, text, caption=None):
    """A portrait page of monospaced text (tables in the PDF report)."""
    fig = new_figure(8.27, 11.69)
    fig.text(0.06, 0.95, title, fontsize=15, weight="bold", va="top")
    fig.text(0.06, 0.90, text, family="monospace", fontsize=7.5, va="top")
    if caption:
        fig.text(0.06, 0.04, caption, fontsize=8, style="italic", va="bottom", wrap=True)
    return fig


def save_figure(fig, figures_dir, name):
    paths = []
    for ext in FIGURE_FORMATS:
        path = os.path.join(figures_dir, f"{name}.{ext}")
        fig.savefig(path, dpi=200 if ext == "png" else None)
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------
# The PDF report
# ---------------------------------------------------------------------------
FIGURE_CAPTIONS = {
    "topk": "Top-k video accuracy of the three models.",
    "per_class_accuracy": "Per-class video accuracy of the single-frame and 3D models (classInd order).",
    "accuracy_difference": "3D minus single-frame accuracy per class: classes on top need motion; "
                           "classes at the bottom are recognised from appearance alone.",
    "learning_curves": "Training loss and accuracy per epoch, from each model's log.jsonl.",
}
FIGURE_CAPTIONS.update({f"confusion_{m}": f"{MODEL_TITLES[m]}: confusion matrix (rows = true class, normalised "
                                          f"to fractions of the class's test videos)." for m in MODELS})


def write_report_pdf(path, results, tables, figures, inputs):
    """Multi-page PDF: title page with the top-k table, the other tables, then every figure."""
    with PdfPages(path) as pdf:
        fusion = results["fusion"]
        lines = [
            f"Test videos: {results['videos']} (split {results['split']}), classes: {results['classes']}",
            f"Fusion: {fusion['rule']}, weights single frame {fusion['weights'][0]:g}, 3D {fusion['weights'][1]:g}",
            f"Single-frame predictions: {inputs['single_frame']}",
            f"3D predictions: {inputs['3d']}",
            f"Generated: {results['generated']}",
            "",
            "Video accuracy (%)",
            table_to_text(*tables["topk"]),
        ]
        pdf.savefig(text_figure("UCF-101 action recognition: results", "\n".join(lines), tables["topk"][0]))
        for name in ("best_classes", "worst_classes"):
            title = "Best classes" if name == "best_classes" else "Worst classes"
            pdf.savefig(text_figure(title, table_to_text(*tables[name]), tables[name][0]))
        confused = "\n\n".join(f"{MODEL_TITLES[m]}\n" + table_to_text(*tables[f"most_confused_{m}"]) for m in MODELS)
        pdf.savefig(text_figure("Most confused pairs", confused,
                                "Percentage of the true class's test videos predicted as the other class."))
        pdf.savefig(text_figure("Appearance vs motion", table_to_text(*tables["spatial_vs_temporal"]),
                                tables["spatial_vs_temporal"][0]))
        rows = [[r["class"], pct(r["single_frame"]), pct(r["3d"]), pct(r["combined"]),
                 pct(r["difference"], signed=True)] for r in results["spatial_vs_temporal"]]
        for start in range(0, len(rows), ROWS_PER_PAGE):
            table = ("", ["Class", "Single frame", "3D", "Combined", "3D - single"], "lrrrr",
                     rows[start:start + ROWS_PER_PAGE])
            pdf.savefig(text_figure(
                f"Per-class accuracy (%), classes {start + 1}-{min(start + ROWS_PER_PAGE, len(rows))} of {len(rows)}",
                table_to_text(*table), "All classes, sorted by 3D minus single-frame accuracy (motion classes first)."))
        for name, fig in figures.items():
            fig.text(0.01, 0.005, FIGURE_CAPTIONS[name], fontsize=7, style="italic", va="bottom")
            pdf.savefig(fig)
        info = pdf.infodict()
        info["Title"] = "UCF-101 action recognition: results"


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------
def combine(class_list, test_paths, test_labels, predictions_dirs, rule="logmean", weights=(0.5, 0.5)):
    """Scores, summaries and confusion matrices of the three models.

    ``predictions_dirs`` maps ``"single_frame"`` and ``"3d"`` to prediction folders (already checked).
    Returns ``(scores, summaries, cms)``, each a dict keyed by model (``MODELS``).
    """
    scores = {m: metrics.load_video_scores(predictions_dirs[m], test_paths) for m in ("single_frame", "3d")}
    scores["combined"] = fuse_scores(scores["single_frame"], scores["3d"], rule, weights)
    summaries, cms = {}, {}
    for m in MODELS:
        summaries[m], cms[m] = metrics.summarize(scores[m], test_labels, class_list, num_listed=NUM_LISTED)
    return scores, summaries, cms


def main(args):
    print("arguments: " + " ".join(f"{k}={v}" for k, v in sorted(vars(args).items())), flush=True)
    weights = parse_weights(args.weights)
    if args.fusion not in FUSION_RULES:
        fail(f"--fusion must be one of {', '.join(FUSION_RULES)}, not {args.fusion!r}")
    predictions_dirs = {"single_frame": args.single_frame, "3d": args.three_d}
    flags = {"single_frame": "--single-frame", "3d": "--3d"}
    for model, directory in predictions_dirs.items():
        if not os.path.isdir(directory):
            fail(f"{flags[model]} {directory}: no such directory (the prediction folder written by the test script)")

    log_paths = {m: find_log(d) for m, d in predictions_dirs.items()}
    if args.logs is not None:
        given = args.logs.split(",")
        if len(given) != 2:
            fail(f"--logs must be SF_LOG,3D_LOG (either may be empty), got {args.logs!r}")
        for model, path in zip(("single_frame", "3d"), given):
            if path:
                if not os.path.isfile(path):
                    fail(f"--logs: {path} not found")
                log_paths[model] = path

    try:
        class_list, _, (test_paths, test_labels) = getUCF101(args.data_dir, split=args.split)
    except (FileNotFoundError, ValueError) as e:
        fail(str(e))
    class_list = [str(c) for c in class_list]
    num_classes = len(class_list)
    if len(test_paths) == 0:
        fail(f"testlist0{args.split}.txt under {args.data_dir} lists no videos")

    problems = [check_predictions(predictions_dirs[m], flags[m], test_paths, num_classes, args.split)
                for m in ("single_frame", "3d")]
    problems = [p for p in problems if p]
    if problems:
        fail(" | ".join(problems) + " (the test scripts resume: rerun them to finish; or check --data-dir and --split)")

    _, summaries, cms = combine(class_list, test_paths, test_labels, predictions_dirs, args.fusion, weights)
    results = {
        "split": args.split,
        "videos": len(test_paths),
        "classes": num_classes,
        "class_list": class_list,
        "fusion": {"rule": args.fusion, "weights": list(weights),
                   "description": FUSION_RULES[args.fusion]},
        "generated": datetime.datetime.now().isoformat(timespec="seconds"),
        "inputs": {"data_dir": args.data_dir, **predictions_dirs, "logs": log_paths},
        **summaries,
    }
    results["spatial_vs_temporal"] = spatial_vs_temporal(summaries, class_list)

    output_dir = args.output_dir
    figures_dir = os.path.join(output_dir, "figures")
    os.makedirs(figures_dir, exist_ok=True)
    metrics.write_json(os.path.join(output_dir, "results.json"), results)
    for m in MODELS:
        np.save(os.path.join(output_dir, f"confusion_{m}.npy"), cms[m])

    tables = build_tables(results, class_list)
    write_tables(tables, output_dir)

    figures = {"topk": topk_figure(results)}
    figures.update({f"confusion_{m}": confusion_figure(cms[m], class_list, MODEL_TITLES[m]) for m in MODELS})
    figures["per_class_accuracy"] = per_class_figure(results, class_list)
    figures["accuracy_difference"] = difference_figure(results)
    logs = {m: read_log(p) for m, p in log_paths.items() if p}
    logs = {m: records for m, records in logs.items() if records}
    if logs:
        figures["learning_curves"] = learning_curves_figure(logs)
    for name, fig in figures.items():
        save_figure(fig, figures_dir, name)

    report_path = os.path.join(output_dir, "report.pdf")
    write_report_pdf(report_path, results, tables, figures, predictions_dirs)

    print()
    print(metrics.format_topk_table({MODEL_TITLES[m]: summaries[m] for m in MODELS}, ks=TOPK))
    print(f"\nResults: {os.path.join(output_dir, 'results.json')}")
    print(f"Report:  {report_path}")
    return results


def get_args_parser(add_help=True):
    parser = argparse.ArgumentParser(
        description="Fuse the single-frame and 3D models' per-video predictions and write the report "
                    "(results.json, tables, figures, report.pdf).", add_help=add_help)
    parser.add_argument("--data-dir", required=True,
                        help="dataset root holding ucfTrainTestlist/ and UCF-101-hdf5/ (required)")
    parser.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="official split (default: 1)")
    parser.add_argument("--single-frame", required=True,
                        help="prediction folder written by test_single_frame.py (required)")
    parser.add_argument("--3d", dest="three_d", required=True,
                        help="prediction folder written by test_3d.py (required)")
    parser.add_argument("--output-dir", default="report/", help="where to write the results (default: report/)")
    parser.add_argument("--fusion", default="logmean", choices=tuple(FUSION_RULES),
                        help="fusion rule: logmean = weighted sum of the mean log-softmax scores, prob = weighted "
                             "mean of the softmax distributions, max = element-wise max of the weighted "
                             "distributions (default: logmean)")
    parser.add_argument("--weights", default="0.5,0.5",
                        help="fusion weights W2D,W3D of the single-frame and 3D models (default: 0.5,0.5)")
    parser.add_argument("--logs", default=None,
                        help="training logs SF_LOG,3D_LOG for the learning curves, either may be empty "
                             "(default: <predictions dir>/../log.jsonl when present)")
    return parser


if __name__ == "__main__":
    main(get_args_parser().parse_args())
