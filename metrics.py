"""Prediction files and evaluation metrics shared by the test scripts and combine_results.py.

Prediction files follow the assignment's format: one HDF5 file per test video at
``<predictions_dir>/<ClassFolder>/<video>.hdf5`` holding a dataset ``predictions``,
float32 ``[rows, classes]`` of logits (rows = frames for 2D models, windows, pieces or the one whole
video for 3D models, windows for the RNN). Newer test scripts add the dataset attributes
``frames`` (the video's length), ``rows`` ("frames" | "windows" | "pieces" | "video"), ``crops``
(views averaged per row) and ``test`` (how the rows were computed, in words); older files lack them
(``PREDICTION_ATTRS`` are then unknown).

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
PREDICTION_ATTRS = ("frames", "rows", "crops", "test")
FUSION_RULES = {
    "logmean": "sum of w_i * s_i over the models' video scores s_i (mean log-softmax over rows)",
    "prob": "sum of w_i * softmax(s_i), weights normalised to sum 1",
    "max": "element-wise max of w_i * softmax(s_i), weights normalised to sum 1",
}


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
    ``rows`` ("frames", "windows", "pieces" or "video"), ``crops`` (views averaged into each row) and
    ``test`` (how they were computed, in words); None values are left out.
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
                if value is not None:  # unknown: leave the attribute out, as in older files
                    dataset.attrs[key] = value

    _atomic_write(path, write)


def read_predictions(path):
    """The ``predictions`` dataset of ``path`` as a float32 ndarray ``[rows, classes]``."""
    with h5py.File(path, "r") as f:
        return np.asarray(f[PREDICTIONS_KEY][()], dtype=np.float32)


def _attr_value(value):
    """An HDF5 attribute as a Python int/float/str."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(())[()]
    if isinstance(value, np.generic):
        value = value.item()
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def read_prediction_file(path):
    """``(logits, attrs)`` of one prediction file: the ``predictions`` dataset as stored (any shape,
    float32) and its ``PREDICTION_ATTRS`` that are present. Raises OSError/KeyError/ValueError/TypeError
    for files that are missing, corrupt or lack the dataset."""
    with h5py.File(path, "r") as f:
        dataset = f[PREDICTIONS_KEY]
        if not isinstance(dataset, h5py.Dataset):
            raise TypeError(f"{PREDICTIONS_KEY} is not a dataset")
        logits = np.asarray(dataset[()], dtype=np.float32)
        attrs = {k: _attr_value(dataset.attrs[k]) for k in PREDICTION_ATTRS if k in dataset.attrs}
    return logits, attrs


class PredictionScan:
    """One model's prediction folder read for a list of videos (``scan_predictions``).

    scores    float64 [N, C] video scores, or None when any file has a problem
    rows      int64 [N] rows per video (0 where unreadable)
    attrs     list of N dicts (``PREDICTION_ATTRS`` present in each file)
    missing   video paths without a readable file
    wrong_columns   {video path: column count} of 2-D files with the wrong class count
    wrong_shape     {video path: shape} of files that are not [rows >= 1, columns]
    non_finite      video paths whose logits hold NaN or inf
    """

    def __init__(self, num_videos):
        self.scores, self.rows = None, np.zeros(num_videos, dtype=np.int64)
        self.attrs = [{} for _ in range(num_videos)]
        self.missing, self.wrong_columns, self.wrong_shape, self.non_finite = [], {}, {}, []

    @property
    def ok(self):
        return not (self.missing or self.wrong_columns or self.wrong_shape or self.non_finite)

    def attr_values(self, key):
        """The attribute ``key`` of every video, or None unless every file has it."""
        values = [a.get(key) for a in self.attrs]
        return None if any(v is None for v in values) else values


def scan_predictions(predictions_dir, video_paths, num_classes):
    """Read every video's prediction file once: scores, row counts, attributes and problems.

    Every file is opened through ``read_prediction_file`` (so a test can record which files were read).
    """
    scan = PredictionScan(len(video_paths))
    scores = np.zeros((len(video_paths), num_classes), dtype=np.float64)
    for i, video_path in enumerate(video_paths):
        try:
            logits, attrs = read_prediction_file(prediction_path(predictions_dir, video_path))
        except (OSError, KeyError, ValueError, TypeError, RuntimeError):
            scan.missing.append(video_path)
            continue
        scan.attrs[i] = attrs
        if logits.ndim != 2 or logits.shape[0] < 1 or logits.shape[1] < 1:
            scan.wrong_shape[video_path] = tuple(logits.shape)
        elif logits.shape[1] != num_classes:
            scan.wrong_columns[video_path] = int(logits.shape[1])
        elif not np.all(np.isfinite(logits)):
            scan.non_finite.append(video_path)
        else:
            scan.rows[i] = logits.shape[0]
            scores[i] = video_score(logits)
    if scan.ok:
        scan.scores = scores
    return scan


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
            # Reading the data catches files truncated after the header; a file holding NaN or inf
            # (an fp16 overflow, a disk fault) is not a finished prediction either: a rerun redoes it.
            return bool(np.isfinite(dataset[()]).all())
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


def classification_report(cm):
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


def macro_averages(report):
    """Means of precision, recall and F1 over the classes with test videos (``classification_report``).

    Every class of an official split has test videos, so this is the mean over the whole class list;
    a class without test videos (partial or synthetic lists) has no recall and is left out of all three.
    Returns ``{"macro_precision", "macro_recall", "macro_f1"}`` (None when no class has videos).
    """
    rated = report["support"] > 0
    if not rated.any():
        return {"macro_precision": None, "macro_recall": None, "macro_f1": None}
    return {f"macro_{key}": float(np.mean(report[key][rated])) for key in ("precision", "recall", "f1")}


def summarize(scores, labels, class_list, num_listed=10):
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
    cm = confusion_matrix(labels, top1_predictions(scores), num_classes)
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


# ---------------------------------------------------------------------------
# Fusion and the choice of its weights
# ---------------------------------------------------------------------------
def fuse_scores(scores, rule="logmean", weights=None):
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
    weighted = [w * softmax(s) for w, s in zip(weights, scores)]
    return sum(weighted) if rule == "prob" else np.maximum.reduce(weighted)


def default_weight_step(num_models):
    """Grid step of ``choose_weights``: 0.05 for 2-3 models, 0.1 for 4-6, 0.2 beyond (grid sizes 21,
    231, 286, 1001, 3003 points for 2, 3, 4, 5, 6 models)."""
    return 0.05 if num_models <= 3 else 0.1 if num_models <= 6 else 0.2


def simplex_grid(num_models, step):
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


# Temperature scaling (Guo et al. 2017, "On calibration of modern neural networks"): a model's video score
# s becomes softmax(s / T), T fitted by validation NLL. Bounded because a model that is right on every
# video of a small validation set has its NLL fall without limit as T -> 0: 0.5 sharpens at most 2x;
# 20 flattens a model that is sure and often wrong nearly to uniform.
TEMPERATURE_RANGE = (0.5, 20.0)
WEIGHT_CRITERIA = ("nll", "top1")
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_LEVEL = 0.95


def per_video_nll(log_probs, labels):
    """``-log_probs[n, labels[n]]`` for log-probabilities ``[N, C]``: float64 ``[N]``."""
    log_probs = np.asarray(log_probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    return -log_probs[np.arange(len(labels)), labels]


def calibrate(scores, temperatures=None):
    """Each model's scores divided by its temperature (None: unchanged)."""
    scores = [np.asarray(s, dtype=np.float64) for s in scores]
    if temperatures is None:
        return scores
    return [s / float(t) for s, t in zip(scores, temperatures)]


def fit_temperature(scores, labels, bounds=TEMPERATURE_RANGE, iterations=80):
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
        return float(np.mean(per_video_nll(log_softmax(scores * inverse, axis=1), labels)))

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


def fused_log_probs(scores, rule="logmean", weights=None, temperatures=None):
    """The fused scores of ``fuse_scores`` (after ``calibrate``) and the log of the distribution they
    rank by: ``(fused [N, C], log_probs [N, C])``; logmean: log_softmax of the fused score; prob and max:
    the fused values normalised to sum 1 per video (prob already does)."""
    fused = fuse_scores(calibrate(scores, temperatures), rule, weights)
    if rule == "logmean":
        return fused, log_softmax(fused, axis=1)
    normalised = fused / fused.sum(axis=1, keepdims=True)
    return fused, np.log(np.maximum(normalised, np.finfo(np.float64).tiny))


def member_losses(scores, labels, temperature=1.0):
    """One model's per-video NLL (of ``softmax(scores / temperature)``) and top-1 hits: ``([N], [N] bool)``."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    return (per_video_nll(log_softmax(scores / temperature, axis=1), labels),
            top1_predictions(scores) == labels)


def weight_grid_losses(val_scores, val_labels, rule="logmean", step=None, temperatures=None):
    """Per grid point and validation video, the fusion's NLL and top-1 hit: ``(grid [G, M], nll [G, N],
    correct [G, N] bool)``; ``step`` defaults to ``default_weight_step``."""
    if rule not in FUSION_RULES:
        raise ValueError(f"unknown fusion rule {rule!r}; expected one of {', '.join(FUSION_RULES)}")
    labels = np.asarray(val_labels, dtype=np.int64)
    step = default_weight_step(len(val_scores)) if step is None else step
    grid = simplex_grid(len(val_scores), step)
    scores = calibrate(val_scores, temperatures)
    nll = np.empty((len(grid), len(labels)))
    correct = np.empty((len(grid), len(labels)), dtype=bool)
    for g, weights in enumerate(grid):
        fused, log_probs = fused_log_probs(scores, rule, weights)
        nll[g] = per_video_nll(log_probs, labels)
        correct[g] = np.argmax(fused, axis=1) == labels
    return grid, nll, correct


def pick_weights(grid, nll, correct, criterion="nll", counts=None):
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


def choose_weights(val_scores, val_labels, rule="logmean", step=None, criterion="top1", temperatures=None):
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
    equal, equal_log_probs = fused_log_probs(val_scores, rule, np.full(num_models, 1.0 / num_models), temperatures)
    return {"weights": [round(float(w), 10) for w in grid[chosen]], "criterion": criterion,
            "top1": float(top1[chosen]), "nll": float(mean_nll[chosen]),
            "equal_weights_top1": float(np.mean(np.argmax(equal, axis=1) == labels)),
            "equal_weights_nll": float(np.mean(per_video_nll(equal_log_probs, labels))),
            "step": float(step), "grid_points": int(len(grid)), "tied": tied}


def percentile_interval(values, level=BOOTSTRAP_LEVEL):
    """``[low, high]`` of the central ``level`` of ``values`` (the bootstrap's percentile interval)."""
    low, high = np.quantile(np.asarray(values, dtype=np.float64), [(1 - level) / 2, (1 + level) / 2])
    return [float(low), float(high)]


def bootstrap_fusion(val_scores, val_labels, rule, weights, temperatures=None, criterion=None, step=None,
                     resamples=BOOTSTRAP_RESAMPLES, seed=0, level=BOOTSTRAP_LEVEL, member_temperatures=None):
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
    num_models, num_videos = len(val_scores), len(labels)
    member_temperatures = temperatures if member_temperatures is None else member_temperatures
    temps = [1.0] * num_models if member_temperatures is None else [float(t) for t in member_temperatures]
    members = [member_losses(s, labels, t) for s, t in zip(val_scores, temps)]
    best = min(range(num_models), key=lambda i: (round(float(members[i][0].mean()), 12), -members[i][1].mean(), i))
    fused, log_probs = fused_log_probs(val_scores, rule, weights, temperatures)
    fusion_nll, fusion_correct = per_video_nll(log_probs, labels), np.argmax(fused, axis=1) == labels
    gain_nll_video = members[best][0] - fusion_nll
    gain_top1_video = fusion_correct.astype(np.float64) - members[best][1]

    rng = np.random.default_rng(seed)
    counts = rng.multinomial(num_videos, np.full(num_videos, 1.0 / num_videos), size=resamples).astype(np.float64)
    gain_nll, gain_top1 = counts @ gain_nll_video / num_videos, counts @ gain_top1_video / num_videos
    chosen_again = None
    if criterion is not None:
        grid, nll, correct = weight_grid_losses(val_scores, labels, rule, step, temperatures)
        chosen = int(np.argmin(np.abs(grid - np.asarray(weights, dtype=np.float64)).sum(axis=1)))
        chosen_again = float(np.mean([pick_weights(grid, nll, correct, criterion, c) == chosen for c in counts]))
    estimate_nll, estimate_top1 = float(gain_nll_video.mean()), float(gain_top1_video.mean())
    interval_nll, interval_top1 = percentile_interval(gain_nll, level), percentile_interval(gain_top1, level)
    return {"resamples": int(resamples), "seed": int(seed), "level": float(level), "best_member": int(best),
            "best_member_nll": float(members[best][0].mean()), "best_member_top1": float(members[best][1].mean()),
            "gain_top1": {"estimate": estimate_top1, "interval": interval_top1},
            "gain_nll": {"estimate": estimate_nll, "interval": interval_nll},
            "beats_best_member_top1": float(np.mean(gain_top1 > 0)),
            "below_best_member_top1": float(np.mean(gain_top1 < 0)),
            "beats_best_member_nll": float(np.mean(gain_nll > 0)), "chosen_again": chosen_again,
            "supported": bool(interval_top1[0] > 0 or (interval_nll[0] > 0 and estimate_top1 >= 0))}


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
