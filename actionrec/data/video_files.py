"""Per-video files: the course's HDF5 layout (raw or JPEG frames) and the original .avi release.

HDF5 video files hold one dataset `video` in one of two storages:
  raw  : uint8 [T, H, W, 3], RGB (the course's layout)
  jpeg : variable-length uint8 [T], each element one JPEG-encoded frame; attrs storage/height/width
"""

import os
from collections.abc import Sequence

import cv2
import h5py
import numpy as np

from actionrec import atomic
from actionrec.data import split_lists, video_decode

# What reading a broken or malformed video file can raise; anything else is a bug and propagates.
READ_ERRORS = (OSError, KeyError, ValueError, cv2.error)


class VideoReadError(ValueError):
    """A video file that opens but does not hold a usable `video` dataset."""


def _video_dataset(f, path):
    try:
        ds = f["video"]
    except KeyError:
        raise VideoReadError(f"{path}: no 'video' dataset") from None
    if not isinstance(ds, h5py.Dataset):  # a group (or a named type) of that name holds no frames
        raise VideoReadError(f"{path}: no 'video' dataset ('video' is an HDF5 {type(ds).__name__.lower()})")
    shape = ds.shape
    if ds.dtype == np.uint8:
        # Raw storage is recognised by its dtype: reading the `storage` attribute costs ~70 us of CPU
        # per call (more than reading a frame), so only JPEG storage reads attributes.
        if len(shape) != 4 or shape[3] != 3:
            raise VideoReadError(f"{path}: 'video' is {ds.dtype} {shape}, expected uint8 [T, H, W, 3]")
        storage, (height, width) = "raw", shape[1:3]
    else:
        storage = ds.attrs.get("storage", "raw")
        if isinstance(storage, bytes):
            storage = storage.decode()
        if storage == "raw":
            raise VideoReadError(f"{path}: 'video' is {ds.dtype} {shape}, expected uint8 [T, H, W, 3]")
        if storage != "jpeg":
            raise VideoReadError(f"{path}: unknown storage {storage!r}")
        if len(shape) != 1:
            raise VideoReadError(f"{path}: jpeg 'video' has shape {shape}, expected [T]")
        height, width = int(ds.attrs["height"]), int(ds.attrs["width"])
    if shape[0] == 0:
        raise VideoReadError(f"{path}: video has no frames")
    return ds, storage, shape[0], height, width


class _Hdf5Video:
    """An open per-video HDF5 file (raw or JPEG storage): frames, height, width, storage, read()."""

    def __init__(self, path):
        self.path = path
        self._file = h5py.File(path, "r")
        try:
            self._ds, self.storage, self.frames, self.height, self.width = _video_dataset(self._file, path)
        except BaseException:
            self._file.close()
            raise

    def read(self, indices):
        """uint8 [n, H, W, 3] RGB of frames `indices` (0 <= i < frames; any order, repeats allowed)."""
        return _read_indices(self._ds, self.storage, indices, self.path)

    def close(self):
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_decoded_frames = {}   # path -> frames that really decode (video_decode.probe), per process


_worker_reader = None  # this process's last decoded-video reader, kept open for the next chunk


class _KeptOpen:
    """A worker's reader handed out again: leaving the `with` block keeps it open (and positioned)."""

    def __init__(self, reader):
        self.reader = reader

    def __enter__(self):
        return self.reader

    def __exit__(self, *exc):
        if exc[0] is not None:  # after a failure start afresh next time, with a count the reader corrected
            _decoded_frames[self.reader.path] = self.reader.frames
            _drop_worker_reader()


def _drop_worker_reader():
    global _worker_reader
    if _worker_reader is not None:
        _worker_reader.close()
        _worker_reader = None


def _open_decoded(path):
    """A video_decode.VideoReader whose `frames` is the count that really decodes (probed once per
    process: a truncated file's header promises more). The last reader stays open, so the next chunk
    of the same video continues decoding instead of seeking back to a keyframe (make_pool closes the
    parent's before forking: a reader never crosses a fork)."""
    global _worker_reader
    if path not in _decoded_frames:
        _decoded_frames[path] = _probe(path)[0]
    if _worker_reader is None or _worker_reader.path != path:
        _drop_worker_reader()
        _worker_reader = video_decode.VideoReader(path, frames=_decoded_frames[path])
    return _KeptOpen(_worker_reader)


MIN_DECODED_FRACTION = video_decode.MIN_DECODED_FRACTION  # one rule for every reader and the converter


def _probe(path):
    """video_decode.probe, and a truncated file (it still opens and decodes its first frames) refused
    like prepare_ucf101.py refuses it; a small difference from the header takes the decoded count."""
    frames, height, width, _, declared = video_decode.probe(path, declared=True)
    if declared and frames < MIN_DECODED_FRACTION * declared:
        raise VideoReadError(f"{path}: only {frames} of the {declared} frames its header declares can be "
                             f"decoded (a truncated file?)")
    return frames, height, width


def is_video_path(path: str | os.PathLike[str]) -> bool:
    """True for the original videos (any suffix of VIDEO_SUFFIXES), False for HDF5 files."""
    return os.path.splitext(os.fspath(path))[1].lower() in split_lists.VIDEO_SUFFIXES


def open_video(path: str | os.PathLike[str]) -> _KeptOpen | _Hdf5Video:
    """An open video, whatever its storage: a context manager with `frames`, `height`, `width` and
    `read(indices)` -> uint8 [n, H, W, 3] RGB.

    HDF5 files (.hdf5) are read with h5py; the original videos (.avi or any suffix in VIDEO_SUFFIXES)
    are decoded (video_decode.VideoReader), frame-accurately. Open it in the process that reads it:
    every loader opens its own, so nothing crosses a fork.
    """
    path = os.fspath(path)
    if is_video_path(path):
        return _open_decoded(path)
    return _Hdf5Video(path)


def video_info(path: str | os.PathLike[str]) -> tuple[int, int, int, str]:
    """(frames, height, width, storage) of a video file, reading only its header (HDF5) or counting
    the packets of the container without decoding them (original videos: ~1 ms)."""
    path = os.fspath(path)
    if is_video_path(path):
        frames, height, width = _probe(path)
        _decoded_frames[path] = frames
        return frames, height, width, "video"
    with h5py.File(path, "r") as f:
        _, storage, frames, height, width = _video_dataset(f, path)
    return frames, height, width, storage


def _decode_jpeg(buffer, path):
    frame = cv2.imdecode(np.asarray(buffer, dtype=np.uint8), cv2.IMREAD_COLOR)
    if frame is None:
        raise VideoReadError(f"{path}: a frame is not a valid JPEG")
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def _read_indices(ds, storage, indices, path):
    """uint8 [n, H, W, 3] for the given frame indices (any order, repeats allowed)."""
    indices = np.asarray(indices)
    if storage == "jpeg":
        return np.stack([_decode_jpeg(ds[i], path) for i in indices])
    if len(indices) == 0:
        raise ValueError(f"{path}: no frames asked for")
    if len(indices) == 1 or np.all(np.diff(indices) == 1):
        return ds[int(indices[0]):int(indices[-1]) + 1]  # one contiguous hyperslab: the common case
    # Looped or scattered frames: read only the contiguous runs that are needed, then reorder.
    unique, inverse = np.unique(indices, return_inverse=True)
    runs = np.split(unique, np.flatnonzero(np.diff(unique) != 1) + 1)
    return np.concatenate([ds[int(r[0]):int(r[-1]) + 1] for r in runs])[inverse]


def read_frames(path: str | os.PathLike[str], indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """Frames `indices` of a video file as uint8 [n, H, W, 3] RGB; indices wrap around (loop)."""
    with open_video(path) as video:
        return video.read(np.asarray(indices) % video.frames)


def write_video_hdf5(path: str, frames: np.ndarray, storage: str = "raw", quality: int = 90) -> None:
    """Write uint8 [T, H, W, 3] RGB frames to `path` atomically (temporary name, then rename)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"expected uint8 [T, H, W, 3] frames with T > 0, got {frames.dtype} {frames.shape}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp_path = atomic.temporary_path(path)
    try:
        with h5py.File(tmp_path, "w") as f:
            if storage == "raw":
                f.create_dataset("video", data=frames)
            elif storage == "jpeg":
                ds = f.create_dataset("video", (len(frames),), dtype=h5py.vlen_dtype(np.uint8))
                params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
                for i, frame in enumerate(frames):
                    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), params)
                    if not ok:
                        raise ValueError(f"JPEG encoding failed for frame {i} of {path}")
                    ds[i] = buffer.ravel()
                ds.attrs["quality"] = int(quality)
            else:
                raise ValueError(f"storage must be 'raw' or 'jpeg', not {storage!r}")
            f["video"].attrs["storage"] = storage
            f["video"].attrs["height"] = frames.shape[1]
            f["video"].attrs["width"] = frames.shape[2]
        os.replace(tmp_path, path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
