"""Training and test samples: a frame, a clip or TSN's segments of one video, with the assignment's augmentation.

The assignment's public loaders (loadFrame, loadSequence and their uint8 Raw forms) keep their contracts;
everything that feeds a model goes through the uint8 raw samplers and is normalised on the device.
"""

import logging

import cv2
import numpy as np

from actionrec.data import normalization, video_files

log = logging.getLogger("ucf101")


IMAGE_SIZE = 224


CLIP_LEN = 16


BRIGHTNESS = 30  # the assignment's +/- 15


_global_rng = np.random.default_rng()


_SampleArgs = tuple[str, bool] | tuple[str, bool, int | None]  # (path, augment[, seed])


def _augment_params(rng, height, width):
    """The assignment's augmentation: crop 70-100% (prob 1/2, aspect not kept), flip 1/2, brightness."""
    crop = None
    if rng.integers(2) == 0:
        crop_w = int(width * (0.3 * rng.random() + 0.7))
        crop_h = int(height * (0.3 * rng.random() + 0.7))
        x = int(rng.integers(max(width - crop_w, 1)))
        y = int(rng.integers(max(height - crop_h, 1)))
        crop = (y, y + crop_h, x, x + crop_w)
    flip = rng.integers(2) == 0
    brightness = int(rng.integers(BRIGHTNESS + 1)) - BRIGHTNESS // 2
    return crop, flip, brightness


def _transform(frames, augment, rng, size, out=None):
    """uint8 [n, H, W, 3] -> uint8 [n, size, size, 3] (into `out` if given); one crop/flip/brightness
    for all frames."""
    n, height, width, _ = frames.shape
    crop, flip, brightness = _augment_params(rng, height, width) if augment else (None, False, 0)
    if crop is not None:
        frames = frames[:, crop[0]:crop[1], crop[2]:crop[3]]
    if out is None:
        out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        cv2.resize(frames[i], (size, size), dst=out[i], interpolation=cv2.INTER_LINEAR)
        if flip:  # in place, while the frame is in cache; numpy's reversed-stride copy is ~40x slower
            cv2.flip(out[i], 1, dst=out[i])
    if brightness:
        # Saturating add/subtract of a whole number equals the assignment's float add + clip; SIMD,
        # ~10x faster than cv2.LUT. One-channel view: a scalar must reach every byte.
        flat = out.reshape(n * size, size * 3)
        if brightness > 0:
            cv2.add(flat, brightness, dst=flat)
        else:
            cv2.subtract(flat, -brightness, dst=flat)
    return out


def _frame_raw(path, augment, rng, size=IMAGE_SIZE, frame_index=None):
    """uint8 [size, size, 3]: one frame drawn uniformly from all frames (the last included)."""
    with video_files.open_video(path) as video:
        index = int(rng.integers(video.frames)) if frame_index is None else frame_index % video.frames
        frame = video.read([index])
    return _transform(frame, augment, rng, size)[0]


def clip_indices(num_frames: int, clip_len: int, start: int) -> np.ndarray:
    """Indices of a clip starting at `start`; a video shorter than the clip is looped."""
    return (start + np.arange(clip_len)) % num_frames


def _clip_raw(path, augment, rng, size=IMAGE_SIZE, clip_len=CLIP_LEN, start=None):
    """uint8 [clip_len, size, size, 3]: consecutive frames from a uniformly drawn start."""
    with video_files.open_video(path) as video:
        if start is None:
            start = int(rng.integers(max(video.frames - clip_len, 0) + 1))
        clip = video.read(clip_indices(video.frames, clip_len, start))
    return _transform(clip, augment, rng, size)


def segment_centres(num_frames: int, segments: int) -> np.ndarray:
    """Frame k of `segments` at the centre of the k-th of equal segments: int((k + 0.5) * T / K)
    (TSN's test frames; every frame once when segments >= T... repeats when T < K)."""
    return ((np.arange(segments) + 0.5) * num_frames / segments).astype(np.int64)


def segment_offsets(num_frames: int, segments: int, rng: np.random.Generator) -> np.ndarray:
    """One frame at a uniformly random offset in each of `segments` equal segments (TSN training)."""
    bounds = np.floor(np.arange(segments + 1) * num_frames / segments).astype(np.int64)
    starts, lengths = bounds[:-1], np.maximum(np.diff(bounds), 1)
    return np.minimum(starts + (rng.random(segments) * lengths).astype(np.int64), num_frames - 1)


def _segments_raw(path, augment, rng, size=IMAGE_SIZE, segments=3, centres=False):
    """uint8 [segments, size, size, 3]: TSN's sample, one frame per equal segment of the video (at a
    random offset, or the segment centres), all with the same crop/flip/brightness."""
    with video_files.open_video(path) as video:
        indices = (segment_centres(video.frames, segments) if centres
                   else segment_offsets(video.frames, segments, rng))
        frames = video.read(indices)
    return _transform(frames, augment, rng, size)


def _rng_from_args(args):
    """`(path, augment)` uses a process-wide generator; `(path, augment, seed)` a seeded one."""
    if len(args) > 2 and args[2] is not None:
        return args[0], args[1], np.random.default_rng(args[2])
    return args[0], args[1], _global_rng


def _safe(loader, args, **kwargs):
    path, augment, rng = _rng_from_args(args)
    try:
        return loader(path, augment, rng, **kwargs)
    except video_files.READ_ERRORS as e:
        log.warning("skipping %s: %s", path, e)
        return np.array([])


def loadFrameRaw(args: _SampleArgs, size: int = IMAGE_SIZE) -> np.ndarray:
    """`(path, augment[, seed])` -> uint8 [size, size, 3] RGB, or an empty array for a bad file."""
    return _safe(_frame_raw, args, size=size)


def loadSequenceRaw(args: _SampleArgs, size: int = IMAGE_SIZE, clip_len: int = CLIP_LEN) -> np.ndarray:
    """`(path, augment[, seed])` -> uint8 [clip_len, size, size, 3] RGB, or an empty array."""
    return _safe(_clip_raw, args, size=size, clip_len=clip_len)


def loadFrame(args: _SampleArgs, size: int = IMAGE_SIZE) -> np.ndarray:
    """The assignment's loader: float32 [3, size, size] normalised with ImageNet's mean/std."""
    frame = loadFrameRaw(args, size)
    if frame.size == 0:
        return frame
    return normalization.normalize_channels_first(frame, normalization.FRAME_MEAN, normalization.FRAME_STD)


def loadSequence(args: _SampleArgs, size: int = IMAGE_SIZE, clip_len: int = CLIP_LEN) -> np.ndarray:
    """The assignment's loader: float32 [3, clip_len, size, size] normalised with its clip mean/std."""
    clip = loadSequenceRaw(args, size, clip_len)
    if clip.size == 0:
        return clip
    return normalization.normalize_channels_first(clip, normalization.CLIP_MEAN, normalization.CLIP_STD)
