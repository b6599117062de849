"""Fusion of models with label heads (a verb and a noun: engine/label_heads.py), head by head.

The study's question in two labels: single frames get the nouns, a motion model the verbs, and an action
needs both. Fusing an appearance model with a motion model per head answers it: each head's fused video
score is the weighted sum of the members' video scores of that head (``fusion.fuse_scores``, logmean:
their mean log-softmax over rows), and the action's score is, as for one model, the product of the
fused heads' probabilities (``head_scores.summarize_heads``).

Input: the test folders of the members (results.json with ``tested``: each scored segment's prediction
file, relative to ``predictions_dir``, and its labels; written by ``video_test.summarize_head_predictions``).
The members must have tested the same segments, with the same labels and the same class names per head.
Output: the fused model as ``head_report.read_head_results`` gives a tested one (results, confusion
matrices, no training log), so the report shows it as a row beside its members.
"""
import os
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from actionrec.evaluation import calibration, fusion, head_scores
from actionrec.evaluation import predictions as prediction_files
from actionrec.evaluation import scores as video_scores
from actionrec.evaluation import weights as weight_choice
from actionrec.guards import UserError

RULE = "logmean"
AUTO = "auto"  # per head: each member's temperature and the weights chosen on validation (--heads-val)


def parse_fusion(text: str, known: Sequence[str]) -> Tuple[str, List[str], List[float]]:
    """``NAME=A+B[:W1,W2|:auto]`` -> (name, members, weights); equal weights (1/M) when none are given; AUTO:
    chosen per head on the members' validation tests (``choose_head_weights``)."""
    name, sep, rest = text.partition("=")
    spec, _, weights_text = rest.partition(":")
    members = [m for m in spec.split("+") if m]
    if not sep or not name or len(members) < 2:
        raise UserError(f"--heads-fuse expects NAME=A+B[:W1,W2] over two or more --heads names (e.g. "
                        f"--heads-fuse both=rgb+motion), got {text!r}")
    unknown = [m for m in members if m not in known]
    if unknown or len(set(members)) != len(members):
        raise UserError(f"--heads-fuse {text}: {', '.join(unknown) or 'a name given twice'} "
                        f"{'is not a --heads name' if unknown else ''} (the --heads names: {', '.join(known)})")
    if name in known:
        raise UserError(f"--heads-fuse {text}: the name {name} is already a --heads model's")
    if not weights_text:
        return name, members, [1.0 / len(members)] * len(members)
    if weights_text == AUTO:
        return name, members, AUTO
    return name, members, fusion.parse_weights(weights_text, len(members), "one per member in their order",
                                               "nothing (equal weights) or auto (chosen per head on --heads-val)")


def _member_scores(name: str, results: Dict[str, Any]) -> Tuple[List[str], np.ndarray, Dict[str, np.ndarray]]:
    """(prediction files relative to predictions_dir, labels [N, heads], {head: video scores [N, C]})."""
    tested = results.get("tested")
    if not tested:
        raise UserError(f"--heads-fuse: the test of {name} does not list its segments (tested before fusion "
                        f"existed): run its test script again")
    files, labels = tested["prediction_files"], np.asarray(tested["labels"], dtype=np.int64)
    sizes = [len(s["per_class"]) for s in results["heads"].values()]
    scores = {head: [] for head in results["heads"]}
    for rel in files:
        path = os.path.join(results["predictions_dir"], rel)
        try:
            logits, attrs = prediction_files.read_prediction_file(path)
            per_head = head_scores.split_heads(logits, list(results["heads"]), sizes)
        except (OSError, KeyError, ValueError, TypeError) as e:
            raise UserError(f"--heads-fuse: {name}'s prediction file {path} cannot be read ({e})") from None
        for head, head_logits in per_head.items():
            scores[head].append(video_scores.video_score(head_logits))
    return files, labels, {head: np.stack(s) for head, s in scores.items()}


def _check_alike(names: Sequence[str], members: Sequence[Dict[str, Any]]) -> None:
    """The members tested the same segments, with the same labels and class names."""
    first = members[0]
    for name, member in zip(names[1:], members[1:]):
        if member["files"] != first["files"] or not np.array_equal(member["labels"], first["labels"]):
            raise UserError(f"--heads-fuse: {names[0]} and {name} did not test the same segments with the same "
                            f"labels ({len(first['files'])} and {len(member['files'])} segments): test both on "
                            f"one CSV and --subset")
        if member["classes"] != first["classes"]:
            raise UserError(f"--heads-fuse: {names[0]} and {name} have different classes "
                            f"({first['classes']} / {member['classes']})")


def _counts(results: Dict[str, Any]) -> Dict[str, Dict[str, List[int]]] | None:
    """{subset: {head: [count per class]}} back from the results' per-head class_counts."""
    per_head = {head: s.get("class_counts") for head, s in results["heads"].items()}
    if not all(per_head.values()):
        return None
    subsets = next(iter(per_head.values()))
    return {subset: {head: [per_head[head][subset][c] for c in results["heads"][head]["per_class"]]
                     for head in per_head} for subset in subsets}


def _read_members(members: Sequence[Tuple[str, Dict[str, Any]]]) -> List[Dict[str, Any]]:
    """Each member's tested segments, labels, video scores per head and class names, checked alike."""
    read = []
    for member_name, model in members:
        results = model["results"]
        files, labels, scores = _member_scores(member_name, results)
        read.append({"files": files, "labels": labels, "scores": scores,
                     "classes": {head: list(s["per_class"]) for head, s in results["heads"].items()}})
    _check_alike([n for n, _ in members], read)
    return read


def choose_head_weights(val_members: Sequence[Tuple[str, Dict[str, Any]]]) -> Dict[str, Dict[str, Any]]:
    """Per head, on the members' validation tests (never the test segments): each member's temperature
    (``calibration.fit_temperature`` of its video scores) and the weights of the temperature-scaled members
    (``weights.choose_weights``, lowest validation NLL with the one-standard-error rule), as the split-list
    fusion's ``--weights auto`` does per model: {head: {"weights", "temperatures", "val_nll", "val_top1",
    "equal_weights_nll", "equal_weights_top1", "segments"}}."""
    read = _read_members(val_members)
    labels, chosen = read[0]["labels"], {}
    for h, head in enumerate(read[0]["classes"]):
        scores = [r["scores"][head] for r in read]
        temperatures = [calibration.fit_temperature(s, labels[:, h])["temperature"] for s in scores]
        picked = weight_choice.choose_weights(scores, labels[:, h], RULE, criterion="nll", temperatures=temperatures)
        chosen[head] = {"weights": picked["weights"], "temperatures": [float(t) for t in temperatures],
                        "val_nll": picked["nll"], "val_top1": picked["top1"],
                        "equal_weights_nll": picked["equal_weights_nll"],
                        "equal_weights_top1": picked["equal_weights_top1"], "segments": len(labels)}
    return chosen


def _weights_text(names: Sequence[str], weights) -> str:
    if isinstance(weights, dict):
        return "; ".join(f"{head}: " + ", ".join(f"{n} {w:g} (T {t:.2f})" for n, w, t in
                                                  zip(names, c["weights"], c["temperatures"]))
                         for head, c in weights.items()) + ", chosen on validation"
    return ", ".join(f"{n} {w:g}" for n, w in zip(names, weights))


def fuse_head_models(name: str, members: Sequence[Tuple[str, Dict[str, Any]]],
                     weights: Sequence[float] | Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """The fused model of ``members`` ([(name, read_head_results' model)]) with ``weights`` (logmean): a model
    dict as read_head_results gives (results, cms, log), plus the fused video scores ({head: [N, C]}) and the
    prediction files (relative) they are of."""
    read = _read_members(members)
    names = [n for n, _ in members]
    first = members[0][1]["results"]
    heads = list(read[0]["classes"])
    per_head = weights if isinstance(weights, dict) else {head: {"weights": weights, "temperatures": None}
                                                         for head in heads}
    fused = {head: fusion.fuse_scores(calibration.calibrate([r["scores"][head] for r in read],
                                                            per_head[head]["temperatures"]),
                                      RULE, per_head[head]["weights"]) for head in heads}
    pairs = first.get("tested", {}).get("training_pairs", ())
    summary, cms = head_scores.summarize_heads(fused, read[0]["labels"], read[0]["classes"], pairs, _counts(first))
    weights_text = _weights_text(names, weights)
    summary.update({"videos": len(read[0]["files"]), "subset": first["subset"],
                    "annotations": first.get("annotations"),
                    "model": {"title": f"fusion of {' and '.join(names)} per head (the weighted sum of their "
                                       f"video scores, mean log-softmax; weights {weights_text})"},
                    "fusion": {"members": names, "rule": RULE,
                               "weights": weights if isinstance(weights, dict) else [float(w) for w in weights],
                               "checkpoints": [m["results"].get("checkpoint") for _, m in members]}})
    return {"results": summary, "cms": cms, "log": [], "scores": fused, "prediction_files": read[0]["files"]}
