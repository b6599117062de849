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


def choose_weights(val_scores, val_labels, rule="logmean", step=None):
    """The fusion weights with the best top-1 accuracy on validation scores (a grid over the simplex).

    ``val_scores``: M arrays ``[N, C]`` (the members' video scores on the validation videos, in the
    fusion's order); ``val_labels`` ``[N]``. A pure function of its arguments: it never sees test data.
    Ties (equal validation top-1) go to the weights closest to equal weights (Euclidean), then to the
    first in ``simplex_grid`` order. Returns ``{"weights": [M floats], "top1": float,
    "equal_weights_top1": float, "step": float, "grid_points": int, "tied": int}`` (``tied``: grid points
    that reach the best accuracy).
    """
    scores = np.stack([np.asarray(s, dtype=np.float64) for s in val_scores])  # (M, N, C)
    labels = np.asarray(val_labels, dtype=np.int64)
    num_models = scores.shape[0]
    step = default_weight_step(num_models) if step is None else step
    grid = simplex_grid(num_models, step)
    if rule not in FUSION_RULES:
        raise ValueError(f"unknown fusion rule {rule!r}; expected one of {', '.join(FUSION_RULES)}")
    base = scores if rule == "logmean" else np.stack([softmax(s) for s in scores])

    def accuracy(weights):
        if rule == "max":
            fused = np.max(weights[:, None, None] * base, axis=0)
        else:  # logmean and prob are both a weighted sum (prob's weights already sum to 1)
            fused = np.tensordot(weights, base, axes=1)
        return float(np.mean(np.argmax(fused, axis=1) == labels))

    accuracies = np.array([accuracy(w) for w in grid])
    best = accuracies.max()
    tied = np.flatnonzero(accuracies == best)
    distance = ((grid[tied] - 1.0 / num_models) ** 2).sum(axis=1)
    chosen = tied[np.argmin(np.round(distance, 12))]  # argmin keeps the first of equal distances
    return {"weights": [round(float(w), 10) for w in grid[chosen]], "top1": float(best),
            "equal_weights_top1": accuracy(np.full(num_models, 1.0 / num_models)), "step": float(step),
            "grid_points": int(len(grid)), "tied": int(len(tied))}


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
