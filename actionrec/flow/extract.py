"""Per-video flow extraction to HDF5, beside the frames' layout.

Each video `<Class>/<video>` gets `<out>/<Class>/<video>.hdf5` holding one dataset `flow`, the flow of
every consecutive pair of its frames (T frames -> T - 1 fields) in the 8-bit form of codec.py:

  raw  : uint8 [T-1, H, W, 2], last axis (x, y)
  jpeg : variable-length uint8 [T-1, 2], each element one greyscale JPEG ([:, 0] x, [:, 1] y), as TSN
         stores flow (x and y as separate 8-bit images); attrs height/width/quality

and file attributes saying how it was made: method, bound, width, height, storage, source (the video
it was computed from), source_frames (T), pairs (T - 1), version, and resize (the size setting: "WxH",
or "native" for each video's own size). read_flow reads both storages.

Frames are resized to width x height (default 340 x 256, TSN's; aspect not kept, as TSN) before the
flow; the frames are read in chunks, so memory does not grow with the video's length.
"""
import os
from typing import NamedTuple, Optional

import cv2
import h5py
import numpy as np

from actionrec import atomic
from actionrec.data import video_files
from actionrec.flow import codec
from actionrec.flow.methods import cached_estimator

FLOW_KEY = "flow"
FORMAT_VERSION = 1
DEFAULT_SIZE = (340, 256)  # (width, height): TSN's flow frames (denseflow's --newWidth/--newHeight)
CHUNK_FRAMES = 32          # frames read and converted at a time: bounds a worker's memory
JPEG_QUALITY = 95          # OpenCV's default JPEG quality
STORAGES = ("raw", "jpeg")
SETTING_ATTRS = ("method", "bound", "width", "height", "storage")


class FlowSettings(NamedTuple):
    method: str
    size: Optional[tuple] = DEFAULT_SIZE  # (width, height); None keeps each video's own size
    bound: float = codec.BOUND
    storage: str = "raw"
    quality: int = JPEG_QUALITY
    raft_weights: Optional[str] = None


class FlowError(ValueError):
    """A video whose flow cannot be extracted (unreadable, too short)."""


def flow_attrs(path) -> Optional[dict]:
    """The attributes of a finished flow file, or None when `path` is not one (missing, not HDF5,
    no flow dataset, or an attribute missing)."""
    if not os.path.isfile(path):
        return None
    try:
        with h5py.File(path, "r") as f:
            if not isinstance(f.get(FLOW_KEY), h5py.Dataset):
                return None
            attrs = {key: f.attrs[key] for key in (*SETTING_ATTRS, "source", "source_frames", "pairs")}
            if len(f[FLOW_KEY]) != int(attrs["pairs"]):
                return None
    except (OSError, KeyError, ValueError):
        return None
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}


def settings_differ(attrs: dict, settings: FlowSettings) -> list:
    """Names of the settings in which a finished file's attributes differ from `settings`
    (size only when settings fix one)."""
    wanted = {"method": settings.method, "bound": float(settings.bound), "storage": settings.storage}
    if settings.size is not None:
        wanted.update(width=settings.size[0], height=settings.size[1])
    return [key for key, value in wanted.items() if attrs[key] != value]


def read_flow(path, indices) -> np.ndarray:
    """Fields `indices` (0 <= i < pairs) of a flow file as uint8 [n, H, W, 2] (x, y); codec.dequantize
    turns them into pixels."""
    with h5py.File(path, "r") as f:
        return read_fields(f, indices, path)


def read_fields(f, indices, path="") -> np.ndarray:
    """read_flow on an open flow file `f` (h5py.File): fields `indices` as uint8 [n, H, W, 2]."""
    ds = f[FLOW_KEY]
    if f.attrs["storage"] != "jpeg":
        indices = np.asarray(indices)
        return np.stack([ds[int(i)] for i in indices]) if len(indices) else np.empty((0,) + ds.shape[1:], np.uint8)
    return np.stack([np.stack([_decode_grey(ds[int(i), c], path) for c in (0, 1)], axis=-1) for i in indices])


def _decode_grey(buffer, path):
    image = cv2.imdecode(np.asarray(buffer, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"{path}: a flow image is not a valid JPEG")
    return image


def _encode_grey(image, quality):
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding of a flow image failed")
    return buffer.ravel()


def _create_dataset(f, settings, pairs, height, width):
    if settings.storage == "raw":
        # One field per chunk: a training sample reads L consecutive fields, never a whole video.
        return f.create_dataset(FLOW_KEY, (pairs, height, width, 2), dtype=np.uint8, chunks=(1, height, width, 2))
    ds = f.create_dataset(FLOW_KEY, (pairs, 2), dtype=h5py.vlen_dtype(np.uint8))
    ds.attrs.update(height=height, width=width, quality=int(settings.quality))
    return ds


def _store(ds, settings, start, levels):
    """Write uint8 [n, H, W, 2] fields at position `start` of the dataset."""
    if settings.storage == "raw":
        ds[start:start + len(levels)] = levels
        return
    for i, field in enumerate(levels):
        for c in (0, 1):
            ds[start + i, c] = _encode_grey(np.ascontiguousarray(field[..., c]), settings.quality)


def _resized(frames, size):
    if size is None or tuple(frames.shape[2:0:-1]) == tuple(size):
        return frames
    return np.stack([cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR) for frame in frames])


def size_setting(size: Optional[tuple]) -> str:
    """extract_flow.py's --size text of a size: "WxH", or "native" for None."""
    return "native" if size is None else f"{size[0]}x{size[1]}"


def write_flow(path, source, settings: FlowSettings) -> int:
    """Extract the flow of video file `source` (HDF5 or a video, helperFunctions.open_video) into
    `path`, atomically; returns the number of fields. FlowError for a video of fewer than 2 frames;
    helperFunctions.READ_ERRORS from reading it."""
    estimator = cached_estimator(settings.method, settings.raft_weights)
    tmp_path = atomic.temporary_path(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        with video_files.open_video(source) as video, h5py.File(tmp_path, "w") as f:
            frames = video.frames
            if frames < 2:
                raise FlowError(f"has {frames} frame{'s' if frames != 1 else ''}: flow needs two")
            width, height = settings.size or (video.width, video.height)
            ds = _create_dataset(f, settings, frames - 1, height, width)
            previous = None  # the last frame of the chunk before: the first of the next pair
            for start in range(0, frames, CHUNK_FRAMES):
                chunk = _resized(video.read(np.arange(start, min(start + CHUNK_FRAMES, frames))), settings.size)
                if previous is not None:
                    chunk = np.concatenate([previous, chunk])
                if len(chunk) >= 2:
                    levels = codec.quantize(estimator.flows(chunk), settings.bound)
                    _store(ds, settings, max(start - 1, 0), levels)
                previous = chunk[-1:]
            f.attrs.update(method=settings.method, bound=float(settings.bound), width=width, height=height,
                           storage=settings.storage, source=os.fspath(source), source_frames=frames,
                           pairs=frames - 1, version=FORMAT_VERSION, resize=size_setting(settings.size))
        os.replace(tmp_path, path)
        return frames - 1
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


def extract_video(task) -> tuple:
    """Worker: (name, source, path, settings, resume) -> (name, status, detail).

    status "skipped" (a finished file of these settings for the frames the source has now),
    "extracted" (detail: fields written) or "failed" (detail: the reason)."""
    name, source, path, settings, resume = task
    try:
        if resume:
            attrs = flow_attrs(path)
            if attrs is not None and not settings_differ(attrs, settings):
                if int(attrs["source_frames"]) == video_files.video_info(source)[0]:
                    return name, "skipped", int(attrs["pairs"])
        if not os.path.isfile(source):
            return name, "failed", f"{source} not found"
        return name, "extracted", write_flow(path, source, settings)
    except FlowError as e:
        return name, "failed", str(e)
    except video_files.READ_ERRORS as e:
        return name, "failed", f"{type(e).__name__}: {e}"


def foreign_outputs(paths, settings: FlowSettings) -> list:
    """(path, [setting names]) of the finished files among `paths` made with other settings."""
    found = []
    for path in paths:
        attrs = flow_attrs(path)
        differ = settings_differ(attrs, settings) if attrs is not None else []
        if differ:
            found.append((path, differ))
    return found
