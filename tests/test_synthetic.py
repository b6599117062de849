"""make_synthetic_ucf101.py: UCF-101 layout, determinism, and motion classes no single frame can tell apart."""
import hashlib
import itertools
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import make_synthetic_ucf101 as syn
from actionrec.data import split_lists, video_files
from helpers import run_group

SCRIPT = Path(__file__).resolve().parents[1] / "make_synthetic_ucf101.py"
TINY = dict(classes=4, train_per_class=5, test_per_class=3, frames=20, size=(32, 40), seed=3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    syn.make_dataset(out, **TINY)
    return out


def digest(folder):
    """sha256 over every file's relative path and bytes."""
    h = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def run(*args):
    return run_group([sys.executable, str(SCRIPT), *map(str, args)],
                          timeout=120)


# ----------------------------------------------------------------------------------------------
# Layout

def test_layout_is_what_getUCF101_reads(tiny):
    classes, (train_paths, train_labels), (test_paths, test_labels) = split_lists.getUCF101(str(tiny))
    names = [spec["name"] for spec in syn.class_specs(4)]
    assert list(classes) == names == ["AppearanceRed", "AppearanceBlue", "MotionUp", "MotionDown"]
    assert len(train_paths) == 4 * 5 and len(test_paths) == 4 * 3
    assert np.bincount(train_labels).tolist() == [5] * 4 and np.bincount(test_labels).tolist() == [3] * 4
    groups = {"train": {}, "test": {}}
    for split, paths, labels in (("train", train_paths, train_labels), ("test", test_paths, test_labels)):
        for path, label in zip(paths, labels):
            path = Path(path)
            assert path.is_file()
            folder = path.parent.name
            assert folder == classes[label]
            match = re.fullmatch(r"v_([A-Za-z]+)_g(\d\d)_c(\d\d)\.hdf5", path.name)
            assert match and match.group(1) == folder, path.name
            groups[split].setdefault(folder, set()).add(int(match.group(2)))
    for name in names:
        assert not groups["train"][name] & groups["test"][name]         # never share a group
        assert max(groups["test"][name]) < min(groups["train"][name])  # test = the lowest groups
    assert len(list((tiny / "UCF-101-hdf5").rglob("*.hdf5"))) == 4 * 8


def test_lists_are_the_official_format_with_crlf(tiny):
    lists = tiny / "ucfTrainTestlist"
    for name in ("classInd.txt", "trainlist01.txt", "testlist01.txt"):
        data = (lists / name).read_bytes()
        assert data.endswith(b"\r\n") and data.count(b"\n") == data.count(b"\r\n"), name
    class_lines = (lists / "classInd.txt").read_bytes().decode().splitlines()
    assert class_lines[0] == "1 AppearanceRed" and class_lines[3] == "4 MotionDown"
    train_first = (lists / "trainlist01.txt").read_bytes().decode().splitlines()[0]
    assert train_first == "AppearanceRed/v_AppearanceRed_g02_c01.avi 1"
    test_first = (lists / "testlist01.txt").read_bytes().decode().splitlines()[0]
    assert test_first == "AppearanceRed/v_AppearanceRed_g01_c01.avi"


def test_class_groups_are_recorded(tiny):
    info = json.loads((tiny / "synthetic_classes.json").read_text())
    assert info["appearance"] == ["AppearanceRed", "AppearanceBlue"]
    assert info["motion"] == ["MotionUp", "MotionDown"]
    assert set(info["description"]) == set(info["appearance"] + info["motion"])


@pytest.mark.parametrize("classes", range(2, syn.MAX_CLASSES + 1))
def test_half_of_the_classes_rounded_up_are_appearance(classes):
    specs = syn.class_specs(classes)
    names = [s["name"] for s in specs]
    assert len(set(names)) == classes and all(re.fullmatch(r"(?:[A-Z][a-z]+)+", n) for n in names)
    appearance = [s for s in specs if s["category"] == "appearance"]
    assert len(appearance) == (classes + 1) // 2 and specs[:len(appearance)] == appearance
    looks = {(s["shape"], s["object_rgb"], s["background_rgb"]) for s in specs if s["category"] == "motion"}
    assert len(looks) <= 1  # motion classes share one appearance
    assert len({(s["shape"], s["object_rgb"], s["background_rgb"]) for s in appearance}) == len(appearance)


def test_videos_shape_and_dtype(tiny):
    _, (train_paths, _), (test_paths, _) = split_lists.getUCF101(str(tiny))
    for path in list(train_paths) + list(test_paths):
        assert video_files.video_info(path) == (20, 32, 40, "raw")
    frames = video_files.read_frames(train_paths[0], np.arange(20))
    assert frames.dtype == np.uint8 and frames.shape == (20, 32, 40, 3)
    assert frames.std() > 5  # not blank


def test_tiny_set_is_quick(tmp_path):
    start = time.perf_counter()
    syn.make_dataset(tmp_path, classes=4, train_per_class=2, test_per_class=1, frames=20, size=(32, 40))
    assert time.perf_counter() - start < 2.0


def test_same_arguments_same_bytes(tiny, tmp_path):
    syn.make_dataset(tmp_path / "again", **TINY)
    assert digest(tmp_path / "again") == digest(tiny)
    syn.make_dataset(tmp_path / "other", **dict(TINY, seed=4))
    video = "UCF-101-hdf5/MotionUp/v_MotionUp_g01_c01.hdf5"
    assert not np.array_equal(video_files.read_frames(tmp_path / "other" / video, np.arange(20)),
                              video_files.read_frames(tiny / video, np.arange(20)))


def test_jpeg_storage(tiny, tmp_path):
    syn.make_dataset(tmp_path, **dict(TINY, storage="jpeg"))
    video = "UCF-101-hdf5/MotionDown/v_MotionDown_g02_c01.hdf5"
    assert video_files.video_info(tmp_path / video) == (20, 32, 40, "jpeg")
    jpeg = video_files.read_frames(tmp_path / video, np.arange(20)).astype(np.int16)
    assert np.abs(jpeg - video_files.read_frames(tiny / video, np.arange(20))).mean() < 4


@pytest.mark.parametrize("kwargs, message", [
    (dict(classes=1), "classes must be in 2..16"),
    (dict(classes=17), "classes must be in 2..16"),
    (dict(frames=1), "frames must be >= 2"),
    (dict(size=(8, 40)), "size must be at least"),
    (dict(train_per_class=0), "must be >= 1"),
    (dict(train_per_class=400), "at most"),
])
def test_impossible_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        syn.make_dataset(tmp_path, **dict(TINY, **kwargs))


# ----------------------------------------------------------------------------------------------
# Content: a single frame says nothing about a motion class; two consecutive frames say everything

H, W, VIDEOS = 32, 40, 400
OBJECT_THRESHOLD = 180  # grey level between the motion look's background (<= ~172) and object (>= ~188)


def ks_statistic(a, b):
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    return np.abs(np.searchsorted(a, grid, "right") / len(a) - np.searchsorted(b, grid, "right") / len(b)).max()


def frame_features(frame):
    """Mean grey level, object area, object column and row (circular: the object wraps vertically)."""
    gray = frame.astype(np.float32).mean(axis=2)
    mask = gray > OBJECT_THRESHOLD
    area = mask.sum()
    cx = (mask.sum(axis=0) * (np.arange(W) + 0.5)).sum() / max(area, 1)
    phase = (mask.sum(axis=1) * np.exp(2j * np.pi * (np.arange(H) + 0.5) / H)).sum()
    cy = (np.angle(phase) / (2 * np.pi) * H) % H
    return np.array([gray.mean(), area, cx, cy])


@pytest.fixture(scope="module")
def features():
    """Per class, VIDEOS independent videos: single-frame features of frame 0, its mean RGB, and the
    vertical shift and area change from frame 0 to 1 (the phase is uniform: frame 0 is any frame)."""
    result = {}
    for index, spec in enumerate(syn.class_specs(syn.MAX_CLASSES)):
        single, colour, motion = [], [], []
        for i in range(VIDEOS):
            rng = np.random.default_rng([11, index, i])
            video = syn.render_video(spec, syn.make_background(spec, H, W, rng), 2, rng)
            first, second = frame_features(video[0]), frame_features(video[1])
            single.append(first)
            colour.append(video[0].reshape(-1, 3).mean(axis=0))
            dy = (second[3] - first[3] + H / 2) % H - H / 2
            motion.append([dy, second[1] - first[1]])
        result[spec["name"]] = dict(single=np.array(single), colour=np.array(colour), motion=np.array(motion))
    return result


MOTION_CLASSES = list(syn.MOTIONS)
# alpha = 1e-4 per comparison (112 of them): c(alpha) = sqrt(-ln(alpha / 2) / 2) = 2.23
KS_CRITICAL = 2.23 * np.sqrt(2 / VIDEOS)


@pytest.mark.parametrize("a, b", list(itertools.combinations(MOTION_CLASSES, 2)))
def test_single_frames_of_motion_classes_are_indistinguishable(features, a, b):
    for j, what in enumerate(["mean intensity", "object area", "object column", "object row"]):
        statistic = ks_statistic(features[a]["single"][:, j], features[b]["single"][:, j])
        assert statistic < KS_CRITICAL, f"{what}: KS {statistic:.3f} >= {KS_CRITICAL:.3f}"
    for channel in range(3):
        assert ks_statistic(features[a]["colour"][:, channel], features[b]["colour"][:, channel]) < KS_CRITICAL
    # while two consecutive frames tell them apart (vertical shift or area change)
    separation = max(ks_statistic(features[a]["motion"][:, j], features[b]["motion"][:, j]) for j in range(2))
    assert separation > 0.5


def test_motion_is_what_the_names_say(features):
    slow_speed = H / syn.PERIOD  # pixels per frame at speed 1
    for name, (kind, direction, speed) in syn.MOTIONS.items():
        dy, darea = np.median(features[name]["motion"], axis=0)
        if kind == "move":
            assert np.sign(dy) == direction and abs(dy) == pytest.approx(speed * slow_speed, rel=0.25), name
            assert abs(darea) <= 1, name
        else:
            assert np.sign(darea) == direction and abs(dy) < 0.2, name


def test_speed_survives_the_crop_augmentation(features):
    """A 70% crop makes slow motion look at most 1/0.7 faster: still slower than any fast video."""
    slow = np.abs(np.concatenate([features[n]["motion"][:, 0] for n in ("MotionUp", "MotionDown")]))
    fast = np.abs(np.concatenate([features[n]["motion"][:, 0] for n in ("MotionUpFast", "MotionDownFast")]))
    assert np.percentile(slow, 95) / 0.7 < np.percentile(fast, 5)


def test_single_frames_tell_appearance_classes_apart(features):
    """The same statistics have the power to see a difference where there is one."""
    appearance = [name for name, *_ in syn.APPEARANCES]
    for a, b in itertools.combinations(appearance + ["MotionUp"], 2):
        statistic = max(ks_statistic(features[a]["colour"][:, c], features[b]["colour"][:, c]) for c in range(3))
        assert statistic > 0.5, (a, b)


# ----------------------------------------------------------------------------------------------
# Command line

def test_help():
    result = run("--help")
    assert result.returncode == 0
    for flag in ("--out", "--classes", "--train-per-class", "--test-per-class", "--frames", "--size",
                 "--seed", "--storage"):
        assert flag in result.stdout
    assert "default: 64x80" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--size", "10"], "--size: expected HEIGHTxWIDTH"),
    (["--size", "8x8"], "at least 16x16"),
    (["--classes", "1"], "classes must be in 2..16"),
])
def test_bad_argument_is_one_error_line(tmp_path, args, message):
    result = run("--out", tmp_path / "out", *args)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], result.stderr


def test_cli_writes_and_reports(tmp_path):
    out = tmp_path / "synthetic"
    result = run("--out", out, "--classes", 3, "--train-per-class", 2, "--test-per-class", 1,
                 "--frames", 8, "--size", "24x32")
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout and "3 classes (2 appearance, 1 motion), 6 train + 3 test" in result.stdout
    classes, (train_paths, _), (test_paths, _) = split_lists.getUCF101(str(out))
    assert list(classes) == ["AppearanceRed", "AppearanceBlue", "MotionUp"]
    assert video_files.video_info(train_paths[0]) == (8, 24, 32, "raw")
