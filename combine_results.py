"""Evaluate and fuse any number of models' per-video predictions; write the report.

Reads the prediction folders written by the test scripts (one HDF5 file per video, ``predictions``
float32 [rows, classes] of logits, and ``model.json`` beside them when the test script is new enough),
scores each video with ``metrics.video_score`` (mean log-softmax over rows), fuses models
(``--fuse``; weights given, equal, or chosen on validation predictions with ``--weights auto``: each
model calibrated by temperature scaling on its validation predictions, the weights chosen by the
validation NLL of the fused distribution, a bootstrap over the validation videos as evidence) and
writes into ``--output-dir``:

    results.json                 every model and fusion: top-1/5/10, mean class accuracy, macro
                                 precision/recall/F1, per-class precision/recall/F1/support, best/worst
                                 classes, most confused pairs; models (test mode, timing), fusions (rule,
                                 weights, temperatures, how they were chosen, validation NLL and top-1,
                                 the bootstrap, gain over the best member), appearance vs motion, dataset
                                 statistics, the summary's sentences, the report's pages
    confusion_<name>.npy         int64 [C, C] counts (rows = true class) of each model and fusion
    tables.md, tables/*.tex      the tables in Markdown and LaTeX (report/report.tex inputs them)
    figures/*.png, figures/*.pdf the figures
    report.pdf                   all of it, typeset with matplotlib (no LaTeX needed)

``--summarize DIR1 DIR2 DIR3`` instead reads three splits' report folders and writes the mean and
standard deviation over the splits (summary.md, summary.tex, summary.json, summary.pdf, figures/).

Example (five models, fusion weights chosen on the validation groups 8-10):
    python combine_results.py --data-dir data --split 1 \\
        --model single_frame=runs/split1/single_frame/predictions --model tsn=runs/split1/tsn/predictions \\
        --model 3d=runs/split1/3d/predictions --model c3d=runs/split1/c3d/predictions \\
        --model rnn=runs/split1/rnn/predictions \\
        --val single_frame=runs/split1/single_frame/val_predictions --val 3d=runs/split1/3d/val_predictions \\
        --fuse single_frame,3d --fuse all --weights auto --output-dir runs/split1/report
"""
import argparse
import datetime
import json
import math
import os
import re
import shutil
import sys

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

import metrics
from actionrec import guards
from actionrec.data import datasets, video_groups

TOPK = (1, 5, 10)
NUM_LISTED = 10  # best/worst classes and confused pairs, as the assignment asks
NUM_MISSING_SHOWN = 3  # files named in a refusal message
NUM_CONFUSED_CLASSES = 20  # classes of the confusion sub-matrix with counts
FEW_CLASSES = 30  # up to this many classes every confusion matrix is drawn with counts in its cells
NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
ALL = "all"
FIGURE_FORMATS = ("png", "pdf")
PNG_DPI = 150
MAIN_PAGES_MAX_101 = 12  # pages before the appendix for a 101-class run (checked by the tests)

# Display title, kind and temporal flag of models without model.json, by name (or name prefix).
KNOWN_MODELS = {
    "single_frame": ("Single frame (ResNet-50)", "frame", False),
    "tsn": ("TSN (ResNet-50)", "frame", False),
    "3d": ("3D ResNet-50", "clip", True),
    "c3d": ("C3D", "clip", True),
    "rnn": ("RNN over frame features", "features", True),
    "gru": ("GRU over frame features", "features", True),
    "lstm": ("LSTM over frame features", "features", True),
}
# --weights auto: temperature-scaled members, weights by validation NLL; auto-top1: the rule before issue 25
# (top-1 on the raw scores), kept to reproduce older reports.
AUTO_CRITERIA = {"auto": "nll", "auto-top1": "top1"}
NOT_SUPPORTED = "Validation does not support"  # the report's sentence when the fusion should not be used
KIND_TEMPORAL = {"frame": False, "clip": True, "features": True}


def fail(message):
    """A user error: one line on stderr, exit status 2, no traceback."""
    print(f"combine_results.py: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def warn(message):
    print(f"combine_results.py: warning: {message}", file=sys.stderr)


# ---------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------
def pct(value, signed=False):
    """A fraction as a percentage string with two decimals; None as n/a."""
    if value is None:
        return "n/a"
    return f"{100.0 * value:+.2f}" if signed else f"{100.0 * value:.2f}"


def points(value):
    """A difference of fractions in percentage points: '+0.53 points'."""
    return f"{100.0 * value:+.2f} points"


def counted(n, one, many):
    """'the class' for n == 1, else 'the 7 classes'."""
    return one if n == 1 else f"the {n} {many}"


def names_text(names, limit=8):
    """'A, B and C' (at most ``limit`` names, then 'and N more')."""
    names = list(names)
    if len(names) > limit:
        return ", ".join(names[:limit]) + f" and {len(names) - limit} more"
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def groups_text(groups):
    """(8, 9, 10, 12) -> '8-10,12'."""
    out, groups = [], sorted(groups)
    i = 0
    while i < len(groups):
        j = i
        while j + 1 < len(groups) and groups[j + 1] == groups[j] + 1:
            j += 1
        out.append(str(groups[i]) if i == j else f"{groups[i]}-{groups[j]}")
        i = j + 1
    return ",".join(out)


def video_name(video_path):
    """``<ClassFolder>/<video>`` (no extension), as in the split lists."""
    return os.path.splitext(metrics.prediction_path("", video_path))[0]


# ---------------------------------------------------------------------------
# Command-line inputs
# ---------------------------------------------------------------------------
def parse_named(text, flag):
    """``NAME=PATH`` -> (name, path)."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        fail(f"{flag} expects NAME=PATH (e.g. {flag} 3d=runs/3d/predictions), got {text!r}")
    if not NAME_RE.match(name):
        fail(f"{flag} {text}: a name is made of letters, digits, _ and - only")
    return name, path


def model_specs(args):
    """[(name, predictions_dir, label)] in command-line order; label names the flag for messages."""
    specs = []
    if args.single_frame:
        specs.append(("single_frame", args.single_frame, f"--single-frame {args.single_frame}"))
    if args.three_d:
        specs.append(("3d", args.three_d, f"--3d {args.three_d}"))
    for text in args.model or []:
        name, path = parse_named(text, "--model")
        specs.append((name, path, f"--model {text}"))
    if not specs:
        fail("give at least one model: --model NAME=PREDICTIONS_DIR (or --single-frame DIR, --3d DIR), "
             "or --summarize REPORT_DIR ... to average splits")
    seen = set()
    for name, _, _ in specs:
        if name == ALL:
            fail(f"'{ALL}' is reserved for the fusion of every model; give the model another name")
        if name in seen:
            fail(f"model name {name!r} is given twice (names must be unique: --model NAME=DIR)")
        seen.add(name)
    return specs


def parse_weights(text, members, fusion_name):
    """'equal' -> None, 'auto' or 'auto-top1' -> itself, 'W1,W2,...' -> [floats] (one per member)."""
    if text == "equal":
        return None
    if text in AUTO_CRITERIA:
        return text
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError:
        weights = []
    if (len(weights) != len(members) or not all(math.isfinite(w) for w in weights) or min(weights) < 0
            or sum(weights) == 0):
        fail(f"--weights {text!r} for fusion {fusion_name}: expected {len(members)} non-negative numbers, "
             f"one per model in the order {','.join(members)}, not all zero (e.g. "
             f"{','.join(['0.5'] * len(members))}), or auto, auto-top1 or equal")
    return weights


def plan_fusions(args, names):
    """[{name, members, rule, weights}] from --fuse/--fusion/--weights (weights: None, 'auto', 'auto-top1'
    or a list)."""
    fuse = list(args.fuse or ([ALL] if len(names) >= 2 else []))
    if not fuse:
        if args.weights or args.fusion:
            fail("--fusion/--weights: there is nothing to fuse with one model (give two or more)")
        return []

    def per_fusion(values, flag, default):
        if not values:
            return [default] * len(fuse)
        if len(values) == 1:
            return values * len(fuse)
        if len(values) == len(fuse):
            return list(values)
        fail(f"{flag} is given {len(values)} times for {len(fuse)} fusions: give it once (for every "
             f"fusion) or once per --fuse, in the same order")

    rules = per_fusion(args.fusion, "--fusion", "logmean")
    weight_texts = per_fusion(args.weights, "--weights", "equal")
    plans, seen = [], set()
    for text, rule, weight_text in zip(fuse, rules, weight_texts):
        if text == ALL:
            members, name = list(names), ALL
            if len(members) < 2:
                fail("--fuse all: a fusion needs two or more models")
        else:
            members = [m.strip() for m in text.split(",")]
            unknown = [m for m in members if m not in names]
            if unknown:
                fail(f"--fuse {text}: {unknown[0]!r} is not one of the models given ({', '.join(names)})")
            if len(set(members)) != len(members) or len(members) < 2:
                fail(f"--fuse {text}: a fusion needs two or more different models")
            name = "+".join(members)
        if name in seen:
            name = f"{name}_{rule}"
        if name in seen:
            fail(f"--fuse {text} with --fusion {rule} is given twice")
        seen.add(name)
        plans.append({"name": name, "members": members, "rule": rule,
                      "weights": parse_weights(weight_text, members, name)})
    return plans


def read_model_json(directory, label):
    """``directory/model.json`` as a dict, None when absent; an unreadable file is a refusal."""
    path = os.path.join(directory, "model.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path, "r", encoding="utf-8") as f:
            meta = json.load(f)
    except json.JSONDecodeError as e:
        fail(f"{label}: {path} is not valid JSON ({e.msg}, line {e.lineno}); fix it, or delete it to use "
             f"the folder's name instead")
    except (OSError, UnicodeDecodeError) as e:
        fail(f"{label}: cannot read {path} ({e}); fix it, or delete it to use the folder's name instead")
    if not isinstance(meta, dict):
        fail(f"{label}: {path} must hold a JSON object, not {type(meta).__name__}; fix it or delete it")
    return meta


def known_model(name):
    key = name.lower().replace("-", "_")
    for known in sorted(KNOWN_MODELS, key=len, reverse=True):
        if key == known or key.startswith(known + "_"):
            return KNOWN_MODELS[known]
    return None


def model_identity(name, meta):
    """(title, kind, temporal) from model.json, else from the name (temporal None when unknown)."""
    meta = meta or {}
    title, kind, temporal = known_model(name) or (name, "unknown", None)
    title = meta.get("title") if isinstance(meta.get("title"), str) and meta.get("title") else title
    if isinstance(meta.get("kind"), str):
        kind = meta["kind"]
        temporal = KIND_TEMPORAL.get(kind, temporal)
    if isinstance(meta.get("temporal"), bool):
        temporal = meta["temporal"]
    return title, kind, temporal


def find_log(name, predictions_dir, meta, given):
    """The training log: --log, else model.json "log" when it exists, else ``PRED_DIR/../log.jsonl``."""
    if name in given:
        return given[name]
    recorded = (meta or {}).get("log")
    if isinstance(recorded, str) and os.path.isfile(recorded):
        return recorded
    path = os.path.join(os.path.dirname(os.path.abspath(os.path.normpath(predictions_dir))), "log.jsonl")
    return path if os.path.isfile(path) else None


def read_log(path):
    """Records of a ``log.jsonl`` (one JSON object per line); unreadable lines are skipped."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            lines = f.readlines()
    except (OSError, UnicodeDecodeError) as e:
        warn(f"cannot read training log {path} ({e}); no learning curves from it")
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("epoch"), (int, float)):
            records.append(record)
    return records


def log_paths(args, names):
    given = {}
    if args.logs is not None:  # the older two-model form
        parts = args.logs.split(",")
        if len(parts) != 2:
            fail(f"--logs must be SF_LOG,3D_LOG (either may be empty), got {args.logs!r}; or use --log NAME=PATH")
        for name, path in zip(("single_frame", "3d"), parts):
            if path:
                given[name] = path
    for text in args.log or []:
        name, path = parse_named(text, "--log")
        given[name] = path
    for name, path in given.items():
        if name not in names:
            fail(f"--log {name}={path}: {name!r} is not one of the models given ({', '.join(names)})")
        if not os.path.isfile(path):
            fail(f"--log {name}={path}: {path} not found")
    return given


# ---------------------------------------------------------------------------
# Reading the prediction folders
# ---------------------------------------------------------------------------
def first_few(paths, shown=NUM_MISSING_SHOWN, describe=video_name):
    text = ", ".join(describe(p) for p in paths[:shown])
    return text + (f" and {len(paths) - shown} more" if len(paths) > shown else "")


def folder_problem(label, directory, video_paths, what):
    """Why ``directory`` cannot be a prediction folder for ``video_paths``, or None."""
    if not os.path.isdir(directory):
        return f"{label}: no such directory (the prediction folder written by the test script)"
    if not any(os.path.isfile(metrics.prediction_path(directory, p)) for p in video_paths):
        hint = ""
        if os.path.isdir(os.path.join(directory, "predictions")):
            hint = f"; did you mean {os.path.join(directory, 'predictions')}?"
        return (f"{label}: not a prediction folder: no <Class>/<video>.hdf5 file for any of the "
                f"{len(video_paths)} {what}{hint}")
    return None


def scan_problem(label, directory, scan, video_paths, num_classes, what):
    """The problems of one folder's scan as one message, or None."""
    parts = []
    if scan.missing:
        parts.append(f"{len(scan.missing)} of {len(video_paths)} {what} have no readable prediction file: "
                     f"{first_few(scan.missing)}")
    if scan.wrong_columns:
        counts = sorted(set(scan.wrong_columns.values()))
        parts.append(f"{len(scan.wrong_columns)} prediction files have {'/'.join(map(str, counts))} classes but "
                     f"classInd.txt lists {num_classes} (e.g. {video_name(next(iter(scan.wrong_columns)))})")
    if scan.wrong_shape:
        path, shape = next(iter(scan.wrong_shape.items()))
        parts.append(f"{len(scan.wrong_shape)} prediction files are not [rows, classes] arrays: "
                     f"{metrics.prediction_path(directory, path)} has shape {shape}")
    if scan.non_finite:
        more = f" (and {len(scan.non_finite) - 1} more files)" if len(scan.non_finite) > 1 else ""
        parts.append(f"non-finite values in {metrics.prediction_path(directory, scan.non_finite[0])}{more}")
    return f"{label}: " + "; ".join(parts) if parts else None


def scan_folders(folders, video_paths, num_classes, what, hint):
    """Scan every (name, directory, label) for ``video_paths``; refuse with every problem at once."""
    problems = [folder_problem(label, d, video_paths, what) for _, d, label in folders]
    problems = [p for p in problems if p]
    if problems:
        fail(" | ".join(problems))
    scans = {}
    for name, directory, _label in folders:
        print(f"reading {len(video_paths)} prediction files of {name} ({directory})", flush=True)
        scans[name] = metrics.scan_predictions(directory, video_paths, num_classes)
    problems = [scan_problem(label, d, scans[n], video_paths, num_classes, what) for n, d, label in folders]
    problems = [p for p in problems if p]
    if problems:
        fail(" | ".join(problems) + f" ({hint})")
    return scans


def check_output_dir(output_dir, inputs):
    """Refuse an --output-dir that is, holds or lies inside a folder this run reads (check_output_folder
    has checked that it can be a folder)."""
    try:
        guards.check_output_paths({"--output-dir": output_dir}, inputs)
    except guards.UserError as e:
        fail(str(e))


def check_classes(label, directory, meta, class_list):
    """Refuse predictions written under another class list (another classInd.txt, or its classes in
    another order): their columns would be scored against the wrong classes. The test scripts record
    it in model.json and provenance.json; folders written before either says nothing and are taken."""
    recorded = (meta or {}).get("class_list")
    if recorded is None:
        try:
            with open(os.path.join(directory, guards.PROVENANCE_NAME), encoding="utf-8") as f:
                recorded = json.load(f)["identity"]["class_list"]
        except (OSError, ValueError, KeyError, TypeError):
            return
    if [str(c) for c in recorded] != class_list:
        moved = next((i for i, (a, b) in enumerate(zip(recorded, class_list)) if str(a) != b), None)
        where = (f"class {moved + 1} is {recorded[moved]!r} there, {class_list[moved]!r} here" if moved is not None
                 else f"{len(recorded)} classes there, {len(class_list)} here")
        fail(f"{label}: its predictions were written for another class list than --data-dir's classInd.txt "
             f"({where}): use the --data-dir the model was tested with")


def check_meta(label, meta, subset, split):
    """Refuse a model.json that names another subset or split than the one it is given for."""
    if not meta:
        return
    recorded = meta.get("subset")
    if recorded is not None and recorded != subset:
        if subset == "test":
            fail(f"{label}: its model.json says subset {recorded!r}: give the folder written with --subset test "
                 f"(a val folder goes with --val NAME=DIR)")
        fail(f"{label}: its model.json says subset {recorded!r}, not 'val': give the folder written with "
             f"--subset val")
    if meta.get("split") is not None and meta.get("split") != split:
        fail(f"{label}: its model.json says split {meta.get('split')}, but --split is {split}")


def validation_groups(val_folders, val_metas, given):
    """The validation groups the --val folders were written for (they must agree)."""
    recorded = {}
    for name, _, label in val_folders:
        groups = (val_metas[name] or {}).get("val_groups")
        if groups is None:
            continue
        if not isinstance(groups, list) or not all(isinstance(g, int) for g in groups):
            fail(f"{label}: model.json val_groups must be a list of group numbers, not {groups!r}")
        if not groups:
            fail(f"{label}: model.json records no validation groups (its model was trained without "
                 f"--val-groups), so it has no validation predictions")
        recorded[name] = tuple(sorted(groups))
    if given:
        for name, groups in recorded.items():
            if groups != given:
                fail(f"--val {name}: its model.json says val_groups {groups_text(groups)}, but --val-groups is "
                     f"{groups_text(given)}")
        return given
    distinct = sorted(set(recorded.values()))
    if len(distinct) > 1:
        detail = ", ".join(f"{n}: {groups_text(g)}" for n, g in recorded.items())
        fail(f"the --val folders were written for different validation groups ({detail}); they must agree")
    if not distinct:
        fail("the --val folders have no model.json with val_groups: give --val-groups (the groups held out "
             "in training, e.g. 8-10)")
    return distinct[0]


# ---------------------------------------------------------------------------
# Descriptions of models, fusions and the dataset
# ---------------------------------------------------------------------------
def rows_stats(rows):
    rows = np.asarray(rows, dtype=np.float64)
    return {"mean": float(rows.mean()), "min": int(rows.min()), "max": int(rows.max())}


def describe_stats(values):
    values = np.asarray(values, dtype=np.float64)
    return {"min": float(values.min()), "median": float(np.median(values)), "mean": float(values.mean()),
            "max": float(values.max())}


def test_description(meta, scan):
    """How a model was tested, in words: model.json's test description, else the files' attributes."""
    test = (meta or {}).get("test")
    if isinstance(test, dict) and isinstance(test.get("description"), str):
        return test["description"]
    kinds, crops = scan.attr_values("rows"), scan.attr_values("crops")
    if kinds:
        text = f"one row per {'/'.join(sorted(set(map(str, kinds)))).rstrip('s')}"
        if crops:
            text += f", {'/'.join(str(c) for c in sorted(set(crops)))} crop(s) per row"
        return text
    return "test mode not recorded (no model.json)"


def timing_of(meta):
    timing = (meta or {}).get("timing")
    return timing if isinstance(timing, dict) and timing else None


def distinguish_titles(models):
    """Models of one title (one checkpoint tested in two 3D modes, say) get their test mode, else their
    name, after the title, so that no two rows of a table read alike."""
    keys = {name: (m["title"], (m.get("test") or {}).get("mode")) for name, m in models.items()}
    titles = [title for title, _ in keys.values()]
    for name, (title, mode) in keys.items():
        if titles.count(title) > 1:
            unique_mode = isinstance(mode, str) and list(keys.values()).count((title, mode)) == 1
            models[name]["title"] = f"{title} ({mode if unique_mode else name})"


def describe_model(name, directory, meta, scan, log_path, json_path):
    title, kind, temporal = model_identity(name, meta)
    meta = meta or {}
    crops = scan.attr_values("crops")
    return {
        "title": title, "kind": kind, "temporal": temporal, "arch": meta.get("arch"),
        "predictions_dir": directory, "model_json": json_path if meta else None,
        "test": meta.get("test") if isinstance(meta.get("test"), dict) else None,
        "test_description": test_description(meta, scan),
        "rows_per_video": rows_stats(scan.rows),
        "crops": sorted(set(crops)) if crops else None,
        "checkpoint": meta.get("checkpoint"), "timing": timing_of(meta), "log": log_path,
        "val_predictions_dir": None, "val_top1": None,
    }


def fusion_title(name, members):
    return f"Fusion of all {len(members)}" if name == ALL and len(members) > 2 else "Fusion " + " + ".join(members)


def entry_title(results, name):
    return (results["models"].get(name) or results["fusions"][name])["title"]


def entry_type(results, name):
    if name in results["fusions"]:
        return f"fusion ({results['fusions'][name]['rule']})"
    temporal = results["models"][name]["temporal"]
    return "unknown" if temporal is None else "temporal" if temporal else "2D"


def best_of(results, names, key="top1"):
    """The name with the highest ``key`` (first in order on ties), or None."""
    names = [n for n in names if results["evaluation"][n].get(key) is not None]
    return max(names, key=lambda n: results["evaluation"][n][key]) if names else None


def compare_fusion(results, name):
    """Gain of a fusion over its members: the best member by top-1, the gain at each k over the best
    member at that k, and whether it stays below its best member on top-1."""
    fusion, ev = results["fusions"][name], results["evaluation"]
    members = fusion["members"]
    best = best_of(results, members)
    fusion["best_member"] = best
    fusion["members_best"] = {}
    fusion["gain"] = {}
    for k in TOPK:
        member = best_of(results, members, f"top{k}")
        fusion["members_best"][f"top{k}"] = [member, ev[member][f"top{k}"]]
        fusion["gain"][f"top{k}"] = ev[name][f"top{k}"] - ev[member][f"top{k}"]
    fusion["below_best_member"] = bool(ev[name]["top1"] < ev[best]["top1"])
    if fusion["below_best_member"]:
        fusion["verdict"] = (f"stays below its best member, {entry_title(results, best)}, on test top-1 "
                             f"({points(ev[name]['top1'] - ev[best]['top1'])})")
    elif ev[name]["top1"] == ev[best]["top1"]:
        fusion["verdict"] = f"equals its best member, {entry_title(results, best)}, on test top-1"
    else:
        fusion["verdict"] = (f"beats its best member, {entry_title(results, best)}, on test top-1 "
                             f"({points(ev[name]['top1'] - ev[best]['top1'])})")
    evidence = (fusion.get("validation") or {}).get("bootstrap")
    fusion["supported_by_validation"] = evidence["supported"] if evidence else None
    fusion["recommendation"] = (None if evidence is None else name if evidence["supported"]
                                else evidence["best_member"])


def appearance_vs_motion(results):
    """Per class: the best 2D model's and the best temporal model's accuracy (by top-1) and the
    difference (temporal minus 2D), largest temporal gain first, ties by name, unrated classes last."""
    models = results["models"]
    appearance = best_of(results, [n for n, m in models.items() if m["temporal"] is False])
    motion = best_of(results, [n for n, m in models.items() if m["temporal"] is True])
    if appearance is None or motion is None:
        missing = "2D (non-temporal)" if appearance is None else "temporal"
        return {"appearance_model": appearance, "motion_model": motion,
                "reason": f"no {missing} model among the models given", "rows": []}
    ev = results["evaluation"]
    rows = []
    for name in results["class_list"]:
        a, m = ev[appearance]["per_class_accuracy"][name], ev[motion]["per_class_accuracy"][name]
        rows.append({"class": name, "appearance": a, "motion": m,
                     "difference": None if a is None or m is None else m - a,
                     "fusions": {f: ev[f]["per_class_accuracy"][name] for f in results["fusions"]}})
    rows.sort(key=lambda r: (r["difference"] is None, -(r["difference"] or 0.0), r["class"]))
    rated = [r for r in rows if r["difference"] is not None]
    return {"appearance_model": appearance, "motion_model": motion, "rows": rows,
            "motion_better": sum(r["difference"] > 0 for r in rated),
            "appearance_better": sum(r["difference"] < 0 for r in rated),
            "equal": sum(r["difference"] == 0 for r in rated)}


def dataset_statistics(class_list, train_labels, test_labels, val_labels, val_groups, test_frames=None,
                       val_frames=None):
    """Videos per class of each subset and frames per video; ``test_frames``/``val_frames`` are
    ``(frames per video, source model)`` from the prediction files' ``frames`` attribute, or None."""
    num_classes = len(class_list)

    def per_class(labels):
        counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
        return {name: int(c) for name, c in zip(class_list, counts)}

    stats = {"train": {"videos": int(len(train_labels)), "per_class": per_class(train_labels),
                       "note": "training list without the validation groups" if val_groups else "training list"},
             "val": None, "test": {"videos": int(len(test_labels)), "per_class": per_class(test_labels)},
             "val_groups": list(val_groups) if val_groups else None, "frames_per_video": None,
             "val_frames_per_video": None}
    if val_labels is not None:
        stats["val"] = {"videos": int(len(val_labels)), "per_class": per_class(val_labels)}
    for key, found, labels in (("frames_per_video", test_frames, test_labels),
                               ("val_frames_per_video", val_frames, val_labels)):
        if found is None:
            continue
        frames, labels = np.asarray(found[0], dtype=np.float64), np.asarray(labels)
        per_class_mean = {name: (float(frames[labels == c].mean()) if (labels == c).any() else None)
                          for c, name in enumerate(class_list)}
        stats[key] = {"source": found[1], **describe_stats(frames), "per_class_mean": per_class_mean,
                      "values": [int(f) for f in frames]}
    return stats


# ---------------------------------------------------------------------------
# The summary's sentences (computed from results.json alone)
# ---------------------------------------------------------------------------
def weights_text(fusion):
    return ", ".join(f"{m} {w:g}" for m, w in zip(fusion["members"], fusion["weights"]))


def temperatures_text(fusion):
    return ", ".join(f"{m} {t:.3g}" for m, t in zip(fusion["members"], fusion["temperatures"]))


def weights_source_text(fusion):
    v = fusion["validation"]
    if fusion["weights_source"] == "auto":
        return (f"on scores divided by the temperatures {temperatures_text(fusion)} (fitted on the validation "
                f"videos), chosen by validation NLL on the {v['videos']} validation videos of groups "
                f"{groups_text(v['val_groups'])}, grid step {v['step']:g} ({v['grid_points']} points): val NLL "
                f"{v['nll']:.3f}, top-1 {pct(v['top1'])}%; equal weights {v['equal_weights_nll']:.3f}, "
                f"{pct(v['equal_weights_top1'])}%")
    if fusion["weights_source"] == "auto-top1":
        return (f"uncalibrated, chosen by validation top-1 on the {v['videos']} validation videos of groups "
                f"{groups_text(v['val_groups'])}, grid step {v['step']:g} ({v['grid_points']} points): val top-1 "
                f"{pct(v['top1'])}%, equal weights {pct(v['equal_weights_top1'])}%")
    return "equal weights" if fusion["weights_source"] == "equal" else "weights given"


def interval_text(interval, scale=1.0, digits=1):
    return f"[{interval[0] * scale:+.{digits}f}, {interval[1] * scale:+.{digits}f}]"


def evidence_sentences(results, name):
    """What the validation videos say about a fusion against its best member there, and the recommendation."""
    fusion = results["fusions"][name]
    v = fusion["validation"]
    b = v["bootstrap"]
    member = b["best_member"]
    text = (f"On the {v['videos']} validation videos {fusion['title']} has NLL {v['nll']:.3f} and top-1 "
            f"{pct(v['top1'])}%, its best member there, {entry_title(results, member)}, {b['best_member_nll']:.3f} "
            f"and {pct(b['best_member_top1'])}%"
            + (" (both temperature-scaled)" if fusion["calibration"] == "temperature" else
               " (the member temperature-scaled, the fusion of raw scores)")
            + f". Bootstrap ({b['resamples']} resamples of the validation videos, seed {b['seed']}): the fusion's "
            f"NLL gain over it {b['gain_nll']['estimate']:+.3f}, {b['level'] * 100:g}% interval "
            f"{interval_text(b['gain_nll']['interval'], digits=3)} nats; top-1 gain "
            f"{points(b['gain_top1']['estimate'])}, interval {interval_text(b['gain_top1']['interval'], 100.0)} "
            f"points; "
            f"higher top-1 in {pct(b['beats_best_member_top1'])}% of resamples, lower in "
            f"{pct(b['below_best_member_top1'])}%")
    if b["chosen_again"] is not None:
        text += f"; the same weights are chosen again in {pct(b['chosen_again'])}% of resamples"
    out = [text + "."]
    if b["supported"]:
        out.append(f"Validation supports {fusion['title']} over its best member, {entry_title(results, member)}: "
                   f"the interval of the top-1 gain lies above 0, or the fusion's top-1 is not lower and the "
                   f"interval of the NLL gain lies above 0. "
                   f"Recommendation: the fusion.")
    else:
        out.append(f"{NOT_SUPPORTED} {fusion['title']} over its best member, {entry_title(results, member)} "
                   f"(the interval of the top-1 gain reaches 0, and the fusion's validation top-1 is lower or the "
                   f"interval of the NLL gain reaches 0). "
                   f"Recommendation: {entry_title(results, member)} alone; the tables keep the numbers of both.")
    return out


def fusion_sentences(results):
    if not results["fusions"]:
        return ["No fusion: one model was given."]
    out = []
    ev = results["evaluation"]
    for name, fusion in results["fusions"].items():
        parts = []
        for k in TOPK:
            member, value = fusion["members_best"][f"top{k}"]
            parts.append(f"top-{k} {pct(ev[name][f'top{k}'])}% ({points(fusion['gain'][f'top{k}'])} against "
                         f"{pct(value)}% of {member})")
        out.append(f"{fusion['title']}: " + "; ".join(parts) + f". It {fusion['verdict']}.")
        if fusion.get("validation"):
            out += evidence_sentences(results, name)
    return out


def class_sentences(results):
    """What the best and worst classes of the best model or fusion have in common, in numbers."""
    ev, ref = results["evaluation"], results["reference"]
    rated = [(c, a) for c, a in ev[ref]["per_class_accuracy"].items() if a is not None]
    n = min(NUM_LISTED, len(rated) // 2)
    if n == 0:
        return ["Too few classes with test videos to compare the best and worst."]
    best = sorted(rated, key=lambda x: (-x[1], x[0]))[:n]
    worst = sorted(rated, key=lambda x: (x[1], x[0]))[:n]
    best_names, worst_names = [c for c, _ in best], [c for c, _ in worst]
    title = entry_title(results, ref)
    out = [f"Best model or fusion by top-1: {title} ({pct(ev[ref]['top1'])}%). Its {n} best classes "
           f"({names_text(best_names, 5)}) average {pct(np.mean([a for _, a in best]))}% accuracy, its {n} worst "
           f"({names_text(worst_names, 5)}) {pct(np.mean([a for _, a in worst]))}% (mean class accuracy "
           f"{pct(ev[ref]['mean_class_accuracy'])}%)."]

    def mean_of(mapping, classes):
        values = [mapping[c] for c in classes if mapping.get(c) is not None]
        return float(np.mean(values)) if values else None

    data = results["dataset"]
    train = data["train"]["per_class"]
    all_names = [c for c, _ in rated]
    text = (f"Best {n} / worst {n} / all classes: {mean_of(train, best_names):.1f} / {mean_of(train, worst_names):.1f}"
            f" / {mean_of(train, all_names):.1f} training videos per class")
    frames = data["frames_per_video"]
    if frames:
        per_class = frames["per_class_mean"]
        text += (f"; {mean_of(per_class, best_names):.0f} / {mean_of(per_class, worst_names):.0f} / "
                 f"{frames['mean']:.0f} frames per test video")
    precision = {c: v["precision"] for c, v in ev[ref]["per_class"].items()}
    out.append(text + f"; mean precision {pct(mean_of(precision, best_names))}% / "
                      f"{pct(mean_of(precision, worst_names))}% / {pct(ev[ref]['macro_precision'])}%.")
    avm = results["appearance_vs_motion"]
    if avm["rows"]:
        diff = {r["class"]: r["difference"] for r in avm["rows"]}
        a, m = avm["appearance_model"], avm["motion_model"]
        for label, classes in (("worst", worst_names), ("best", best_names)):
            wins = [c for c in classes if diff[c] is not None and diff[c] > 0]
            losses = [c for c in classes if diff[c] is not None and diff[c] < 0]
            ties = [c for c in classes if diff[c] == 0]
            text = f"On these {n} {label} classes the temporal {m} beats the 2D {a} on {len(wins)}"
            text += f" ({names_text(wins, 5)})" if wins else ""
            text += f", loses on {len(losses)}" + (f" ({names_text(losses, 5)})" if losses else "")
            out.append(text + f" and ties on {len(ties)}.")
    else:
        out.append(f"No appearance-vs-motion comparison: {avm['reason']}.")
    order = results["order"]
    if len(order) > 1:
        worst_sets = [set(c for c, _ in sorted(((c, a) for c, a in ev[e]["per_class_accuracy"].items()
                                                if a is not None), key=lambda x: (x[1], x[0]))[:n]) for e in order]
        common = [c for c in results["class_list"] if all(c in s for s in worst_sets)]
        out.append(f"Among the {n} worst of every model and fusion: {names_text(common)}." if common else
                   f"No class is among the {n} worst of every model and fusion.")
    for e in order:
        never = ev[e]["never_predicted"]
        if never:
            out.append(f"{entry_title(results, e)} never predicts {len(never)} class"
                       f"{'es' if len(never) > 1 else ''} ({names_text(never, 5)}): precision 0.")
    return out


def confusion_sentences(results):
    ev, ref, order = results["evaluation"], results["reference"], results["order"]
    pairs = ev[ref]["most_confused"]
    if not pairs:
        return [f"{entry_title(results, ref)} classifies every test video correctly: no confused pair."]
    true, pred, fraction = pairs[0]
    support = ev[ref]["per_class"][true]["support"]
    out = [f"Most confused pair of {entry_title(results, ref)}: {true} → {pred}, {pct(fraction)}% of {true}'s "
           f"test videos ({round(fraction * support)} of {support})."]
    tops = []
    for e in order:
        if ev[e]["most_confused"]:
            t, p, f = ev[e]["most_confused"][0]
            tops.append(f"{e}: {t} → {p} ({pct(f)}%)")
        else:
            tops.append(f"{e}: none")
    if len(order) > 1:
        out.append("Most confused pair of each: " + "; ".join(tops) + ".")
        sets = [set((t, p) for t, p, _ in ev[e]["most_confused"]) for e in order]
        common = [(t, p) for t, p, _ in pairs if all((t, p) in s for s in sets)]
        out.append(f"In the {NUM_LISTED} most confused pairs of every model and fusion: "
                   f"{names_text([f'{t} → {p}' for t, p in common])}." if common else
                   f"No pair is among the {NUM_LISTED} most confused of every model and fusion.")
    listed = set((t, p) for t, p, _ in pairs)
    both = [f"{t} ↔ {p}" for t, p, _ in pairs if (p, t) in listed and t < p]
    if both:
        out.append(f"Confused both ways in the list of {entry_title(results, ref)}: {names_text(both)}.")
    return out


def build_answers(results):
    return {"fusion": fusion_sentences(results), "classes": class_sentences(results),
            "confusions": confusion_sentences(results)}


QUESTIONS = {
    "fusion": "1. Did fusion improve top-1, top-5 and top-10 accuracy, and by how much?",
    "classes": "2. What do the best and worst classes have in common (as far as the numbers show)?",
    "confusions": "3. Which classes are confused most?",
}


# ---------------------------------------------------------------------------
# Tables (plain strings; typeset in the PDF, written as Markdown and LaTeX)
# ---------------------------------------------------------------------------
class Table:
    """caption, header [str], align (one of l/r/c per column), rows [[str]], note; a cell may hold
    several lines separated by newlines (joined with '; ' in Markdown and LaTeX)."""

    def __init__(self, caption, header, align, rows, note=""):
        self.caption, self.header, self.align, self.rows, self.note = caption, header, align, rows, note


def val_top1(results, name):
    """Validation top-1 of a model or fusion, or None."""
    if name in results["models"]:
        return results["models"][name].get("val_top1")
    return (results["fusions"][name].get("validation") or {}).get("top1")


def topk_table(results):
    ev = results["evaluation"]
    with_val = any(val_top1(results, n) is not None for n in results["order"])
    rows = [[entry_title(results, n), entry_type(results, n)] + [pct(ev[n][f"top{k}"]) for k in TOPK]
            + [pct(ev[n]["mean_class_accuracy"]), pct(ev[n]["macro_f1"])]
            + ([pct(val_top1(results, n))] if with_val else []) for n in results["order"]]
    return Table(f"Video-level accuracy (%) on the {results['videos']} test videos of split {results['split']}.",
                 ["Model", "Type", "Top-1", "Top-5", "Top-10", "Mean class acc.", "Macro F1"]
                 + (["Val top-1"] if with_val else []), "llrrrrr" + ("r" if with_val else ""), rows,
                 "Mean class accuracy = mean per-class recall (the TSN/mmaction2 number); top-k: the fraction of "
                 "videos whose class is among the k best scores"
                 + ("; val top-1: on the validation videos, which chose the fusion weights." if with_val else "."))


def fusions_table(results):
    ev = results["evaluation"]
    rows = []
    for name, f in results["fusions"].items():
        source = {"auto": "validation NLL", "auto-top1": "validation top-1", "equal": "equal",
                  "given": "given"}[f["weights_source"]]
        val = f["validation"]["top1"] if f.get("validation") else None
        weights = [f"{m} {w:g}" + (f" (T {t:.3g})" if f["calibration"] == "temperature" else "")
                   for m, w, t in zip(f["members"], f["weights"], f["temperatures"])]
        rows.append([name, f["rule"], "\n".join(weights), source,
                     pct(val), pct(ev[name]["top1"]), f"{f['best_member']} {pct(ev[f['best_member']]['top1'])}"]
                    + [pct(f["gain"][f"top{k}"], signed=True) for k in TOPK])
    note = ("Gain: fusion minus its best member at each k (percentage points). Val top-1: accuracy of the "
            "weights on the validation videos (never the test set). T: the member's temperature (its scores are "
            "divided by it before the weights apply), fitted on the validation videos.")
    below = [n for n, f in results["fusions"].items() if f["below_best_member"]]
    if below:
        note += f" Below its best member on test top-1: {names_text(below)}."
    return Table("Fusions: rule, weights and what they gain over their members.",
                 ["Fusion", "Rule", "Weights", "From", "Val top-1", "Test top-1", "Best member",
                  "Gain top-1", "Gain top-5", "Gain top-10"], "lllrrrlrrr", rows, note)


def validation_table(results):
    """Each model's and fusion's validation NLL and top-1, the temperatures, and each fusion's bootstrap."""
    rows = []
    for name, m in results["models"].items():
        if m.get("val_top1") is None:
            continue
        bound = f" (at the {m['temperature_at_bound']} bound)" if m["temperature_at_bound"] else ""
        rows.append([entry_title(results, name), pct(m["val_top1"]), f"{m['val_nll']:.3f}",
                     f"{m['temperature']:.3g}{bound}", f"{m['val_nll_calibrated']:.3f}", "", "", "", ""])
    for name, f in results["fusions"].items():
        v = f.get("validation")
        if not v:
            continue
        b = v["bootstrap"]
        calibrated = f["calibration"] == "temperature"
        rows.append([entry_title(results, name), pct(v["top1"]), "" if calibrated else f"{v['nll']:.3f}",
                     "members'" if calibrated else "1 (none)", f"{v['nll']:.3f}" if calibrated else "",
                     f"{b['best_member']}: {interval_text(b['gain_nll']['interval'], digits=3)}",
                     interval_text(b["gain_top1"]["interval"], 100.0),
                     "" if b["chosen_again"] is None else pct(b["chosen_again"]),
                     "yes" if b["supported"] else "no: " + b["best_member"]])
    data = results["dataset"]
    b = next((f["validation"]["bootstrap"] for f in results["fusions"].values() if f.get("validation")), None)
    note = ("NLL: mean negative log-likelihood of the true class (nats; lower is better), of the raw scores and "
            "of the scores divided by the temperature T (fitted on these videos by NLL, bounded to "
            f"[{metrics.TEMPERATURE_RANGE[0]:g}, {metrics.TEMPERATURE_RANGE[1]:g}]). Gain: the fusion against its "
            "member of lowest temperature-scaled validation NLL (every fusion, calibrated or not, is held to that "
            "bar: an NLL rewards sharpness as well as accuracy)")
    if b:
        note += (f"; {b['level'] * 100:g}% percentile intervals over {b['resamples']} bootstrap resamples of the "
                 f"validation videos (seed {b['seed']}). Chosen again: how often the weight choice, rerun on a "
                 "resample (temperatures held), picks the same weights. Supported: the top-1 gain's interval lies "
                 "above 0, or the fusion's validation top-1 is not below the member's and the NLL gain's interval "
                 "lies above 0; if not, that member is the recommendation.")
    return Table(f"Validation evidence: the {data['val']['videos']} validation videos (groups "
                 f"{groups_text(data['val_groups'])}); the list is in results.json.",
                 ["Model or fusion", "Val top-1", "NLL", "T", "NLL (T)", "NLL gain over", "Top-1 gain (points)",
                  "Chosen again", "Supported"], "lrrrrlrrl", rows, note + ("" if b else "."))


def macro_table(results):
    ev = results["evaluation"]
    rows = [[entry_title(results, n), pct(ev[n]["macro_precision"]), pct(ev[n]["macro_recall"]),
             pct(ev[n]["macro_f1"]), str(len(ev[n]["never_predicted"]))] for n in results["order"]]
    rated = sum(1 for v in ev[results["order"][0]]["per_class"].values() if v["support"] > 0)
    note = (f"Macro averages over the {rated} classes with test videos"
            + (" (every class of the class list)." if rated == results["classes"] else
               f" ({results['classes'] - rated} classes of the class list have none and are left out).")
            + " A class never predicted has precision 0 (and F1 0). F1 is averaged per class, not computed "
              "from the macro precision and recall.")
    return Table("Macro precision, recall and F1 (%).",
                 ["Model", "Precision", "Recall (= mean class acc.)", "F1", "Classes never predicted"],
                 "lrrrr", rows, note)


def _timing_cells(t):
    def number(key, fmt, scale=1.0):
        value = t.get(key)
        return fmt.format(value * scale) if isinstance(value, (int, float)) else "n/a"

    return [str(t.get("device", "n/a")), str(t.get("batch_size", "n/a")), str(t.get("amp", "n/a")),
            number("views_per_video", "{:.1f}"), number("load_seconds_per_video", "{:.1f}", 1000.0),
            number("model_seconds_per_video", "{:.1f}", 1000.0), number("fps_end_to_end", "{:.0f}"),
            number("fps_model", "{:.0f}")]


def fusion_timing(results, name):
    """A fusion's cost when its members run one after another: times add up, frame rates combine
    harmonically. None unless every member was timed."""
    timings = [results["models"][m]["timing"] for m in results["fusions"][name]["members"]]
    if not all(timings):
        return None
    out = {"device": "sum of members", "batch_size": "-", "amp": "-"}
    for key in ("views_per_video", "load_seconds_per_video", "model_seconds_per_video"):
        values = [t.get(key) for t in timings]
        if all(isinstance(v, (int, float)) for v in values):
            out[key] = float(sum(values))
    for key in ("fps_end_to_end", "fps_model"):
        values = [t.get(key) for t in timings]
        if all(isinstance(v, (int, float)) and v > 0 for v in values):
            out[key] = 1.0 / sum(1.0 / v for v in values)
    return out


def timing_table(results):
    rows = []
    for n in results["order"]:
        t = results["models"][n]["timing"] if n in results["models"] else results["fusions"][n].get("timing")
        rows.append([entry_title(results, n)] + (_timing_cells(t) if t else ["not measured"] + [""] * 7))
    return Table("Speed of the test runs (from each prediction folder's model.json \"timing\").",
                 ["Model", "Device", "Batch", "AMP", "Views/video", "Load ms/video", "Model ms/video",
                  "FPS end to end", "FPS model"], "llrlrrrrr", rows,
                 "Load: mean time a loader worker spent reading and resizing one video; model: mean forward time "
                 "per video (CUDA-synchronised); FPS end to end: frames read / wall time; FPS model: frames / "
                 "model time. A fusion's row adds up its members run one after another.")


def best_worst_table(results, name):
    ev = results["evaluation"][name]
    rows = []
    for i in range(max(len(ev["best_classes"]), len(ev["worst_classes"]))):
        row = [str(i + 1)]
        for key in ("best_classes", "worst_classes"):
            entries = ev[key]
            row += [entries[i][0], pct(entries[i][1])] if i < len(entries) else ["", ""]
        rows.append(row)
    return Table(entry_title(results, name), ["#", "Best class", "%", "Worst class", "%"], "rlrlr", rows)


def confused_table(results, name):
    ev = results["evaluation"][name]
    rows = []
    for i, (true, pred, fraction) in enumerate(ev["most_confused"]):
        support = ev["per_class"][true]["support"]
        rows.append([str(i + 1), true, pred, pct(fraction), f"{round(fraction * support)}/{support}"])
    return Table(entry_title(results, name), ["#", "True class", "Predicted as", "%", "Videos"], "rllrr", rows,
                 "" if rows else "No confused pair: every test video was classified correctly.")


def appearance_table(results):
    avm = results["appearance_vs_motion"]
    if not avm["rows"]:
        return Table(f"Appearance vs motion: {avm['reason']}.", ["Class"], "l", [])
    a, m = avm["appearance_model"], avm["motion_model"]
    rated = [r for r in avm["rows"] if r["difference"] is not None]
    gains = [r for r in rated if r["difference"] > 0][:NUM_LISTED]
    losses = [r for r in reversed(rated) if r["difference"] < 0][:NUM_LISTED]
    fusions = list(results["fusions"])
    rows = [[r["class"], pct(r["appearance"]), pct(r["motion"]), pct(r["difference"], signed=True),
             m if r["difference"] > 0 else a] + [pct(r["fusions"][f]) for f in fusions] for r in gains + losses]
    gains_text = (counted(len(gains), "the class", "classes") + f" where the temporal {m} gains most"
                  if gains else f"no class where the temporal {m} is better")
    losses_text = (counted(len(losses), "the class", "classes") + f" where the 2D {a} is better"
                   if losses else f"no class where the 2D {a} is better")
    caption = (f"Appearance vs motion: the best 2D model by top-1 ({a}, {entry_title(results, a)}) against the "
               f"best temporal model ({m}, {entry_title(results, m)}): {gains_text}; {losses_text} (accuracy %, "
               f"difference = {m} minus {a}; fusions for comparison).")
    note = (f"Over all classes the temporal model is better on {avm['motion_better']}, the 2D model on "
            f"{avm['appearance_better']}, equal on {avm['equal']}. The full list is in results.json.")
    return Table(caption, ["Class", a, m, "Difference", "Better"] + fusions, "lrrrl" + "r" * len(fusions), rows, note)


def dataset_table(results):
    data = results["dataset"]
    rows = []
    frames = data["frames_per_video"]
    for subset in ("train", "val", "test"):
        part = data[subset]
        if part is None:
            continue
        counts = [c for c in part["per_class"].values()]
        row = [subset + (f" (groups {groups_text(data['val_groups'])})" if subset == "val" else ""),
               str(part["videos"]), str(sum(1 for c in counts if c)), f"{min(counts)}-{max(counts)}"]
        found = frames if subset == "test" else data.get("val_frames_per_video") if subset == "val" else None
        if found:
            row.append(f"{found['min']:.0f} / {found['median']:.0f} / {found['mean']:.1f} / {found['max']:.0f}")
        else:
            row.append("not recorded")
        rows.append(row)
    note = data["train"]["note"].capitalize() + "."
    note += (f" Frames per video from the 'frames' attribute of {frames['source']}'s prediction files."
             if frames else " Frames per video: the prediction files carry no 'frames' attribute (older test "
                            "scripts).")
    return Table(f"The data of split {results['split']}.",
                 ["Subset", "Videos", "Classes", "Videos per class", "Frames per video (min / median / mean / max)"],
                 "lrrrr", rows, note)


def per_class_table(results, key, label):
    """Every class: test videos and each model's and fusion's ``key`` (precision, recall or f1)."""
    order = results["order"]
    rows = []
    for name in results["class_list"]:
        cells = [results["evaluation"][e]["per_class"][name] for e in order]
        rows.append([name, str(cells[0]["support"])] + [pct(c[key]) for c in cells])
    return Table(f"Per-class {label} (%) of every model and fusion (classInd order).",
                 ["Class", "Videos"] + order, "lr" + "r" * len(order), rows,
                 "Columns: " + "; ".join(f"{e} = {entry_title(results, e)}" for e in order) + "."
                 + (" A class never predicted has precision 0." if key == "precision" else ""))


def build_tables(results):
    """Every table of the report as ``{name: Table}``."""
    tables = {"topk": topk_table(results)}
    if results["fusions"]:
        tables["fusions"] = fusions_table(results)
    if results["dataset"]["val"]:
        tables["validation"] = validation_table(results)
    tables["macro"] = macro_table(results)
    tables["timing"] = timing_table(results)
    for n in results["order"]:
        tables[f"best_worst_{n}"] = best_worst_table(results, n)
    for n in results["order"]:
        tables[f"most_confused_{n}"] = confused_table(results, n)
    tables["appearance_vs_motion"] = appearance_table(results)
    tables["dataset"] = dataset_table(results)
    tables["per_class_recall"] = per_class_table(results, "recall", "accuracy (= recall)")
    tables["per_class_precision"] = per_class_table(results, "precision", "precision")
    tables["per_class_f1"] = per_class_table(results, "f1", "F1")
    return tables


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "→": r"$\rightarrow$", "↔": r"$\leftrightarrow$", "±": r"$\pm$",
}
_LATEX_RE = re.compile("|".join(re.escape(c) for c in _LATEX_SPECIAL))
_MARKDOWN_RE = re.compile(r"([\\|*_`\[\]<>])")


def latex_escape(text):
    return _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group(0)], str(text))


def markdown_escape(text):
    return _MARKDOWN_RE.sub(r"\\\1", str(text))


def _flat(cell):
    return "; ".join(str(cell).split("\n"))


def table_to_latex(table, long=False):
    """A ``tabular`` (``longtable`` when ``long``) preceded by its caption as a comment; cells escaped."""
    def line(cells, escape):
        return " & ".join(latex_escape(_flat(c)) if escape else c for c in cells) + r" \\"

    env = "longtable" if long else "tabular"
    head = [line([r"\textbf{" + latex_escape(h) + "}" for h in table.header], escape=False), r"\hline"]
    out = [f"% {table.caption}", r"\begin{" + env + "}{" + table.align + "}", r"\hline"] + head
    if long:
        out += [r"\endhead"]
    out += [line(row, escape=True) for row in table.rows] or [
        r"\multicolumn{" + str(len(table.header)) + "}{l}{(none)}" + r" \\"
    ]
    out += [r"\hline", r"\end{" + env + "}", ""]
    return "\n".join(out)


def table_to_markdown(table):
    align = {"r": "---:", "l": ":---", "c": ":---:"}
    out = [
        f"*{markdown_escape(table.caption)}*",
        "",
        "| " + " | ".join(markdown_escape(h) for h in table.header) + " |",
        "| " + " | ".join(align[a] for a in table.align) + " |",
    ]
    out += ["| " + " | ".join(markdown_escape(_flat(c)) for c in row) + " |" for row in table.rows]
    if not table.rows:
        out.append("| (none) |" + " |" * (len(table.header) - 1))
    if table.note:
        out += ["", markdown_escape(table.note)]
    return "\n".join(out + [""])


TABLE_SECTIONS = (  # (Markdown heading, aggregate .tex name, table name prefix or name)
    ("Top-k accuracy", "topk", "topk"),
    ("Fusions", "fusions", "fusions"),
    ("Validation evidence", "validation", "validation"),
    ("Macro precision, recall, F1", "macro", "macro"),
    ("Speed", "timing", "timing"),
    ("Best and worst classes", "best_worst", "best_worst_"),
    ("Most confused pairs", "most_confused", "most_confused_"),
    ("Appearance vs motion", "appearance_vs_motion", "appearance_vs_motion"),
    ("Dataset", "dataset", "dataset"),
    ("Per-class accuracy", "per_class_recall", "per_class_recall"),
    ("Per-class precision", "per_class_precision", "per_class_precision"),
    ("Per-class F1", "per_class_f1", "per_class_f1"),
)


def write_tables(tables, results, output_dir):
    """``tables.md`` and ``tables/*.tex``: one file per table, one per section for report.tex (a section
    of several tables, e.g. best_worst.tex, holds them one after another), and summary.tex (the answers).
    Returns the paths written."""
    tables_dir = os.path.join(output_dir, "tables")
    os.makedirs(tables_dir, exist_ok=True)
    written = []

    def write(name, text):
        path = os.path.join(tables_dir, f"{name}.tex")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        written.append(path)

    markdown = [f"# UCF-101 results: split {results['split']}, {results['videos']} test videos", ""]
    for key, question in QUESTIONS.items():
        markdown += [f"**{question}**", ""] + [markdown_escape(s) for s in results["answers"][key]] + [""]
    for heading, aggregate, prefix in TABLE_SECTIONS:
        names = [n for n in tables if n == prefix or (prefix.endswith("_") and n.startswith(prefix))]
        if not names:
            continue
        markdown += [f"## {heading}", ""]
        parts = []
        for name in names:
            long = name.startswith("per_class")
            text = table_to_latex(tables[name], long=long)
            if name != aggregate:
                write(name, text)
                parts.append(r"\par\medskip\noindent\textbf{" + latex_escape(tables[name].caption) + r"}\par\smallskip"
                             + "\n" + text)
            else:
                parts.append(text)
            markdown.append(table_to_markdown(tables[name]))
        write(aggregate, "\n".join(parts))
    summary = []
    for key, question in QUESTIONS.items():
        summary += ([r"\paragraph{" + latex_escape(question) + "}", r"\begin{itemize}"]
                    + [r"\item " + latex_escape(s) for s in results["answers"][key]] + [r"\end{itemize}", ""])
    write("summary", "\n".join(summary))
    path = os.path.join(output_dir, "tables.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(markdown))
    return [path] + written


# ---------------------------------------------------------------------------
# Typesetting on matplotlib figures: flowing A4 pages of headings, paragraphs, tables and figures
# ---------------------------------------------------------------------------
PAGE_W, PAGE_H = 8.27, 11.69  # A4, inches
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 0.7, 0.7, 0.6, 0.6
TEXT_W = PAGE_W - MARGIN_L - MARGIN_R
BODY_PT, TABLE_PT, SMALL_PT = 8.5, 7.5, 7.0
MIN_TABLE_PT = 5.0
RULE_COLOR, STRIPE_COLOR = "#222222", "#f0f0f0"
MEASURE_DPI = 720  # text is measured at 10x so that hinting at small sizes does not shrink the widths
_RENDERER = []
_WIDTHS = {}


def text_width(text, size, weight="normal"):
    """Width of one line of text in inches (DejaVu Sans, as drawn)."""
    key = (text, size, weight)
    if key not in _WIDTHS:
        if not _RENDERER:
            _RENDERER.append(RendererAgg(10, 10, MEASURE_DPI))
        w, _, _ = _RENDERER[0].get_text_width_height_descent(text, FontProperties(size=size, weight=weight),
                                                             ismath=False)
        _WIDTHS[key] = w / MEASURE_DPI
    return _WIDTHS[key]


def wrap(text, width, size, weight="normal"):
    """Greedy line breaking of ``text`` to ``width`` inches."""
    lines = []
    for paragraph in str(text).split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if line and text_width(candidate, size, weight) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


def new_figure(width, height):
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


class TableLayout:
    """Column widths and font size of a Table that fits ``max_width`` inches."""

    def __init__(self, table, size, max_width):
        self.table = table
        while True:
            self.size = size
            self.pad = size * 0.9 / 72.0
            self.widths = []
            for j, head in enumerate(table.header):
                width = max([text_width(line, size, "bold") for line in head.split("\n")]
                            + [text_width(line, size) for row in table.rows for line in str(row[j]).split("\n")])
                self.widths.append(width + self.pad)
            if sum(self.widths) <= max_width or size <= MIN_TABLE_PT:
                break
            size = max(MIN_TABLE_PT, round(size * max_width / sum(self.widths) - 0.05, 1))
        self.width = sum(self.widths)
        self.line = size * 1.28 / 72.0

    def row_height(self, row):
        return self.line * max(len(str(c).split("\n")) for c in row) + self.line * 0.25

    @property
    def header_height(self):
        return self.row_height(self.table.header)


class PageWriter:
    """Typesets headings, paragraphs, tables and figures on A4 matplotlib figures, page after page.

    ``y`` is the distance from the top of the page in inches. Tables that do not fit continue on the
    next page with their header repeated.
    """

    def __init__(self, pdf, footer):
        self.pdf, self.footer = pdf, footer
        self.fig, self.pages, self.tables, self.figures = None, 0, 0, 0
        self.marks = {}

    # -- pages ---------------------------------------------------------------
    def new_page(self):
        if self.fig is not None:
            self.pdf.savefig(self.fig)
        self.fig = new_figure(PAGE_W, PAGE_H)
        self.pages += 1
        self.y = MARGIN_T
        self.text(MARGIN_L, PAGE_H - 0.35, self.footer, 6.5, color="#666666")
        self.text(PAGE_W - MARGIN_R, PAGE_H - 0.35, f"page {self.pages}", 6.5, color="#666666", ha="right")

    def close(self):
        if self.fig is not None:
            self.pdf.savefig(self.fig)
            self.fig = None

    def remaining(self):
        return PAGE_H - MARGIN_B - self.y

    def at_top(self):
        return self.fig is not None and self.y <= MARGIN_T + 1e-6

    def ensure(self, height):
        """Start a new page unless ``height`` inches fit on this one (or it is still empty)."""
        if self.fig is None or (height > self.remaining() and not self.at_top()):
            self.new_page()

    def page_break(self):
        if not self.at_top():
            self.new_page()

    def mark(self, name):
        """Start a new page and remember its number under ``name`` (e.g. where the appendix starts)."""
        self.page_break()
        self.marks[name] = self.pages

    # -- drawing primitives -------------------------------------------------------
    def text(self, x, y, s, size, weight="normal", style="normal", ha="left", color="black"):
        self.fig.text(x / PAGE_W, 1.0 - y / PAGE_H, s, fontsize=size, fontweight=weight, fontstyle=style,
                      ha=ha, va="baseline", color=color, parse_math=False)

    def rule(self, x0, x1, y, width):
        self.fig.add_artist(Line2D([x0 / PAGE_W, x1 / PAGE_W], [1.0 - y / PAGE_H] * 2, linewidth=width,
                                   color=RULE_COLOR, transform=self.fig.transFigure))

    def stripe(self, x0, x1, y_top, height):
        self.fig.add_artist(Rectangle((x0 / PAGE_W, 1.0 - (y_top + height) / PAGE_H), (x1 - x0) / PAGE_W,
                                      height / PAGE_H, facecolor=STRIPE_COLOR, edgecolor="none",
                                      transform=self.fig.transFigure, zorder=-1))

    # -- blocks ----------------------------------------------------------------
    def heading(self, s, level=1, keep=1.5):
        """A heading kept on the same page as the next ``keep`` inches."""
        size = {0: 16, 1: 12.5, 2: 10}[level]
        before = 0.0 if self.fig is None or self.at_top() else {0: 0.0, 1: 0.22, 2: 0.12}[level]
        self.ensure(before + size * 1.6 / 72.0 + keep)
        if not self.at_top():
            self.y += before
        self.y += size / 72.0
        self.text(MARGIN_L, self.y, s, size, weight="bold")
        self.y += size * 0.6 / 72.0

    def paragraph(self, s, size=BODY_PT, style="normal", indent=0.0, bullet=None, gap=0.05, color="black",
                  weight="normal"):
        lines = wrap(s, TEXT_W - indent, size, weight)
        height = size * 1.32 / 72.0
        for i, line in enumerate(lines):
            self.ensure(height)
            self.y += height
            if bullet and i == 0:
                self.text(MARGIN_L + indent - 0.13, self.y, bullet, size)
            self.text(MARGIN_L + indent, self.y, line, size, style=style, color=color, weight=weight)
        self.y += gap

    def paragraph_height(self, s, size=BODY_PT, indent=0.0):
        return len(wrap(s, TEXT_W - indent, size)) * size * 1.32 / 72.0 + 0.05

    def space(self, inches):
        if not self.at_top():
            self.y += inches

    def _draw_rows(self, layout, x0, y, rows, striped):
        """Header and ``rows`` of a table at (x0, y top); returns the y below the bottom rule."""
        table, size = layout.table, layout.size
        x1 = x0 + layout.width

        def draw_row(cells, weight, y_top):
            lines = [str(c).split("\n") for c in cells]
            x = x0
            for cell_lines, width, align in zip(lines, layout.widths, table.align):
                for k, line in enumerate(cell_lines):
                    baseline = y_top + layout.line * (k + 0.95)
                    if align == "r":
                        self.text(x + width - layout.pad / 2, baseline, line, size, weight, ha="right")
                    elif align == "c":
                        self.text(x + width / 2, baseline, line, size, weight, ha="center")
                    else:
                        self.text(x + layout.pad / 2, baseline, line, size, weight)
                x += width
            return y_top + layout.row_height(cells)

        self.rule(x0, x1, y, 0.9)
        y = draw_row(table.header, "bold", y + 0.02)
        self.rule(x0, x1, y, 0.5)
        y += 0.02
        for i, row in enumerate(rows):
            if striped and i % 2 == 1:
                self.stripe(x0, x1, y, layout.row_height(row))
            y = draw_row(row, "normal", y)
        if not rows:
            y = draw_row(["(none)"] + [""] * (len(table.header) - 1), "normal", y)
        self.rule(x0, x1, y + 0.01, 0.9)
        return y + 0.03

    def table(self, table, size=TABLE_PT, numbered=True, min_rows=4):
        """Caption, table (split across pages when long, header repeated) and note."""
        layout = TableLayout(table, size, TEXT_W)
        if numbered:
            self.tables += 1
        caption = f"Table {self.tables}. {table.caption}" if numbered else table.caption
        rows, first = list(table.rows), True
        striped = len(rows) > 6
        while True:
            cap = caption if first else f"Table {self.tables} (continued)."
            need = self.paragraph_height(cap, SMALL_PT + 0.5) + layout.header_height + 0.1 + sum(
                layout.row_height(r) for r in rows[:min_rows])
            self.ensure(need)
            self.paragraph(cap, SMALL_PT + 0.5, gap=0.04)
            available = self.remaining() - layout.header_height - 0.12
            fit, used = 0, 0.0
            for row in rows:
                if used + layout.row_height(row) > available:
                    break
                used += layout.row_height(row)
                fit += 1
            fit = max(fit, 1) if rows else 0
            self.y = self._draw_rows(layout, MARGIN_L, self.y, rows[:fit], striped)
            rows, first = rows[fit:], False
            if not rows:
                break
            self.new_page()
        if table.note:
            self.paragraph(table.note, SMALL_PT - 0.5, style="italic", gap=0.03)
        self.y += 0.1

    def table_grid(self, tables, columns=2, size=SMALL_PT, caption=None):
        """Small tables side by side, ``columns`` to a row, each with its own title (its caption)."""
        gap = 0.25
        slot = (TEXT_W - gap * (columns - 1)) / columns
        layouts = [TableLayout(t, size, slot) for t in tables]
        if caption:
            self.tables += 1
            first_row = layouts[:columns]
            self.ensure(self.paragraph_height(caption, SMALL_PT + 0.5)
                        + max(0.2 + t.header_height + sum(t.row_height(r) for r in t.table.rows) + 0.1
                              for t in first_row))
            self.paragraph(f"Table {self.tables}. {caption}", SMALL_PT + 0.5, gap=0.06)
        for start in range(0, len(layouts), columns):
            row = layouts[start:start + columns]
            heights = [0.2 + t.header_height + sum(t.row_height(r) for r in t.table.rows or [[""]]) + 0.1
                       + (t.line * 1.2 if t.table.note else 0.0) for t in row]
            self.ensure(max(heights))
            top = self.y
            for k, layout in enumerate(row):
                x0 = MARGIN_L + k * (slot + gap)
                self.text(x0, top + 0.13, layout.table.caption, size + 0.5, weight="bold")
                y = self._draw_rows(layout, x0, top + 0.19, layout.table.rows, len(layout.table.rows) > 6)
                if layout.table.note:
                    self.text(x0, y + layout.line, layout.table.note, size - 0.5, style="italic")
            self.y = top + max(heights) + 0.05

    def figure(self, height, draw, caption, numbered=True):
        """A drawing of ``height`` inches across the text width: ``draw(fig, rect)`` with ``rect`` in figure
        fractions [left, bottom, width, height]; the caption goes below."""
        if numbered:
            self.figures += 1
        caption = f"Figure {self.figures}. {caption}" if numbered else caption
        cap_h = self.paragraph_height(caption, SMALL_PT)
        height = min(height, PAGE_H - MARGIN_T - MARGIN_B - cap_h - 0.05)
        self.ensure(height + cap_h + 0.05)
        rect = [MARGIN_L / PAGE_W, 1.0 - (self.y + height) / PAGE_H, TEXT_W / PAGE_W, height / PAGE_H]
        draw(self.fig, rect)
        self.y += height + 0.02
        self.paragraph(caption, SMALL_PT, style="italic", gap=0.12)


# ---------------------------------------------------------------------------
# Figures: each draws into a rectangle of a figure (a report page, or a figure of its own for
# figures/*.png|pdf), object-oriented matplotlib on the Agg canvas (no pyplot state, no display)
# ---------------------------------------------------------------------------
def region_axes(fig, rect, left=0.0, bottom=0.0, right=0.0, top=0.0):
    """Axes filling ``rect`` (figure fractions) less margins given in inches."""
    fw, fh = fig.get_size_inches()
    x, y, w, h = rect
    return fig.add_axes([x + left / fw, y + bottom / fh, w - (left + right) / fw, h - (bottom + top) / fh])


def grid_rects(fig, rect, nrows, ncols, hgap=0.0, vgap=0.0):
    """``rect`` cut into nrows x ncols cells (gaps in inches), row-major from the top left."""
    fw, fh = fig.get_size_inches()
    x, y, w, h = rect
    cw, ch = (w - (ncols - 1) * hgap / fw) / ncols, (h - (nrows - 1) * vgap / fh) / nrows
    return [[x + c * (cw + hgap / fw), y + h - (r + 1) * ch - r * vgap / fh, cw, ch]
            for r in range(nrows) for c in range(ncols)]


def rect_inches(fig, rect):
    fw, fh = fig.get_size_inches()
    return rect[2] * fw, rect[3] * fh


def entry_color(results, name):
    colors = matplotlib.colormaps["tab10"].colors
    return colors[results["order"].index(name) % len(colors)]


def style_axes(ax, size=7):
    ax.tick_params(labelsize=size, length=2, width=0.5)
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)
    for spine in ("left", "bottom"):
        ax.spines[spine].set_linewidth(0.6)


def draw_topk(fig, rect, results):
    order, ev = results["order"], results["evaluation"]
    label_h = max(text_width(n, 6.5) for n in order) * 0.75 + 0.2
    ax = region_axes(fig, rect, left=0.55, bottom=label_h + 0.1, right=0.1, top=0.2)
    x = np.arange(len(order))
    width = 0.8 / len(TOPK)
    shades = ("#1f4e79", "#4f81bd", "#a7c3e0")
    for i, k in enumerate(TOPK):
        values = [100.0 * ev[n][f"top{k}"] for n in order]
        bars = ax.bar(x + (i - (len(TOPK) - 1) / 2) * width, values, width=width, color=shades[i], label=f"top-{k}")
        if k == 1:
            ax.bar_label(bars, fmt="%.1f", fontsize=5.5, padding=1)
    ax.set_xticks(x)
    ax.set_xticklabels(order, rotation=40, ha="right", fontsize=6.5)
    ax.set_ylim(0, 108)
    ax.set_ylabel("video accuracy (%)", fontsize=7)
    ax.legend(fontsize=6, ncols=3, loc="upper center", bbox_to_anchor=(0.5, 1.12), frameon=False)
    ax.grid(axis="y", alpha=0.3, linewidth=0.5)
    style_axes(ax)


def draw_precision_recall(fig, rect, results):
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
        ax.set_title(f"{name}: macro F1 {pct(ev[name]['macro_f1'])}%", fontsize=7)
        ax.set_xlabel("recall (%)", fontsize=6.5, labelpad=1)
        ax.set_ylabel("precision (%)", fontsize=6.5, labelpad=1)
        style_axes(ax, 6)


def draw_speed(fig, rect, results):
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


def draw_learning_curves(fig, rect, results, logs):
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
        for key, style in (("train_loss", "-"), ("val_loss", "--")):
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


def class_tick_size(count, length_in, largest=7.0):
    return max(2.5, min(largest, 0.85 * 72.0 * length_in / max(count, 1)))


def draw_dataset(fig, rect, results):
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


def draw_difference(fig, rect, results):
    avm = results["appearance_vs_motion"]
    rows = [r for r in avm["rows"] if r["difference"] is not None]
    w, _ = rect_inches(fig, rect)
    tick = class_tick_size(len(rows), w - 0.7)
    label_h = max([text_width(r["class"], tick) for r in rows] + [0.3]) + 0.15
    ax = region_axes(fig, rect, left=0.55, bottom=label_h + 0.1, right=0.1, top=0.1)
    diffs = [100.0 * r["difference"] for r in rows]
    ax.bar(np.arange(len(rows)), diffs, color=["#1f77b4" if d > 0 else "#ff7f0e" for d in diffs], width=0.8)
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_xticks(np.arange(len(rows)))
    ax.set_xticklabels([r["class"] for r in rows], rotation=90 if len(rows) > FEW_CLASSES else 30,
                       ha="center" if len(rows) > FEW_CLASSES else "right", fontsize=tick)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylabel(f"{avm['motion_model']} minus {avm['appearance_model']}\n(percentage points)", fontsize=7)
    ax.grid(axis="y", alpha=0.3, linewidth=0.5)
    style_axes(ax, 6.5)
    ax.tick_params(axis="x", labelsize=tick)


def _row_fractions(cm):
    cm = np.asarray(cm, dtype=np.float64)
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)


def draw_confusion(fig, rect, cm, class_list, title, counts=True, indices=None, cbar=True):
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
    w, h = rect_inches(fig, rect)
    n = len(idx)
    right = 0.55 if cbar else 0.1
    y_tick = class_tick_size(n, h - 1.2, 7.0)
    x_tick = class_tick_size(n, w - 1.2 - right, 7.0)
    left = max(text_width(s, y_tick) for s in row_names) + 0.2
    bottom = max(text_width(s, x_tick) for s in names) + 0.25
    ax = region_axes(fig, rect, left=left, bottom=bottom, right=right, top=0.25)
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
    if n > FEW_CLASSES:
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


def most_confused_classes(cm, count=NUM_CONFUSED_CLASSES):
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


def draw_per_class_heatmap(fig, rect, results):
    """Classes x models and fusions, per-class accuracy written in each cell."""
    order, classes = results["order"], results["class_list"]
    values = np.array([[results["evaluation"][e]["per_class_accuracy"][c] if results["evaluation"][e][
        "per_class_accuracy"][c] is not None else np.nan for e in order] for c in classes], dtype=np.float64)
    w, h = rect_inches(fig, rect)
    y_tick = class_tick_size(len(classes), h - 0.9, 7.0)
    left = max(text_width(c, y_tick) for c in classes) + 0.2
    bottom = max(text_width(e, 6.5) for e in order) * 0.8 + 0.3
    width = min(w - left - 0.1, 0.75 * len(order))
    ax = region_axes(fig, [rect[0], rect[1], (left + width + 0.1) / fig.get_size_inches()[0], rect[3]],
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


def save_figure(fig, figures_dir, name):
    paths = []
    for ext in FIGURE_FORMATS:
        path = os.path.join(figures_dir, f"{name}.{ext}")
        fig.savefig(path, dpi=PNG_DPI if ext == "png" else None)
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------
# The PDF report
# ---------------------------------------------------------------------------
def figure_specs(results, cms, logs):
    """Every figure as ``{name: (height in inches at the text width, draw(fig, rect), caption)}``."""
    order, classes = results["order"], results["class_list"]
    many = len(classes) > FEW_CLASSES
    ref = results["reference"]
    specs = {"topk": (3.0, lambda fig, rect: draw_topk(fig, rect, results),
                      "Top-1, top-5 and top-10 video accuracy of every model and fusion (top-1 written on its bar).")}
    ncols = 1 if len(order) == 1 else 2 if len(order) <= 4 else 3
    specs["precision_recall"] = (
        2.35 * math.ceil(len(order) / ncols), lambda fig, rect: draw_precision_recall(fig, rect, results),
        "Per-class precision against recall; the three classes of lowest F1 are named. A class never "
        "predicted sits at precision 0.")
    specs["speed_accuracy"] = (2.8, lambda fig, rect: draw_speed(fig, rect, results),
                               "Top-1 against model time per video (fusions, squares: the sum of their members).")
    with_logs = [n for n in order if logs.get(n)]
    ncols_logs = 1 if len(with_logs) <= 1 else 2 if len(with_logs) <= 4 else 3
    no_log = [n for n in results["models"] if not logs.get(n)]
    specs["learning_curves"] = (
        max(1.0, 2.2 * math.ceil(max(len(with_logs), 1) / ncols_logs)),
        lambda fig, rect: draw_learning_curves(fig, rect, results, logs),
        "Accuracy (train, val, test as logged: clip or frame level, not video level) and training loss (grey, "
        "right axis) per epoch, from each model's log.jsonl."
        + (f" No log found for {names_text(no_log)}." if no_log else ""),
    )
    frames = results["dataset"]["frames_per_video"] is not None
    specs["dataset"] = ((5.6 if frames else 3.2) if many else (4.2 if frames else 2.4),
                        lambda fig, rect: draw_dataset(fig, rect, results),
                        "Videos per class in each subset" + (" and frames per test video." if frames else "."))
    if results["appearance_vs_motion"]["rows"]:
        avm = results["appearance_vs_motion"]
        specs["accuracy_difference"] = (
            3.6 if many else 2.6, lambda fig, rect: draw_difference(fig, rect, results),
            f"{avm['motion_model']} minus {avm['appearance_model']} accuracy per class, sorted: classes on the left "
            f"gain from motion, classes on the right are recognised better from appearance.")
    for name in order:
        title = f"{name}: {entry_title(results, name)}"
        specs[f"confusion_{name}"] = (
            9.4 if many else min(6.8, 1.6 + 0.28 * len(classes)),
            lambda fig, rect, name=name, title=title: draw_confusion(fig, rect, cms[name], classes, title,
                                                                      counts=not many),
            f"Confusion matrix of {title} (rows: true class; colour: fraction of the true class's test videos, "
            f"square-root scale" + ("" if many else "; counts in the cells") + ").")
    if many:
        indices = most_confused_classes(cms[ref])
        specs["confusion_most_confused"] = (
            7.2, lambda fig, rect: draw_confusion(fig, rect, cms[ref], classes,
                                                   f"{ref}: the {len(indices)} most confused classes", indices=indices),
            f"The {len(indices)} classes of the most confused pairs of {ref} ({entry_title(results, ref)}), taken "
            f"pair by pair from the largest off-diagonal counts; counts in the cells, colour as in the full matrix.")
    specs["per_class_accuracy"] = (
        min(9.4, max(3.4, 1.2 + 0.105 * len(classes))),  # at least ~0.3 in per row for a few classes
        lambda fig, rect: draw_per_class_heatmap(fig, rect, results),
        "Per-class accuracy (%) of every model and fusion, classInd order.")
    return specs


def confusion_grid_spec(results, cms):
    """All confusion matrices of a few-class run as small multiples sharing their class labels (the
    left column names the true classes, the bottom row the predicted ones); counts in the cells."""
    order, classes = results["order"], results["class_list"]
    ncols = min(3 if len(classes) <= 10 else 2, len(order))
    nrows = math.ceil(len(order) / ncols)
    tick = 6.5 if len(classes) <= 10 else 5.0
    left = max(text_width(c, tick) for c in classes) + 0.3
    bottom = left
    gap, title_h = 0.15, 0.2
    cell = min(3.2, (TEXT_W - left - (ncols - 1) * gap) / ncols)
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
            ax.set_title(f"{name}: top-1 {pct(results['evaluation'][name]['top1'])}%", fontsize=7, pad=3)
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


def summary_blocks(results, tables):
    """The summary page as blocks: ("heading", text, level), ("paragraph", text, bullet), ("table", Table).
    Every number in it comes from ``results`` (results.json)."""
    split = results["split"]
    data = results["dataset"]
    blocks = [("heading", "UCF-101 action recognition: results", 0)]
    val = (f" Validation: groups {groups_text(data['val_groups'])} of the training list ({data['val']['videos']} "
           f"videos), used only to calibrate the models and choose fusion weights." if data["val"] else
           " No validation predictions were given: fusion weights are equal or given, never chosen on the test set.")
    blocks.append(("paragraph", f"Dataset: UCF-101, {results['classes']} classes, split {split}. Subset: test "
                                f"(testlist0{split}.txt, {results['videos']} videos); {data['train']['videos']} "
                                f"training videos ({data['train']['note']})." + val, None))
    blocks.append(("heading", "Models", 2))
    for name, model in results["models"].items():
        arch = f", {model['arch']}" if model.get("arch") and model["arch"] != name else ""
        blocks.append(("paragraph", f"{name}: {model['title']} ({entry_type(results, name)}{arch}). Test: "
                                    f"{model['test_description']} ({model['rows_per_video']['mean']:.1f} rows per "
                                    f"video).", "•"))
    if results["fusions"]:
        blocks.append(("heading", "Fusions", 2))
        for name, fusion in results["fusions"].items():
            blocks.append(("paragraph", f"{name}: {fusion['rule']} of {', '.join(fusion['members'])}; weights "
                                        f"{weights_text(fusion)} ({weights_source_text(fusion)}).", "•"))
    blocks.append(("table", tables["topk"]))
    for key, question in QUESTIONS.items():
        blocks.append(("heading", question, 2))
        for sentence in results["answers"][key]:
            blocks.append(("paragraph", sentence, "•"))
    return blocks


def write_report_pdf(path, results, tables, cms, logs):
    """The multi-page report; returns ``{"pages": N, "main_pages": M, "appendix_page": M + 1}``."""
    specs = figure_specs(results, cms, logs)
    many = results["classes"] > FEW_CLASSES
    ref = results["reference"]
    with matplotlib.rc_context({"pdf.fonttype": 42}), PdfPages(path) as pdf:
        w = PageWriter(pdf, f"UCF-101 split {results['split']}, {results['videos']} test videos; combine_results.py, "
                            f"{results['generated']}")
        w.new_page()
        for block in summary_blocks(results, tables):
            if block[0] == "heading":
                w.heading(block[1], block[2], keep=0.4)
            elif block[0] == "paragraph":
                w.paragraph(block[1], BODY_PT - (0.5 if block[2] else 0), indent=0.18 if block[2] else 0.0,
                            bullet=block[2])
            else:
                w.space(0.05)
                w.table(block[1])

        def figure(name):
            height, draw, caption = specs[name]
            w.figure(height, draw, caption)

        w.heading("Accuracy and fusion", keep=3.3)
        figure("topk")
        if "fusions" in tables:
            w.table(tables["fusions"])
        if "validation" in tables:
            w.table(tables["validation"])
        w.table(tables["macro"])
        w.heading("Best and worst classes", keep=2.0)
        w.table_grid([tables[f"best_worst_{n}"] for n in results["order"]], columns=2,
                     caption=f"The {NUM_LISTED} best and worst classes of each model and fusion (per-class accuracy %, "
                             f"ties by name).")
        w.heading("Most confused pairs", keep=2.0)
        w.table_grid([tables[f"most_confused_{n}"] for n in results["order"]], columns=2,
                     caption="The most confused pairs of each model and fusion: % of the true class's test videos "
                             "predicted as the other class (videos: count / test videos of the true class).")
        if many:
            w.page_break()
            w.heading(f"Confusion matrix of the best: {ref}", keep=9.0)
            figure(f"confusion_{ref}")
            w.heading("The most confused classes", keep=6.0)
            figure("confusion_most_confused")
        else:
            height, draw, caption = confusion_grid_spec(results, cms)
            w.heading("Confusion matrices", keep=min(height, 9.0) + 0.3)
            w.figure(height, draw, caption)
        w.heading("Appearance vs motion", keep=2.5)
        w.table(tables["appearance_vs_motion"])
        if "accuracy_difference" in specs:
            figure("accuracy_difference")
        w.heading("Precision and recall per class", keep=specs["precision_recall"][0])
        figure("precision_recall")
        w.heading("Speed", keep=1.2 + 0.16 * len(results["order"]) + specs["speed_accuracy"][0])
        w.table(tables["timing"])
        figure("speed_accuracy")
        w.heading("Learning curves", keep=specs["learning_curves"][0])
        figure("learning_curves")
        w.heading("Dataset", keep=1.2)
        w.table(tables["dataset"])
        figure("dataset")

        w.mark("appendix")
        w.heading("Appendix: per-class results", 0, keep=1.0)
        figure("per_class_accuracy")
        for key in ("per_class_recall", "per_class_precision", "per_class_f1"):
            if many:
                w.page_break()
            w.table(tables[key], size=SMALL_PT)
        if many:
            for name in results["order"]:
                if name != ref:
                    w.page_break()
                    figure(f"confusion_{name}")
        w.close()
        info = pdf.infodict()
        info["Title"] = "UCF-101 action recognition: results"
    return {"pages": w.pages, "main_pages": w.marks["appendix"] - 1, "appendix_page": w.marks["appendix"]}


def write_figures(figures_dir, specs, aliases=None):
    """Each figure as figures/<name>.png and .pdf, at the text width of the report; ``aliases`` maps
    another name to one of them (a copy)."""
    os.makedirs(figures_dir, exist_ok=True)
    written = []
    with matplotlib.rc_context({"pdf.fonttype": 42}):
        for name, (height, draw, _) in specs.items():
            fig = new_figure(TEXT_W, height)
            draw(fig, [0.0, 0.0, 1.0, 1.0])
            written += save_figure(fig, figures_dir, name)
    for alias, name in (aliases or {}).items():
        for ext in FIGURE_FORMATS:
            written.append(shutil.copyfile(os.path.join(figures_dir, f"{name}.{ext}"),
                                           os.path.join(figures_dir, f"{alias}.{ext}")))
    return written


# ---------------------------------------------------------------------------
# Evaluation of one split
# ---------------------------------------------------------------------------
def evaluate_split(args):  # noqa: C901 (split up in the restructure, issue 21)
    specs = model_specs(args)
    names = [name for name, _, _ in specs]
    plans = plan_fusions(args, names)
    given_logs = log_paths(args, names)
    val_specs, seen = [], set()
    for text in args.val or []:
        name, path = parse_named(text, "--val")
        if name not in names:
            fail(f"--val {text}: {name!r} is not one of the models given ({', '.join(names)})")
        if name in seen:
            fail(f"--val {name} is given twice")
        seen.add(name)
        val_specs.append((name, path, f"--val {text}"))
    auto = [p for p in plans if isinstance(p["weights"], str)]  # auto or auto-top1
    if auto and not val_specs:
        fail(f"--weights {auto[0]['weights']} chooses the fusion weights on validation predictions: give --val "
             "NAME=DIR for "
             "each fused model (the folders the test scripts write with --subset val); without them the only "
             "choice would be on the test set (test-set tuning)")
    for plan in auto:
        lacking = [m for m in plan["members"] if m not in seen]
        if lacking:
            fail(f"--weights {plan['weights']} for fusion {plan['name']}: no --val predictions for "
                 f"{', '.join(lacking)}")
    if args.bootstrap < 1:
        fail(f"--bootstrap {args.bootstrap}: give a number of resamples of 1 or more (e.g. 1000)")
    if args.weight_step is not None:
        try:
            metrics.simplex_grid(2, args.weight_step)
        except ValueError as e:
            fail(f"--weight-step: {e}")
    try:
        given_groups = video_groups.parse_groups(args.val_groups) if args.val_groups else None
    except ValueError as e:
        fail(f"--val-groups: {e}")

    try:
        dataset = datasets.resolve_dataset(args.data_dir, args.dataset)
        class_list, (train_paths, train_labels), (test_paths, test_labels) = datasets.get_split(
            args.data_dir, args.split, dataset=dataset)
    except (FileNotFoundError, ValueError) as e:
        fail(str(e))
    if args.dataset == "auto":
        print(f"dataset: {dataset} (detected from the contents of --data-dir {args.data_dir}; --dataset chooses)")
    class_list = [str(c) for c in class_list]
    num_classes = len(class_list)
    if len(test_paths) == 0:
        fail(f"split {args.split}'s test list under {args.data_dir} lists no videos")

    check_output_dir(args.output_dir, {"--data-dir": guards.dataset_inputs(args.data_dir),
                                       "--model": [d for _, d, _ in specs], "--val": [d for _, d, _ in val_specs]})
    metas = {name: read_model_json(d, label) for name, d, label in specs}
    for name, directory, label in specs:
        check_meta(label, metas[name], "test", args.split)
        check_classes(label, directory, metas[name], class_list)
    val_metas = {name: read_model_json(d, label) for name, d, label in val_specs}
    for name, directory, label in val_specs:
        check_meta(label, val_metas[name], "val", args.split)
        check_classes(label, directory, val_metas[name], class_list)
        test_ckpt, val_ckpt = (metas[name] or {}).get("checkpoint"), (val_metas[name] or {}).get("checkpoint")
        if test_ckpt and val_ckpt and test_ckpt != val_ckpt:
            warn(f"{label}: written with checkpoint {val_ckpt}, the test folder with {test_ckpt}")

    # Validation first: the fusion weights are chosen from the val folders alone, before any test file is read.
    val_groups, val_scans, val_labels, choices, temperatures = None, {}, None, {}, {}
    if val_specs:
        val_groups = validation_groups(val_specs, val_metas, given_groups)
        try:
            _, val_paths, val_labels = datasets.subset_videos(
                args.data_dir, args.split, "val", val_groups, dataset=dataset
            )
        except (FileNotFoundError, ValueError) as e:
            fail(f"--val: {e}")
        val_scans = scan_folders(val_specs, val_paths, num_classes,
                                 f"val videos (groups {groups_text(val_groups)} of trainlist0{args.split}.txt)",
                                 "write them with the test script's --subset val and the validation groups the "
                                 "model was trained with")
        for name, scan in val_scans.items():
            temperatures[name] = metrics.fit_temperature(scan.scores, val_labels)
        for plan in auto:
            members = plan["members"]
            temps = [temperatures[m]["temperature"] for m in members] if plan["weights"] == "auto" else None
            choices[plan["name"]] = metrics.choose_weights([val_scans[m].scores for m in members], val_labels,
                                                           plan["rule"], args.weight_step,
                                                           AUTO_CRITERIA[plan["weights"]], temps)
            c = choices[plan["name"]]
            print(f"fusion {plan['name']}: weights {', '.join(f'{m} {w:g}' for m, w in zip(members, c['weights']))} "
                  + (f"on scores divided by the temperatures {', '.join(f'{t:.3g}' for t in temps)} " if temps else "")
                  + f"chosen by validation {'NLL' if c['criterion'] == 'nll' else 'top-1'} on {len(val_labels)} "
                  f"videos (val top-1 {pct(c['top1'])}%, NLL {c['nll']:.3f}; equal weights "
                  f"{pct(c['equal_weights_top1'])}%, "
                  f"{c['equal_weights_nll']:.3f}; grid step {c['step']:g}, {c['grid_points']} points)", flush=True)

    test_scans = scan_folders(specs, test_paths, num_classes, f"test videos of split {args.split}",
                              "the test scripts resume: rerun them to finish; or check --data-dir and --split")

    results = {
        "split": args.split,
        "subset": "test",
        "videos": len(test_paths),
        "classes": num_classes,
        "class_list": class_list,
        "generated": datetime.datetime.now().isoformat(timespec="seconds"),
        "inputs": {
            "data_dir": args.data_dir,
            "models": {n: d for n, d, _ in specs},
            "val": {n: d for n, d, _ in val_specs},
            "val_groups": list(val_groups) if val_groups else None,
        },
        "order": names + [p["name"] for p in plans],
        "models": {},
        "fusions": {},
        "evaluation": {},
    }
    logs = {}
    for name, directory, _ in specs:
        log_path = find_log(name, directory, metas[name], given_logs)
        results["models"][name] = describe_model(name, directory, metas[name], test_scans[name], log_path,
                                                 os.path.join(directory, "model.json"))
        if name in val_scans:
            results["models"][name]["val_predictions_dir"] = dict((n, d) for n, d, _ in val_specs)[name]
            results["models"][name]["val_top1"] = metrics.topk_accuracy(val_scans[name].scores, val_labels, (1,))[
                "top1"
            ]
            fit = temperatures[name]
            results["models"][name].update({"val_nll": fit["nll_before"], "temperature": fit["temperature"],
                                            "temperature_at_bound": fit["at_bound"],
                                            "val_nll_calibrated": fit["nll_after"],
                                            "temperature_range": list(metrics.TEMPERATURE_RANGE)})
        records = read_log(log_path) if log_path else []
        if records:
            logs[name] = records
    distinguish_titles(results["models"])
    results["inputs"]["logs"] = {n: results["models"][n]["log"] for n in names}

    scores = {name: test_scans[name].scores for name in names}
    cms = {}
    for plan in plans:
        name, members = plan["name"], plan["members"]
        calibrated = plan["weights"] == "auto"
        temps = [temperatures[m]["temperature"] for m in members] if calibrated else [1.0] * len(members)
        if isinstance(plan["weights"], str):
            weights, source = choices[name]["weights"], plan["weights"]
        else:
            weights = plan["weights"] or [1.0 / len(members)] * len(members)
            source = "given" if plan["weights"] else "equal"
        validation = None
        if all(m in val_scans for m in members):
            validation = fusion_validation([val_scans[m].scores for m in members], val_labels, plan, weights, temps,
                                           [temperatures[m]["temperature"] for m in members], choices.get(name), args)
            validation.update({"videos": int(len(val_labels)), "val_groups": list(val_groups)})
        scores[name] = metrics.fuse_scores(metrics.calibrate([scores[m] for m in members], temps), plan["rule"],
                                           weights)
        results["fusions"][name] = {"title": fusion_title(name, members), "members": members, "rule": plan["rule"],
                                    "rule_description": metrics.FUSION_RULES[plan["rule"]],
                                    "weights": [float(w) for w in weights], "weights_source": source,
                                    "calibration": "temperature" if calibrated else "none",
                                    "temperatures": [float(t) for t in temps],
                                    "effective_weights": effective_weights(plan["rule"], weights, temps),
                                    "validation": validation}
    for name in results["order"]:
        results["evaluation"][name], cms[name] = metrics.summarize(scores[name], test_labels, class_list,
                                                                   num_listed=NUM_LISTED)
    for name in results["fusions"]:
        compare_fusion(results, name)
        results["fusions"][name]["timing"] = fusion_timing(results, name)
    results["reference"] = best_of(results, results["order"])
    results["appearance_vs_motion"] = appearance_vs_motion(results)

    kept_labels = train_labels
    if val_groups:
        try:
            (_, kept_labels), _ = video_groups.split_by_groups(train_paths, train_labels, val_groups)
        except ValueError as e:
            fail(f"--val: {e}")
    def frames_from(scans):
        source = next((n for n in names if n in scans and scans[n].attr_values("frames") is not None), None)
        return (scans[source].attr_values("frames"), source) if source else None

    results["dataset"] = dataset_statistics(class_list, kept_labels, test_labels, val_labels, val_groups,
                                            frames_from(test_scans), frames_from(val_scans))
    results["dataset"]["name"] = dataset  # ucf101 or hmdb51: the class list's source and order
    if val_specs:
        results["dataset"]["val"]["video_names"] = [video_name(p) for p in val_paths]
    results["answers"] = build_answers(results)
    return results, cms, logs


def effective_weights(rule, weights, temperatures):
    """logmean: the weights on the raw scores that the weights on temperature-scaled scores amount to
    (w_i / T_i, normalised to sum 1); None for prob and max, where a temperature is not a weight."""
    if rule != "logmean":
        return None
    raw = [w / t for w, t in zip(weights, temperatures)]
    return [float(r / sum(raw)) for r in raw]


def fusion_validation(val_scores, val_labels, plan, weights, temperatures, member_temperatures, choice, args):
    """A fusion's validation evidence: its NLL and top-1, each member's (temperature-scaled by
    ``member_temperatures``, the fitted ones: every fusion is held to the bar of a calibrated member), the
    weight search's numbers (``choice``, for --weights auto and auto-top1) and the bootstrap."""
    members = plan["members"]
    fused, log_probs = metrics.fused_log_probs(val_scores, plan["rule"], weights, temperatures)
    out = {"top1": float(np.mean(np.argmax(fused, axis=1) == val_labels)),
           "nll": float(np.mean(metrics.per_video_nll(log_probs, val_labels))),
           "members": {}}
    for m, s, t in zip(members, val_scores, member_temperatures):
        nll, correct = metrics.member_losses(s, val_labels, t)
        out["members"][m] = {"nll": float(nll.mean()), "top1": float(correct.mean()), "temperature": float(t)}
    if choice:
        out.update({k: v for k, v in choice.items() if k not in ("weights", "top1", "nll")})
    criterion = AUTO_CRITERIA.get(plan["weights"]) if isinstance(plan["weights"], str) else None
    evidence = metrics.bootstrap_fusion(val_scores, val_labels, plan["rule"], weights, temperatures, criterion,
                                        args.weight_step, args.bootstrap, args.bootstrap_seed,
                                        member_temperatures=member_temperatures)
    evidence["best_member"] = members[evidence["best_member"]]
    out["bootstrap"] = evidence
    return out


def write_outputs(results, cms, logs, output_dir):
    figures_dir = os.path.join(output_dir, "figures")
    os.makedirs(figures_dir, exist_ok=True)
    results_path = os.path.join(output_dir, "results.json")
    metrics.write_json(results_path, results)
    for name, cm in cms.items():
        np.save(os.path.join(output_dir, f"confusion_{name}.npy"), cm)
    tables = build_tables(results)
    write_tables(tables, results, output_dir)
    write_figures(figures_dir, figure_specs(results, cms, logs),
                  aliases={"confusion_best": f"confusion_{results['reference']}"})  # a fixed name for report.tex
    report_path = os.path.join(output_dir, "report.pdf")
    results["report"] = write_report_pdf(report_path, results, tables, cms, logs)
    metrics.write_json(results_path, results)
    return results_path, report_path


def print_results(results):
    ev = results["evaluation"]
    print()
    print(metrics.format_topk_table({f"{n} ({entry_title(results, n)})": ev[n] for n in results["order"]}, ks=TOPK))
    for name, fusion in results["fusions"].items():
        print(f"fusion {name} {fusion['verdict']}")


# ---------------------------------------------------------------------------
# --summarize: mean and standard deviation over the three splits
# ---------------------------------------------------------------------------
SUMMARY_KEYS = ("top1", "top5", "top10", "mean_class_accuracy")
SUMMARY_LABELS = {"top1": "Top-1", "top5": "Top-5", "top10": "Top-10", "mean_class_accuracy": "Mean class acc."}


def read_split_results(directory):
    """(split, {name: (title, {key: value})}) from a report folder's results.json (or the file itself);
    results.json files of the older two-model layout (single_frame/3d/combined) are read too."""
    path = directory if os.path.isfile(directory) else os.path.join(directory, "results.json")
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        fail(f"--summarize {directory}: no results.json (the --output-dir of a combine_results.py run)")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        fail(f"--summarize {directory}: cannot read {path} ({e})")
    if not isinstance(data, dict) or not isinstance(data.get("split"), int):
        fail(f"--summarize {directory}: {path} is not a combine_results.py results.json (no split)")
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
        fail(f"--summarize {directory}: {path} holds no model results")
    return data["split"], entries


def summarize_splits(directories):
    """Mean ± std (n - 1 denominator) over the splits of each model and fusion; an entry missing from a
    split, or missing a number there, gets per-split values only and no mean."""
    splits = {}
    for directory in directories:
        split, entries = read_split_results(directory)
        if split in splits:
            fail(f"--summarize: split {split} is given twice ({splits[split][0]} and {directory})")
        splits[split] = (directory, entries)
    order = sorted(splits)
    names = []
    for split in order:
        names += [n for n in splits[split][1] if n not in names]
    summary = {"splits": order, "inputs": {str(s): splits[s][0] for s in order}, "entries": {},
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


def summary_table(summary):
    order = summary["splits"]
    rows = []
    for name, e in summary["entries"].items():
        row = [name, e["title"]]
        for key in SUMMARY_KEYS:
            row.append(f"{100 * e[key]['mean']:.2f} ± {100 * e[key]['std']:.2f}" if e[key] else "n/a")
        for s in order:
            value = e["per_split"].get(str(s), {}).get("top1")
            row.append(pct(value) if value is not None else "missing")
        row.append(f"missing from split {', '.join(map(str, e['missing_from']))}" if e["missing_from"] else "")
        rows.append(row)
    incomplete = [n for n, e in summary["entries"].items() if e["missing_from"]]
    note = (f"Mean ± sample standard deviation (n - 1) over splits {', '.join(map(str, order))}, in %. "
            + (f"Not averaged (missing from a split, never averaged over fewer splits): {names_text(incomplete)}."
               if incomplete else "Every model and fusion is in every split."))
    return Table(f"UCF-101, mean over {len(order)} splits (video-level accuracy, %).",
                 ["Name", "Model", "Top-1", "Top-5", "Top-10", "Mean class acc."] + [f"Top-1 split {s}" for s in order]
                 + ["Note"], "llrrrr" + "r" * len(order) + "l", rows, note)


def draw_summary(fig, rect, summary):
    names = list(summary["entries"])
    label_h = max(text_width(n, 6.5) for n in names) * 0.75 + 0.2
    ax = region_axes(fig, rect, left=0.55, bottom=label_h + 0.1, right=0.1, top=0.25)
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
    style_axes(ax)


def write_summary(summary, output_dir):
    os.makedirs(os.path.join(output_dir, "figures"), exist_ok=True)
    table = summary_table(summary)
    metrics.write_json(os.path.join(output_dir, "summary.json"), summary)
    with open(os.path.join(output_dir, "summary.md"), "w", encoding="utf-8") as f:
        f.write(f"# UCF-101: mean over splits {', '.join(map(str, summary['splits']))}\n\n" + table_to_markdown(table))
    with open(os.path.join(output_dir, "summary.tex"), "w", encoding="utf-8") as f:
        f.write(table_to_latex(table))
    height = 3.2
    write_figures(
        os.path.join(output_dir, "figures"),
        {"summary": (height, lambda fig, rect: draw_summary(fig, rect, summary), "")},
    )
    with matplotlib.rc_context({"pdf.fonttype": 42}), PdfPages(os.path.join(output_dir, "summary.pdf")) as pdf:
        w = PageWriter(pdf, f"combine_results.py --summarize, {datetime.datetime.now().isoformat(timespec='seconds')}")
        w.new_page()
        w.heading(f"UCF-101: mean over splits {', '.join(map(str, summary['splits']))}", 0, keep=0.5)
        for s, directory in summary["inputs"].items():
            w.paragraph(f"Split {s}: {directory}", BODY_PT - 0.5, indent=0.18, bullet="•")
        w.space(0.1)
        w.table(table)
        w.figure(height, lambda fig, rect: draw_summary(fig, rect, summary),
                 "Top-1 per model and fusion: bars are the mean over the splits with the standard deviation, "
                 "points the single splits.")
        w.close()
    width = max(len(n) for n in summary["entries"])
    for name, e in summary["entries"].items():
        shown = (f"top-1 {100 * e['top1']['mean']:.2f} ± {100 * e['top1']['std']:.2f} %" if e["top1"] else
                 "no mean: missing from split " + ", ".join(map(str, e["missing_from"])) if e["missing_from"] else
                 "no mean: top-1 not recorded in every split")
        print(f"{name:<{width}}  {shown}")
    print(f"\nSummary: {os.path.join(output_dir, 'summary.md')}")


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------
def check_output_folder(output_dir):
    """A folder that can be made or written to, checked before the work: a file of that name is one line."""
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        fail(f"--output-dir {output_dir} is a file, not a folder: choose another --output-dir (the file is left "
             f"as it is)")
    parent = os.path.dirname(os.path.abspath(output_dir))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        fail(f"--output-dir {output_dir}: {parent} is a file, not a folder: choose another --output-dir")


def main(args):
    print("arguments: " + " ".join(f"{k}={v}" for k, v in sorted(vars(args).items())), flush=True)
    check_output_folder(args.output_dir)
    if args.summarize:
        given = [flag for flag, value in (("--model", args.model), ("--single-frame", args.single_frame),
                                          ("--3d", args.three_d), ("--val", args.val), ("--fuse", args.fuse))
                 if value]
        if given:
            fail(f"--summarize reads finished report folders; it takes no {', '.join(given)}")
        if len(args.summarize) < 2:
            fail("--summarize needs the report folders of two splits or more (e.g. three: split 1, 2 and 3)")
        check_output_dir(args.output_dir, {"--summarize": args.summarize})
        summary = summarize_splits(args.summarize)
        write_summary(summary, args.output_dir)
        return summary
    if not args.data_dir:
        fail("--data-dir is required (the dataset root holding ucfTrainTestlist/)")
    results, cms, logs = evaluate_split(args)
    results_path, report_path = write_outputs(results, cms, logs, args.output_dir)
    print_results(results)
    print(f"\nResults: {results_path}")
    print(f"Report:  {report_path} ({results['report']['pages']} pages, appendix from page "
          f"{results['report']['appendix_page']})")
    return results


def get_args_parser(add_help=True):
    parser = argparse.ArgumentParser(
        description="Evaluate and fuse the models' per-video predictions and write the report (results.json, "
                    "tables, figures, report.pdf); or, with --summarize, average finished reports over the splits.",
        add_help=add_help)
    parser.add_argument("--data-dir", default=None,
                        help="dataset root holding ucfTrainTestlist/ or testTrainMulti_7030_splits/ (the video folders "
                             "are not needed) (required unless --summarize)")
    parser.add_argument("--dataset", choices=datasets.DATASETS, default="auto", help=datasets.DATASET_HELP)
    parser.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="official split (default: 1)")
    parser.add_argument("--model", action="append", metavar="NAME=DIR",
                        help="a model's test prediction folder; repeat for each model; NAME is letters, digits, _ "
                             "and - (e.g. single_frame, tsn, 3d, c3d, rnn) (default: none)")
    parser.add_argument("--single-frame", metavar="DIR", help="shorthand for --model single_frame=DIR (default: none)")
    parser.add_argument("--3d", dest="three_d", metavar="DIR", help="shorthand for --model 3d=DIR (default: none)")
    parser.add_argument("--fuse", action="append", metavar="NAME,NAME,...|all",
                        help="a fusion to report, e.g. single_frame,3d or all; repeatable (default: one fusion of all "
                             "models when there are two or more)")
    parser.add_argument(
        "--fusion",
        action="append",
        choices=tuple(metrics.FUSION_RULES),
        help="fusion rule, once for every fusion or once per --fuse: logmean = weighted sum of the mean "
        "log-softmax scores, prob = weighted mean of the softmax distributions, max = element-wise "
        "max of the weighted distributions (default: logmean)",
    )
    parser.add_argument("--weights", action="append", metavar="W1,W2,...|auto|auto-top1|equal",
                        help="fusion weights in the order of the fusion's models, once for every fusion or once per "
                             "--fuse. auto: each model's scores calibrated by temperature scaling on its --val "
                             f"predictions (one temperature, fitted by NLL, in [{metrics.TEMPERATURE_RANGE[0]:g}, "
                             f"{metrics.TEMPERATURE_RANGE[1]:g}]), the weights chosen by the "
                             "validation NLL of the fused distribution (among weightings within one standard error "
                             "of the best NLL, which validation cannot tell apart: the highest top-1, then the "
                             "closest to equal weights): top-1 on a few "
                             "dozen videos cannot tell weightings apart and lets a sure, wrong model outvote a right "
                             "one. auto-top1: the rule before that (highest validation top-1 on the raw scores, ties "
                             "to equal weights), to reproduce older reports. Numbers and equal fuse the raw scores "
                             "as given, e.g. TSN's 1,1.5 (default: equal)")
    parser.add_argument("--val", action="append", metavar="NAME=DIR",
                        help="a model's validation prediction folder (test script with --subset val), for --weights "
                             "auto and the validation accuracy (default: none)")
    parser.add_argument("--val-groups", default=None,
                        help="the validation groups, e.g. 8-10, when the --val folders have no model.json. "
                             + video_groups.GROUPS_HELP.replace("%", "%%") + " (default: from their model.json)")
    parser.add_argument("--weight-step", type=float, default=None,
                        help="grid step of --weights auto/auto-top1 over the simplex of weights (default: 0.05 for "
                             "2-3 models, "
                             "0.1 for 4-6, 0.2 beyond)")
    parser.add_argument("--bootstrap", type=int, default=metrics.BOOTSTRAP_RESAMPLES,
                        help="resamples of the validation videos for the evidence of each fusion whose models all "
                             f"have --val predictions (default: {metrics.BOOTSTRAP_RESAMPLES})")
    parser.add_argument("--bootstrap-seed", type=int, default=0,
                        help="seed of the bootstrap: the same seed gives the same numbers (default: 0)")
    parser.add_argument("--log", action="append", metavar="NAME=PATH",
                        help="a model's training log.jsonl for the learning curves (default: model.json \"log\", "
                             "else <predictions dir>/../log.jsonl)")
    parser.add_argument("--logs", default=None,
                        help="older form: SF_LOG,3D_LOG for the single_frame and 3d models, either may be empty "
                             "(default: none)")
    parser.add_argument("--output-dir", default="report/", help="where to write the results (default: report/)")
    parser.add_argument("--summarize", nargs="+", metavar="REPORT_DIR", default=None,
                        help="instead of evaluating: read these report folders (one per split, each with its "
                             "results.json) and write the mean ± std over the splits to --output-dir (default: off)")
    return parser


if __name__ == "__main__":
    main(get_args_parser().parse_args())
