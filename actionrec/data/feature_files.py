"""Per-frame CNN feature files (extract_features.py) as samples of the feature RNN."""

from collections.abc import Sequence

import h5py
import numpy as np

from actionrec.data import video_files

FEATURES_KEY = "features"
NON_FINITE = "non-finite values"  # what a damaged feature file holds (read_features refuses it)
FEATURES_INFO = "features.json"  # a features folder's description: dims, weights, stride (extract_features.py)


def feature_info(path: str) -> tuple[int, int]:
    """(frames, dims) of a feature file written by extract_features.py, reading only its header."""
    with h5py.File(path, "r") as f:
        ds = _feature_dataset(f, path)
        return ds.shape[0], ds.shape[1]


def _feature_dataset(f, path):
    ds = f.get(FEATURES_KEY)
    if not isinstance(ds, h5py.Dataset) or ds.ndim != 2 or ds.shape[0] == 0:
        raise video_files.VideoReadError(
            f"{path}: no 'features' dataset of [frames, dims] (written by extract_features.py)"
        )
    return ds


def feature_window(
    num_frames: int, max_frames: int, frame_stride: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Frame indices of one feature sequence: every `frame_stride`-th frame from an offset, at most
    `max_frames` of them. With `rng` (training): a random stride offset and a random window; without:
    offset 0 and the window in the middle of the video."""
    offset = int(rng.integers(frame_stride)) if rng is not None else 0
    indices = np.arange(min(offset, num_frames - 1), num_frames, frame_stride)
    if len(indices) > max_frames:
        first = int(rng.integers(len(indices) - max_frames + 1)) if rng is not None \
            else (len(indices) - max_frames) // 2
        indices = indices[first:first + max_frames]
    return indices


def _features_raw(path, augment, rng, max_frames=250, frame_stride=1):
    """float16 [L, dims]: a window of a video's per-frame features (L <= max_frames); random when
    augmenting (training), else the middle window."""
    with h5py.File(path, "r") as f:
        ds = _feature_dataset(f, path)
        indices = feature_window(ds.shape[0], max_frames, frame_stride, rng if augment else None)
        features = ds[int(indices[0]):int(indices[-1]) + 1:frame_stride]
    if not np.isfinite(features).all():
        raise video_files.VideoReadError(f"{path}: non-finite values in 'features'")
    return np.asarray(features, dtype=np.float16)


def read_features(path: str, indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """float16 [n, dims]: the per-frame features `indices` (increasing) of a feature file."""
    with h5py.File(path, "r") as f:
        ds = _feature_dataset(f, path)
        indices = np.asarray(indices, dtype=np.int64) % ds.shape[0]
        features = ds[indices] if len(indices) and np.all(np.diff(indices) > 0) else ds[()][indices]
    if not np.isfinite(features).all():
        raise video_files.VideoReadError(f"{path}: {NON_FINITE} in '{FEATURES_KEY}'")
    return np.asarray(features, dtype=np.float16)
