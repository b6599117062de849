"""A bootstrap over the validation videos: is a fusion better than its best member?"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from actionrec.evaluation import fusion
from actionrec.evaluation import scores as video_scores
from actionrec.evaluation import weights as weight_choice
from actionrec.evaluation.scores import ArrayLike

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_LEVEL = 0.95


def percentile_interval(values: ArrayLike, level: float = BOOTSTRAP_LEVEL) -> List[float]:
    """``[low, high]`` of the central ``level`` of ``values`` (the bootstrap's percentile interval)."""
    low, high = np.quantile(np.asarray(values, dtype=np.float64), [(1 - level) / 2, (1 + level) / 2])
    return [float(low), float(high)]


def bootstrap_fusion(val_scores: Sequence[ArrayLike], val_labels: ArrayLike, rule: str, weights: Sequence[float],
                     temperatures: Optional[Sequence[float]] = None, criterion: Optional[str] = None,
                     step: Optional[float] = None, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                     level: float = BOOTSTRAP_LEVEL, member_temperatures: Optional[Sequence[float]] = None
                     ) -> Dict[str, Any]:
    """A bootstrap over the validation videos of a fusion against its best member.

    The best member is the member with the lowest validation NLL of its scores divided by
    ``member_temperatures`` (default: the fusion's ``temperatures``; give the fitted ones to hold an
    uncalibrated fusion to the bar of a calibrated member, since an NLL rewards sharpness as well as
    accuracy; ties: higher top-1, then the first). Each of ``resamples`` resamples draws
    N videos with replacement (numpy's default_rng(seed): the same seed gives the same numbers) and
    measures the fusion's gain over the best member (top-1 in fractions, NLL in nats: the member's minus
    the fusion's, so positive is better), and, when ``criterion`` names how the weights were chosen, runs
    that choice again on the resample (temperatures held at their fitted values). Returns
    ``{"resamples", "seed", "level", "best_member" (index), "gain_top1" and "gain_nll": {"estimate",
    "interval"}, "beats_best_member_top1", "below_best_member_top1", "beats_best_member_nll" (fractions of
    resamples), "chosen_again" (fraction, or None without criterion), "supported"}``; ``supported``: the
    interval of the top-1 gain lies above 0 (clearly more accurate), or the fusion's top-1 is not below
    the member's and the interval of the NLL gain lies above 0 (as accurate and clearly more likely).
    """
    labels = np.asarray(val_labels, dtype=np.int64)
    num_videos = len(labels)
    member_temperatures = temperatures if member_temperatures is None else member_temperatures
    best, member_nll, member_correct = best_member(val_scores, labels, member_temperatures)
    fused, log_probs = fusion.fused_log_probs(val_scores, rule, weights, temperatures)
    gain_nll_video = member_nll - video_scores.per_video_nll(log_probs, labels)
    gain_top1_video = (np.argmax(fused, axis=1) == labels).astype(np.float64) - member_correct

    rng = np.random.default_rng(seed)
    counts = rng.multinomial(num_videos, np.full(num_videos, 1.0 / num_videos), size=resamples).astype(np.float64)
    gain_nll, gain_top1 = counts @ gain_nll_video / num_videos, counts @ gain_top1_video / num_videos
    chosen_again = None
    if criterion is not None:
        chosen_again = _chosen_again(val_scores, labels, rule, weights, temperatures, criterion, step, counts)
    estimate_nll, estimate_top1 = float(gain_nll_video.mean()), float(gain_top1_video.mean())
    interval_nll, interval_top1 = percentile_interval(gain_nll, level), percentile_interval(gain_top1, level)
    return {"resamples": int(resamples), "seed": int(seed), "level": float(level), "best_member": int(best),
            "best_member_nll": float(member_nll.mean()), "best_member_top1": float(member_correct.mean()),
            "gain_top1": {"estimate": estimate_top1, "interval": interval_top1},
            "gain_nll": {"estimate": estimate_nll, "interval": interval_nll},
            "beats_best_member_top1": float(np.mean(gain_top1 > 0)),
            "below_best_member_top1": float(np.mean(gain_top1 < 0)),
            "beats_best_member_nll": float(np.mean(gain_nll > 0)), "chosen_again": chosen_again,
            "supported": bool(interval_top1[0] > 0 or (interval_nll[0] > 0 and estimate_top1 >= 0))}


def best_member(val_scores: Sequence[ArrayLike], labels: ArrayLike, temperatures: Optional[Sequence[float]] = None
                ) -> Tuple[int, np.ndarray, np.ndarray]:
    """``(index, per-video NLL [N], per-video top-1 hits [N])`` of the member of lowest validation NLL of its
    scores divided by ``temperatures`` (None: 1); ties: the higher top-1, then the first."""
    temps = [1.0] * len(val_scores) if temperatures is None else [float(t) for t in temperatures]
    members = [fusion.member_losses(s, labels, t) for s, t in zip(val_scores, temps)]
    best = min(range(len(members)),
               key=lambda i: (round(float(members[i][0].mean()), 12), -members[i][1].mean(), i))
    return best, members[best][0], members[best][1].astype(np.float64)


def _chosen_again(val_scores, labels, rule, weights, temperatures, criterion, step, counts):
    """The fraction of resamples (``counts`` [R, N]) on which ``criterion`` picks ``weights`` again."""
    grid, nll, correct = weight_choice.weight_grid_losses(val_scores, labels, rule, step, temperatures)
    chosen = int(np.argmin(np.abs(grid - np.asarray(weights, dtype=np.float64)).sum(axis=1)))
    return float(np.mean([weight_choice.pick_weights(grid, nll, correct, criterion, c) == chosen for c in counts]))
