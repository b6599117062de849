"""Temperature scaling (Guo et al. 2017, "On calibration of modern neural networks"): a model's video
score s becomes video_scores.softmax(s / T), T fitted by validation NLL."""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from actionrec.evaluation import scores as video_scores
from actionrec.evaluation.scores import ArrayLike

# Temperature scaling (Guo et al. 2017, "On calibration of modern neural networks"): a model's video score
# s becomes video_scores.softmax(s / T), T fitted by validation NLL. Bounded because a model that is right on every
# video of a small validation set has its NLL fall without limit as T -> 0: 0.5 sharpens at most 2x;
# 20 flattens a model that is sure and often wrong nearly to uniform.
TEMPERATURE_RANGE = (0.5, 20.0)


def calibrate(scores: Sequence[ArrayLike], temperatures: Optional[Sequence[float]] = None) -> List[np.ndarray]:
    """Each model's scores divided by its temperature (None: unchanged)."""
    scores = [np.asarray(s, dtype=np.float64) for s in scores]
    if temperatures is None:
        return scores
    return [s / float(t) for s, t in zip(scores, temperatures)]


def fit_temperature(scores: ArrayLike, labels: ArrayLike, bounds: Tuple[float, float] = TEMPERATURE_RANGE,
                    iterations: int = 80) -> Dict[str, object]:
    """The temperature T in ``bounds`` that minimises the mean NLL of ``softmax(scores / T)``.

    ``scores`` ``[N, C]`` (video scores), ``labels`` ``[N]``. The NLL is convex in 1/T (a log-sum-exp of
    a linear function minus a linear one), so a golden-section search on 1/T finds the minimum, or the
    bound it lies beyond. Returns ``{"temperature", "nll_before" (T = 1), "nll_after", "at_bound"
    ("lower", "upper" or None)}``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    low, high = bounds

    def nll(inverse):
        return float(np.mean(video_scores.per_video_nll(video_scores.log_softmax(scores * inverse, axis=1), labels)))

    a, b = 1.0 / high, 1.0 / low
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(c), nll(d)
    for _ in range(iterations):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(d)
    inside = c if fc <= fd else d
    candidates = [(nll(1.0 / high), float(high), "upper"), (min(fc, fd), 1.0 / inside, None),
                  (nll(1.0 / low), float(low), "lower")]
    best_nll, temperature, at_bound = min(candidates, key=lambda x: x[0])
    if at_bound is None and not low * (1 + 1e-9) < temperature < high * (1 - 1e-9):
        at_bound, temperature = ("lower", float(low)) if temperature < 1.0 else ("upper", float(high))
    return {"temperature": temperature, "nll_before": nll(1.0), "nll_after": best_nll, "at_bound": at_bound}
