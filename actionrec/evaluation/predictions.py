"""Prediction files: one HDF5 file per test video, read and written.

The assignment's format: ``<predictions_dir>/<ClassFolder>/<video>.hdf5`` holding a dataset
``predictions``, float32 ``[rows, classes]`` of logits (rows = frames for 2D models, windows, pieces or
the one whole video for 3D models, windows for the RNN). Newer test scripts add the dataset attributes
``frames`` (the video's length), ``rows`` ("frames" | "windows" | "pieces" | "video"), ``crops`` (views
averaged per row) and ``test`` (how the rows were computed, in words); older files lack them
(``PREDICTION_ATTRS`` are then unknown). A video's score is ``scores.video_score`` of its file.
"""
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import h5py
import numpy as np

from actionrec import atomic
from actionrec.evaluation import scores as video_scores

PathLike = Union[str, os.PathLike]
ArrayLike = Union[np.ndarray, Sequence[Any]]
PREDICTIONS_KEY = "predictions"
PREDICTION_ATTRS = ("frames", "rows", "crops", "test", "heads")  # heads: head_scores.HEADS_ATTR


def prediction_path(predictions_dir: PathLike, video_path: PathLike) -> str:
    """``predictions_dir/<ClassFolder>/<video>.hdf5`` for a video path ending in .avi or .hdf5.

    The class folder is the parent directory of ``video_path`` (not parsed from the file
    name: ``HandstandPushups`` holds ``v_HandStandPushups_*`` files).
    """
    video_path = os.fspath(video_path)
    class_folder = os.path.basename(os.path.dirname(video_path))
    stem = os.path.splitext(os.path.basename(video_path))[0]
    return os.path.join(os.fspath(predictions_dir), class_folder, stem + ".hdf5")


def video_name(video_path: PathLike) -> str:
    """``<ClassFolder>/<video>`` (no extension), as in the split lists."""
    return os.path.splitext(prediction_path("", video_path))[0]


def write_predictions(path: PathLike, logits: ArrayLike, attrs: Optional[Dict[str, Any]] = None) -> None:
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

    atomic.atomic_write(path, write)


def read_predictions(path: PathLike) -> np.ndarray:
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


def read_prediction_file(path: PathLike) -> Tuple[np.ndarray, Dict[str, Any]]:
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

    def __init__(self, num_videos: int) -> None:
        self.scores, self.rows = None, np.zeros(num_videos, dtype=np.int64)
        self.attrs = [{} for _ in range(num_videos)]
        self.missing, self.wrong_columns, self.wrong_shape, self.non_finite = [], {}, {}, []

    @property
    def ok(self) -> bool:
        return not (self.missing or self.wrong_columns or self.wrong_shape or self.non_finite)

    def attr_values(self, key: str) -> Optional[List[Any]]:
        """The attribute ``key`` of every video, or None unless every file has it."""
        values = [a.get(key) for a in self.attrs]
        return None if any(v is None for v in values) else values


def scan_predictions(predictions_dir: PathLike, video_paths: Sequence[str], num_classes: int) -> PredictionScan:
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
            scores[i] = video_scores.video_score(logits)
    if scan.ok:
        scan.scores = scores
    return scan


def predictions_complete(path: PathLike, num_classes: int) -> bool:
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


def missing_predictions(predictions_dir: PathLike, video_paths: Sequence[str], num_classes: int) -> List[str]:
    """The video paths whose prediction file under ``predictions_dir`` is not complete."""
    return [
        video_path
        for video_path in video_paths
        if not predictions_complete(prediction_path(predictions_dir, video_path), num_classes)
    ]


def load_video_scores(predictions_dir: PathLike, video_paths: Sequence[str]) -> np.ndarray:
    """``scores.video_score`` of each video's prediction file: float64 ``[N, classes]``."""
    return np.stack(
        [video_scores.video_score(read_predictions(prediction_path(predictions_dir, p))) for p in video_paths]
    )
