"""Video scores: log-softmax, the mean over a video's rows, and the ranking of classes.

A video's score is the mean over its rows of ``log_softmax(logits)`` (``video_score``). Everything here is
numpy. Ties: a video's classes are ranked by a stable sort on ``-score``, so among equal scores the lower
class index (classInd order) ranks first; top-1 prediction, top-k accuracy and the confusion matrix all
use this one rule.
"""
from typing import Any, Sequence, Union

import numpy as np

ArrayLike = Union[np.ndarray, Sequence[Any]]


def log_softmax(logits: ArrayLike, axis: int = -1) -> np.ndarray:
    """Numerically stable log-softmax in float64."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - np.max(logits, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def softmax(logits: ArrayLike, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax in float64."""
    return np.exp(log_softmax(logits, axis=axis))


def video_score(logits: ArrayLike) -> np.ndarray:
    """Mean over rows of ``log_softmax(logits)``: float64 ``[classes]``.

    ``logits`` is ``[rows, classes]`` (a 1-D array is one row).
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim == 1:
        logits = logits[None, :]
    if logits.ndim != 2 or logits.shape[0] < 1:
        raise ValueError(f"logits must be [rows, classes] with rows >= 1, got shape {logits.shape}")
    return log_softmax(logits, axis=1).mean(axis=0)


def rank_classes(scores: ArrayLike) -> np.ndarray:
    """Class indices of each row of ``scores [N, C]``, best first: int64 ``[N, C]``.

    Stable sort on ``-score``: equal scores keep the lower class index first.
    """
    scores = np.asarray(scores, dtype=np.float64)
    return np.argsort(-scores, axis=1, kind="stable")


def top1_predictions(scores: ArrayLike) -> np.ndarray:
    """Top-1 class index per row of ``scores [N, C]`` (ties: lower index): int64 ``[N]``."""
    return np.argmax(np.asarray(scores, dtype=np.float64), axis=1)  # argmax keeps the first maximum


def per_video_nll(log_probs: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """``-log_probs[n, labels[n]]`` for log-probabilities ``[N, C]``: float64 ``[N]``."""
    log_probs = np.asarray(log_probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    return -log_probs[np.arange(len(labels)), labels]
