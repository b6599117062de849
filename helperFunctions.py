"""Data layer for the UCF-101 study: split lists, per-video HDF5 files, frame/clip loaders, batching.

The assignment's public names stay (`getUCF101`, `loadFrame`, `loadSequence`) with their contracts;
the faults listed in FACTS.md are fixed. Everything that feeds a model goes through the uint8 "raw"
loaders: batches cross process boundaries as uint8 and are normalised on the device.

HDF5 video files hold one dataset `video` in one of two storages:
  raw  : uint8 [T, H, W, 3], RGB (the course's layout)
  jpeg : variable-length uint8 [T], each element one JPEG-encoded frame; attrs storage/height/width
"""
import concurrent.futures
import contextlib
import inspect
import logging
import multiprocessing
import os
import re
import shutil
import signal
import tempfile
import time
from collections import deque
from concurrent.futures.process import BrokenProcessPool
from typing import NamedTuple

import cv2
import h5py
import numpy as np

log = logging.getLogger("ucf101")

# Normalisation on RGB in [0, 1]: ImageNet's for part 1, the assignment's clip statistics for part 2.
FRAME_MEAN = (0.485, 0.456, 0.406)
FRAME_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.433, 0.4045, 0.3776)
CLIP_STD = (0.1519876, 0.14855877, 0.156976)
# Hara et al. fed RGB in 0..255 minus this mean and no std; expressed on [0, 1] so one formula serves all.
KINETICS_MEAN = (114.7748 / 255, 107.7354 / 255, 99.4750 / 255)
KINETICS_STD = (1 / 255, 1 / 255, 1 / 255)

IMAGE_SIZE = 224
CLIP_LEN = 16
BRIGHTNESS = 30  # the assignment's +/- 15
SLAB_FRAMES = 32  # raw frames read at a time when loading a test chunk: bounds a loader's memory

# What reading a broken or malformed video file can raise; anything else is a bug and propagates.
READ_ERRORS = (OSError, KeyError, ValueError, cv2.error)


class VideoReadError(ValueError):
    """A video file that opens but does not hold a usable `video` dataset."""


# ----------------------------------------------------------------------------------------------
# Split lists

def _read_list(path):
    """Lines of a split file, CRLF or LF, blank lines dropped."""
    with open(path, "r", encoding="utf-8") as f:
        return [line.strip() for line in f.read().splitlines() if line.strip()]


HDF5_DIR = "UCF-101-hdf5"  # the course's converted copy: <Class>/<video>.hdf5
VIDEO_DIR = "UCF-101"      # the original release: <Class>/<video>.avi (any container FFmpeg reads)
VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v")
STORAGES = ("auto", "hdf5", "video")
_GROUP = re.compile(r"_g(\d+)_c\d+$")


def _folder_listing(directory, cache):
    """File names in `directory` (cached per call of getUCF101: one listdir per class folder)."""
    if directory not in cache:
        try:
            cache[directory] = set(os.listdir(directory))
        except OSError:
            cache[directory] = set()
    return cache[directory]


def _resolve_video(base_directory, folder, stem, listed_suffix, storage, cache):
    """The file a list entry names: HDF5 first (auto), else the original video with the listed
    suffix or any other video suffix; a path that does not exist when neither does (the loader
    that opens it names it)."""
    hdf5_dir = os.path.join(base_directory, HDF5_DIR, folder)
    video_dir = os.path.join(base_directory, VIDEO_DIR, folder)
    if storage in ("auto", "hdf5") and (storage == "hdf5" or stem + ".hdf5" in _folder_listing(hdf5_dir, cache)):
        return os.path.join(hdf5_dir, stem + ".hdf5")
    suffixes = [listed_suffix] + [s for s in VIDEO_SUFFIXES if s != listed_suffix]
    names = _folder_listing(video_dir, cache)
    for suffix in suffixes:
        if stem + suffix in names:
            return os.path.join(video_dir, stem + suffix)
    if storage == "video" or (storage == "auto" and not os.path.isdir(os.path.join(base_directory, HDF5_DIR))
                              and os.path.isdir(os.path.join(base_directory, VIDEO_DIR))):
        return os.path.join(video_dir, stem + (listed_suffix or ".avi"))
    return os.path.join(hdf5_dir, stem + ".hdf5")


def getUCF101(base_directory="", split=1, storage="auto"):
    """Read the official split lists.

    base_directory holds `ucfTrainTestlist/` (classInd.txt, trainlist0S.txt, testlist0S.txt) and the
    videos: `UCF-101-hdf5/<ClassFolder>/<video>.hdf5` (the course's copy), `UCF-101/<ClassFolder>/<video>.avi`
    (the original release; any suffix in VIDEO_SUFFIXES), or both. `storage`: "auto" takes, per video,
    the HDF5 file when it exists, else the original video; "hdf5" or "video" takes only that kind.
    Returns `class_list, (train_paths, train_labels), (test_paths, test_labels)`: class names in
    classInd order (never sorted), video paths, and 0-based labels. A test video's class is its
    folder (test lists carry no label). The lists are read even when no video folder exists (e.g. to
    combine prediction files on a laptop): the paths then name files that are missing, and the
    loaders say so; a warning is logged.
    """
    if split not in (1, 2, 3):
        raise ValueError(f"split must be 1, 2 or 3, not {split!r}")
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {', '.join(STORAGES)}, not {storage!r}")
    list_dir = os.path.join(base_directory, "ucfTrainTestlist")
    files = {name: os.path.join(list_dir, name)
             for name in ("classInd.txt", f"trainlist0{split}.txt", f"testlist0{split}.txt")}
    for path in files.values():
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path} not found: --data-dir must hold ucfTrainTestlist/ (classInd.txt, "
                f"trainlist0N.txt, testlist0N.txt) and the videos in {HDF5_DIR}/<Class>/<video>.hdf5 "
                f"or {VIDEO_DIR}/<Class>/<video>.avi")
    if not any(os.path.isdir(os.path.join(base_directory, d)) for d in (HDF5_DIR, VIDEO_DIR)):
        log.warning("neither %s nor %s found: reading the split lists only (no video can be loaded; "
                    "prediction files can still be combined)", os.path.join(base_directory, HDF5_DIR),
                    os.path.join(base_directory, VIDEO_DIR))

    class_list = []
    for line in _read_list(files["classInd.txt"]):
        index, _, name = line.partition(" ") if " " in line else line.partition("\t")
        if not index.isdigit() or int(index) != len(class_list) + 1 or not name.strip():
            raise ValueError(f"{files['classInd.txt']}: expected '{len(class_list) + 1} <ClassName>', got {line!r}")
        class_list.append(name.strip())
    class_index = {name: i for i, name in enumerate(class_list)}
    cache = {}

    def video_path(entry, list_path):
        folder, _, file_name = entry.partition("/")
        if folder not in class_index or not file_name:
            raise ValueError(f"{list_path}: {entry!r} is not <ClassFolder>/<video>.avi of a classInd class")
        stem, suffix = os.path.splitext(file_name)
        return _resolve_video(base_directory, folder, stem, suffix, storage, cache), class_index[folder]

    train_paths, train_labels = [], []
    for line in _read_list(files[f"trainlist0{split}.txt"]):
        entry, _, label = line.partition(" ")
        path, folder_label = video_path(entry, files[f"trainlist0{split}.txt"])
        label = label.strip()
        if label and (not label.isdigit() or int(label) - 1 != folder_label):
            raise ValueError(f"{files[f'trainlist0{split}.txt']}: label {label} does not match folder of {entry}")
        train_paths.append(path)
        train_labels.append(folder_label)
    test_paths, test_labels = [], []
    for line in _read_list(files[f"testlist0{split}.txt"]):
        path, label = video_path(line.split()[0], files[f"testlist0{split}.txt"])
        test_paths.append(path)
        test_labels.append(label)

    return (np.asarray(class_list),
            (np.asarray(train_paths), np.asarray(train_labels, dtype=np.int64)),
            (np.asarray(test_paths), np.asarray(test_labels, dtype=np.int64)))


def video_group(path):
    """UCF-101's group number (the NN of `_gNN_cMM`) of a video path or list entry, or None."""
    match = _GROUP.search(os.path.splitext(os.path.basename(os.fspath(path)))[0])
    return int(match.group(1)) if match else None


def parse_groups(text):
    """'8-10' or '1,3,5-7' -> sorted tuple of group numbers; ValueError with a one-line reason."""
    groups = set()
    for part in str(text).split(","):
        part = part.strip()
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(f"{text!r} is not a list of group numbers like 8-10 or 1,3,5-7")
        low, high = int(low), int(high) if dash else int(low)
        if low > high:
            raise ValueError(f"{part!r}: the range runs backwards")
        groups.update(range(low, high + 1))
    return tuple(sorted(groups))


def split_by_groups(paths, labels, groups):
    """(kept, held_out): the videos whose group is not / is in `groups`, as (paths, labels) pairs.

    A group that no video has is a ValueError, and so is holding out every video, or a video without
    a gNN group in its name: a validation set must be made of whole groups (UCF-101's groups are
    clips cut from one longer video, so a video in both halves would leak).
    """
    paths, labels = np.asarray(paths), np.asarray(labels, dtype=np.int64)
    video_groups = [video_group(p) for p in paths]
    unnamed = [str(p) for p, g in zip(paths, video_groups) if g is None]
    if unnamed:
        raise ValueError(f"{unnamed[0]} has no _gNN_ group in its name: validation groups need UCF-101-style names")
    present = set(video_groups)
    absent = [g for g in groups if g not in present]
    if absent:
        raise ValueError(f"group(s) {', '.join(f'g{g:02d}' for g in absent)} are not in the training list "
                         f"(it has g{min(present):02d}-g{max(present):02d})")
    held = np.asarray([g in set(groups) for g in video_groups], dtype=bool)
    if held.all():
        raise ValueError("the validation groups hold every training video")
    return (paths[~held], labels[~held]), (paths[held], labels[held])


def subset_videos(base_directory, split, subset, val_groups=(), storage="auto"):
    """(class_list, paths, labels) of one subset of a split: "test", "train" (without the held-out
    validation groups) or "val" (the training videos of `val_groups`)."""
    class_list, train, test = getUCF101(base_directory, split, storage)
    if subset == "test":
        return class_list, test[0], test[1]
    if subset not in ("train", "val"):
        raise ValueError(f"subset must be test, train or val, not {subset!r}")
    if subset == "val" and not val_groups:
        raise ValueError("the val subset needs validation groups (train with --val-groups)")
    if not val_groups:
        return class_list, train[0], train[1]
    kept, held = split_by_groups(train[0], train[1], val_groups)
    return (class_list,) + (held if subset == "val" else kept)


# ----------------------------------------------------------------------------------------------
# Video files

def _video_dataset(f, path):
    try:
        ds = f["video"]
    except KeyError:
        raise VideoReadError(f"{path}: no 'video' dataset") from None
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


def video_info(path):
    """(frames, height, width, storage) of a video file, reading only its header."""
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


def read_frames(path, indices):
    """Frames `indices` of a video file as uint8 [n, H, W, 3] RGB; indices wrap around (loop)."""
    with h5py.File(path, "r") as f:
        ds, storage, frames, _, _ = _video_dataset(f, path)
        return _read_indices(ds, storage, np.asarray(indices) % frames, path)


def write_video_hdf5(path, frames, storage="raw", quality=90):
    """Write uint8 [T, H, W, 3] RGB frames to `path` atomically (temporary name, then rename)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"expected uint8 [T, H, W, 3] frames with T > 0, got {frames.dtype} {frames.shape}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp_path = f"{path}.tmp-{os.getpid()}"
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


# ----------------------------------------------------------------------------------------------
# Frame and clip loaders

_global_rng = np.random.default_rng()


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
    with h5py.File(path, "r") as f:
        ds, storage, frames, _, _ = _video_dataset(f, path)
        index = int(rng.integers(frames)) if frame_index is None else frame_index % frames
        frame = _read_indices(ds, storage, [index], path)
    return _transform(frame, augment, rng, size)[0]


def clip_indices(num_frames, clip_len, start):
    """Indices of a clip starting at `start`; a video shorter than the clip is looped."""
    return (start + np.arange(clip_len)) % num_frames


def _clip_raw(path, augment, rng, size=IMAGE_SIZE, clip_len=CLIP_LEN, start=None):
    """uint8 [clip_len, size, size, 3]: consecutive frames from a uniformly drawn start."""
    with h5py.File(path, "r") as f:
        ds, storage, frames, _, _ = _video_dataset(f, path)
        if start is None:
            start = int(rng.integers(max(frames - clip_len, 0) + 1))
        clip = _read_indices(ds, storage, clip_indices(frames, clip_len, start), path)
    return _transform(clip, augment, rng, size)


def _rng_from_args(args):
    """`(path, augment)` uses a process-wide generator; `(path, augment, seed)` a seeded one."""
    if len(args) > 2 and args[2] is not None:
        return args[0], args[1], np.random.default_rng(args[2])
    return args[0], args[1], _global_rng


def _safe(loader, args, **kwargs):
    path, augment, rng = _rng_from_args(args)
    try:
        return loader(path, augment, rng, **kwargs)
    except READ_ERRORS as e:
        log.warning("skipping %s: %s", path, e)
        return np.array([])


def normalize_numpy(frames, mean, std):
    """uint8 [..., 3] -> float32 [..., 3] of (x / 255 - mean) / std."""
    scale = (1.0 / (255.0 * np.asarray(std, np.float32))).astype(np.float32)
    shift = (np.asarray(mean, np.float32) / np.asarray(std, np.float32)).astype(np.float32)
    return frames.astype(np.float32) * scale - shift


def normalize_channels_first(frames, mean, std):
    """uint8 [..., 3] -> float32 [3, ...] of (x / 255 - mean) / std, channels first.

    One channel at a time: numpy broadcasting over a last axis of 3 runs a 3-element inner loop and
    is ~6x slower; writing channels first also saves the transpose copy.
    """
    scale = (1.0 / (255.0 * np.asarray(std, np.float32))).astype(np.float32)
    shift = (np.asarray(mean, np.float32) / np.asarray(std, np.float32)).astype(np.float32)
    out = np.empty((3,) + frames.shape[:-1], dtype=np.float32)
    for c in range(3):
        np.multiply(frames[..., c], scale[c], out=out[c])
        out[c] -= shift[c]
    return out


def loadFrameRaw(args, size=IMAGE_SIZE):
    """`(path, augment[, seed])` -> uint8 [size, size, 3] RGB, or an empty array for a bad file."""
    return _safe(_frame_raw, args, size=size)


def loadSequenceRaw(args, size=IMAGE_SIZE, clip_len=CLIP_LEN):
    """`(path, augment[, seed])` -> uint8 [clip_len, size, size, 3] RGB, or an empty array."""
    return _safe(_clip_raw, args, size=size, clip_len=clip_len)


def loadFrame(args, size=IMAGE_SIZE):
    """The assignment's loader: float32 [3, size, size] normalised with ImageNet's mean/std."""
    frame = loadFrameRaw(args, size)
    if frame.size == 0:
        return frame
    return normalize_channels_first(frame, FRAME_MEAN, FRAME_STD)


def loadSequence(args, size=IMAGE_SIZE, clip_len=CLIP_LEN):
    """The assignment's loader: float32 [3, clip_len, size, size] normalised with its clip mean/std."""
    clip = loadSequenceRaw(args, size, clip_len)
    if clip.size == 0:
        return clip
    return normalize_channels_first(clip, CLIP_MEAN, CLIP_STD)


def iter_video_chunks(path, chunk_frames=200, size=IMAGE_SIZE):
    """Stream a whole video as uint8 [<=chunk_frames, size, size, 3] chunks (no augmentation)."""
    frames = video_info(path)[0]
    for start in range(0, frames, chunk_frames):
        yield load_chunk(path, start, min(start + chunk_frames, frames), size)


def _chunk_slabs(path, start, stop, size, out=None):
    """Frames start..stop-1 (looping past the end) resized to size x size, as uint8 slabs of at
    most SLAB_FRAMES frames (views of `out`, [stop - start, size, size, 3], when given): only one
    slab of raw frames is in memory at a time, whatever the chunk's length."""
    with h5py.File(path, "r") as f:
        ds, storage, frames, _, _ = _video_dataset(f, path)
        for first in range(start, stop, SLAB_FRAMES):
            last = min(first + SLAB_FRAMES, stop)
            raw = _read_indices(ds, storage, np.arange(first, last) % frames, path)
            yield _transform(raw, False, None, size, None if out is None else out[first - start:last - start])


def load_chunk(path, start, stop, size=IMAGE_SIZE):
    """Frames start..stop-1 resized to size x size (uint8); indices past the end loop around."""
    out = np.empty((stop - start, size, size, 3), dtype=np.uint8)
    for _ in _chunk_slabs(path, start, stop, size, out):
        pass
    return out


# ----------------------------------------------------------------------------------------------
# Worker pool and prefetching

def _init_worker(shield_signals):
    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads would oversubscribe
    if shield_signals:
        # Slurm, PBS and Ctrl-C signal the whole process group. The parent saves and stops; a worker
        # that died instead would break the pool mid-step (with multiprocessing.Pool it was re-forked
        # from the multithreaded parent and deadlocked). close_pool ends them cleanly.
        for name in ("SIGTERM", "SIGUSR1", "SIGINT"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), signal.SIG_IGN)


class LoaderWorkerDied(RuntimeError):
    """A loader process ended abruptly (killed, e.g. by the out-of-memory killer, or crashed)."""


def make_pool(workers, shield_signals=False):
    """A loader pool of `workers` processes, or None for loading in the calling process.

    A ProcessPoolExecutor, not a multiprocessing.Pool: when a worker dies (the out-of-memory killer, a
    crash in a decoder) the tasks in flight fail with LoaderWorkerDied instead of waiting forever, and
    the pool still shuts down. Create it before the model and CUDA: every worker is forked here, and
    holds no open HDF5 handles since every loader opens and closes its own files. `shield_signals`:
    workers ignore SIGTERM, SIGUSR1 and SIGINT, for callers that handle those themselves and end the
    pool with close_pool.
    """
    if workers <= 0:
        return None
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                                  initargs=(shield_signals,))
    # The executor starts its workers on the first submit(s): start them all now, before the caller
    # makes threads, a model or CUDA state for a later fork to copy. The short sleeps keep every worker
    # busy so that Python versions that spawn on demand start one process per task.
    for future in [_submit(pool, time.sleep, 0.05) for _ in range(workers)]:
        _result(future)
    return pool


def close_pool(pool):
    """End a pool made by make_pool: tasks not started are cancelled, the ones running finish.

    After a worker died the executor ends the others with SIGTERM, which shielded workers ignore,
    and a survivor may wait forever on a queue lock the dead worker held: those are killed here.
    (ProcessPoolExecutor has no public access to its processes and manager thread.)
    """
    if pool is None:
        return
    processes = list((pool._processes or {}).values())  # shutdown() forgets both
    manager = pool._executor_manager_thread
    pool.shutdown(wait=False, cancel_futures=True)
    while manager is not None and manager.is_alive():
        if pool._broken:
            for process in processes:
                if process.is_alive():
                    process.kill()
        manager.join(0.1)


def pool_size(pool):
    return 0 if pool is None else pool._max_workers  # ProcessPoolExecutor has no public accessor


@contextlib.contextmanager
def _worker_deaths_reported():
    """A worker's death (BrokenProcessPool from submit or result) becomes LoaderWorkerDied."""
    try:
        yield
    except BrokenProcessPool as e:
        raise LoaderWorkerDied(
            "a loader worker process died (killed, e.g. out of memory, or crashed): lower --workers, "
            "--batch-size or --chunk-frames, or check the node's memory limit") from e


def _submit(pool, fn, task):
    with _worker_deaths_reported():
        return pool.submit(fn, task)


def _result(future):
    with _worker_deaths_reported():
        return future.result()


class Prefetcher:
    """Runs `fn(task)` for each task on a pool, keeping at most `depth` tasks in flight.

    Yields results in task order. `wait_seconds` accumulates the time the consumer spent blocked.
    """

    def __init__(self, pool, fn, tasks, depth):
        self.pool, self.fn, self.tasks, self.depth = pool, fn, tasks, max(1, depth)
        self.wait_seconds = 0.0

    def __iter__(self):
        if self.pool is None:
            for task in self.tasks:
                start = time.perf_counter()
                result = self.fn(task)
                self.wait_seconds += time.perf_counter() - start
                yield result
            return
        pending = deque()
        tasks = iter(self.tasks)
        for task in tasks:
            pending.append(_submit(self.pool, self.fn, task))
            if len(pending) >= self.depth:
                break
        while pending:
            start = time.perf_counter()
            result = _result(pending.popleft())
            self.wait_seconds += time.perf_counter() - start
            for task in tasks:  # refill before handing the result over: loading overlaps compute
                pending.append(_submit(self.pool, self.fn, task))
                break
            yield result


SAMPLE_LOADERS = {"frame": _frame_raw, "clip": _clip_raw}


class SharedSlots:
    """A ring of files in /dev/shm through which pool workers hand arrays to the parent.

    Pickling an array through the pool's pipe runs at ~200 MB/s and costs more CPU than loading it
    (a 77 MB clip batch: ~12 ms per clip against ~1.5 ms to load); a worker writes its array into a
    slot with pwrite instead and returns a few bytes, and the parent reads it back once. Plain file
    I/O, not memory maps: neither side's resident memory grows with what passed through, and a full
    tmpfs is an OSError (the worker then falls back to the pipe), not a SIGBUS. The ring holds one
    slot per task in flight plus the one being read. Without /dev/shm, `enabled` is False.
    """

    def __init__(self, pool, count, shape):
        self.shape, self.count, self.dir = tuple(shape), count, None
        if pool is None or not os.path.isdir("/dev/shm"):
            return
        self.dir = tempfile.mkdtemp(prefix="ucf101-slots-", dir="/dev/shm")

    @property
    def enabled(self):
        return self.dir is not None

    def slot(self, number):
        """What a worker needs to write the `number`-th task's array: (path, row shape), or None."""
        return (os.path.join(self.dir, f"slot{number % self.count}"), self.shape[1:]) if self.enabled else None

    def read(self, slot, length):
        """The first `length` rows written to `slot`, as a new array."""
        row = int(np.prod(slot[1]))
        return np.fromfile(slot[0], dtype=np.uint8, count=length * row).reshape((length,) + slot[1])

    def close(self):
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


def _write_rows(slot, rows, offset=0):
    """Worker side of SharedSlots: write uint8 rows ([n, ...] or a list of [...]) to `slot`, from
    byte `offset` on."""
    fd = os.open(slot[0], os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for row in rows:
            view = memoryview(np.ascontiguousarray(row)).cast("B")
            while view:  # pwrite may write less than asked
                written = os.pwrite(fd, view, offset)
                view, offset = view[written:], offset + written
    finally:
        os.close(fd)


def _load_batch(task):
    """Worker side of BatchLoader: (kind, kwargs, items, slot) -> (data | None, indices, failures).

    With a slot the samples go to that shared-memory file and `data` is None.
    """
    kind, kwargs, items, slot = task
    loader = SAMPLE_LOADERS[kind]
    samples, indices, failures = [], [], []
    for index, path, augment, seed in items:
        try:
            samples.append(loader(path, augment, np.random.default_rng(seed), **kwargs))
            indices.append(index)
        except READ_ERRORS as e:
            failures.append((index, path, f"{type(e).__name__}: {e}"))
    indices = np.asarray(indices, dtype=np.int64)
    if not samples:
        return None, indices, failures
    if slot is not None:
        try:
            _write_rows(slot, samples)
            return None, indices, failures
        except OSError as e:  # /dev/shm full: hand the batch over through the pipe
            log.info("shared memory unavailable (%s): using the pipe", e)
    return np.stack(samples), indices, failures


class Batch(NamedTuple):
    data: np.ndarray     # uint8 [n, size, size, 3] frames or [n, T, size, size, 3] clips
    labels: np.ndarray   # int64 [n]
    indices: np.ndarray  # int64 [n], positions in the loader's path list
    global_size: int     # samples in this step summed over all ranks (before failures)


def sample_seed(seed, epoch, index):
    """A per-sample seed: the same sample gets the same augmentation for the same (seed, epoch);
    epoch None gives one seed per sample for all epochs (evaluation on a fixed frame)."""
    key = [seed, 0 if epoch is None else epoch + 1, index]  # (SeedSequence ignores trailing zeros)
    return int(np.random.SeedSequence(key).generate_state(1)[0])


class BatchLoader:
    """Prefetching batches of frames or clips on a process pool; frames and clips, training and test.

    Each epoch (`set_epoch`) draws one permutation from (seed, epoch), identical on every rank. A step
    takes the next `batch_size * world_size` samples and deals them round-robin to the ranks, so every
    sample is used exactly once per epoch across ranks and the tail is kept. Every rank gets the same
    number of steps (DDP needs lockstep). A file that fails to load is dropped from its batch (never
    the whole batch), logged and counted in `failed`.
    `fixed=True` (evaluation) draws the frame/clip position from (seed, index) only, so every epoch
    sees the same frame of each video.
    """

    def __init__(self, paths, labels, batch_size, kind="frame", *, augment=False, shuffle=False,
                 seed=0, pool=None, rank=0, world_size=1, prefetch=None, fixed=False, **loader_kwargs):
        if kind not in SAMPLE_LOADERS:
            raise ValueError(f"kind must be one of {sorted(SAMPLE_LOADERS)}")
        if len(paths) < world_size:
            raise ValueError(f"{len(paths)} samples cannot be shared by {world_size} ranks")
        self.paths, self.labels = np.asarray(paths), np.asarray(labels, dtype=np.int64)
        self.batch_size, self.kind, self.augment, self.shuffle = batch_size, kind, augment, shuffle
        self.seed, self.pool, self.rank, self.world_size, self.fixed = seed, pool, rank, world_size, fixed
        self.prefetch = prefetch or 2 * (pool_size(pool) or 1)
        if len(self.labels) != len(self.paths):
            raise ValueError(f"{len(self.paths)} paths but {len(self.labels)} labels")
        inspect.signature(SAMPLE_LOADERS[kind]).bind(None, None, None, **loader_kwargs)  # TypeError now, not in a worker
        self.loader_kwargs = loader_kwargs
        self.epoch_failed = 0
        self.epoch, self.start_step = 0, 0
        self.failed = {}  # path -> reason, over the loader's life
        self.wait_seconds = 0.0

    def set_epoch(self, epoch, start_step=0):
        """Select the epoch's permutation; `start_step` skips steps already done (mid-epoch resume)."""
        self.epoch, self.start_step = epoch, start_step

    def _steps(self):
        """Global index slices, one per step; a tail smaller than the rank count joins the step before."""
        n = len(self.paths)
        order = (np.random.default_rng([self.seed, self.epoch]).permutation(n) if self.shuffle
                 else np.arange(n))
        step = self.batch_size * self.world_size
        bounds = list(range(0, n, step)) + [n]
        if len(bounds) > 2 and n - bounds[-2] < self.world_size:
            del bounds[-2]
        return [order[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    def __len__(self):
        return len(self._steps())

    def _tasks(self, steps, slots):
        for number, step in enumerate(steps):
            mine = step[self.rank::self.world_size]
            items = [(int(i), str(self.paths[i]), self.augment,
                      sample_seed(self.seed, None if self.fixed else self.epoch, int(i))) for i in mine]
            yield self.kind, self.loader_kwargs, items, slots.slot(number)

    def __iter__(self):
        steps = self._steps()[self.start_step:]
        size = self.loader_kwargs.get("size", IMAGE_SIZE)
        clip = () if self.kind == "frame" else (self.loader_kwargs.get("clip_len", CLIP_LEN),)
        # A tail step merged into the one before can give a rank one sample more than batch_size.
        largest = max([len(step[self.rank::self.world_size]) for step in steps] + [self.batch_size])
        slots = SharedSlots(self.pool, self.prefetch + 1, (largest,) + clip + (size, size, 3))
        prefetcher = Prefetcher(self.pool, _load_batch, self._tasks(steps, slots), self.prefetch)
        self.epoch_failed = 0
        try:
            for number, (step, (data, indices, failures)) in enumerate(zip(steps, prefetcher)):
                for index, path, reason in failures:
                    log.warning("skipping %s: %s", path, reason)
                    self.failed[path] = reason
                self.epoch_failed += len(failures)
                if len(indices) == 0:  # every sample of this rank's share failed
                    data = np.zeros((0,) + slots.shape[1:], dtype=np.uint8)
                elif data is None:
                    data = slots.read(slots.slot(number), len(indices))
                yield Batch(data, self.labels[indices], indices, len(step))
        finally:
            self.wait_seconds = prefetcher.wait_seconds
            slots.close()


def _load_chunk_task(task):
    """Worker side of VideoChunkLoader: -> (video_index, array | rows written to the slot | reason)."""
    video_index, path, start, stop, size, slot = task
    if isinstance(size, str):  # the plan already failed in the parent: pass the reason through
        return video_index, size
    try:
        if slot is not None and stop - start <= slot[2]:
            # Slab by slab into the slot: the worker never holds the whole chunk.
            offset = 0
            with contextlib.closing(_chunk_slabs(path, start, stop, size)) as slabs:
                for slab in slabs:
                    try:
                        _write_rows(slot[:2], [slab], offset)
                    except OSError as e:
                        log.info("shared memory unavailable (%s): using the pipe", e)
                        break
                    offset += slab.nbytes
                else:
                    return video_index, stop - start
        return video_index, load_chunk(path, start, stop, size)
    except READ_ERRORS as e:
        return video_index, f"{type(e).__name__}: {e}"


def video_chunk_plan(path, chunk_frames):
    """Default plan: consecutive chunks of at most chunk_frames frames covering the video once."""
    frames = video_info(path)[0]
    return [(start, min(start + chunk_frames, frames)) for start in range(0, frames, chunk_frames)]


class VideoChunkLoader:
    """Streams whole test videos chunk by chunk while the model works on the previous chunk.

    `plan(path)` returns the (start, stop) frame ranges to load for one video (stop may pass the end:
    frames loop); yields `(video_index, chunk_number, num_chunks, uint8 array)` with the array
    replaced by an error string for an unreadable video (its remaining chunks are skipped).
    At most `depth` chunks are in flight; chunks of up to `max_chunk` frames travel through shared
    memory, so the parent holds only the chunk it is working on, whatever the video length.
    """

    def __init__(self, paths, plan, pool=None, size=IMAGE_SIZE, depth=2, max_chunk=None):
        self.paths, self.plan, self.pool, self.size, self.depth = list(paths), plan, pool, size, depth
        self.max_chunk = max_chunk
        self.wait_seconds = 0.0
        self._chunks = {}

    def _tasks(self, slots):
        number = 0
        for video_index, path in enumerate(self.paths):
            try:
                ranges = self.plan(path)
            except READ_ERRORS as e:
                ranges = None
                reason = f"{type(e).__name__}: {e}"
            if ranges is not None and (not ranges or any(stop <= start for start, stop in ranges)):
                raise ValueError(f"the chunk plan for {path} is empty or has an empty range: {ranges}")
            self._chunks[video_index] = len(ranges) if ranges else 1
            for start, stop in ranges or [(0, 0)]:
                slot = slots.slot(number)
                yield (video_index, path, start, stop, self.size if ranges else reason,
                       slot + (self.max_chunk,) if slot else None)
                number += 1

    def __iter__(self):
        counts, broken = {}, set()
        slots = SharedSlots(self.pool if self.max_chunk else None, self.depth + 1,
                            (self.max_chunk or 1, self.size, self.size, 3))
        prefetcher = Prefetcher(self.pool, _load_chunk_task, self._tasks(slots), self.depth)
        try:
            for number, (video_index, result) in enumerate(prefetcher):
                if isinstance(result, int):
                    result = slots.read(slots.slot(number), result)
                if video_index in broken:
                    continue
                chunk_number = counts.get(video_index, 0)
                counts[video_index] = chunk_number + 1
                if isinstance(result, str):
                    broken.add(video_index)
                yield video_index, chunk_number, self._chunks[video_index], result
        finally:
            self.wait_seconds = prefetcher.wait_seconds
            slots.close()


__all__ = [
    "getUCF101", "video_group", "parse_groups", "split_by_groups", "subset_videos", "loadFrame", "loadSequence", "loadFrameRaw", "loadSequenceRaw", "iter_video_chunks",
    "load_chunk", "read_frames", "video_info", "write_video_hdf5", "make_pool", "close_pool", "Prefetcher",
    "LoaderWorkerDied", "BatchLoader", "Batch", "VideoChunkLoader", "video_chunk_plan", "clip_indices",
    "normalize_numpy",
    "FRAME_MEAN", "FRAME_STD", "CLIP_MEAN", "CLIP_STD", "KINETICS_MEAN", "KINETICS_STD",
]
