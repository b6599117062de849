"""getUCF101: the official split lists (when ../shared/data is present) and hand-made ones (always)."""
import os
import re
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from actionrec.data.split_lists import getUCF101

SHARED_LISTS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ucfTrainTestlist"
SPLIT_COUNTS = {1: (9537, 3783), 2: (9586, 3734), 3: (9624, 3696)}
NUM_VIDEOS, NUM_CLASSES = 13320, 101
GROUP = re.compile(r"_g(\d\d)_c\d\d\.hdf5$")


def _expected_path(base, entry):
    folder, file_name = entry.split("/")
    return os.path.join(str(base), "UCF-101-hdf5", folder, os.path.splitext(file_name)[0] + ".hdf5")


def _read_lines(path):
    return [line for line in path.read_bytes().decode().split("\r\n") if line]


# ----------------------------------------------------------------------------------------------
# The real official lists

@pytest.fixture(scope="module")
def real_base(tmp_path_factory):
    """A data dir named like the HDF5 folder (`...-hdf5-data`): its name must not be rewritten."""
    if not (SHARED_LISTS / "classInd.txt").is_file():
        pytest.skip(f"official split lists not found at {SHARED_LISTS} (no ../shared in this clone)")
    base = tmp_path_factory.mktemp("x") / "UCF-101-hdf5-data"
    base.mkdir()
    shutil.copytree(SHARED_LISTS, base / "ucfTrainTestlist")  # byte copy: CRLF kept
    (base / "UCF-101-hdf5").mkdir()
    assert b"\r\n" in (base / "ucfTrainTestlist" / "trainlist01.txt").read_bytes()
    return base


@pytest.fixture(scope="module")
def real_splits(real_base):
    return {split: getUCF101(str(real_base), split) for split in (1, 2, 3)}


@pytest.fixture(scope="module")
def class_ind():
    names = []
    for line in _read_lines(SHARED_LISTS / "classInd.txt"):
        index, name = line.split()
        assert int(index) == len(names) + 1
        names.append(name)
    return names


@pytest.mark.parametrize("split", [1, 2, 3])
def test_real_counts_and_coverage(real_splits, split):
    classes, (train_paths, train_labels), (test_paths, test_labels) = real_splits[split]
    assert (len(train_paths), len(test_paths)) == SPLIT_COUNTS[split]
    assert len(train_labels) == len(train_paths) and len(test_labels) == len(test_paths)
    assert len(classes) == NUM_CLASSES
    everything = set(train_paths) | set(test_paths)
    assert len(everything) == NUM_VIDEOS  # no overlap, no duplicates
    # every split covers the same 13,320 videos
    _, (train1, _), (test1, _) = real_splits[1]
    assert everything == set(train1) | set(test1)


def test_real_class_order_is_classind_not_sorted(real_splits, class_ind):
    for split in (1, 2, 3):
        assert list(real_splits[split][0]) == class_ind
    classes = list(real_splits[1][0])
    # FACTS' 34/35 and 46/47 are 0-based positions (classInd lines 35/36 and 47/48)
    assert classes[34:36] == ["Hammering", "HammerThrow"]
    assert classes[46:48] == ["JumpingJack", "JumpRope"]
    differing = [i for i, (a, b) in enumerate(zip(classes, sorted(classes))) if a != b]
    assert differing == [34, 35, 46, 47]


@pytest.mark.parametrize("split", [1, 2, 3])
def test_real_labels_and_paths(real_base, real_splits, split):
    classes, (train_paths, train_labels), (test_paths, test_labels) = real_splits[split]
    index = {name: i for i, name in enumerate(classes)}
    train_lines = _read_lines(SHARED_LISTS / f"trainlist0{split}.txt")
    test_lines = _read_lines(SHARED_LISTS / f"testlist0{split}.txt")
    assert train_labels.dtype == np.int64 and test_labels.dtype == np.int64

    entries = [line.split()[0] for line in train_lines]
    assert list(train_paths) == [_expected_path(real_base, e) for e in entries]
    assert list(train_labels) == [int(line.split()[1]) - 1 for line in train_lines]  # 0-based
    assert list(train_labels) == [index[e.split("/")[0]] for e in entries]
    assert list(test_paths) == [_expected_path(real_base, e) for e in test_lines]
    assert list(test_labels) == [index[e.split("/")[0]] for e in test_lines]
    assert set(train_labels) == set(test_labels) == set(range(NUM_CLASSES))

    for path in list(train_paths) + list(test_paths):
        assert "UCF-101-hdf5-hdf5" not in path
        assert path.startswith(os.path.join(str(real_base), "UCF-101-hdf5") + os.sep)


@pytest.mark.parametrize("split", [1, 2, 3])
def test_real_train_and_test_never_share_a_group(real_splits, split):
    _, (train_paths, train_labels), (test_paths, test_labels) = real_splits[split]
    groups = {"train": defaultdict(set), "test": defaultdict(set)}
    for part, paths, labels in (("train", train_paths, train_labels), ("test", test_paths, test_labels)):
        for path, label in zip(paths, labels):
            groups[part][int(label)].add(GROUP.search(path).group(1))
    assert len(groups["train"]) == len(groups["test"]) == NUM_CLASSES
    for label in range(NUM_CLASSES):
        assert groups["train"][label] and groups["test"][label]
        assert not groups["train"][label] & groups["test"][label], label


def test_real_handstand_pushups_quirk(real_splits):
    classes, (train_paths, train_labels), (test_paths, test_labels) = real_splits[1]
    label = list(classes).index("HandstandPushups")
    assert label == 36  # classInd line 37
    for paths, labels in ((train_paths, train_labels), (test_paths, test_labels)):
        quirky = [i for i, p in enumerate(paths) if "v_HandStandPushups_" in os.path.basename(p)]
        assert quirky
        for i in quirky:
            assert labels[i] == label
            assert os.path.basename(os.path.dirname(paths[i])) == "HandstandPushups"
        assert sorted(quirky) == [i for i, p in enumerate(paths) if labels[i] == label]


# ----------------------------------------------------------------------------------------------
# Hand-made lists (always run)

# classInd order on purpose differs from sorted() (as in the real file)
CLASSES = ["Hammering", "HammerThrow", "HandstandPushups", "JumpingJack", "JumpRope"]
TRAIN = [("Hammering/v_Hammering_g01_c01.avi", 1), ("HammerThrow/v_HammerThrow_g01_c01.avi", 2),
         ("HandstandPushups/v_HandStandPushups_g01_c01.avi", 3), ("JumpingJack/v_JumpingJack_g01_c01.avi", 4),
         ("JumpRope/v_JumpRope_g01_c01.avi", 5), ("Hammering/v_Hammering_g01_c02.avi", 1)]
TEST = ["JumpRope/v_JumpRope_g02_c01.avi", "HandstandPushups/v_HandStandPushups_g02_c01.avi",
        "Hammering/v_Hammering_g02_c01.avi", "HammerThrow/v_HammerThrow_g02_c01.avi"]


def make_lists(base, newline, split=1, train=TRAIN, test=TEST, classes=CLASSES, video_dir=True):
    list_dir = base / "ucfTrainTestlist"
    list_dir.mkdir(parents=True)

    def write(name, lines):
        (list_dir / name).write_bytes("".join(line + newline for line in lines).encode())

    write("classInd.txt", [f"{i + 1} {name}" for i, name in enumerate(classes)])
    write(f"trainlist0{split}.txt", [f"{entry} {label}" for entry, label in train])
    write(f"testlist0{split}.txt", list(test))
    if video_dir:
        (base / "UCF-101-hdf5").mkdir()
    return base


def _as_lists(result):
    classes, (train_paths, train_labels), (test_paths, test_labels) = result
    return [list(classes), list(train_paths), list(train_labels), list(test_paths), list(test_labels)]


def test_handmade_lists(tmp_path):
    base = make_lists(tmp_path / "data", "\n")
    classes, (train_paths, train_labels), (test_paths, test_labels) = getUCF101(str(base), 1)
    assert list(classes) == CLASSES != sorted(CLASSES)
    assert list(train_paths) == [_expected_path(base, e) for e, _ in TRAIN]
    assert list(train_labels) == [label - 1 for _, label in TRAIN]
    assert list(test_paths) == [_expected_path(base, e) for e in TEST]
    assert list(test_labels) == [CLASSES.index(e.split("/")[0]) for e in TEST] == [4, 2, 0, 1]


def test_lf_and_crlf_give_identical_results(tmp_path):
    lf = make_lists(tmp_path / "lf" / "data", "\n")
    crlf = make_lists(tmp_path / "crlf" / "data", "\r\n")
    assert b"\r\n" in (crlf / "ucfTrainTestlist" / "classInd.txt").read_bytes()
    assert b"\r" not in (lf / "ucfTrainTestlist" / "classInd.txt").read_bytes()
    from_lf, from_crlf = _as_lists(getUCF101(str(lf), 1)), _as_lists(getUCF101(str(crlf), 1))
    # the same apart from the base directory; no stray '\r' in any name or path
    relative = [[[x.replace(str(base), "<base>") for x in part] if i in (1, 3) else part
                 for i, part in enumerate(result)] for base, result in ((lf, from_lf), (crlf, from_crlf))]
    assert relative[0] == relative[1]
    assert not any("\r" in str(x) for part in from_crlf for x in part)
    assert from_crlf[0] == CLASSES and len(from_crlf[1]) == len(TRAIN) and len(from_crlf[3]) == len(TEST)


def test_base_dir_containing_hdf5_name_is_not_rewritten(tmp_path):
    base = make_lists(tmp_path / "x" / "UCF-101-hdf5-data", "\r\n")
    _, (train_paths, _), (test_paths, _) = getUCF101(str(base) + os.sep, 1)
    for path in list(train_paths) + list(test_paths):
        assert path.startswith(os.path.join(str(base), "UCF-101-hdf5") + os.sep)
        assert path.count("UCF-101-hdf5") == 2  # once in the base name, once for the video folder
        assert "UCF-101-hdf5-hdf5" not in path


def test_missing_list_folder(tmp_path):
    (tmp_path / "UCF-101-hdf5").mkdir()
    with pytest.raises(FileNotFoundError) as error:
        getUCF101(str(tmp_path), 1)
    message = str(error.value)
    assert os.path.join(str(tmp_path), "ucfTrainTestlist") in message
    assert "classInd.txt" in message and "UCF-101-hdf5" in message  # the expected layout


def test_missing_testlist(tmp_path):
    base = make_lists(tmp_path, "\n")
    missing = base / "ucfTrainTestlist" / "testlist01.txt"
    missing.unlink()
    with pytest.raises(FileNotFoundError) as error:
        getUCF101(str(base), 1)
    message = str(error.value)
    assert str(missing) in message
    assert "trainlist0N.txt" in message and "UCF-101-hdf5" in message


def test_missing_split_files_for_another_split(tmp_path):
    base = make_lists(tmp_path, "\n", split=1)
    with pytest.raises(FileNotFoundError, match="trainlist02.txt"):
        getUCF101(str(base), 2)


def test_lists_are_read_without_any_video_folder(tmp_path, caplog):
    # combine_results on a laptop: the lists and the prediction folders, no videos.
    base = make_lists(tmp_path, "\n", video_dir=False)
    classes, (train_paths, _), (test_paths, test_labels) = getUCF101(str(base), 1)
    assert list(classes) == CLASSES and len(train_paths) == len(TRAIN) and len(test_paths) == len(TEST)
    assert list(test_paths) == [_expected_path(base, e) for e in TEST]
    assert "neither" in caplog.text and "UCF-101-hdf5" in caplog.text


def make_tree(base, folder, entries, suffix):
    for entry in entries:
        cls, name = entry.split("/")
        (base / folder / cls).mkdir(parents=True, exist_ok=True)
        (base / folder / cls / (os.path.splitext(name)[0] + suffix)).write_bytes(b"")


def test_original_videos_are_found_in_any_container(tmp_path):
    base = make_lists(tmp_path, "\n", video_dir=False)
    entries = [e for e, _ in TRAIN] + list(TEST)
    make_tree(base, "UCF-101", entries[:3], ".avi")
    make_tree(base, "UCF-101", entries[3:], ".mp4")  # one's own data: the lists still say .avi
    _, (train_paths, _), (test_paths, _) = getUCF101(str(base), 1)
    found = list(train_paths) + list(test_paths)
    for entry, path in zip(entries, found):
        cls, name = entry.split("/")
        stem = os.path.splitext(name)[0]
        assert path in (str(base / "UCF-101" / cls / (stem + ".avi")), str(base / "UCF-101" / cls / (stem + ".mp4")))
        assert os.path.exists(path)


def test_hdf5_is_preferred_per_video_and_storage_chooses(tmp_path):
    base = make_lists(tmp_path, "\n")
    entries = [e for e, _ in TRAIN] + list(TEST)
    make_tree(base, "UCF-101", entries, ".avi")
    make_tree(base, "UCF-101-hdf5", entries[:2], ".hdf5")  # a half-finished conversion
    _, (train_paths, _), _ = getUCF101(str(base), 1)
    assert [p.endswith(".hdf5") for p in train_paths[:3]] == [True, True, False]
    _, (only_video, _), _ = getUCF101(str(base), 1, storage="video")
    assert all(p.endswith(".avi") for p in only_video)
    _, (only_hdf5, _), _ = getUCF101(str(base), 1, storage="hdf5")
    assert list(only_hdf5) == [_expected_path(base, e) for e, _ in TRAIN]
    with pytest.raises(ValueError, match="storage"):
        getUCF101(str(base), 1, storage="tape")


@pytest.mark.parametrize("split", [0, 4, "1"])
def test_bad_split(tmp_path, split):
    base = make_lists(tmp_path, "\n")
    with pytest.raises(ValueError, match="split"):
        getUCF101(str(base), split)


def test_train_label_disagreeing_with_folder(tmp_path):
    train = TRAIN[:2] + [("JumpRope/v_JumpRope_g03_c01.avi", 4)] + TRAIN[2:]  # JumpRope is 5
    base = make_lists(tmp_path, "\r\n", train=train)
    with pytest.raises(ValueError, match="v_JumpRope_g03_c01"):
        getUCF101(str(base), 1)


def test_unknown_class_folder(tmp_path):
    base = make_lists(tmp_path, "\n", test=TEST + ["Juggling/v_Juggling_g02_c01.avi"])
    with pytest.raises(ValueError, match="Juggling"):
        getUCF101(str(base), 1)


# ----------------------------------------------------------------------------------------------
# Validation groups

def test_group_numbers_and_ranges():
    from actionrec.data import video_groups
    assert video_groups.video_group("/x/UCF-101-hdf5/HandstandPushups/v_HandStandPushups_g08_c03.hdf5") == 8
    assert video_groups.video_group("Archery/v_Archery_g25_c07.avi") == 25
    assert video_groups.video_group("Label/my_own_video.mp4") is None
    assert video_groups.parse_groups("8-10") == (8, 9, 10)
    assert video_groups.parse_groups("1,3,5-7,3") == (1, 3, 5, 6, 7)
    for bad in ("", "a-b", "10-8", "8-"):
        with pytest.raises(ValueError):
            video_groups.parse_groups(bad)


def test_validation_groups_of_the_real_training_list(real_splits):
    from actionrec.data import video_groups
    _, (paths, labels), _ = real_splits[1]
    (kept, kept_labels), (held, held_labels) = video_groups.split_by_groups(paths, labels, (8, 9, 10))
    assert len(kept) + len(held) == len(paths) and len(held) > 0
    assert {video_groups.video_group(p) for p in held} == {8, 9, 10}
    assert not {video_groups.video_group(p) for p in kept} & {8, 9, 10}  # no group on both sides
    assert set(held_labels) == set(labels)  # every class keeps validation videos
    with pytest.raises(ValueError, match="g01"):  # split 1 tests on groups 1-7: not in the training list
        video_groups.split_by_groups(paths, labels, (1, 9))


def test_subset_videos(tmp_path):
    from actionrec.data import datasets, video_groups
    train = TRAIN + [("JumpRope/v_JumpRope_g03_c01.avi", 5), ("Hammering/v_Hammering_g03_c02.avi", 1)]
    base = make_lists(tmp_path, "\n", train=train)
    _, train_paths, _ = datasets.subset_videos(str(base), 1, "train")
    groups = sorted({video_groups.video_group(p) for p in train_paths})
    assert groups == [1, 3]
    _, val_paths, _ = datasets.subset_videos(str(base), 1, "val", val_groups=(3,))
    _, rest_paths, _ = datasets.subset_videos(str(base), 1, "train", val_groups=(3,))
    assert len(val_paths) == 2
    assert sorted(list(val_paths) + list(rest_paths)) == sorted(train_paths)
    _, test_paths, _ = datasets.subset_videos(str(base), 1, "test")
    assert len(test_paths) == len(TEST)
    with pytest.raises(ValueError, match="val"):
        datasets.subset_videos(str(base), 1, "val")
