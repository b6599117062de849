"""The official split lists of UCF-101 (classInd.txt, trainlist0N.txt, testlist0N.txt) and the videos
they name.

A listed video resolves to the course's HDF5 copy (<root>/UCF-101-hdf5/<Class>/<video>.hdf5) or the
original release (<root>/UCF-101/<Class>/<video>.avi); HMDB-51's official splits are in hmdb51.py.
"""

import logging
import os

import numpy as np

log = logging.getLogger("ucf101")


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


def getUCF101(
    base_directory: str = "", split: int = 1, storage: str = "auto"
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
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


def _list_entry(line):
    """(entry, label) of a split-list line: `<Class>/<video>.avi <label>` (training lists) or
    `<Class>/<video>.avi` (test lists). A file name may contain spaces: only a last word of digits
    is a label."""
    entry, _, last = line.rpartition(" ")
    if entry and last.isdigit():
        return entry.strip(), last
    return line, ""
