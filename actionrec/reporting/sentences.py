"""The report's answers to the assignment's three questions, as sentences computed from results.json
alone: did fusion help (and does validation support it), what the best and worst classes have in common,
which classes are confused most."""
from typing import Any, Dict, List, Sequence

import numpy as np

from actionrec import formatting
from actionrec.evaluation import comparison, model_info

NOT_SUPPORTED = "Validation does not support"  # the report's sentence when the fusion should not be used


def weights_text(fusion: Dict[str, Any]) -> str:
    return ", ".join(f"{m} {w:g}" for m, w in zip(fusion["members"], fusion["weights"]))


def temperatures_text(fusion: Dict[str, Any]) -> str:
    return ", ".join(f"{m} {t:.3g}" for m, t in zip(fusion["members"], fusion["temperatures"]))


def weights_source_text(fusion: Dict[str, Any]) -> str:
    v = fusion["validation"]
    if fusion["weights_source"] == "auto":
        return (
            f"on scores divided by the temperatures {temperatures_text(fusion)} (fitted on the validation "
            f"videos), chosen by validation NLL on the {v['videos']} validation videos of groups "
            f"{formatting.groups_text(v['val_groups'])}, grid step {v['step']:g} ({v['grid_points']} points): val NLL "
            f"{v['nll']:.3f}, top-1 {formatting.pct(v['top1'])}%; equal weights {v['equal_weights_nll']:.3f}, "
            f"{formatting.pct(v['equal_weights_top1'])}%"
        )
    if fusion["weights_source"] == "auto-top1":
        return (
            f"uncalibrated, chosen by validation top-1 on the {v['videos']} validation videos of groups "
            f"{formatting.groups_text(v['val_groups'])}, grid step {v['step']:g} ({v['grid_points']} points): val "
            f"top-1 "
            f"{formatting.pct(v['top1'])}%, equal weights {formatting.pct(v['equal_weights_top1'])}%"
        )
    return "equal weights" if fusion["weights_source"] == "equal" else "weights given"


def interval_text(interval: Sequence[float], scale: float = 1.0, digits: int = 1) -> str:
    return f"[{interval[0] * scale:+.{digits}f}, {interval[1] * scale:+.{digits}f}]"


def evidence_sentences(results: Dict[str, Any], name: str) -> List[str]:
    """What the validation videos say about a fusion against its best member there, and the recommendation."""
    fusion = results["fusions"][name]
    v = fusion["validation"]
    b = v["bootstrap"]
    member = b["best_member"]
    text = (
        f"On the {v['videos']} validation videos {fusion['title']} has NLL {v['nll']:.3f} and top-1 "
        f"{formatting.pct(v['top1'])}%, its best member there, {model_info.entry_title(results, member)}, "
        f"{b['best_member_nll']:.3f} "
        f"and {formatting.pct(b['best_member_top1'])}%"
        + (
            " (both temperature-scaled)"
            if fusion["calibration"] == "temperature"
            else " (the member temperature-scaled, the fusion of raw scores)"
        )
        + f". Bootstrap ({b['resamples']} resamples of the validation videos, seed {b['seed']}): the fusion's "
        f"NLL gain over it {b['gain_nll']['estimate']:+.3f}, {b['level'] * 100:g}% interval "
        f"{interval_text(b['gain_nll']['interval'], digits=3)} nats; top-1 gain "
        f"{formatting.points(b['gain_top1']['estimate'])}, interval {interval_text(b['gain_top1']['interval'], 100.0)} "
        f"points; "
        f"higher top-1 in {formatting.pct(b['beats_best_member_top1'])}% of resamples, lower in "
        f"{formatting.pct(b['below_best_member_top1'])}%"
    )
    if b["chosen_again"] is not None:
        text += f"; the same weights are chosen again in {formatting.pct(b['chosen_again'])}% of resamples"
    out = [text + "."]
    if b["supported"]:
        out.append(
            f"Validation supports {fusion['title']} over its best member, {model_info.entry_title(results, member)}: "
            f"the interval of the top-1 gain lies above 0, or the fusion's top-1 is not lower and the "
            f"interval of the NLL gain lies above 0. "
            f"Recommendation: the fusion."
        )
    else:
        out.append(
            f"{NOT_SUPPORTED} {fusion['title']} over its best member, {model_info.entry_title(results, member)} "
            f"(the interval of the top-1 gain reaches 0, and the fusion's validation top-1 is lower or the "
            f"interval of the NLL gain reaches 0). "
            f"Recommendation: {model_info.entry_title(results, member)} alone; the tables keep the numbers of both."
        )
    return out


def fusion_sentences(results: Dict[str, Any]) -> List[str]:
    if not results["fusions"]:
        return ["No fusion: one model was given."]
    out = []
    ev = results["evaluation"]
    for name, fusion in results["fusions"].items():
        parts = []
        for k in comparison.TOPK:
            member, value = fusion["members_best"][f"top{k}"]
            parts.append(
                f"top-{k} {formatting.pct(ev[name][f'top{k}'])}% ({formatting.points(fusion['gain'][f'top{k}'])} "
                f"against "
                f"{formatting.pct(value)}% of {member})"
            )
        out.append(f"{fusion['title']}: " + "; ".join(parts) + f". It {fusion['verdict']}.")
        if fusion.get("validation"):
            out += evidence_sentences(results, name)
    return out


def class_sentences(results: Dict[str, Any]) -> List[str]:
    """What the best and worst classes of the best model or fusion have in common, in numbers."""
    ev, ref = results["evaluation"], results["reference"]
    rated = [(c, a) for c, a in ev[ref]["per_class_accuracy"].items() if a is not None]
    n = min(comparison.NUM_LISTED, len(rated) // 2)
    if n == 0:
        return ["Too few classes with test videos to compare the best and worst."]
    best = sorted(rated, key=lambda x: (-x[1], x[0]))[:n]
    worst = sorted(rated, key=lambda x: (x[1], x[0]))[:n]
    best_names, worst_names = [c for c, _ in best], [c for c, _ in worst]
    title = model_info.entry_title(results, ref)
    out = [
        f"Best model or fusion by top-1: {title} ({formatting.pct(ev[ref]['top1'])}%). Its {n} best classes "
        f"({formatting.names_text(best_names, 5)}) average {formatting.pct(np.mean([a for _, a in best]))}% "
        f"accuracy, its {n} worst "
        f"({formatting.names_text(worst_names, 5)}) {formatting.pct(np.mean([a for _, a in worst]))}% (mean class "
        f"accuracy "
        f"{formatting.pct(ev[ref]['mean_class_accuracy'])}%)."
    ]

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
    out.append(
        text + f"; mean precision {formatting.pct(mean_of(precision, best_names))}% / "
        f"{formatting.pct(mean_of(precision, worst_names))}% / {formatting.pct(ev[ref]['macro_precision'])}%."
    )
    out += motion_sentences(results, n, best_names, worst_names)
    order = results["order"]
    if len(order) > 1:
        worst_sets = [set(c for c, _ in sorted(((c, a) for c, a in ev[e]["per_class_accuracy"].items()
                                                if a is not None), key=lambda x: (x[1], x[0]))[:n]) for e in order]
        common = [c for c in results["class_list"] if all(c in s for s in worst_sets)]
        out.append(f"Among the {n} worst of every model and fusion: {formatting.names_text(common)}." if common else
                   f"No class is among the {n} worst of every model and fusion.")
    for e in order:
        never = ev[e]["never_predicted"]
        if never:
            out.append(f"{model_info.entry_title(results, e)} never predicts {len(never)} class"
                       f"{'es' if len(never) > 1 else ''} ({formatting.names_text(never, 5)}): precision 0.")
    return out


def motion_sentences(results: Dict[str, Any], n: int, best_names: List[str], worst_names: List[str]) -> List[str]:
    """How every motion model fares against the best 2D RGB model on the ``n`` worst and best classes."""
    avm = results["appearance_vs_motion"]
    if not avm["rows"]:
        return [f"No appearance-vs-motion comparison: {avm['reason']}."]
    out = []
    diff = {r["class"]: r["difference"] for r in avm["rows"]}
    a, motion = avm["appearance_model"], avm["motion_models"]
    for label, classes in (("worst", worst_names), ("best", best_names)):
        parts = []
        for m in motion:
            wins = [c for c in classes if diff[c][m] is not None and diff[c][m] > 0]
            losses = [c for c in classes if diff[c][m] is not None and diff[c][m] < 0]
            ties = [c for c in classes if diff[c][m] == 0]
            text = f"{m} beats it on {len(wins)}" + (f" ({formatting.names_text(wins, 5)})" if wins else "")
            text += f", loses on {len(losses)}" + (f" ({formatting.names_text(losses, 5)})" if losses else "")
            parts.append(text + f" and ties on {len(ties)}")
        out.append(f"On these {n} {label} classes, against the 2D {a}: " + "; ".join(parts) + ".")
    return out


def confusion_sentences(results: Dict[str, Any]) -> List[str]:
    ev, ref, order = results["evaluation"], results["reference"], results["order"]
    pairs = ev[ref]["most_confused"]
    if not pairs:
        return [f"{model_info.entry_title(results, ref)} classifies every test video correctly: no confused pair."]
    true, pred, fraction = pairs[0]
    support = ev[ref]["per_class"][true]["support"]
    out = [
        f"Most confused pair of {model_info.entry_title(results, ref)}: {true} → {pred}, "
        f"{formatting.pct(fraction)}% of {true}'s "
        f"test videos ({round(fraction * support)} of {support})."
    ]
    tops = []
    for e in order:
        if ev[e]["most_confused"]:
            t, p, f = ev[e]["most_confused"][0]
            tops.append(f"{e}: {t} → {p} ({formatting.pct(f)}%)")
        else:
            tops.append(f"{e}: none")
    if len(order) > 1:
        out.append("Most confused pair of each: " + "; ".join(tops) + ".")
        sets = [set((t, p) for t, p, _ in ev[e]["most_confused"]) for e in order]
        common = [(t, p) for t, p, _ in pairs if all((t, p) in s for s in sets)]
        out.append(f"In the {comparison.NUM_LISTED} most confused pairs of every model and fusion: "
                   f"{formatting.names_text([f'{t} → {p}' for t, p in common])}." if common else
                   f"No pair is among the {comparison.NUM_LISTED} most confused of every model and fusion.")
    listed = set((t, p) for t, p, _ in pairs)
    both = [f"{t} ↔ {p}" for t, p, _ in pairs if (p, t) in listed and t < p]
    if both:
        out.append(
            f"Confused both ways in the list of {model_info.entry_title(results, ref)}: {formatting.names_text(both)}."
        )
    return out


def build_answers(results: Dict[str, Any]) -> Dict[str, List[str]]:
    return {"fusion": fusion_sentences(results), "classes": class_sentences(results),
            "confusions": confusion_sentences(results)}


QUESTIONS = {
    "fusion": "1. Did fusion improve top-1, top-5 and top-10 accuracy, and by how much?",
    "classes": "2. What do the best and worst classes have in common (as far as the numbers show)?",
    "confusions": "3. Which classes are confused most?",
}
