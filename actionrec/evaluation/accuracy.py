"""Accuracy of video scores against labels: top-k, the confusion matrix, per-class precision, recall
and F1, their macro averages, and the summary a test run and the combiner write."""
import math
from typing import Any, Dict, Iterable, List, Sequence, Tuple

import numpy as np

from actionrec.evaluation import scores as video_scores
from actionrec.evaluation.scores import ArrayLike


def topk_accuracy(scores: ArrayLike, labels: ArrayLike, ks: Iterable[int] = (1, 5, 10)) -> Dict[str, float]:
    """Fraction of rows whose label is among the ``k`` best scores, for each k.

    ``scores`` ``[N, C]``, ``labels`` ``[N]`` (0-based). k is clipped to C.
    Returns ``{"top1": float, "top5": float, ...}``. Ties: see ``scores.rank_classes``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if scores.ndim != 2 or labels.shape != (scores.shape[0],):
        raise ValueError(f"scores must be [N, C] and labels [N]; got {scores.shape} and {labels.shape}")
    if scores.shape[0] == 0:
        raise ValueError("topk_accuracy needs at least one video")
    ranked = video_scores.rank_classes(scores)
    result = {}
    for k in ks:
        k_used = max(1, min(int(k), scores.shape[1]))
        hits = (ranked[:, :k_used] == labels[:, None]).any(axis=1)
        result[f"top{k}"] = float(hits.mean())
    return result


def confusion_matrix(labels: ArrayLike, predictions: ArrayLike, num_classes: int) -> np.ndarray:
    """Counts ``[C, C]`` int64: rows = true class, columns = predicted (top-1) class."""
    labels = np.asarray(labels, dtype=np.int64).ravel()
    predictions = np.asarray(predictions, dtype=np.int64).ravel()
    if labels.shape != predictions.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} differ in length")
    for name, values in (("labels", labels), ("predictions", predictions)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} must lie in [0, {num_classes - 1}]")
    counts = np.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def per_class_accuracy(cm: ArrayLike) -> np.ndarray:
    """Diagonal over row sums of a confusion matrix: float64 ``[C]``, NaN for classes without videos."""
    cm = np.asarray(cm, dtype=np.float64)
    totals = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(cm) / np.where(totals > 0, totals, 1), np.nan)


def most_confused_pairs(cm: ArrayLike, class_list: Sequence[Any], n: int = 10) -> List[List[Any]]:
    """The ``n`` largest off-diagonal entries of the row-normalised confusion matrix.

    Returns ``[[true_name, predicted_name, fraction_of_true_class], ...]``; zero entries are
    left out; equal fractions are ordered by true class name, then predicted name.
    """
    cm = np.asarray(cm, dtype=np.int64)
    names = [str(c) for c in class_list]
    totals = cm.sum(axis=1)
    pairs = []
    for t, p in zip(*np.nonzero(cm)):
        if t != p:
            pairs.append((float(cm[t, p] / totals[t]), names[t], names[p]))
    pairs.sort(key=lambda x: (-x[0], x[1], x[2]))
    return [[true_name, pred_name, fraction] for fraction, true_name, pred_name in pairs[:n]]


def classification_report(cm: ArrayLike) -> Dict[str, np.ndarray]:
    """Per-class precision, recall, F1, support of a confusion matrix ``[C, C]`` (rows = true class).

    Returns a dict of float64/int64 arrays ``[C]``: ``support`` (test videos of the class), ``predicted``
    (videos predicted as the class), ``precision`` (0 for a class never predicted, as sklearn's default),
    ``recall`` (= per-class accuracy; NaN for a class without test videos), ``f1`` (harmonic mean of
    precision and recall, 0 when both are 0; NaN without test videos).
    """
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm).astype(np.float64)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        recall = np.where(support > 0, tp / np.maximum(support, 1), np.nan)
        both = precision + recall
        f1 = np.where(both > 0, 2 * precision * recall / np.where(both > 0, both, 1), 0.0)
    f1 = np.where(support > 0, f1, np.nan)
    return {"support": support, "predicted": predicted, "precision": precision, "recall": recall, "f1": f1}


def macro_averages(report: Dict[str, np.ndarray]) -> Dict[str, Any]:
    """Means of precision, recall and F1 over the classes with test videos (``classification_report``).

    Every class of an official split has test videos, so this is the mean over the whole class list;
    a class without test videos (partial or synthetic lists) has no recall and is left out of all three.
    Returns ``{"macro_precision", "macro_recall", "macro_f1"}`` (None when no class has videos).
    """
    rated = report["support"] > 0
    if not rated.any():
        return {"macro_precision": None, "macro_recall": None, "macro_f1": None}
    return {f"macro_{key}": float(np.mean(report[key][rated])) for key in ("precision", "recall", "f1")}


def summarize(scores: ArrayLike, labels: ArrayLike, class_list: Sequence[Any],
              num_listed: int = 10) -> Tuple[Dict[str, Any], np.ndarray]:
    """Evaluation summary of video scores ``[N, C]`` against 0-based ``labels [N]``.

    Returns ``(summary, cm)``: ``cm`` is the int64 ``[C, C]`` confusion matrix (rows = true,
    cols = top-1 prediction), kept out of ``summary`` so that ``summary`` is JSON-ready:
      top1, top5, top10            fractions (k clipped to C)
      mean_class_accuracy          mean of per-class accuracies over classes with videos (= macro_recall)
      macro_precision, macro_recall, macro_f1   ``macro_averages``
      per_class_accuracy           {name: accuracy or None (no test videos)}, classInd order
      per_class                    {name: {precision, recall, f1, support, predicted}}, classInd order
      never_predicted              names of classes with test videos that no video was predicted as
      best_classes, worst_classes  ``num_listed`` ``[name, accuracy]``; ties by name
      most_confused                ``num_listed`` ``[true, predicted, fraction_of_true]``
      videos                       N
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    names = [str(c) for c in class_list]
    num_classes = len(names)
    if scores.ndim != 2 or scores.shape[1] != num_classes:
        raise ValueError(f"scores must be [N, {num_classes}] (one column per class), got {scores.shape}")

    topk = topk_accuracy(scores, labels, ks=(1, 5, 10))
    cm = confusion_matrix(labels, video_scores.top1_predictions(scores), num_classes)
    report = classification_report(cm)
    per_class = {name: (None if math.isnan(a) else float(a)) for name, a in zip(names, report["recall"])}
    rated = [(name, a) for name, a in per_class.items() if a is not None]
    best = sorted(rated, key=lambda x: (-x[1], x[0]))[:num_listed]
    worst = sorted(rated, key=lambda x: (x[1], x[0]))[:num_listed]
    macro = macro_averages(report)

    def value(x):
        return None if math.isnan(x) else float(x)

    summary = {
        **topk,
        "mean_class_accuracy": macro["macro_recall"],
        **macro,
        "per_class_accuracy": per_class,
        "per_class": {name: {"precision": float(report["precision"][i]), "recall": value(report["recall"][i]),
                             "f1": value(report["f1"][i]), "support": int(report["support"][i]),
                             "predicted": int(report["predicted"][i])} for i, name in enumerate(names)},
        "never_predicted": [name for i, name in enumerate(names)
                            if report["support"][i] > 0 and report["predicted"][i] == 0],
        "best_classes": [[name, a] for name, a in best],
        "worst_classes": [[name, a] for name, a in worst],
        "most_confused": most_confused_pairs(cm, names, n=num_listed),
        "videos": int(scores.shape[0]),
    }
    return summary, cm
