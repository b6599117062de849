"""Prediction files and evaluation metrics shared by the test scripts and combine_results.py.

Prediction files follow the assignment's format: one HDF5 file per test video at
``<predictions_dir>/<ClassFolder>/<video>.hdf5`` holding a dataset ``predictions``,
float32 ``[rows, classes]`` of logits (rows = frames for the single-frame model,
clips for the 3D model).

A video's score is the mean over its rows of ``log_softmax(logits)`` (``video_score``).
Everything here is numpy; nothing runs at import time.

Ties: a video's classes are ranked by a stable sort on ``-score``, so among equal
scores the lower class index (classInd order) ranks first. Top-1 prediction, top-k
accuracy and the confusion matrix all use this one rule.
"""
import json
import math
import os

import h5py
import numpy as np

PREDICTIONS_KEY = "predictions"


# ---------------------------------------------------------------------------
# Prediction files
# ---------------------------------------------------------------------------
def prediction_path(predictions_dir, video_path):
    """``predictions_dir/<ClassFolder>/<video>.hdf5`` for a video path ending in .avi or .hdf5.

    The class folder is the parent directory of ``video_path`` (not parsed from the file
    name: ``HandstandPushups`` holds ``v_HandStandPushups_*`` files).
    """
    video_path = os.fspath(video_path)
    class_folder = os.path.basename(os.path.dirname(video_path))
    stem = os.path.splitext(os.path.basename(video_path))[0]
    return os.path.join(os.fspath(predictions_dir), class_folder, stem + ".hdf5")


def _atomic_write(path, write_fn):
    """Call ``write_fn(tmp_path)``, then move ``tmp_path`` onto ``path`` (same directory)."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp_path = f"{path}.tmp-{os.getpid()}"
    try:
        write_fn(tmp_path)
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise


def write_predictions(path, logits, attrs=None):
    """Atomically write ``logits`` (``[rows, classes]``; a 1-D array is one row) as float32.

    ``attrs`` (optional) become HDF5 attributes of the dataset, e.g. ``frames`` (the video's length),
    ``rows`` ("frames", "windows" or "pieces") and ``crops`` (views averaged into each row).
    """
    logits = np.asarray(logits, dtype=np.float32)
    if logits.ndim == 1:
        logits = logits[None, :]
    if logits.ndim != 2 or logits.shape[0] < 1 or logits.shape[1] < 1:
        raise ValueError(f"predictions must be [rows, classes] with rows >= 1, got shape {logits.shape}")

    def write(tmp_path):
        with h5py.File(tmp_path, "w") as f:
            dataset = f.create_dataset(PREDICTIONS_KEY, data=logits)
            for key, value in (attrs or {}).items():
                dataset.attrs[key] = value

    _atomic_write(path, write)


def read_predictions(path):
    """The ``predictions`` dataset of ``path`` as a float32 ndarray ``[rows, classes]``."""
    with h5py.File(path, "r") as f:
        return np.asarray(f[PREDICTIONS_KEY][()], dtype=np.float32)


def predictions_complete(path, num_classes):
    """True if ``path`` holds a readable 2-D ``predictions`` with >= 1 row and ``num_classes`` columns.

    Missing, truncated or corrupt files give False (never an exception), so a test
    script can resume by skipping videos whose file is complete.
    """
    try:
        with h5py.File(path, "r") as f:
            dataset = f.get(PREDICTIONS_KEY)
            if not isinstance(dataset, h5py.Dataset):
                return False
            if dataset.ndim != 2 or dataset.shape[0] < 1 or dataset.shape[1] != num_classes:
                return False
            dataset[()]  # reading the data catches files truncated after the header
            return True
    except (OSError, KeyError, ValueError, TypeError, RuntimeError):
        return False


def missing_predictions(predictions_dir, video_paths, num_classes):
    """The video paths whose prediction file under ``predictions_dir`` is not complete."""
    return [
        video_path
        for video_path in video_paths
        if not predictions_complete(prediction_path(predictions_dir, video_path), num_classes)
    ]


def load_video_scores(predictions_dir, video_paths):
    """``video_score`` of each video's prediction file: float64 ``[N, classes]``."""
    return np.stack([video_score(read_predictions(prediction_path(predictions_dir, p))) for p in video_paths])


# ---------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------
def log_softmax(logits, axis=-1):
    """Numerically stable log-softmax in float64."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - np.max(logits, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def softmax(logits, axis=-1):
    """Numerically stable softmax in float64."""
    return np.exp(log_softmax(logits, axis=axis))


def video_score(logits):
    """Mean over rows of ``log_softmax(logits)``: float64 ``[classes]``.

    ``logits`` is ``[rows, classes]`` (a 1-D array is one row).
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim == 1:
        logits = logits[None, :]
    if logits.ndim != 2 or logits.shape[0] < 1:
        raise ValueError(f"logits must be [rows, classes] with rows >= 1, got shape {logits.shape}")
    return log_softmax(logits, axis=1).mean(axis=0)


def rank_classes(scores):
    """Class indices of each row of ``scores [N, C]``, best first: int64 ``[N, C]``.

    Stable sort on ``-score``: equal scores keep the lower class index first.
    """
    scores = np.asarray(scores, dtype=np.float64)
    return np.argsort(-scores, axis=1, kind="stable")


def top1_predictions(scores):
    """Top-1 class index per row of ``scores [N, C]`` (ties: lower index): int64 ``[N]``."""
    return np.argmax(np.asarray(scores, dtype=np.float64), axis=1)  # argmax keeps the first maximum


def topk_accuracy(scores, labels, ks=(1, 5, 10)):
    """Fraction of rows whose label is among the ``k`` best scores, for each k.

    ``scores`` ``[N, C]``, ``labels`` ``[N]`` (0-based). k is clipped to C.
    Returns ``{"top1": float, "top5": float, ...}``. Ties: see ``rank_classes``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if scores.ndim != 2 or labels.shape != (scores.shape[0],):
        raise ValueError(f"scores must be [N, C] and labels [N]; got {scores.shape} and {labels.shape}")
    if scores.shape[0] == 0:
        raise ValueError("topk_accuracy needs at least one video")
    ranked = rank_classes(scores)
    result = {}
    for k in ks:
        k_used = max(1, min(int(k), scores.shape[1]))
        hits = (ranked[:, :k_used] == labels[:, None]).any(axis=1)
        result[f"top{k}"] = float(hits.mean())
    return result


def confusion_matrix(labels, predictions, num_classes):
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


def per_class_accuracy(cm):
    """Diagonal over row sums of a confusion matrix: float64 ``[C]``, NaN for classes without videos."""
    cm = np.asarray(cm, dtype=np.float64)
    totals = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(cm) / np.where(totals > 0, totals, 1), np.nan)


def most_confused_pairs(cm, class_list, n=10):
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


def summarize(scores, labels, class_list, num_listed=10):
    """Evaluation summary of video scores ``[N, C]`` against 0-based ``labels [N]``.

    Returns ``(summary, cm)``: ``cm`` is the int64 ``[C, C]`` confusion matrix (rows = true,
    cols = top-1 prediction), kept out of ``summary`` so that ``summary`` is JSON-ready:
      top1, top5, top10            fractions (k clipped to C)
      mean_class_accuracy          mean of per-class accuracies over classes with videos
      per_class_accuracy           {name: accuracy or None (no test videos)}, classInd order
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
    cm = confusion_matrix(labels, top1_predictions(scores), num_classes)
    accuracy = per_class_accuracy(cm)
    per_class = {name: (None if math.isnan(a) else float(a)) for name, a in zip(names, accuracy)}
    rated = [(name, a) for name, a in per_class.items() if a is not None]
    best = sorted(rated, key=lambda x: (-x[1], x[0]))[:num_listed]
    worst = sorted(rated, key=lambda x: (x[1], x[0]))[:num_listed]

    summary = {
        **topk,
        "mean_class_accuracy": float(np.mean([a for _, a in rated])) if rated else None,
        "per_class_accuracy": per_class,
        "best_classes": [[name, a] for name, a in best],
        "worst_classes": [[name, a] for name, a in worst],
        "most_confused": most_confused_pairs(cm, names, n=num_listed),
        "videos": int(scores.shape[0]),
    }
    return summary, cm


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------
def to_jsonable(obj):
    """``obj`` with numpy scalars/arrays turned into Python values and NaN/inf into None."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path, obj):
    """Atomically write ``obj`` as indented JSON (NaN -> null, numpy -> Python)."""
    text = json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n"

    def write(tmp_path):
        with open(tmp_path, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    _atomic_write(path, write)


def format_class_table(per_class, title="Per-class accuracy (worst first)", counts=None):
    """A printable table of ``{name: accuracy}`` sorted ascending (worst first, ties by name).

    Accuracies are fractions (shown as %); None/NaN (no test videos) are listed last as
    ``n/a``. ``counts`` optionally maps name -> number of test videos.
    """
    def value(a):
        return None if a is None or (isinstance(a, float) and math.isnan(a)) else float(a)

    rated = sorted(((n, value(a)) for n, a in per_class.items() if value(a) is not None), key=lambda x: (x[1], x[0]))
    unrated = sorted(n for n, a in per_class.items() if value(a) is None)
    width = max([len("class")] + [len(str(n)) for n in per_class])
    header = f"{'rank':>4}  {'class':<{width}}  {'accuracy':>8}" + ("  videos" if counts else "")
    lines = [title, header, "-" * len(header)] if title else [header, "-" * len(header)]
    rows = [(n, a) for n, a in rated] + [(n, None) for n in unrated]
    for rank, (name, a) in enumerate(rows, start=1):
        shown = "n/a" if a is None else f"{100.0 * a:7.2f}%"
        line = f"{rank:>4}  {str(name):<{width}}  {shown:>8}"
        if counts:
            line += f"  {counts.get(name, 0):>6}"
        lines.append(line)
    return "\n".join(lines)


def format_topk_table(results, ks=(1, 5, 10)):
    """A printable table of top-k accuracies: ``results`` maps model name -> {"top1": .., ...}."""
    width = max([len("model")] + [len(str(n)) for n in results])
    header = f"{'model':<{width}}" + "".join(f"  {'top-' + str(k):>7}" for k in ks)
    lines = [header, "-" * len(header)]
    for name, r in results.items():
        lines.append(f"{name:<{width}}" + "".join(f"  {100.0 * r[f'top{k}']:6.2f}%" for k in ks))
    return "\n".join(lines)
