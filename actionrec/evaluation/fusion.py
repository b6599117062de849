"""Fusion of several models' video scores: the rules, the weights as given on a command line, and the
fused distribution a fusion ranks by."""
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np

from actionrec import guards
from actionrec.evaluation import calibration
from actionrec.evaluation import scores as video_scores
from actionrec.evaluation.scores import ArrayLike

FUSION_RULES = {
    "logmean": "sum of w_i * s_i over the models' video scores s_i (mean log-softmax over rows)",
    "prob": "sum of w_i * softmax(s_i), weights normalised to sum 1",
    "max": "element-wise max of w_i * softmax(s_i), weights normalised to sum 1",
}
# --weights auto: temperature-scaled members, weights by validation NLL; auto-top1: the rule before issue 25
# (top-1 on the raw scores), kept to reproduce older reports.
AUTO_CRITERIA = {"auto": "nll", "auto-top1": "top1"}


def fuse_scores(scores: Sequence[ArrayLike], rule: str = "logmean",
                weights: Optional[Sequence[float]] = None) -> np.ndarray:
    """Fuse M models' video scores (mean log-softmax, each ``[N, C]``) into ``[N, C]``.

    logmean: ``sum_i w_i * s_i`` (weights as given).
    prob:    ``sum_i w_i * softmax(s_i)`` with the weights normalised to sum 1.
    max:     element-wise ``max_i w_i * softmax(s_i)``, normalised weights (equal weights: plain max).
    ``weights`` default to equal (1/M each).
    """
    scores = [np.asarray(s, dtype=np.float64) for s in scores]
    weights = np.full(len(scores), 1.0 / len(scores)) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(weights) != len(scores):
        raise ValueError(f"{len(weights)} weights for {len(scores)} models")
    if rule == "logmean":
        return sum(w * s for w, s in zip(weights, scores))
    if rule not in FUSION_RULES:
        raise ValueError(f"unknown fusion rule {rule!r}; expected one of {', '.join(FUSION_RULES)}")
    weights = weights / weights.sum()
    weighted = [w * video_scores.softmax(s) for w, s in zip(weights, scores)]
    return sum(weighted) if rule == "prob" else np.maximum.reduce(weighted)


def fused_log_probs(scores: Sequence[ArrayLike], rule: str = "logmean", weights: Optional[Sequence[float]] = None,
                    temperatures: Optional[Sequence[float]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """The fused scores of ``fuse_scores`` (after ``calibration.calibrate``) and the log of the distribution they
    rank by: ``(fused [N, C], log_probs [N, C])``; logmean: log_softmax of the fused score; prob and max:
    the fused values normalised to sum 1 per video (prob already does)."""
    fused = fuse_scores(calibration.calibrate(scores, temperatures), rule, weights)
    if rule == "logmean":
        return fused, video_scores.log_softmax(fused, axis=1)
    normalised = fused / fused.sum(axis=1, keepdims=True)
    return fused, np.log(np.maximum(normalised, np.finfo(np.float64).tiny))


def member_losses(scores: ArrayLike, labels: ArrayLike,
                  temperature: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
    """One model's per-video NLL (of ``softmax(scores / temperature)``) and top-1 hits: ``([N], [N] bool)``."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    return (video_scores.per_video_nll(video_scores.log_softmax(scores / temperature, axis=1), labels),
            video_scores.top1_predictions(scores) == labels)


def effective_weights(rule: str, weights: Sequence[float], temperatures: Sequence[float]) -> Optional[List[float]]:
    """logmean: the weights on the raw scores that the weights on temperature-scaled scores amount to
    (w_i / T_i, normalised to sum 1); None for prob and max, where a temperature is not a weight."""
    if rule != "logmean":
        return None
    raw = [w / t for w, t in zip(weights, temperatures)]
    return [float(r / sum(raw)) for r in raw]


def parse_weights(text: str, count: int, order: str, alternatives: str) -> List[float]:
    """'W1,W2,...' -> ``count`` floats (finite, non-negative, not all zero), else a ``guards.UserError``:
    "--weights TEXT: expected COUNT non-negative numbers, ORDER, not all zero (e.g. 0.5,0.5), or
    ALTERNATIVES" (``order`` says which weight goes to which model, ``alternatives`` what else the flag
    takes)."""
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError:
        weights = []
    if len(weights) != count or not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) == 0:
        raise guards.UserError(f"--weights {text!r}: expected {count} non-negative numbers, {order}, not all zero "
                               f"(e.g. {','.join(['0.5'] * count)}), or {alternatives}")
    return weights
