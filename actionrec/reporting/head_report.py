"""The report of models with label heads (a verb and a noun: engine/label_heads.py), side by side: per
head and for actions top-1/top-5, mean class precision and recall, the classes absent from the tested
subset and those training never had, latency and FPS; row-normalised confusion matrices, the class
histograms of train / validation / test, and each model's training and validation loss.

Input: the test folders the test scripts write for such a model (results.json, confusion_matrix_<head>.npy,
the results' model.json record with its timing and training log), named, e.g. the frozen baseline beside
the fine-tuned model. Output: heads.md, heads.json, figures/heads_*.{png,pdf} and heads_report.pdf
(``head_report_pdf``) in the report folder.
"""
import json
import os
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from actionrec import atomic
from actionrec.evaluation import head_fusion, jsonfile
from actionrec.guards import UserError
from actionrec.reporting import figure_set, figures, head_report_pdf
from actionrec.reporting import tables as report_tables

ACTION = "action"


def read_head_results(named_dirs: Sequence[Tuple[str, str]]) -> Dict[str, Dict[str, Any]]:
    """{name: {"results": results.json, "cms": {head: counts}, "log": [log entries]}} of each test folder."""
    models = {}
    for name, folder in named_dirs:
        path = os.path.join(folder, "results.json")
        try:
            with open(path, encoding="utf-8") as f:
                results = json.load(f)
        except (OSError, ValueError) as e:
            raise UserError(f"--heads {name}={folder}: cannot read {path} ({getattr(e, 'strerror', None) or e}); "
                            f"give the --output-dir of test_single_frame.py or test_3d.py") from None
        if "heads" not in results:
            raise UserError(f"--heads {name}={folder}: {path} is not the test of a model with label heads "
                            f"(trained with --annotations)")
        parts = list(results["heads"]) + ([ACTION] if ACTION in results else [])
        cms = {part: np.load(os.path.join(folder, f"confusion_matrix_{part}.npy")) for part in parts}
        log_path = (results.get("model") or {}).get("log")
        log = []
        if log_path and os.path.isfile(log_path):
            with open(log_path, encoding="utf-8") as f:
                log = [json.loads(line) for line in f if line.strip()]
        models[name] = {"results": results, "cms": cms, "log": log}
    return models


def _pct(value):
    return "–" if value is None else f"{100 * value:.2f}"


PART_HEADER = ["model", "head", "top-1 %", "top-5 %", "mean class precision %", "mean class recall %", "videos"]
SPEED_HEADER = ["model", "data loading s/video", "model s/video", "latency s/video", "FPS (frames / total latency)",
                "device"]


def table_rows(models: Dict[str, Dict[str, Any]]) -> List[List[str]]:
    """[model, head, top-1, top-5, mean class precision, mean class recall, videos] per model and part."""
    rows = []
    for name, model in models.items():
        results = model["results"]
        parts = {**results["heads"], **({ACTION: results[ACTION]} if ACTION in results else {})}
        for part, summary in parts.items():
            rows.append([name, part, _pct(summary["top1"]), _pct(summary["top5"]), _pct(summary["macro_precision"]),
                         _pct(summary["macro_recall"]), str(results["videos"])])
    return rows


def speed_rows(models: Dict[str, Dict[str, Any]]) -> List[List[str]]:
    """[model, load s/video, model s/video, latency s/video (the two), FPS end to end, device] of the models whose
    test timed them."""
    rows = []
    for name, model in models.items():
        timing = (model["results"].get("model") or {}).get("timing")
        if timing:
            load, run = timing["load_seconds_per_video"], timing["model_seconds_per_video"]
            rows.append([name, f"{load:.3f}", f"{run:.3f}", f"{load + run:.3f}", f"{timing['fps_end_to_end']:.1f}",
                         str(timing["device"])])
    return rows


def head_tables(models: Dict[str, Dict[str, Any]]) -> Dict[str, report_tables.Table]:
    """{"parts": per model, head and action: top-k and mean class precision and recall; "speed": latency and
    FPS per model (absent when no test was timed)}: the tables of heads.md and heads_report.pdf."""
    subsets = sorted({m["results"]["subset"] for m in models.values()})
    out = {"parts": report_tables.Table(
        f"Verb, noun and action results (%) on the {' / '.join(subsets)} segments.", PART_HEADER, "llrrrrr",
        table_rows(models), "An action is right when its verb and its noun are (its score: the product of the two "
        "heads' probabilities). Mean class precision and recall are over the classes the tested subset has; a "
        "class never predicted has precision 0.")}
    speed = speed_rows(models)
    if speed:
        out["speed"] = report_tables.Table("Latency per video and frames per second of each model's test.",
                                           SPEED_HEADER, "lrrrrl", speed,
                                           "Latency: data loading plus the model, per video; FPS: the frames "
                                           "tested over that total.")
    return out


def notes(models: Dict[str, Dict[str, Any]]) -> List[str]:
    """Lines naming the classes a tested subset lacks and those it has that training never had."""
    lines = []
    for name, model in models.items():
        results = model["results"]
        for head, summary in results["heads"].items():
            if summary.get("absent"):
                lines.append(f"{name}, {head}: not in the {results['subset']} subset: {', '.join(summary['absent'])}")
            if summary.get("unseen_in_training"):
                lines.append(f"{name}, {head}: in {results['subset']} but never in training: "
                             f"{', '.join(summary['unseen_in_training'])}")
    return lines


def _markdown_rows(table: report_tables.Table) -> List[str]:
    return ["| " + " | ".join(table.header) + " |", "|" + "---|" * len(table.header)] + [
        "| " + " | ".join(row) + " |" for row in table.rows]


def markdown(models: Dict[str, Dict[str, Any]], tables: Dict[str, report_tables.Table]) -> str:
    lines = ["# Verb, noun and action results", "", tables["parts"].note, ""] + _markdown_rows(tables["parts"])
    if "speed" in tables:
        lines += [""] + _markdown_rows(tables["speed"])
    found = notes(models)
    if found:
        lines += [""] + [f"- {line}" for line in found]
    return "\n".join(lines) + "\n"


def _class_names(summary: Dict[str, Any]) -> List[str]:
    return list(summary["per_class"])


def _title(ax, text: str, size: float = 7.0) -> None:
    """The axes' title, its font shrunk (to 4 points at least) until it fits the axes' width."""
    width = ax.get_position().width * ax.figure.get_size_inches()[0]
    ax.set_title(text, fontsize=max(4.0, min(size, size * width / max(figures.text_width(text, size), 1e-6))))


def draw_confusions(fig, rect, models: Dict[str, Dict[str, Any]]) -> None:
    """One row per model, one row-normalised confusion matrix per head (rows = true class)."""
    heads = list(next(iter(models.values()))["results"]["heads"])
    rects = figures.grid_rects(fig, rect, len(models), len(heads))
    for r, (name, model) in enumerate(models.items()):
        for c, head in enumerate(heads):
            cm = model["cms"][head].astype(np.float64)
            fractions = cm / np.maximum(cm.sum(1, keepdims=True), 1)
            ax = figures.region_axes(fig, rects[r * len(heads) + c], left=0.9, bottom=0.8, top=0.25, right=0.1)
            ax.imshow(fractions, vmin=0, vmax=1, cmap="Blues")
            names = _class_names(model["results"]["heads"][head])
            ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=6)
            ax.set_yticks(range(len(names)), names, fontsize=6)
            for (i, j), value in np.ndenumerate(fractions):
                if cm[i].sum():
                    ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=5,
                            color="white" if value > 0.5 else "black")
            _title(ax, f"{name}: {head} (rows: true)")


def draw_histograms(fig, rect, models: Dict[str, Dict[str, Any]]) -> None:
    """Class counts of each subset (train / val / test) per head, from the first model's results."""
    heads = next(iter(models.values()))["results"]["heads"]
    rects = figures.grid_rects(fig, rect, 1, len(heads))
    for cell, (head, summary) in zip(rects, heads.items()):
        counts = summary.get("class_counts", {})
        names = _class_names(summary)
        ax = figures.region_axes(fig, cell, left=0.4, bottom=0.8, top=0.25, right=0.1)
        width = 0.8 / max(len(counts), 1)
        for k, (subset, per_class) in enumerate(counts.items()):
            ax.bar(np.arange(len(names)) + (k - (len(counts) - 1) / 2) * width, [per_class[n] for n in names],
                   width, label=subset)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=6)
        ax.tick_params(labelsize=6)
        ax.set_title(f"{head}: segments per class", fontsize=7)
        if counts:
            ax.legend(fontsize=6)


def draw_losses(fig, rect, models: Dict[str, Dict[str, Any]]) -> None:
    """Training and validation loss per epoch of each trained model (its log.jsonl; a fusion has none)."""
    trained = {name: model for name, model in models.items() if "fusion" not in model["results"]}
    rects = figures.grid_rects(fig, rect, 1, len(trained))
    for cell, (name, model) in zip(rects, trained.items()):
        ax = figures.region_axes(fig, cell, left=0.4, bottom=0.35, top=0.25, right=0.1)
        for key in ("train_loss", "val_loss", "test_loss"):
            points = [(e["epoch"], e[key]) for e in model["log"] if key in e]
            if points:
                ax.plot(*zip(*points), marker=".", label=key.replace("_", " "))
        _title(ax, name)
        ax.tick_params(labelsize=6)
        if model["log"]:
            ax.legend(fontsize=6)
        else:
            ax.text(0.5, 0.5, "no training log", ha="center", va="center", fontsize=6, transform=ax.transAxes)


def figure_specs(models: Dict[str, Dict[str, Any]]) -> Dict[str, figures.FigureSpec]:
    """The figures of the files and the PDF: {name: (height in inches, draw(fig, rect), caption)}."""
    return {
        "heads_confusion": (2.4 * len(models), lambda fig, rect: draw_confusions(fig, rect, models),
                            "Row-normalised confusion matrices of each model (rows) and head (columns): the "
                            "fraction of a true class's segments given each class."),
        "heads_class_histograms": (2.2, lambda fig, rect: draw_histograms(fig, rect, models),
                                   "Segments per class of each head in the training, validation and test subsets."),
        "heads_loss": (2.0, lambda fig, rect: draw_losses(fig, rect, models),
                       "Training and validation loss (the sum of the heads' cross-entropies) per epoch."),
    }


def add_fusions(models: Dict[str, Dict[str, Any]], fusions: Sequence[Tuple[str, List[str], Any]],
                val_dirs: Dict[str, str]) -> None:
    """Each fusion ((name, members, weights or head_fusion.AUTO)) as a model of its own; AUTO weights are
    chosen per head on the members' validation tests (val_dirs: {member: its test folder on --subset val})."""
    for name, members, weights in fusions:
        if weights == head_fusion.AUTO:
            missing = [m for m in members if m not in val_dirs]
            if missing:
                raise UserError(f"--heads-fuse {name}=...:auto chooses its weights on validation: give the "
                                f"validation test of {', '.join(missing)} with --heads-val NAME=TEST_DIR "
                                f"(test_single_frame.py ... --subset val)")
            val = read_head_results([(m, val_dirs[m]) for m in members])
            subsets = {m: val[m]["results"]["subset"] for m in members}
            tested = {models[m]["results"]["subset"] for m in members}
            if set(subsets.values()) & tested:
                raise UserError(f"--heads-fuse {name}: the --heads-val tests are of the subset the fusion is "
                                f"tested on ({', '.join(sorted(tested))}): weights chosen there would be fitted "
                                f"to the test")
            weights = head_fusion.choose_head_weights(list(val.items()))
        models[name] = head_fusion.fuse_head_models(name, [(m, models[m]) for m in members], weights)


def write_head_report(named_dirs: Sequence[Tuple[str, str]], output_dir: str,
                      fusions: Sequence[Tuple[str, List[str], Any]] = (),
                      val_dirs: Dict[str, str] | None = None) -> Dict[str, Any]:
    """heads.md, heads.json, figures/heads_{confusion,class_histograms,loss}.{png,pdf} and heads_report.pdf in
    output_dir, with a row per fusion ((name, members, weights): head_fusion; ``add_fusions``) after the
    tested models; returns heads.json's content."""
    models = read_head_results(named_dirs)
    add_fusions(models, fusions, val_dirs or {})
    tables = head_tables(models)
    text = markdown(models, tables)

    def write_text(tmp_path):
        with open(tmp_path, "w", encoding="utf-8") as f:
            f.write(text)
    os.makedirs(output_dir, exist_ok=True)
    atomic.atomic_write(os.path.join(output_dir, "heads.md"), write_text)
    keys = ("heads", ACTION, "videos", "subset", "annotations", "checkpoint", "model", "fusion")
    summary = {name: {k: m["results"][k] for k in keys if k in m["results"]} for name, m in models.items()}
    jsonfile.write_json(os.path.join(output_dir, "heads.json"), summary)
    specs = figure_specs(models)
    written = figure_set.write_figures(os.path.join(output_dir, "figures"), specs)
    pdf_path = os.path.join(output_dir, head_report_pdf.PDF_NAME)
    pages = head_report_pdf.write_heads_pdf(pdf_path, models, tables, specs)["pages"]
    print(text)
    print(f"wrote {os.path.join(output_dir, 'heads.md')}, heads.json and {len(written)} figure files")
    print(f"Report:  {pdf_path} ({pages} pages)")
    return summary
