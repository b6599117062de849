"""make_split_lists.py: split lists for a dataset of one's own, read by getUCF101 and trained on."""
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

import make_split_lists
import make_synthetic_ucf101
import train_single_frame
from actionrec.data.split_lists import getUCF101
from helpers import run_group

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "make_split_lists.py"

# label -> [(file name, group)]; the groups are what the documented rules must find.
TREE = {
    "Cat": [(f"v_Cat_g{g:02d}_c{c:02d}.hdf5", f"g{g}") for g in range(1, 11) for c in (1, 2)],
    "Dog": [(name, name) for name in ("walk.mp4", "run.MOV", "sit.avi", "lie.webm", "jump.mkv",
                                      "roll.mpg", "beg.mpeg", "fetch.m4v")],
    "Eel": [(f"{stem}-seg{i:03d}.mp4", stem) for stem, n in (("x", 3), ("y", 2), ("z", 1), ("w", 4))
            for i in range(n)],
    "Solo": [("only-seg000.hdf5", "only"), ("only-seg001.hdf5", "only")],
}
IGNORED = ["Dog/.walk.mp4", "Dog/readme.txt", "Empty/notes.txt", ".hidden/v_Cat_g11_c01.mp4", "stray.mp4"]


def run(*args):
    return run_group([sys.executable, str(SCRIPT), *map(str, args)], timeout=60)


def make_tree(videos_dir, tree=TREE, ignored=IGNORED):
    """Empty files named like videos: the tool reads names only."""
    for label, entries in tree.items():
        for name, _ in entries:
            (videos_dir / label).mkdir(parents=True, exist_ok=True)
            (videos_dir / label / name).touch()
    for name in ignored:
        (videos_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (videos_dir / name).touch()
    return videos_dir


@pytest.fixture
def root(tmp_path):
    make_tree(tmp_path / "UCF-101-hdf5")
    return tmp_path


def read_lines(path):
    """Lines of a list file, checking every line ends in CRLF."""
    data = path.read_bytes()
    assert data.endswith(b"\r\n") and data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r")
    return data.decode().split("\r\n")[:-1]


def read_split(list_dir, number=1):
    """(classInd names, {label: set of train stems}, {label: set of test stems})."""
    classes = []
    for i, line in enumerate(read_lines(list_dir / "classInd.txt"), 1):
        index, name = line.split(" ")
        assert int(index) == i
        classes.append(name)
    train, test = {}, {}
    for line in read_lines(list_dir / f"trainlist0{number}.txt"):
        entry, label = line.split(" ")
        folder, file_name = entry.split("/")
        assert file_name.endswith(".avi") and classes[int(label) - 1] == folder
        train.setdefault(folder, set()).add(file_name[:-4])
    for line in read_lines(list_dir / f"testlist0{number}.txt"):
        folder, file_name = line.split("/")
        assert file_name.endswith(".avi") and folder in classes
        test.setdefault(folder, set()).add(file_name[:-4])
    return classes, train, test


def check_groups_apart(tree, train, test):
    """Every video on exactly one side, no group on both, both sides for labels of >= 2 groups."""
    for label, entries in tree.items():
        stems = {Path(name).stem: group for name, group in entries}
        train_stems, test_stems = train.get(label, set()), test.get(label, set())
        assert train_stems | test_stems == set(stems) and not train_stems & test_stems, label
        assert not {stems[s] for s in train_stems} & {stems[s] for s in test_stems}, label
        if len(set(stems.values())) >= 2:
            assert train_stems and test_stems, label


def test_groups_stay_on_one_side_and_every_label_is_on_both(root):
    result = run("--videos", root / "UCF-101-hdf5", "--out", root / "ucfTrainTestlist")
    assert result.returncode == 0, result.stderr
    classes, train, test = read_split(root / "ucfTrainTestlist")
    assert classes == ["Cat", "Dog", "Eel", "Solo"]  # sorted folders; Empty and .hidden are not labels
    check_groups_apart(TREE, train, test)
    assert "Solo" not in test and train["Solo"] == {"only-seg000", "only-seg001"}
    assert sorted(os.listdir(root / "ucfTrainTestlist")) == ["classInd.txt", "testlist01.txt", "trainlist01.txt"]
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 2 and all("warning" in line for line in warnings)
    assert "Empty" in warnings[0] and "skipped" in warnings[0] and "Solo" in warnings[1]
    assert "4 labels, 23 groups, 40 videos" in result.stdout
    assert re.search(r"Cat\s+10\s+20\s+14/6 \(7/3 groups\)", result.stdout)  # 0.3 of 10 groups of 2


@pytest.mark.parametrize("fraction, cat_test_videos", [(0.1, 2), (0.3, 6), (0.5, 10), (0.9, 18), (0.99, 18)])
def test_test_fraction_counts_videos_and_keeps_a_training_group(root, fraction, cat_test_videos):
    result = run("--videos", root / "UCF-101-hdf5", "--out", root / "lists", "--test-fraction", fraction)
    assert result.returncode == 0, result.stderr
    _, train, test = read_split(root / "lists")
    assert len(test["Cat"]) == cat_test_videos  # 10 groups of 2 videos
    check_groups_apart(TREE, train, test)


def test_the_same_seed_gives_the_same_bytes_and_other_seeds_other_splits(root):
    outputs = []
    for seed in (0, 0, 1, 2, 3):
        out = root / f"lists{len(outputs)}"
        assert run("--videos", root / "UCF-101-hdf5", "--out", out, "--seed", seed).returncode == 0
        outputs.append({name: (out / name).read_bytes() for name in sorted(os.listdir(out))})
    assert outputs[0] == outputs[1]
    assert len({files["testlist01.txt"] for files in outputs}) > 2


def test_splits_use_consecutive_seeds_and_a_rerun_removes_higher_splits(root):
    lists = root / "ucfTrainTestlist"
    assert run("--videos", root / "UCF-101-hdf5", "--out", lists, "--splits", 3, "--seed", 5).returncode == 0
    assert sorted(os.listdir(lists)) == ["classInd.txt"] + [f"{kind}list0{n}.txt" for kind in ("test", "train")
                                                            for n in (1, 2, 3)]
    for n in (1, 2, 3):
        _, train, test = read_split(lists, n)
        check_groups_apart(TREE, train, test)
    assert run("--videos", root / "UCF-101-hdf5", "--out", root / "seed6", "--seed", 6).returncode == 0
    assert (lists / "testlist02.txt").read_bytes() == (root / "seed6" / "testlist01.txt").read_bytes()
    assert (lists / "trainlist02.txt").read_bytes() == (root / "seed6" / "trainlist01.txt").read_bytes()

    result = run("--videos", root / "UCF-101-hdf5", "--out", lists)
    assert result.returncode == 0 and "removed trainlist02.txt, testlist02.txt" in result.stdout
    assert sorted(os.listdir(lists)) == ["classInd.txt", "testlist01.txt", "trainlist01.txt"]


def test_getUCF101_reads_the_lists(root):
    assert run("--videos", root / "UCF-101-hdf5", "--out", root / "ucfTrainTestlist").returncode == 0
    classes, (train_paths, train_labels), (test_paths, test_labels) = getUCF101(str(root), split=1)
    assert list(classes) == ["Cat", "Dog", "Eel", "Solo"]
    assert len(train_paths) + len(test_paths) == sum(len(v) for v in TREE.values())
    for paths, labels in ((train_paths, train_labels), (test_paths, test_labels)):
        for path, label in zip(paths, labels):
            path = Path(path)
            assert path.parent.parent == root / "UCF-101-hdf5" and path.parent.name == classes[label]
            assert path.suffix == ".hdf5"
            assert any(Path(name).stem == path.stem for name, _ in TREE[classes[label]])


PEOPLE = {  # a person's takes must stay together; the names also carry _gNN_, which the pattern overrides
    "Wave": [(f"p{p}_v_Wave_g{t:02d}_c01.mp4", p) for p in range(1, 6) for t in range(1, 4)],
    "Clap": [(f"p{p}_v_Clap_g{t:02d}_c01.mp4", p) for p in range(1, 5) for t in range(1, 3)],
}


@pytest.mark.parametrize("pattern", [r"^p(\d+)_", r"^p\d+"])  # the first group, or the whole match
def test_group_pattern_groups_by_what_it_captures(tmp_path, pattern):
    videos = make_tree(tmp_path / "videos", PEOPLE, [])
    for seed in range(4):
        out = tmp_path / f"lists{seed}"
        result = run("--videos", videos, "--out", out, "--group-pattern", pattern, "--seed", seed)
        assert result.returncode == 0, result.stderr
        assert "9 from --group-pattern" in result.stdout
        _, train, test = read_split(out)
        check_groups_apart(PEOPLE, train, test)


def test_a_name_the_group_pattern_misses_is_an_error(tmp_path):
    videos = make_tree(tmp_path / "videos", PEOPLE, [])
    (videos / "Clap" / "visitor_take1.mp4").touch()
    result = run("--videos", videos, "--out", tmp_path / "lists", "--group-pattern", r"^p(\d+)_")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "'visitor_take1'" in result.stderr
    assert not (tmp_path / "lists").exists()


@pytest.mark.parametrize("setup, extra, message", [
    (None, [], "is not a directory"),
    ({"stray.mp4": None}, [], "has no label folders"),
    ({"Empty/notes.txt": None}, [], "no videos in the label folders"),
    ({"A/a.mp4": None}, ["--test-fraction", "0"], "--test-fraction must be between 0 and 1"),
    ({"A/a.mp4": None}, ["--test-fraction", "1"], "--test-fraction must be between 0 and 1"),
    ({"A/a.mp4": None}, ["--test-fraction", "1.5"], "--test-fraction must be between 0 and 1"),
    ({"A/a.mp4": None}, ["--group-pattern", "(p"], "is not a valid regular expression"),
    ({"A/a.mp4": None}, ["--splits", "0"], "--splits must be in 1..3"),
    ({"A/a.mp4": None}, ["--splits", "4"], "--splits must be in 1..3"),
    ({"A/my video.mp4": None}, [], "contains whitespace"),
    ({"A/a.mp4": None, "A/a.hdf5": None}, [], "have the same stem"),
])
def test_user_errors_are_one_line(tmp_path, setup, extra, message):
    videos = tmp_path / "videos"
    if setup is not None:
        videos.mkdir()
        for name in setup:
            (videos / name).parent.mkdir(parents=True, exist_ok=True)
            (videos / name).touch()
    result = run("--videos", videos, "--out", tmp_path / "lists", *extra)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "lists").exists()


def test_choose_test_groups_never_takes_every_group():
    import random
    for seed in range(20):
        test = make_split_lists.choose_test_groups({"a": 1, "b": 1}, 0.9, random.Random(seed))
        assert len(test) == 1
    assert make_split_lists.choose_test_groups({"a": 5}, 0.5, random.Random(0)) == set()
    # A group alone larger than the target is skipped while a smaller one fits.
    assert make_split_lists.choose_test_groups({"big": 9, "small": 1}, 0.3, random.Random(0)) == {"small"}


def test_the_study_trains_on_regenerated_lists(tmp_path):
    root = tmp_path / "data"
    make_synthetic_ucf101.make_dataset(str(root), classes=4, train_per_class=6, test_per_class=3, frames=12,
                                       size=(32, 40), seed=0)
    shutil.rmtree(root / "ucfTrainTestlist")
    make_split_lists.main(make_split_lists.get_args_parser().parse_args(
        ["--videos", str(root / "UCF-101-hdf5"), "--out", str(root / "ucfTrainTestlist")]))
    classes, (train_paths, _), (test_paths, _) = getUCF101(str(root), split=1)
    assert list(classes) == sorted(os.listdir(root / "UCF-101-hdf5"))
    assert len(train_paths) + len(test_paths) == 4 * 9 and len(test_paths) > 0
    assert all(os.path.isfile(p) for p in list(train_paths) + list(test_paths))

    out = tmp_path / "run"
    train_single_frame.main(train_single_frame.get_args_parser().parse_args(
        ["--data-dir", str(root), "--output-dir", str(out), "--arch", "resnet18", "--pretrained", "none",
         "--image-size", "32", "--workers", "0", "--device", "cpu", "--epochs", "1", "--batch-size", "8"]))
    with open(out / "log.jsonl") as f:
        log = [json.loads(line) for line in f]
    assert [e["epoch"] for e in log] == [1] and log[0]["samples"] == len(train_paths)
    assert 0 <= log[0]["test_acc"] <= 1 and (out / "COMPLETE").exists()
