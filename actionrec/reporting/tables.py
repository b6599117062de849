"""The report's tables as plain strings (``Table``), computed from results.json; typeset in the PDF and
written as Markdown and LaTeX by ``table_files``."""
from typing import Any, Dict, List, Optional, Sequence, Tuple

from actionrec import formatting
from actionrec.evaluation import calibration, comparison, model_info, published
from actionrec.reporting import sentences


class Table:
    """caption, header [str], align (one of l/r/c per column), rows [[str]], note; a cell may hold
    several lines separated by newlines (joined with '; ' in Markdown and LaTeX)."""

    def __init__(self, caption: str, header: List[str], align: str, rows: Sequence[int], note: str = "") -> None:
        self.caption, self.header, self.align, self.rows, self.note = caption, header, align, rows, note


def val_top1(results: Dict[str, Any], name: str) -> Optional[float]:
    """Validation top-1 of a model or fusion, or None."""
    if name in results["models"]:
        return results["models"][name].get("val_top1")
    return (results["fusions"][name].get("validation") or {}).get("top1")


def dataset_title(results: Dict[str, Any]) -> str:
    """'UCF-101' or 'HMDB-51' (results.json of older versions: UCF-101)."""
    return published.DATASET_TITLES.get(results.get("dataset_name") or "ucf101", "UCF-101")


def published_cells(results: Dict[str, Any]) -> Tuple[List[str], str]:
    """(one 'Published' cell per entry of results['order'], the note naming their sources); ([], '') when
    no entry has a published number."""
    numbers = results.get("published") or {}
    if not any(numbers.get(n) for n in results["order"]):
        return [], ""
    cells = [numbers[n]["text"] if numbers.get(n) else "–" for n in results["order"]]
    sources = []
    for number in numbers.values():
        if number:
            line = f"{number['title']}: {number['text']} ({number['scope']}; {number['source']}"
            line += f"; {number['note']})" if number.get("note") else ")"
            if line not in sources:
                sources.append(line)
    return cells, "; published: " + "; ".join(sources)


def topk_table(results: Dict[str, Any]) -> Table:
    ev = results["evaluation"]
    with_val = any(val_top1(results, n) is not None for n in results["order"])
    published_column, published_note = published_cells(results)
    rows = [
        [model_info.entry_title(results, n), model_info.entry_type(results, n)]
        + [formatting.pct(ev[n][f"top{k}"]) for k in comparison.TOPK]
        + [formatting.pct(ev[n]["mean_class_accuracy"]), formatting.pct(ev[n]["macro_f1"])]
        + ([formatting.pct(val_top1(results, n))] if with_val else [])
        + ([published_column[i]] if published_column else [])
        for i, n in enumerate(results["order"])
    ]
    return Table(f"Video-level accuracy (%) on the {results['videos']} test videos of {dataset_title(results)} "
                 f"split {results['split']}.",
                 ["Model", "Type", "Top-1", "Top-5", "Top-10", "Mean class acc.", "Macro F1"]
                 + (["Val top-1"] if with_val else []) + (["Published top-1"] if published_column else []),
                 "llrrrrr" + ("r" if with_val else "") + ("r" if published_column else ""), rows,
                 "Mean class accuracy = mean per-class recall (the TSN/mmaction2 number); top-k: the fraction of "
                 "videos whose class is among the k best scores"
                 + ("; val top-1: on the validation videos, which chose the fusion weights" if with_val else "")
                 + published_note + ".")


def fusions_table(results: Dict[str, Any]) -> Table:
    ev = results["evaluation"]
    rows = []
    for name, f in results["fusions"].items():
        source = {"auto": "validation NLL", "auto-top1": "validation top-1", "equal": "equal",
                  "given": "given"}[f["weights_source"]]
        val = f["validation"]["top1"] if f.get("validation") else None
        weights = [f"{m} {w:g}" + (f" (T {t:.3g})" if f["calibration"] == "temperature" else "")
                   for m, w, t in zip(f["members"], f["weights"], f["temperatures"])]
        rows.append(
            [
                name,
                f["rule"],
                "\n".join(weights),
                source,
                formatting.pct(val),
                formatting.pct(ev[name]["top1"]),
                f"{f['best_member']} {formatting.pct(ev[f['best_member']]['top1'])}",
            ]
            + [formatting.pct(f["gain"][f"top{k}"], signed=True) for k in comparison.TOPK]
        )
    note = ("Gain: fusion minus its best member at each k (percentage points). Val top-1: accuracy of the "
            "weights on the validation videos (never the test set). T: the member's temperature (its scores are "
            "divided by it before the weights apply), fitted on the validation videos.")
    below = [n for n, f in results["fusions"].items() if f["below_best_member"]]
    if below:
        note += f" Below its best member on test top-1: {formatting.names_text(below)}."
    return Table("Fusions: rule, weights and what they gain over their members.",
                 ["Fusion", "Rule", "Weights", "From", "Val top-1", "Test top-1", "Best member",
                  "Gain top-1", "Gain top-5", "Gain top-10"], "lllrrrlrrr", rows, note)


def validation_table(results: Dict[str, Any]) -> Table:
    """Each model's and fusion's validation NLL and top-1, the temperatures, and each fusion's bootstrap."""
    rows = []
    for name, m in results["models"].items():
        if m.get("val_top1") is None:
            continue
        bound = f" (at the {m['temperature_at_bound']} bound)" if m["temperature_at_bound"] else ""
        rows.append([model_info.entry_title(results, name), formatting.pct(m["val_top1"]), f"{m['val_nll']:.3f}",
                     f"{m['temperature']:.3g}{bound}", f"{m['val_nll_calibrated']:.3f}", "", "", "", ""])
    for name, f in results["fusions"].items():
        v = f.get("validation")
        if not v:
            continue
        b = v["bootstrap"]
        calibrated = f["calibration"] == "temperature"
        rows.append(
            [
                model_info.entry_title(results, name),
                formatting.pct(v["top1"]),
                "" if calibrated else f"{v['nll']:.3f}",
                "members'" if calibrated else "1 (none)",
                f"{v['nll']:.3f}" if calibrated else "",
                f"{b['best_member']}: {sentences.interval_text(b['gain_nll']['interval'], digits=3)}",
                sentences.interval_text(b["gain_top1"]["interval"], 100.0),
                "" if b["chosen_again"] is None else formatting.pct(b["chosen_again"]),
                "yes" if b["supported"] else "no: " + b["best_member"],
            ]
        )
    data = results["dataset"]
    b = next((f["validation"]["bootstrap"] for f in results["fusions"].values() if f.get("validation")), None)
    note = (
        "NLL: mean negative log-likelihood of the true class (nats; lower is better), of the raw scores and "
        "of the scores divided by the temperature T (fitted on these videos by NLL, bounded to "
        f"[{calibration.TEMPERATURE_RANGE[0]:g}, {calibration.TEMPERATURE_RANGE[1]:g}]). Gain: the fusion against its "
        "member of lowest temperature-scaled validation NLL (every fusion, calibrated or not, is held to that "
        "bar: an NLL rewards sharpness as well as accuracy)"
    )
    if b:
        note += (f"; {b['level'] * 100:g}% percentile intervals over {b['resamples']} bootstrap resamples of the "
                 f"validation videos (seed {b['seed']}). Chosen again: how often the weight choice, rerun on a "
                 "resample (temperatures held), picks the same weights. Supported: the top-1 gain's interval lies "
                 "above 0, or the fusion's validation top-1 is not below the member's and the NLL gain's interval "
                 "lies above 0; if not, that member is the recommendation.")
    return Table(f"Validation evidence: the {data['val']['videos']} validation videos (groups "
                 f"{formatting.groups_text(data['val_groups'])}); the list is in results.json.",
                 ["Model or fusion", "Val top-1", "NLL", "T", "NLL (T)", "NLL gain over", "Top-1 gain (points)",
                  "Chosen again", "Supported"], "lrrrrlrrl", rows, note + ("" if b else "."))


def macro_table(results: Dict[str, Any]) -> Table:
    ev = results["evaluation"]
    rows = [
        [
            model_info.entry_title(results, n),
            formatting.pct(ev[n]["macro_precision"]),
            formatting.pct(ev[n]["macro_recall"]),
            formatting.pct(ev[n]["macro_f1"]),
            str(len(ev[n]["never_predicted"])),
        ]
        for n in results["order"]
    ]
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


def timing_table(results: Dict[str, Any]) -> Table:
    rows = []
    for n in results["order"]:
        t = results["models"][n]["timing"] if n in results["models"] else results["fusions"][n].get("timing")
        rows.append([model_info.entry_title(results, n)] + (_timing_cells(t) if t else ["not measured"] + [""] * 7))
    return Table("Speed of the test runs (from each prediction folder's model.json \"timing\").",
                 ["Model", "Device", "Batch", "AMP", "Views/video", "Load ms/video", "Model ms/video",
                  "FPS end to end", "FPS model"], "llrlrrrrr", rows,
                 "Load: mean time a loader worker spent reading and resizing one video; model: mean forward time "
                 "per video (CUDA-synchronised); FPS end to end: frames read / wall time; FPS model: frames / "
                 "model time. A fusion's row adds up its members run one after another.")


def best_worst_table(results: Dict[str, Any], name: str) -> Table:
    ev = results["evaluation"][name]
    rows = []
    for i in range(max(len(ev["best_classes"]), len(ev["worst_classes"]))):
        row = [str(i + 1)]
        for key in ("best_classes", "worst_classes"):
            entries = ev[key]
            row += [entries[i][0], formatting.pct(entries[i][1])] if i < len(entries) else ["", ""]
        rows.append(row)
    return Table(model_info.entry_title(results, name), ["#", "Best class", "%", "Worst class", "%"], "rlrlr", rows)


def confused_table(results: Dict[str, Any], name: str) -> Table:
    ev = results["evaluation"][name]
    rows = []
    for i, (true, pred, fraction) in enumerate(ev["most_confused"]):
        support = ev["per_class"][true]["support"]
        rows.append([str(i + 1), true, pred, formatting.pct(fraction), f"{round(fraction * support)}/{support}"])
    return Table(
        model_info.entry_title(results, name),
        ["#", "True class", "Predicted as", "%", "Videos"],
        "rllrr",
        rows,
        "" if rows else "No confused pair: every test video was classified correctly.",
    )


def appearance_table(results: Dict[str, Any]) -> Table:
    """The best 2D RGB model against every motion model, per class: each one's accuracy and its difference
    (motion minus 2D), for every class when there are few, else the classes where a motion model gains most
    and those where the 2D model beats every motion model."""
    avm = results["appearance_vs_motion"]
    if not avm["rows"]:
        return Table(f"Appearance vs motion: {avm['reason']}.", ["Class"], "l", [])
    a, motion = avm["appearance_model"], avm["motion_models"]
    rated = [r for r in avm["rows"] if r["best_gain"] is not None]
    if len(rated) <= 2 * comparison.NUM_LISTED:
        listed, which = rated, "every class with test videos"
    else:
        gains = [r for r in rated if r["best_gain"] > 0][:comparison.NUM_LISTED]
        losses = [r for r in reversed(rated) if r["best_gain"] < 0][:comparison.NUM_LISTED]
        listed = gains + losses
        which = ((formatting.counted(len(gains), "the class", "classes") + " where a motion model gains most"
                  if gains else "no class where a motion model is better") + " and "
                 + (formatting.counted(len(losses), "the class", "classes") + f" where {a} beats every motion model"
                    if losses else f"no class where {a} beats every motion model"))
    rows = [[r["class"], formatting.pct(r["appearance"])]
            + [f"{formatting.pct(r['motion'][m])} ({formatting.pct(r['difference'][m], signed=True)})" for m in motion]
            for r in listed]
    titles = "; ".join(f"{m} = {model_info.entry_title(results, m)}" for m in motion)
    caption = (f"Appearance vs motion: the best 2D RGB model by top-1 ({a}, {model_info.entry_title(results, a)}) "
               f"against every motion model ({titles}): {which}, sorted by the largest gain of any motion model "
               f"(accuracy %, in brackets the difference motion minus {a}, in points).")
    counts = []
    for m in motion:
        c = avm["per_model"][m]
        counts.append(f"{m} is better than {a} on {c['motion_better']}, worse on {c['appearance_better']}, equal on "
                      f"{c['equal']} (mean {formatting.points(c['mean_difference'])})")
    note = "Over all classes " + "; ".join(counts) + "."
    if avm.get("temporal_left_out"):
        note += (f" Not compared: {formatting.names_text(avm['temporal_left_out'])}, temporal but without motion in "
                 f"its input (per-frame features).")
    return Table(caption, ["Class", a] + motion, "lr" + "r" * len(motion), rows, note + " The full list is in "
                 "results.json.")


def dataset_table(results: Dict[str, Any]) -> Table:
    data = results["dataset"]
    rows = []
    frames = data["frames_per_video"]
    for subset in ("train", "val", "test"):
        part = data[subset]
        if part is None:
            continue
        counts = [c for c in part["per_class"].values()]
        row = [subset + (f" (groups {formatting.groups_text(data['val_groups'])})" if subset == "val" else ""),
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


def per_class_table(results: Dict[str, Any], key: str, label: str) -> Table:
    """Every class: test videos and each model's and fusion's ``key`` (precision, recall or f1)."""
    order = results["order"]
    rows = []
    for name in results["class_list"]:
        cells = [results["evaluation"][e]["per_class"][name] for e in order]
        rows.append([name, str(cells[0]["support"])] + [formatting.pct(c[key]) for c in cells])
    return Table(f"Per-class {label} (%) of every model and fusion (classInd order).",
                 ["Class", "Videos"] + order, "lr" + "r" * len(order), rows,
                 "Columns: " + "; ".join(f"{e} = {model_info.entry_title(results, e)}" for e in order) + "."
                 + (" A class never predicted has precision 0." if key == "precision" else ""))


def build_tables(results: Dict[str, Any]):
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
