"""Scores of a model with several label heads (engine/label_heads.py): each head's video scores, the
action's (a verb and a noun), and their summaries.

A prediction file of such a model holds the heads' logits side by side in ``predictions``
(``[rows, sum of classes]``, the heads in the order of its attribute ``heads``, a JSON
``{"names": [...], "sizes": [...]}``); ``read_head_predictions`` splits them. A head's video score is
``scores.video_score`` of its columns (each head has its own softmax). An action's score is the
product of its verb's and its noun's probabilities (EPIC-Kitchens' evaluation), so the top-1 action is
the top-1 verb with the top-1 noun: an action is right exactly when both heads are.
"""
import json
import math
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from actionrec.evaluation import accuracy
from actionrec.evaluation import predictions as prediction_files
from actionrec.evaluation import scores as video_scores

HEADS_ATTR = "heads"
ACTION = "action"


def heads_attr(names: Sequence[str], sizes: Sequence[int]) -> str:
    """The prediction files' ``heads`` attribute."""
    return json.dumps({"names": list(names), "sizes": [int(s) for s in sizes]})


def split_heads(logits: np.ndarray, names: Sequence[str], sizes: Sequence[int]) -> Dict[str, np.ndarray]:
    """``[rows, sum of sizes]`` -> {head: ``[rows, size]``}."""
    if logits.shape[-1] != sum(sizes):
        raise ValueError(f"logits have {logits.shape[-1]} columns, the heads {', '.join(names)} {sum(sizes)}")
    bounds = np.cumsum([0] + list(sizes))
    return {name: logits[..., a:b] for name, a, b in zip(names, bounds[:-1], bounds[1:])}


def read_head_predictions(path) -> Dict[str, np.ndarray]:
    """{head: float32 logits ``[rows, classes]``} of a prediction file written with a ``heads`` attribute."""
    logits, attrs = prediction_files.read_prediction_file(path)
    if HEADS_ATTR not in attrs:
        raise KeyError(f"{path} has no {HEADS_ATTR} attribute: not the predictions of a model with label heads")
    record = json.loads(attrs[HEADS_ATTR])
    return split_heads(logits, record["names"], record["sizes"])


def action_scores(verb_scores: np.ndarray, noun_scores: np.ndarray) -> np.ndarray:
    """Log-probability scores ``[N, V * N]`` of every (verb, noun) pair, column ``v * nouns + n``:
    log p(verb) + log p(noun) (the product of the heads' probabilities) from each head's log-softmax
    video scores ``[N, V]`` and ``[N, N]``."""
    verb_scores, noun_scores = np.asarray(verb_scores, np.float64), np.asarray(noun_scores, np.float64)
    return (verb_scores[:, :, None] + noun_scores[:, None, :]).reshape(len(verb_scores), -1)


def pair_names(verbs: Sequence[str], nouns: Sequence[str]) -> List[str]:
    """The name of every (verb, noun) pair, "verb noun", in action_scores' column order."""
    return [f"{v} {n}" for v in verbs for n in nouns]


def pair_topk(pair_scores: np.ndarray, pair_labels: np.ndarray, allowed: Sequence[int], ks=(1, 5)) -> Dict[str, float]:
    """Top-k of the action scores over the ``allowed`` pair columns only (the pairs seen in training,
    as EPIC-Kitchens ranks actions); a true pair outside them is a miss."""
    allowed = np.asarray(sorted(allowed), dtype=np.int64)
    if not len(allowed):
        return {f"top{k}": 0.0 for k in ks}
    ranked = allowed[video_scores.rank_classes(pair_scores[:, allowed])]
    return {f"top{k}": float((ranked[:, :k] == pair_labels[:, None]).any(1).mean()) for k in ks}


def _summary(scores, labels, names, counts=None):
    """accuracy.summarize plus the classes absent from the subset and, with counts ({subset: [count per
    class]}), those it has that training never had."""
    summary, cm = accuracy.summarize(scores, labels, names)
    summary["absent"] = [n for n, c in zip(names, np.bincount(labels, minlength=len(names))) if c == 0]
    if counts is not None and "train" in counts:
        present = np.bincount(labels, minlength=len(names)) > 0
        summary["unseen_in_training"] = [n for n, p, t in zip(names, present, counts["train"]) if p and t == 0]
        summary["class_counts"] = {subset: dict(zip(names, map(int, c))) for subset, c in counts.items()}
    return summary, cm


def summarize_heads(
    head_scores: Dict[str, np.ndarray],
    labels: np.ndarray,
    classes: Dict[str, List[str]],
    pairs: Sequence[Sequence[int]] = (),
    counts: Dict[str, Dict[str, List[int]]] | None = None,
) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
    """(results, {name: confusion matrix}) of video scores per head (``{head: [N, C]}``, heads in
    label order) against ``labels [N, heads]``: one ``accuracy.summarize`` per head and one for the
    actions (every verb x noun pair, named "verb noun"; with two heads), the latter with
    ``top1_seen_pairs``/``top5_seen_pairs`` ranked over the training ``pairs`` only. counts: {subset:
    {head: [count per class]}} (the class histograms, kept in the results)."""
    names = list(head_scores)
    labels = np.asarray(labels, dtype=np.int64)
    results, cms = {"heads": {}}, {}
    for i, name in enumerate(names):
        head_counts = {s: c[name] for s, c in counts.items()} if counts else None
        results["heads"][name], cms[name] = _summary(head_scores[name], labels[:, i], classes[name], head_counts)
    if len(names) == 2:
        verbs, nouns = classes[names[0]], classes[names[1]]
        pair_scores = action_scores(head_scores[names[0]], head_scores[names[1]])
        pair_labels = labels[:, 0] * len(nouns) + labels[:, 1]
        names_of_pairs = pair_names(verbs, nouns)
        action, cms[ACTION] = accuracy.summarize(pair_scores, pair_labels, names_of_pairs)
        seen = [v * len(nouns) + n for v, n in pairs]
        action.update({f"{k}_seen_pairs": v for k, v in pair_topk(pair_scores, pair_labels, seen).items()})
        action["pairs_seen_in_training"] = len(seen)
        action["absent_seen_pairs"] = sorted({names_of_pairs[p] for p in seen}
                                             - {names_of_pairs[p] for p in pair_labels})
        action["unseen_in_training"] = sorted({names_of_pairs[p] for p in pair_labels}
                                              - {names_of_pairs[p] for p in seen}) if pairs else []
        results[ACTION] = action
    return results, cms


def mean_row_accuracy(logits_per_video: Sequence[np.ndarray], labels: np.ndarray, head: int) -> float:
    """The fraction of rows (frames, windows) whose top-1 class is the video's label, for one head."""
    right = sum(int((logits.argmax(1) == labels[i, head]).sum()) for i, logits in enumerate(logits_per_video))
    total = sum(len(logits) for logits in logits_per_video)
    return right / max(total, 1) if total else math.nan
