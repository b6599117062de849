"""``--summarize``: the mean and standard deviation over the splits of each model and fusion, read from
the splits' results.json, written as summary.json, .md, .tex, .pdf and a figure."""
import datetime
import json
import os
from typing import Any, Dict, Sequence, Tuple

import numpy as np
from matplotlib.figure import Figure

from actionrec import formatting, guards
from actionrec.evaluation import jsonfile, published
from actionrec.reporting import figure_set, figures, pdf_layout, table_files
from actionrec.reporting import tables as report_tables

SUMMARY_KEYS = ("top1", "top5", "top10", "mean_class_accuracy")
SUMMARY_LABELS = {"top1": "Top-1", "top5": "Top-5", "top10": "Top-10", "mean_class_accuracy": "Mean class acc."}


def read_split_results(directory: str) -> Tuple[int, Dict[str, Tuple[str, Dict[str, Any]]]]:
    """(split, {name: (title, {key: value})}) from a report folder's results.json (or the file itself);
    results.json files of the older two-model layout (single_frame/3d/combined) are read too."""
    path = directory if os.path.isfile(directory) else os.path.join(directory, "results.json")
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise guards.UserError(
            f"--summarize {directory}: no results.json (the --output-dir of a combine_results.py run)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise guards.UserError(f"--summarize {directory}: cannot read {path} ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("split"), int):
        raise guards.UserError(f"--summarize {directory}: {path} is not a combine_results.py results.json (no split)")
    entries = {}
    if isinstance(data.get("evaluation"), dict):
        for name in data.get("order") or list(data["evaluation"]):
            ev = data["evaluation"].get(name)
            info = (data.get("models") or {}).get(name) or (data.get("fusions") or {}).get(name) or {}
            if isinstance(ev, dict):
                entries[name] = (info.get("title", name), {k: ev.get(k) for k in SUMMARY_KEYS})
    else:
        legacy = {"single_frame": "Single frame (ResNet-50)", "3d": "3D ResNet-50", "combined": "Combined"}
        for name, title in legacy.items():
            if isinstance(data.get(name), dict):
                entries[name] = (title, {k: data[name].get(k) for k in SUMMARY_KEYS})
    if not entries:
        raise guards.UserError(f"--summarize {directory}: {path} holds no model results")
    return data["split"], entries


def dataset_of_folders(directories: Sequence[str]) -> str:
    """The dataset the report folders were made on ('ucf101' for folders of older versions); refuses a mix."""
    found = {}
    for directory in directories:
        path = directory if os.path.isfile(directory) else os.path.join(directory, "results.json")
        with open(path, encoding="utf-8") as f:  # read_split_results has checked it reads
            found[directory] = json.load(f).get("dataset_name") or "ucf101"
    if len(set(found.values())) > 1:
        raise guards.UserError("--summarize: the report folders are of different datasets ("
                               + ", ".join(f"{d}: {n}" for d, n in found.items()) + ")")
    return next(iter(found.values()), "ucf101")


def summary_title(summary: Dict[str, Any]) -> str:
    return published.DATASET_TITLES.get(summary.get("dataset_name") or "ucf101", "UCF-101")


def summarize_splits(directories: Sequence[str]) -> Dict[str, Any]:
    """Mean ± std (n - 1 denominator) over the splits of each model and fusion; an entry missing from a
    split, or missing a number there, gets per-split values only and no mean."""
    splits = {}
    for directory in directories:
        split, entries = read_split_results(directory)
        if split in splits:
            raise guards.UserError(f"--summarize: split {split} is given twice ({splits[split][0]} and {directory})")
        splits[split] = (directory, entries)
    order = sorted(splits)
    dataset = dataset_of_folders(directories)
    names = []
    for split in order:
        names += [n for n in splits[split][1] if n not in names]
    summary = {"splits": order, "inputs": {str(s): splits[s][0] for s in order}, "entries": {}, "dataset_name": dataset,
               "std": "sample standard deviation over the splits (n - 1 denominator)"}
    for name in names:
        present = [s for s in order if name in splits[s][1]]
        title = splits[present[0]][1][name][0]
        entry = {"title": title, "splits": present, "missing_from": [s for s in order if s not in present],
                 "per_split": {str(s): splits[s][1][name][1] for s in present}}
        for key in SUMMARY_KEYS:
            values = [splits[s][1][name][1].get(key) for s in present]
            complete = not entry["missing_from"] and all(isinstance(v, (int, float)) for v in values)
            entry[key] = ({"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1
                           else 0.0} if complete else None)
        summary["entries"][name] = entry
    return summary


def summary_table(summary: Dict[str, Any]) -> report_tables.Table:
    order = summary["splits"]
    rows = []
    for name, e in summary["entries"].items():
        row = [name, e["title"]]
        for key in SUMMARY_KEYS:
            row.append(f"{100 * e[key]['mean']:.2f} ± {100 * e[key]['std']:.2f}" if e[key] else "n/a")
        for s in order:
            value = e["per_split"].get(str(s), {}).get("top1")
            row.append(formatting.pct(value) if value is not None else "missing")
        row.append(f"missing from split {', '.join(map(str, e['missing_from']))}" if e["missing_from"] else "")
        rows.append(row)
    incomplete = [n for n, e in summary["entries"].items() if e["missing_from"]]
    note = f"Mean ± sample standard deviation (n - 1) over splits {', '.join(map(str, order))}, in %. " + (
        f"Not averaged (missing from a split, never averaged over fewer splits): {formatting.names_text(incomplete)}."
        if incomplete
        else "Every model and fusion is in every split."
    )
    return report_tables.Table(f"{summary_title(summary)}, mean over {len(order)} splits (video-level accuracy, %).",
                 ["Name", "Model", "Top-1", "Top-5", "Top-10", "Mean class acc."] + [f"Top-1 split {s}" for s in order]
                 + ["Note"], "llrrrr" + "r" * len(order) + "l", rows, note)


def draw_summary(fig: Figure, rect: Sequence[float], summary: Dict[str, Any]) -> None:
    names = list(summary["entries"])
    label_h = max(figures.text_width(n, 6.5) for n in names) * 0.75 + 0.2
    ax = figures.region_axes(fig, rect, left=0.55, bottom=label_h + 0.1, right=0.1, top=0.25)
    x = np.arange(len(names))
    markers = ("o", "s", "^", "D")
    for i, name in enumerate(names):
        e = summary["entries"][name]
        for j, s in enumerate(summary["splits"]):
            value = e["per_split"].get(str(s), {}).get("top1")
            if value is not None:
                ax.scatter(
                    [i + 0.18],
                    [100 * value],
                    marker=markers[j % 4],
                    s=10,
                    color="#555555",
                    label=f"split {s}" if i == 0 or not ax.get_legend_handles_labels()[1].count(f"split {s}") else None,
                )
        if e["top1"]:
            ax.bar([i], [100 * e["top1"]["mean"]], yerr=[100 * e["top1"]["std"]], width=0.5, color="#4f81bd",
                   capsize=2, error_kw={"linewidth": 0.8})
            ax.text(i, 100 * e["top1"]["mean"] + 100 * e["top1"]["std"] + 1.0, f"{100 * e['top1']['mean']:.1f}",
                    ha="center", fontsize=6)
        else:
            ax.text(i, 2, "not in\nevery split", ha="center", fontsize=5.5, color="#aa0000")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=40, ha="right", fontsize=6.5)
    ax.set_ylim(0, 108)
    ax.set_ylabel("top-1 (%), mean ± std over splits", fontsize=7)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=6, loc="upper center", ncols=len(unique),
              bbox_to_anchor=(0.5, 1.12), frameon=False)
    figures.style_axes(ax)


def write_summary(summary: Dict[str, Any], output_dir: str) -> None:
    os.makedirs(os.path.join(output_dir, "figures"), exist_ok=True)
    table = summary_table(summary)
    jsonfile.write_json(os.path.join(output_dir, "summary.json"), summary)
    with open(os.path.join(output_dir, "summary.md"), "w", encoding="utf-8") as f:
        f.write(
            f"# {summary_title(summary)}: mean over splits {', '.join(map(str, summary['splits']))}\n\n"
            + table_files.table_to_markdown(table)
        )
    with open(os.path.join(output_dir, "summary.tex"), "w", encoding="utf-8") as f:
        f.write(table_files.table_to_latex(table))
    height = 3.2
    figure_set.write_figures(
        os.path.join(output_dir, "figures"),
        {"summary": (height, lambda fig, rect: draw_summary(fig, rect, summary), "")},
    )
    write_summary_pdf(os.path.join(output_dir, "summary.pdf"), summary, table, height)
    width = max(len(n) for n in summary["entries"])
    for name, e in summary["entries"].items():
        shown = (f"top-1 {100 * e['top1']['mean']:.2f} ± {100 * e['top1']['std']:.2f} %" if e["top1"] else
                 "no mean: missing from split " + ", ".join(map(str, e["missing_from"])) if e["missing_from"] else
                 "no mean: top-1 not recorded in every split")
        print(f"{name:<{width}}  {shown}")
    print(f"\nSummary: {os.path.join(output_dir, 'summary.md')}")


def write_summary_pdf(path: str, summary: Dict[str, Any], table: report_tables.Table, height: float) -> int:
    """summary.pdf: the inputs, the table and the figure; returns the number of pages."""
    splits = ", ".join(map(str, summary["splits"]))
    doc = pdf_layout.ReportDocument(path, f"combine_results.py --summarize, "
                                          f"{datetime.datetime.now().isoformat(timespec='seconds')}",
                                    f"{summary_title(summary)}: mean over splits {splits}")
    story = pdf_layout.heading(f"{summary_title(summary)}: mean over splits {splits}", 0, keep=0.5)
    story += [pdf_layout.paragraph(f"Split {s}: {directory}", pdf_layout.BODY_PT - 0.5, bullet="•")
              for s, directory in summary["inputs"].items()]
    story += [pdf_layout.spacer(0.1)] + pdf_layout.table(doc, table)
    story += pdf_layout.figure(doc, height, lambda fig, rect: draw_summary(fig, rect, summary),
                               "Top-1 per model and fusion: bars are the mean over the splits with the standard "
                               "deviation, points the single splits.")
    return doc.render(story)
