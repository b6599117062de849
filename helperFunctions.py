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
import ctypes
import inspect
import logging
import multiprocessing
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import zlib
from collections import deque
from concurrent.futures.process import BrokenProcessPool
from typing import NamedTuple, Optional

import cv2
import h5py
import numpy as np

from actionrec.data import video_decode

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
    """Lines of a split file, CRLF or LF, blank lines dropped; ValueError naming a file that is not text
    or lists nothing."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            lines = [line.strip() for line in f.read().splitlines() if line.strip()]
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not a text file ({e.reason} at byte {e.start}): expected an official "
                         f"split list") from None
    if not lines:
        raise ValueError(f"{path} lists nothing: expected an official split list")
    return lines


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


def _resolve_video(base_directory, folder, stem, listed_suffix, storage, cache, roots=(HDF5_DIR, VIDEO_DIR)):
    """The file a list entry names: HDF5 first (auto), else the original video with the listed
    suffix or any other video suffix; a path that does not exist when neither does (the loader
    that opens it names it). roots: the dataset's (HDF5 folder, video folder) under base_directory."""
    HDF5_DIR, VIDEO_DIR = roots  # noqa: N806 (the module's names, for the dataset at hand)
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

    def read_entries(list_path, seen):
        """(paths, labels) of a list; `seen` maps each entry already read (this list or another) to
        where it was, so that a video listed twice, or in both lists, is refused by name."""
        paths, labels = [], []
        for number, line in enumerate(_read_list(list_path), 1):
            entry, label = _list_entry(line)
            path, folder_label = video_path(entry, list_path)
            if label and int(label) - 1 != folder_label:
                raise ValueError(f"{list_path}: label {label} does not match folder of {entry}")
            where = f"{os.path.basename(list_path)} line {number}"
            if entry in seen:
                raise ValueError(f"{list_path}: {entry!r} is listed twice ({seen[entry]} and {where}): a video "
                                 f"counted twice, or in both training and test, makes every number wrong")
            seen[entry] = where
            paths.append(path)
            labels.append(folder_label)
        return np.asarray(paths), np.asarray(labels, dtype=np.int64)

    seen = {}
    train = read_entries(files[f"trainlist0{split}.txt"], seen)
    test = read_entries(files[f"testlist0{split}.txt"], seen)
    return np.asarray(class_list), train, test


HMDB_SPLIT_DIR = "testTrainMulti_7030_splits"  # the official splits: <action>_test_split<N>.txt
HMDB_HDF5_DIR = "hmdb51-hdf5"  # converted copy: <action>/<video>.hdf5 (as UCF-101-hdf5 for UCF-101)
HMDB_VIDEO_DIR = "hmdb51"      # hmdb51_org.rar unpacked: <action>/<video>.avi (as UCF-101)
HMDB_SUBSETS = {"1": "train", "2": "test", "0": None}  # a split file's ids; 0: not used in that split
_HMDB_SPLIT_FILE = re.compile(r"^(.+)_test_split([123])\.txt$")


def hmdb51_actions(split_dir):
    """The sorted action names of the split files in split_dir (those of split 1, 2 or 3)."""
    try:
        names = os.listdir(split_dir)
    except OSError as e:
        raise FileNotFoundError(f"{split_dir}: {e.strerror}: --data-dir must hold {HMDB_SPLIT_DIR}/ "
                                f"(<action>_test_split<N>.txt, from test_train_splits.rar)") from None
    return sorted({m.group(1) for m in map(_HMDB_SPLIT_FILE.match, names) if m})


def hmdb51_film(name, action):
    """The source film of an HMDB-51 video (path, file name or stem) of `action`: the name's prefix
    before `_<action>_` (April_09_brush_hair_u_nm_np1_ba_goo_0 -> April_09), or None when the name does
    not hold the action."""
    stem = "_" + os.path.splitext(os.path.basename(os.fspath(name)))[0]
    at = stem.rfind(f"_{action}_")
    return None if at < 0 else stem[1:at]


def getHMDB51(base_directory="", split=1, storage="auto"):
    """Read HMDB-51's official splits; the same contract and return shape as getUCF101.

    base_directory holds `testTrainMulti_7030_splits/` (test_train_splits.rar unpacked: one file
    `<action>_test_split<N>.txt` per action and split, lines `<video>.avi <id>`, id 1 = train, 2 = test,
    0 = not used in that split: in no subset) and the videos: `hmdb51-hdf5/<action>/<video>.hdf5`
    (HMDB_HDF5_DIR, converted), `hmdb51/<action>/<video>.avi` (HMDB_VIDEO_DIR: hmdb51_org.rar and its
    per-action .rar files unpacked), or both; `storage` as in getUCF101. HMDB-51 has no class index
    file: the classes are the action names in sorted order (the convention of mmaction2's
    parse_hmdb51_split and 3D-ResNets' hmdb51_json.py), taken from the split files present.
    Returns `class_list, (train_paths, train_labels), (test_paths, test_labels)`, 0-based labels.
    A missing or malformed split file, a line with an id other than 0/1/2 or a video listed twice is
    one FileNotFoundError/ValueError line naming the file (and line).
    """
    if split not in (1, 2, 3):
        raise ValueError(f"split must be 1, 2 or 3, not {split!r}")
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {', '.join(STORAGES)}, not {storage!r}")
    split_dir = os.path.join(base_directory, HMDB_SPLIT_DIR)
    class_list = hmdb51_actions(split_dir)
    if not class_list:
        raise FileNotFoundError(f"{split_dir} holds no <action>_test_split<N>.txt file: expected HMDB-51's "
                                f"official splits (test_train_splits.rar)")
    roots = (HMDB_HDF5_DIR, HMDB_VIDEO_DIR)
    if not any(os.path.isdir(os.path.join(base_directory, d)) for d in roots):
        log.warning("neither %s nor %s found: reading the split lists only (no video can be loaded; "
                    "prediction files can still be combined)", *(os.path.join(base_directory, d) for d in roots))
    subsets, seen, cache = {"train": ([], []), "test": ([], [])}, {}, {}
    for label, action in enumerate(class_list):
        list_path = os.path.join(split_dir, f"{action}_test_split{split}.txt")
        if not os.path.isfile(list_path):
            raise FileNotFoundError(f"{list_path} not found: every action of {split_dir} needs its "
                                    f"_test_split1/2/3.txt files")
        for number, line in enumerate(_read_list(list_path), 1):
            file_name, _, subset_id = line.rpartition(" ")
            file_name = file_name.strip()
            where = f"{list_path} line {number}"
            if subset_id not in HMDB_SUBSETS or not file_name or "/" in file_name:
                raise ValueError(f"{where}: expected '<video>.avi <0|1|2>', got {line!r}")
            if hmdb51_film(file_name, action) is None:
                raise ValueError(f"{where}: {file_name!r} is not a video of {action!r} (HMDB-51 names are "
                                 f"<film>_{action}_<tags>.avi)")
            if file_name in seen:
                raise ValueError(f"{where}: {file_name!r} is listed twice (also {seen[file_name]}): a video "
                                 f"counted twice, or in both training and test, makes every number wrong")
            seen[file_name] = where
            if HMDB_SUBSETS[subset_id] is None:
                continue
            stem, suffix = os.path.splitext(file_name)
            paths, labels = subsets[HMDB_SUBSETS[subset_id]]
            paths.append(_resolve_video(base_directory, action, stem, suffix, storage, cache, roots))
            labels.append(label)
    train, test = ((np.asarray(p), np.asarray(lb, dtype=np.int64)) for p, lb in subsets.values())
    return np.asarray(class_list), train, test


def _list_entry(line):
    """(entry, label) of a split-list line: `<Class>/<video>.avi <label>` (training lists) or
    `<Class>/<video>.avi` (test lists). A file name may contain spaces: only a last word of digits
    is a label."""
    entry, _, last = line.rpartition(" ")
    if entry and last.isdigit():
        return entry.strip(), last
    return line, ""


HMDB_GROUPS = 25  # HMDB-51's films are mapped onto as many groups as UCF-101 has, so --val-groups 8 means alike
GROUPS_HELP = ("UCF-101: a group is the gNN of the video names (25 groups; clips of one longer video share it); "
               f"HMDB-51: the source film (the name's prefix before the action) mapped to one of {HMDB_GROUPS} "
               f"groups by zlib.crc32(film) % {HMDB_GROUPS} + 1, so a film's clips are never split")


def video_group(path, dataset="ucf101"):
    """The validation group of a video path (or list entry), or None: UCF-101's group number (the NN of
    `_gNN_cMM`); for HMDB-51 the group of the video's source film (its folder is the action; see
    GROUPS_HELP), deterministic across runs and machines."""
    path = os.fspath(path)
    if dataset == "hmdb51":
        film = hmdb51_film(path, os.path.basename(os.path.dirname(path)))
        return None if film is None else zlib.crc32(film.encode("utf-8")) % HMDB_GROUPS + 1
    match = _GROUP.search(os.path.splitext(os.path.basename(path))[0])
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


def split_by_groups(paths, labels, groups, dataset="ucf101"):
    """(kept, held_out): the videos whose group (video_group) is not / is in `groups`, as (paths, labels).

    A group that no video has is a ValueError, and so is holding out every video, or a video without
    a group: a validation set must be made of whole groups (UCF-101's groups are clips cut from one
    longer video, HMDB-51's are source films, so a video in both halves would leak).
    """
    paths, labels = np.asarray(paths), np.asarray(labels, dtype=np.int64)
    video_groups = [video_group(p, dataset) for p in paths]
    unnamed = [str(p) for p, g in zip(paths, video_groups) if g is None]
    if unnamed:
        raise ValueError(f"{unnamed[0]} has no group in its name: validation groups need "
                         + ("<film>_<action>_ names" if dataset == "hmdb51" else "UCF-101-style _gNN_ names"))
    present = set(video_groups)
    absent = [g for g in groups if g not in present]
    if absent:
        raise ValueError(f"group(s) {', '.join(f'g{g:02d}' for g in absent)} are not in the training list "
                         f"(it has g{min(present):02d}-g{max(present):02d})")
    held = np.asarray([g in set(groups) for g in video_groups], dtype=bool)
    if held.all():
        raise ValueError("the validation groups hold every training video")
    return (paths[~held], labels[~held]), (paths[held], labels[held])


DATASETS = ("auto", "ucf101", "hmdb51")
DATASET_HELP = ("the dataset of --data-dir: ucf101 (it holds ucfTrainTestlist/), hmdb51 (it holds "
                f"{HMDB_SPLIT_DIR}/) or auto: the one whose split folder is there (default: auto)")


def resolve_dataset(base_directory, dataset="auto"):
    """"ucf101" or "hmdb51": `dataset` itself, or with "auto" the dataset whose split folder
    base_directory holds (ucfTrainTestlist/ or testTrainMulti_7030_splits/; ucf101 when neither, so that
    getUCF101 names what is missing); ValueError when it holds both."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, not {dataset!r}")
    if dataset != "auto":
        return dataset
    found = [name for name, folder in (("ucf101", "ucfTrainTestlist"), ("hmdb51", HMDB_SPLIT_DIR))
             if os.path.isdir(os.path.join(base_directory, folder))]
    if len(found) > 1:
        raise ValueError(f"{base_directory} holds both ucfTrainTestlist/ and {HMDB_SPLIT_DIR}/: pass --dataset "
                         f"ucf101 or hmdb51")
    return found[0] if found else "ucf101"  # neither: getUCF101 says what --data-dir must hold


def get_split(base_directory, split=1, storage="auto", dataset="auto"):
    """getUCF101 or getHMDB51 (the same return shape) for `dataset` (see resolve_dataset)."""
    dataset = resolve_dataset(base_directory, dataset)
    return (getHMDB51 if dataset == "hmdb51" else getUCF101)(base_directory, split, storage)


def subset_videos(base_directory, split, subset, val_groups=(), storage="auto", dataset="auto"):
    """(class_list, paths, labels) of one subset of a split: "test", "train" (without the held-out
    validation groups) or "val" (the training videos of `val_groups`)."""
    dataset = resolve_dataset(base_directory, dataset)
    class_list, train, test = get_split(base_directory, split, storage, dataset)
    if subset == "test":
        return class_list, test[0], test[1]
    if subset not in ("train", "val"):
        raise ValueError(f"subset must be test, train or val, not {subset!r}")
    if subset == "val" and not val_groups:
        raise ValueError("the val subset needs validation groups (train with --val-groups)")
    if not val_groups:
        return class_list, train[0], train[1]
    kept, held = split_by_groups(train[0], train[1], val_groups, dataset)
    return (class_list,) + (held if subset == "val" else kept)


# ----------------------------------------------------------------------------------------------
# Video files

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


def is_video_path(path):
    """True for the original videos (any suffix of VIDEO_SUFFIXES), False for HDF5 files."""
    return os.path.splitext(os.fspath(path))[1].lower() in VIDEO_SUFFIXES


def open_video(path):
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


def video_info(path):
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


def read_frames(path, indices):
    """Frames `indices` of a video file as uint8 [n, H, W, 3] RGB; indices wrap around (loop)."""
    with open_video(path) as video:
        return video.read(np.asarray(indices) % video.frames)


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
    with open_video(path) as video:
        index = int(rng.integers(video.frames)) if frame_index is None else frame_index % video.frames
        frame = video.read([index])
    return _transform(frame, augment, rng, size)[0]


def clip_indices(num_frames, clip_len, start):
    """Indices of a clip starting at `start`; a video shorter than the clip is looped."""
    return (start + np.arange(clip_len)) % num_frames


def _clip_raw(path, augment, rng, size=IMAGE_SIZE, clip_len=CLIP_LEN, start=None):
    """uint8 [clip_len, size, size, 3]: consecutive frames from a uniformly drawn start."""
    with open_video(path) as video:
        if start is None:
            start = int(rng.integers(max(video.frames - clip_len, 0) + 1))
        clip = video.read(clip_indices(video.frames, clip_len, start))
    return _transform(clip, augment, rng, size)


def segment_centres(num_frames, segments):
    """Frame k of `segments` at the centre of the k-th of equal segments: int((k + 0.5) * T / K)
    (TSN's test frames; every frame once when segments >= T... repeats when T < K)."""
    return ((np.arange(segments) + 0.5) * num_frames / segments).astype(np.int64)


def segment_offsets(num_frames, segments, rng):
    """One frame at a uniformly random offset in each of `segments` equal segments (TSN training)."""
    bounds = np.floor(np.arange(segments + 1) * num_frames / segments).astype(np.int64)
    starts, lengths = bounds[:-1], np.maximum(np.diff(bounds), 1)
    return np.minimum(starts + (rng.random(segments) * lengths).astype(np.int64), num_frames - 1)


def _segments_raw(path, augment, rng, size=IMAGE_SIZE, segments=3, centres=False):
    """uint8 [segments, size, size, 3]: TSN's sample, one frame per equal segment of the video (at a
    random offset, or the segment centres), all with the same crop/flip/brightness."""
    with open_video(path) as video:
        indices = (segment_centres(video.frames, segments) if centres
                   else segment_offsets(video.frames, segments, rng))
        frames = video.read(indices)
    return _transform(frames, augment, rng, size)


FEATURES_KEY = "features"


def feature_info(path):
    """(frames, dims) of a feature file written by extract_features.py, reading only its header."""
    with h5py.File(path, "r") as f:
        ds = _feature_dataset(f, path)
        return ds.shape[0], ds.shape[1]


def _feature_dataset(f, path):
    ds = f.get(FEATURES_KEY)
    if not isinstance(ds, h5py.Dataset) or ds.ndim != 2 or ds.shape[0] == 0:
        raise VideoReadError(f"{path}: no 'features' dataset of [frames, dims] (written by extract_features.py)")
    return ds


def feature_window(num_frames, max_frames, frame_stride, rng=None):
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
        raise VideoReadError(f"{path}: non-finite values in 'features'")
    return np.asarray(features, dtype=np.float16)


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


CROPS = (1, 3, 10)
TEN_CROP_SCALE = 256 / 224  # TSN's 10-crop test: short side 256 for 224 crops


def crop_boxes(height, width, size, crops):
    """How a frame becomes `crops` views of size x size: (resize_hw, [(y, x, flip), ...]).

    1: the whole frame resized to size x size (aspect not kept; what training sees);
    3: short side resized to `size`, then the left, centre and right squares (top/centre/bottom for
       a portrait frame);
    10: short side resized to size * 256/224, then the 4 corners and the centre, each also mirrored.
    """
    if crops == 1:
        return (size, size), [(0, 0, False)]
    short = size if crops == 3 else int(round(size * TEN_CROP_SCALE))
    scale = short / min(height, width)
    resized = (max(short, int(round(height * scale))), max(short, int(round(width * scale))))
    h, w = resized
    if crops == 3:
        if w >= h:
            boxes = [(0, x, False) for x in (0, (w - size) // 2, w - size)]
        else:
            boxes = [(y, 0, False) for y in (0, (h - size) // 2, h - size)]
        return resized, boxes
    if crops != 10:
        raise ValueError(f"crops must be one of {CROPS}, not {crops!r}")
    corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size), ((h - size) // 2, (w - size) // 2)]
    return resized, [(y, x, flip) for flip in (False, True) for y, x in corners]


def _crop_views(frames, size, crops, out):
    """uint8 [n, H, W, 3] -> the `crops` views of each frame in `out` [n, crops, size, size, 3]."""
    resized_hw, boxes = crop_boxes(frames.shape[1], frames.shape[2], size, crops)
    resized = np.empty(resized_hw + (3,), dtype=np.uint8)
    for i, frame in enumerate(frames):
        cv2.resize(frame, resized_hw[::-1], dst=resized, interpolation=cv2.INTER_LINEAR)
        for c, (y, x, flip) in enumerate(boxes):
            view = resized[y:y + size, x:x + size]
            if flip:
                cv2.flip(view, 1, dst=out[i, c])
            else:
                out[i, c] = view
    return out


def _as_indices(frame_range):
    """A chunk of a plan, (start, stop) or an index array, as an int64 index array."""
    if isinstance(frame_range, tuple):
        return np.arange(frame_range[0], frame_range[1], dtype=np.int64)
    return np.asarray(frame_range, dtype=np.int64)


def iter_video_chunks(path, chunk_frames=200, size=IMAGE_SIZE):
    """Stream a whole video as uint8 [<=chunk_frames, size, size, 3] chunks (no augmentation)."""
    frames = video_info(path)[0]
    for start in range(0, frames, chunk_frames):
        yield load_chunk(path, start, min(start + chunk_frames, frames), size)


def _chunk_slabs(path, indices, size, out=None, crops=1):
    """Frames `indices` (looping past the end) resized to size x size (or cut into `crops` views:
    crop_boxes), as uint8 slabs of at most SLAB_FRAMES frames, [n, size, size, 3] or [n, crops, size,
    size, 3] (views of `out`, shaped for all of `indices`, when given): only one slab of raw frames
    is in memory at a time, whatever the chunk's length."""
    indices = np.asarray(indices, dtype=np.int64)
    view_shape = (size, size, 3) if crops == 1 else (crops, size, size, 3)
    with open_video(path) as video:
        for first in range(0, len(indices), SLAB_FRAMES):
            last = min(first + SLAB_FRAMES, len(indices))
            raw = video.read(indices[first:last] % video.frames)
            slab = (np.empty((last - first,) + view_shape, dtype=np.uint8) if out is None else out[first:last])
            if crops == 1:
                yield _transform(raw, False, None, size, slab)
            else:
                yield _crop_views(raw, size, crops, slab)


def load_chunk(path, start, stop=None, size=IMAGE_SIZE, crops=1):
    """Frames start..stop-1 (or the index array `start`) resized to size x size (uint8), or cut into
    `crops` views each ([n, crops, size, size, 3]); indices past the end loop around."""
    indices = _as_indices((start, stop) if stop is not None else start)
    view_shape = (size, size, 3) if crops == 1 else (crops, size, size, 3)
    out = np.empty((len(indices),) + view_shape, dtype=np.uint8)
    for _ in _chunk_slabs(path, indices, size, out, crops):
        pass
    return out


# ----------------------------------------------------------------------------------------------
# Worker pool and prefetching

PR_SET_PDEATHSIG = 1          # <linux/prctl.h>
PARENT_POLL_SECONDS = 1.0     # the watchdog's period where prctl is missing


def _die_with_parent(parent_pid):
    """End this worker when its parent dies, however it dies (SIGKILL, the out-of-memory killer): an
    orphaned worker waits forever on the pool's pipe and keeps its parent's stdout open. Linux: the
    kernel sends SIGKILL (which shielded workers cannot ignore) when the parent exits; elsewhere a
    daemon thread polls the parent's pid, as torch's DataLoader workers do."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent_pid:  # the parent died before prctl took effect
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass  # no prctl here: the watchdog below

    def watchdog():
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watchdog, name="parent-watchdog", daemon=True).start()


def _init_worker(shield_signals, parent_pid):
    _die_with_parent(parent_pid)
    global _global_rng, _worker_reader
    _worker_reader = None  # (make_pool closed the parent's; nothing of it is used here)
    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads would oversubscribe
    # A forked worker inherits the parent's generator state: every worker would draw the same
    # augmentations for the assignment-style `(path, augment)` calls. Fresh OS entropy per worker.
    _global_rng = np.random.default_rng()
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
    _drop_worker_reader()  # FFmpeg state must not be shared with the children
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                                  initargs=(shield_signals, os.getpid()))
    # OpenCV's own thread pool, once the parent has used it (a large resize), does not survive a
    # fork: the child's cv2.setNumThreads then waits forever on the parent's threads. Stop it for
    # the fork and restore it afterwards.
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        # The executor starts its workers on the first submit(s): start them all now, before the caller
        # makes threads, a model or CUDA state for a later fork to copy. The short sleeps keep every
        # worker busy so that Python versions that spawn on demand start one process per task.
        for future in [_submit(pool, time.sleep, 0.05) for _ in range(workers)]:
            _result(future)
    finally:
        cv2.setNumThreads(threads)
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


SAMPLE_LOADERS = {"frame": _frame_raw, "clip": _clip_raw, "segments": _segments_raw, "features": _features_raw}


class SharedSlots:
    """A ring of files in /dev/shm through which pool workers hand arrays to the parent.

    Pickling an array through the pool's pipe runs at ~200 MB/s and costs more CPU than loading it
    (a 77 MB clip batch: ~12 ms per clip against ~1.5 ms to load); a worker writes its array into a
    slot with pwrite instead and returns its shape and dtype, and the parent reads it back once.
    Plain file I/O, not memory maps: neither side's resident memory grows with what passed through,
    and a full tmpfs is an OSError (the worker then falls back to the pipe), not a SIGBUS. The ring
    holds one slot per task in flight plus the one being read. Without /dev/shm, `enabled` is False.
    """

    def __init__(self, pool, count):
        self.count, self.dir = count, None
        if pool is None or not os.path.isdir("/dev/shm"):
            return
        self.dir = tempfile.mkdtemp(prefix="ucf101-slots-", dir="/dev/shm")

    @property
    def enabled(self):
        return self.dir is not None

    def slot(self, number):
        """The file a worker writes the `number`-th task's array to, or None."""
        return os.path.join(self.dir, f"slot{number % self.count}") if self.enabled else None

    @staticmethod
    def read(slot, shape, dtype):
        """The array of `shape` and `dtype` written to `slot`, as a new array."""
        return np.fromfile(slot, dtype=dtype, count=int(np.prod(shape))).reshape(shape)

    def close(self):
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


def _write_rows(slot, rows, offset=0):
    """Worker side of SharedSlots: write the bytes of `rows` ([n, ...] or a list of arrays) to the
    file `slot`, from byte `offset` on."""
    fd = os.open(slot, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for row in rows:
            view = memoryview(np.ascontiguousarray(row)).cast("B")
            while view:  # pwrite may write less than asked
                written = os.pwrite(fd, view, offset)
                view, offset = view[written:], offset + written
    finally:
        os.close(fd)


def _pad_sequences(samples):
    """Variable-length [L_i, ...] samples -> zero-padded [n, max L, ...] and int64 lengths [n]."""
    lengths = np.asarray([len(x) for x in samples], dtype=np.int64)
    out = np.zeros((len(samples), int(lengths.max())) + samples[0].shape[1:], dtype=samples[0].dtype)
    for i, x in enumerate(samples):
        out[i, :len(x)] = x
    return out, lengths


def _load_batch(task):
    """Worker side of BatchLoader: (kind, kwargs, items, slot) -> (data, indices, failures, lengths).

    `data` is the stacked array, or (shape, dtype) when it went to the shared-memory file `slot`.
    Feature sequences ("features") have different lengths: they are zero-padded to the batch's
    longest and `lengths` says how long each is (None for the other kinds).
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
        return None, indices, failures, None
    data, lengths = _pad_sequences(samples) if kind == "features" else (np.stack(samples), None)
    if slot is not None:
        try:
            _write_rows(slot, [data])
            return (data.shape, data.dtype.str), indices, failures, lengths
        except OSError as e:  # /dev/shm full: hand the batch over through the pipe
            log.info("shared memory unavailable (%s): using the pipe", e)
    return data, indices, failures, lengths


class Batch(NamedTuple):
    data: np.ndarray     # uint8 [n, size, size, 3] frames, [n, T, size, size, 3] clips or segments,
    #                      float16 [n, L, dims] feature sequences (zero-padded)
    labels: np.ndarray   # int64 [n]
    indices: np.ndarray  # int64 [n], positions in the loader's path list
    global_size: int     # samples in this step summed over all ranks (before failures)
    lengths: Optional[np.ndarray] = None  # int64 [n]: valid steps of each feature sequence


def sample_seed(seed, epoch, index):
    """A per-sample seed: the same sample gets the same augmentation for the same (seed, epoch);
    epoch None gives one seed per sample for all epochs (evaluation on a fixed frame)."""
    key = [seed, 0 if epoch is None else epoch + 1, index]  # (SeedSequence ignores trailing zeros)
    return int(np.random.SeedSequence(key).generate_state(1)[0])


class BatchLoader:
    """Prefetching batches on a process pool: frames, clips, TSN segments or feature sequences, for
    training and evaluation.

    Each epoch (`set_epoch`) draws one permutation from (seed, epoch), identical on every rank. A step
    takes the next `batch_size * world_size` samples and deals them round-robin to the ranks, so every
    sample is used exactly once per epoch across ranks and the tail is kept. Every rank gets the same
    number of steps (DDP needs lockstep). A file that fails to load is dropped from its batch (never
    the whole batch), logged and counted in `failed`.
    `fixed=True` (evaluation) draws the frame/clip position from (seed, index) only, so every epoch
    sees the same frame of each video. `min_share`: a tail step that would give a rank fewer samples
    joins the step before (training uses 2: BatchNorm cannot train on a batch of one sample whose
    maps are 1x1, e.g. a ResNet's layer4 at small image sizes).
    """

    def __init__(self, paths, labels, batch_size, kind="frame", *, augment=False, shuffle=False,
                 seed=0, pool=None, rank=0, world_size=1, prefetch=None, fixed=False, min_share=1, **loader_kwargs):
        if kind not in SAMPLE_LOADERS:
            raise ValueError(f"kind must be one of {sorted(SAMPLE_LOADERS)}")
        if len(paths) < world_size:
            raise ValueError(f"{len(paths)} samples cannot be shared by {world_size} ranks")
        self.paths, self.labels = np.asarray(paths), np.asarray(labels, dtype=np.int64)
        self.batch_size, self.kind, self.augment, self.shuffle = batch_size, kind, augment, shuffle
        self.seed, self.pool, self.rank, self.world_size, self.fixed = seed, pool, rank, world_size, fixed
        self.min_share = min_share
        self.prefetch = prefetch or 2 * (pool_size(pool) or 1)
        if len(self.labels) != len(self.paths):
            raise ValueError(f"{len(self.paths)} paths but {len(self.labels)} labels")
        inspect.signature(SAMPLE_LOADERS[kind]).bind(
            None, None, None, **loader_kwargs
        )  # TypeError now, not in a worker
        self.loader_kwargs = loader_kwargs
        self.epoch_failed = 0
        self.epoch, self.start_step = 0, 0
        self.failed = {}  # path -> reason, over the loader's life
        self.wait_seconds = 0.0
        self._empty = None  # an empty batch's data, shaped like the others

    def set_epoch(self, epoch, start_step=0):
        """Select the epoch's permutation; `start_step` skips steps already done (mid-epoch resume)."""
        self.epoch, self.start_step = epoch, start_step

    def _steps(self):
        """Global index slices, one per step; a tail that gives a rank fewer than min_share samples (none,
        by default) joins the step before."""
        n = len(self.paths)
        order = (np.random.default_rng([self.seed, self.epoch]).permutation(n) if self.shuffle
                 else np.arange(n))
        step = self.batch_size * self.world_size
        bounds = list(range(0, n, step)) + [n]
        if len(bounds) > 2 and n - bounds[-2] < self.min_share * self.world_size:
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

    def _empty_data(self):
        if self._empty is not None:
            return self._empty
        size = self.loader_kwargs.get("size", IMAGE_SIZE)
        views = {"frame": (), "clip": (self.loader_kwargs.get("clip_len", CLIP_LEN),),
                 "segments": (self.loader_kwargs.get("segments", 3),)}.get(self.kind)
        return np.zeros((0,) + views + (size, size, 3), dtype=np.uint8) if views is not None else \
            np.zeros((0, 1, 1), dtype=np.float16)

    def __iter__(self):
        steps = self._steps()[self.start_step:]
        slots = SharedSlots(self.pool, self.prefetch + 1)
        prefetcher = Prefetcher(self.pool, _load_batch, self._tasks(steps, slots), self.prefetch)
        self.epoch_failed = 0
        read_seconds = 0.0  # reading a batch back from /dev/shm also keeps the step waiting
        try:
            for number, (step, (data, indices, failures, lengths)) in enumerate(zip(steps, prefetcher)):
                for _index, path, reason in failures:
                    if path not in self.failed:  # named once, not every epoch
                        log.warning("skipping %s: %s", path, reason)
                    self.failed[path] = reason
                self.epoch_failed += len(failures)
                if len(indices) == 0:  # every sample of this rank's share failed
                    data, lengths = self._empty_data(), (None if self.kind != "features" else np.zeros(0, np.int64))
                else:
                    if isinstance(data, tuple):  # (shape, dtype) of what the worker wrote to its slot
                        started = time.perf_counter()
                        data = slots.read(slots.slot(number), *data)
                        read_seconds += time.perf_counter() - started
                    # Kept for a later step whose share all failed: an empty batch of the same layout.
                    self._empty = np.zeros((0, 1) + data.shape[2:] if self.kind == "features"
                                           else (0,) + data.shape[1:], dtype=data.dtype)
                yield Batch(data, self.labels[indices], indices, len(step), lengths)
        finally:
            self.wait_seconds = prefetcher.wait_seconds + read_seconds
            slots.close()


NON_FINITE = "non-finite values"


def read_features(path, indices):
    """float16 [n, dims]: the per-frame features `indices` (increasing) of a feature file."""
    with h5py.File(path, "r") as f:
        ds = _feature_dataset(f, path)
        indices = np.asarray(indices, dtype=np.int64) % ds.shape[0]
        features = ds[indices] if len(indices) and np.all(np.diff(indices) > 0) else ds[()][indices]
    if not np.isfinite(features).all():
        raise VideoReadError(f"{path}: {NON_FINITE} in '{FEATURES_KEY}'")
    return np.asarray(features, dtype=np.float16)


def _load_chunk_task(task):
    """Worker side of VideoChunkLoader -> (video_index, result, seconds): result is the array, or
    (shape, dtype) when it went to the shared-memory slot, or the reason a video cannot be read;
    seconds is the time spent reading and resizing it."""
    video_index, path, indices, size, crops, slot, capacity = task
    start = time.perf_counter()
    if isinstance(indices, str):  # the video's header already failed in the parent: pass it on
        return video_index, indices, 0.0
    if size is None:  # feature files: rows of features, no frames
        try:
            features = read_features(path, indices)
        except READ_ERRORS as e:
            return video_index, f"{type(e).__name__}: {e}", time.perf_counter() - start
        if slot is not None and len(indices) <= capacity:
            with contextlib.suppress(OSError):
                _write_rows(slot, [features])
                return video_index, (features.shape, features.dtype.str), time.perf_counter() - start
        return video_index, features, time.perf_counter() - start
    shape = (len(indices),) + ((size, size, 3) if crops == 1 else (crops, size, size, 3))
    try:
        if slot is not None and len(indices) <= capacity:
            # Slab by slab into the slot: the worker never holds the whole chunk.
            offset = 0
            with contextlib.closing(_chunk_slabs(path, indices, size, crops=crops)) as slabs:
                for slab in slabs:
                    try:
                        _write_rows(slot, [slab], offset)
                    except OSError as e:
                        log.info("shared memory unavailable (%s): using the pipe", e)
                        break
                    offset += slab.nbytes
                else:
                    return video_index, (shape, np.dtype(np.uint8).str), time.perf_counter() - start
        return video_index, load_chunk(path, indices, size=size, crops=crops), time.perf_counter() - start
    except READ_ERRORS as e:
        return video_index, f"{type(e).__name__}: {e}", time.perf_counter() - start


def video_chunk_plan(frames, chunk_frames):
    """Default plan: consecutive chunks of at most chunk_frames frames covering the video once."""
    return [(start, min(start + chunk_frames, frames)) for start in range(0, frames, chunk_frames)]


class VideoChunkLoader:
    """Streams whole test videos chunk by chunk while the model works on the previous chunk.

    `plan(frames)` returns, for a video of `frames` frames, the chunks to load: (start, stop) ranges or
    arrays of frame indices (indices past the end loop). Yields `(video_index, chunk_number,
    num_chunks, uint8 array)`, the array [n, size, size, 3], or [n, crops, size, size, 3] for
    crops > 1 (crop_boxes), replaced by an error string for an unreadable video (its remaining chunks
    are skipped). At most `depth` chunks are in flight; chunks of up to `max_chunk` frames travel
    through shared memory, so the parent holds only the chunk it is working on, whatever the video
    length. `frames[video_index]` is each video's length once its header was read, `load_seconds`
    the worker time spent loading it.
    """

    def __init__(self, paths, plan, pool=None, size=IMAGE_SIZE, depth=2, max_chunk=None, crops=1, features=False):
        if crops not in CROPS:
            raise ValueError(f"crops must be one of {CROPS}, not {crops!r}")
        # features=True: the paths are feature files (extract_features.py) and chunks are float16
        # [n, dims] rows of features instead of frames.
        self.features = features
        self.paths, self.plan, self.pool, self.depth = list(paths), plan, pool, depth
        self.size = None if features else size
        self.max_chunk, self.crops = max_chunk, crops
        self.wait_seconds = 0.0
        self.frames, self.load_seconds = {}, {}
        self._chunks = {}

    def _tasks(self, slots):
        number = 0
        for video_index, path in enumerate(self.paths):
            try:
                self.frames[video_index] = (feature_info if self.features else video_info)(path)[0]
                chunks = [_as_indices(c) for c in self.plan(self.frames[video_index])]
                if not chunks or any(len(c) == 0 for c in chunks):
                    raise RuntimeError(f"the chunk plan for {path} is empty or has an empty chunk")
            except READ_ERRORS as e:
                chunks = [f"{type(e).__name__}: {e}"]
            self._chunks[video_index] = len(chunks)
            for indices in chunks:
                yield (video_index, path, indices, self.size, self.crops, slots.slot(number), self.max_chunk or 0)
                number += 1

    def __iter__(self):
        counts, broken = {}, set()
        slots = SharedSlots(self.pool if self.max_chunk else None, self.depth + 1)
        prefetcher = Prefetcher(self.pool, _load_chunk_task, self._tasks(slots), self.depth)
        try:
            for number, (video_index, result, seconds) in enumerate(prefetcher):
                self.load_seconds[video_index] = self.load_seconds.get(video_index, 0.0) + seconds
                if isinstance(result, tuple):
                    result = slots.read(slots.slot(number), *result)
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
    "getUCF101",
    "getHMDB51",
    "get_split",
    "resolve_dataset",
    "video_group",
    "parse_groups",
    "split_by_groups",
    "subset_videos",
    "loadFrame",
    "loadSequence",
    "loadFrameRaw",
    "loadSequenceRaw",
    "iter_video_chunks",
    "load_chunk",
    "read_frames",
    "video_info",
    "write_video_hdf5",
    "make_pool",
    "close_pool",
    "Prefetcher",
    "LoaderWorkerDied",
    "BatchLoader",
    "Batch",
    "VideoChunkLoader",
    "video_chunk_plan",
    "clip_indices",
    "normalize_numpy",
    "open_video",
    "segment_centres",
    "segment_offsets",
    "crop_boxes",
    "feature_info",
    "feature_window",
    "read_features",
    "VIDEO_SUFFIXES",
    "CROPS",
    "FRAME_MEAN",
    "FRAME_STD",
    "CLIP_MEAN",
    "CLIP_STD",
    "KINETICS_MEAN",
    "KINETICS_STD",
]
