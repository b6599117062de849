"""HMDB-51's official splits (testTrainMulti_7030_splits/<action>_test_split<N>.txt): getHMDB51."""

import logging
import os
import re
from collections.abc import Iterable

import numpy as np

from actionrec.data import split_lists

log = logging.getLogger("ucf101")


HMDB_SPLIT_DIR = "testTrainMulti_7030_splits"  # the official splits: <action>_test_split<N>.txt


HMDB_HDF5_DIR = "hmdb51-hdf5"  # converted copy: <action>/<video>.hdf5 (as UCF-101-hdf5 for UCF-101)


HMDB_VIDEO_DIR = "hmdb51"      # hmdb51_org.rar unpacked: <action>/<video>.avi (as UCF-101)


HMDB_SUBSETS = {"1": "train", "2": "test", "0": None}  # a split file's ids; 0: not used in that split


# The 51 actions of HMDB-51, sorted: the action names of the official split files (label order).
HMDB_ACTIONS = (
    "brush_hair", "cartwheel", "catch", "chew", "clap", "climb", "climb_stairs", "dive", "draw_sword", "dribble",
    "drink", "eat", "fall_floor", "fencing", "flic_flac", "golf", "handstand", "hit", "hug", "jump", "kick",
    "kick_ball", "kiss", "laugh", "pick", "pour", "pullup", "punch", "push", "pushup", "ride_bike", "ride_horse",
    "run", "shake_hands", "shoot_ball", "shoot_bow", "shoot_gun", "sit", "situp", "smile", "smoke", "somersault",
    "stand", "swing_baseball", "sword", "sword_exercise", "talk", "throw", "turn", "walk", "wave",
)


_HMDB_SPLIT_FILE = re.compile(r"^(.+)_test_split([123])\.txt$")


def hmdb51_actions(split_dir: str) -> list[str]:
    """The sorted action names of the split files in split_dir (those of split 1, 2 or 3)."""
    try:
        names = os.listdir(split_dir)
    except OSError as e:
        raise FileNotFoundError(f"{split_dir}: {e.strerror}: --data-dir must hold {HMDB_SPLIT_DIR}/ "
                                f"(<action>_test_split<N>.txt, from test_train_splits.rar)") from None
    return sorted({m.group(1) for m in map(_HMDB_SPLIT_FILE.match, names) if m})


def check_hmdb51_actions(actions: Iterable[str], split_dir: str) -> None:
    """ValueError, one line, when the split folder's `actions` are HMDB-51's but not all 51 of them: an
    official action missing (a lost or renamed file) or an action that is not one of HMDB_ACTIONS beside
    them (a stray or misspelt file). A folder naming none of the 51 is a dataset of one's own in HMDB-51's
    layout and is not checked."""
    actions = set(actions)
    if not actions & set(HMDB_ACTIONS) or actions == set(HMDB_ACTIONS):
        return
    missing = sorted(set(HMDB_ACTIONS) - actions)
    extra = sorted(actions - set(HMDB_ACTIONS))
    problems = []
    if missing:
        problems.append(f"no <action>_test_split<N>.txt file for {_some(missing)}")
    if extra:
        verb = "is not an HMDB-51 action" if len(extra) == 1 else "are not HMDB-51 actions"
        problems.append(f"{_some(extra)} {verb}")
    raise ValueError(f"{split_dir} names {len(actions)} actions, HMDB-51 has {len(HMDB_ACTIONS)}: "
                     f"{'; '.join(problems)} (unpack test_train_splits.rar again: 153 files, 3 per action)")


def _some(names, shown=5):
    """'a, b, c' or 'a, b, c, d, e and 7 more'."""
    text = ", ".join(names[:shown])
    return text if len(names) <= shown else f"{text} and {len(names) - shown} more"


def hmdb51_film(name: str | os.PathLike[str], action: str) -> str | None:
    """The source film of an HMDB-51 video (path, file name or stem) of `action`: the name's prefix
    before `_<action>_` (April_09_brush_hair_u_nm_np1_ba_goo_0 -> April_09), or None when the name does
    not hold the action."""
    stem = "_" + os.path.splitext(os.path.basename(os.fspath(name)))[0]
    at = stem.rfind(f"_{action}_")
    return None if at < 0 else stem[1:at]


def getHMDB51(
    base_directory: str = "", split: int = 1, storage: str = "auto"
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Read HMDB-51's official splits; the same contract and return shape as getUCF101.

    base_directory holds `testTrainMulti_7030_splits/` (test_train_splits.rar unpacked: one file
    `<action>_test_split<N>.txt` per action and split, lines `<video>.avi <id>`, id 1 = train, 2 = test,
    0 = not used in that split: in no subset) and the videos: `hmdb51-hdf5/<action>/<video>.hdf5`
    (HMDB_HDF5_DIR, converted), `hmdb51/<action>/<video>.avi` (HMDB_VIDEO_DIR: hmdb51_org.rar and its
    per-action .rar files unpacked), or both; `storage` as in getUCF101. HMDB-51 has no class index
    file: the classes are the action names in sorted order (the convention of mmaction2's
    parse_hmdb51_split and 3D-ResNets' hmdb51_json.py), taken from the split files present.
    Returns `class_list, (train_paths, train_labels), (test_paths, test_labels)`, 0-based labels.
    A split folder naming HMDB-51's actions but not exactly its 51 (check_hmdb51_actions), a missing or
    malformed split file, a line with an id other than 0/1/2 or a video listed twice is
    one FileNotFoundError/ValueError line naming the file (and line).
    """
    if split not in (1, 2, 3):
        raise ValueError(f"split must be 1, 2 or 3, not {split!r}")
    if storage not in split_lists.STORAGES:
        raise ValueError(f"storage must be one of {', '.join(split_lists.STORAGES)}, not {storage!r}")
    split_dir = os.path.join(base_directory, HMDB_SPLIT_DIR)
    class_list = hmdb51_actions(split_dir)
    if not class_list:
        raise FileNotFoundError(f"{split_dir} holds no <action>_test_split<N>.txt file: expected HMDB-51's "
                                f"official splits (test_train_splits.rar)")
    check_hmdb51_actions(class_list, split_dir)
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
        for number, line in enumerate(split_lists._read_list(list_path), 1):
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
            paths.append(split_lists._resolve_video(base_directory, action, stem, suffix, storage, cache, roots))
            labels.append(label)
    train, test = ((np.asarray(p), np.asarray(lb, dtype=np.int64)) for p, lb in subsets.values())
    return np.asarray(class_list), train, test
