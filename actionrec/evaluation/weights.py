"""The choice of fusion weights on validation scores, over a grid of the simplex of weights."""
import math
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from actionrec.evaluation import fusion
from actionrec.evaluation import scores as video_scores
from actionrec.evaluation.scores import ArrayLike

WEIGHT_CRITERIA = ("nll", "top1")


def default_weight_step(num_models: int) -> float:
    """Grid step of ``choose_weights``: 0.05 for 2-3 models, 0.1 for 4-6, 0.2 beyond (grid sizes 21,
    231, 286, 1001, 3003 points for 2, 3, 4, 5, 6 models)."""
    return 0.05 if num_models <= 3 else 0.1 if num_models <= 6 else 0.2


def simplex_grid(num_models: int, step: float) -> np.ndarray:
    """Every weight vector with entries in multiples of ``step`` that sum to 1: float64 ``[G, M]``.

    ``1 / step`` must be an integer (0.05, 0.1, 0.2, 0.25, ...). Rows in lexicographic order of their
    integer numerators, largest first weight first.
    """
    parts = round(1.0 / step)
    if parts < 1 or abs(parts * step - 1.0) > 1e-9:
        raise ValueError(f"the weight step must divide 1 (e.g. 0.05, 0.1, 0.2), not {step}")

    def compositions(total, slots):
        if slots == 1:
            yield (total,)
            return
        for first in range(total, -1, -1):
            for rest in compositions(total - first, slots - 1):
                yield (first,) + rest

    return np.array(list(compositions(parts, num_models)), dtype=np.float64) / parts


def weight_grid_losses(val_scores: Sequence[ArrayLike], val_labels: ArrayLike, rule: str = "logmean",
                       step: Optional[float] = None, temperatures: Optional[Sequence[float]] = None
                       ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per grid point and validation video, the fusion's NLL and top-1 hit: ``(grid [G, M], nll [G, N],
    correct [G, N] bool)``; ``step`` defaults to ``default_weight_step``."""
    if rule not in fusion.FUSION_RULES:
        raise ValueError(f"unknown fusion rule {rule!r}; expected one of {', '.join(fusion.FUSION_RULES)}")
    labels = np.asarray(val_labels, dtype=np.int64)
    step = default_weight_step(len(val_scores)) if step is None else step
    grid = simplex_grid(len(val_scores), step)
    scores = fusion.calibration.calibrate(val_scores, temperatures)
    nll = np.empty((len(grid), len(labels)))
    correct = np.empty((len(grid), len(labels)), dtype=bool)
    for g, weights in enumerate(grid):
        fused, log_probs = fusion.fused_log_probs(scores, rule, weights)
        nll[g] = video_scores.per_video_nll(log_probs, labels)
        correct[g] = np.argmax(fused, axis=1) == labels
    return grid, nll, correct


def pick_weights(grid: np.ndarray, nll: np.ndarray, correct: np.ndarray, criterion: str = "nll",
                 counts: Optional[ArrayLike] = None) -> int:
    """The index in ``grid`` that ``criterion`` chooses from per-video losses ``[G, N]``; ``counts`` ``[N]``
    weighs the videos (a bootstrap resample; default once each).

    top1: the highest top-1; ties go to the weights closest to equal (Euclidean), then the first in grid order.
    nll: the lowest mean NLL, with a prior toward equal weights where validation cannot tell candidates
    apart: every grid point whose mean NLL exceeds the lowest by at most one standard error of the paired
    per-video difference (the one-standard-error rule) is a candidate; among them the highest top-1, then
    the closest to equal weights, then the lowest NLL, then the first in grid order (top-1 before the
    distance to equal weights: measured slightly better by bench/bench_fusion.py).
    """
    if criterion not in WEIGHT_CRITERIA:
        raise ValueError(f"unknown weight criterion {criterion!r}; expected one of {', '.join(WEIGHT_CRITERIA)}")
    counts = np.ones(nll.shape[1]) if counts is None else np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    top1 = correct @ counts / total
    distance = np.round(((grid - 1.0 / grid.shape[1]) ** 2).sum(axis=1), 12)
    index = np.arange(len(grid))
    if criterion == "top1":
        candidates = np.flatnonzero(top1 == top1.max())
        return int(candidates[np.lexsort((index[candidates], distance[candidates]))[0]])
    mean_nll = nll @ counts / total
    difference = nll - nll[np.argmin(mean_nll)]
    mean_difference = difference @ counts / total
    variance = np.maximum((difference ** 2) @ counts / total - mean_difference ** 2, 0.0)
    standard_error = np.sqrt(variance / total)
    candidates = np.flatnonzero(mean_difference <= standard_error + 1e-12)
    keys = (index[candidates], np.round(mean_nll[candidates], 12), distance[candidates], -top1[candidates])
    return int(candidates[np.lexsort(keys)[0]])


def choose_weights(val_scores: Sequence[ArrayLike], val_labels: ArrayLike, rule: str = "logmean",
                   step: Optional[float] = None, criterion: str = "top1",
                   temperatures: Optional[Sequence[float]] = None) -> Dict[str, Any]:
    """The fusion weights chosen on validation scores over a grid of the simplex (``pick_weights``).

    ``val_scores``: M arrays ``[N, C]`` (the members' video scores on the validation videos, in the
    fusion's order); ``val_labels`` ``[N]``; ``temperatures``: M floats the scores are divided by first
    (None: 1). A pure function of its arguments: it never sees test data. Returns ``{"weights": [M floats],
    "criterion", "top1", "nll", "equal_weights_top1", "equal_weights_nll", "step", "grid_points", "tied"}``
    (``tied``: grid points as good as the chosen one: the same top-1, or for nll within one standard error).
    """
    labels = np.asarray(val_labels, dtype=np.int64)
    num_models = len(val_scores)
    step = default_weight_step(num_models) if step is None else step
    grid, nll, correct = weight_grid_losses(val_scores, labels, rule, step, temperatures)
    chosen = pick_weights(grid, nll, correct, criterion)
    top1, mean_nll = correct.mean(axis=1), nll.mean(axis=1)
    if criterion == "top1":
        tied = int(np.sum(top1 == top1[chosen]))
    else:
        difference = nll - nll[np.argmin(mean_nll)]
        tied = int(np.sum(difference.mean(axis=1) <= difference.std(axis=1) / math.sqrt(len(labels)) + 1e-12))
    equal_weights = np.full(num_models, 1.0 / num_models)
    equal, equal_log_probs = fusion.fused_log_probs(val_scores, rule, equal_weights, temperatures)
    return {"weights": [round(float(w), 10) for w in grid[chosen]], "criterion": criterion,
            "top1": float(top1[chosen]), "nll": float(mean_nll[chosen]),
            "equal_weights_top1": float(np.mean(np.argmax(equal, axis=1) == labels)),
            "equal_weights_nll": float(np.mean(video_scores.per_video_nll(equal_log_probs, labels))),
            "step": float(step), "grid_points": int(len(grid)), "tied": tied}
