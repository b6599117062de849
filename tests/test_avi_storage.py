"""The original .avi release as a storage next to HDF5: getUCF101 finds the videos, every loader reads
them frame-accurately (equal to the HDF5 files prepare_ucf101.py makes from the same clips), a truncated
copy drops its sample only, named once, and a training epoch and a test run work on the .avi tree.
Uses the six real UCF-101 clips in ../shared/data (skipped without them), except where noted."""
import json
import logging
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import prepare_ucf101
import test_single_frame
import train_single_frame
from actionrec.data import batching, loader_pool, split_lists, video_chunks, video_files
from actionrec.evaluation import predictions as prediction_files
from helpers import run_group

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "data" / "ucf101-samples"
CLIPS = {"ApplyEyeMakeup": "v_ApplyEyeMakeup_g01_c01", "Archery": "v_Archery_g01_c01",
         "BaseballPitch": "v_BaseballPitch_g01_c01", "Basketball": "v_Basketball_g01_c01",
         "PlayingGuitar": "v_PlayingGuitar_g16_c02", "PushUps": "v_PushUps_g02_c03"}
FRAMES = {"ApplyEyeMakeup": 164, "Archery": 131, "BaseballPitch": 107, "Basketball": 141, "PlayingGuitar": 250,
          "PushUps": 79}
CPU = ["--workers", "0", "--device", "cpu"]

needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"real UCF-101 clips not found at {SAMPLES} "
                                                                  "(no ../shared beside this clone)")


def write_lists(root, train, test):
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    classes = list(CLIPS)
    (lists / "classInd.txt").write_bytes("".join(f"{i + 1} {c}\r\n" for i, c in enumerate(classes)).encode())
    (lists / "trainlist01.txt").write_bytes(
        "".join(f"{c}/{name}.avi {classes.index(c) + 1}\r\n" for c, name in train).encode())
    (lists / "testlist01.txt").write_bytes("".join(f"{c}/{name}.avi\r\n" for c, name in test).encode())


@pytest.fixture(scope="module")
def avi_root(tmp_path_factory):
    """ROOT/UCF-101/<Class>/<video>.avi: the six clips as the test videos, and a renamed copy of each
    (another group) as the training videos, so that train and test never share a group."""
    if not SAMPLES.is_dir():
        pytest.skip(f"real UCF-101 clips not found at {SAMPLES}")
    root = tmp_path_factory.mktemp("avi")
    train, test = [], []
    for cls, name in CLIPS.items():
        (root / "UCF-101" / cls).mkdir(parents=True)
        shutil.copy(SAMPLES / cls / f"{name}.avi", root / "UCF-101" / cls / f"{name}.avi")
        copy = f"v_{cls}_g20_c01"
        shutil.copy(SAMPLES / cls / f"{name}.avi", root / "UCF-101" / cls / f"{copy}.avi")
        test.append((cls, name))
        train.append((cls, copy))
    write_lists(root, train, test)
    return root


@pytest.fixture(scope="module")
def hdf5_root(avi_root, tmp_path_factory):
    """The same videos converted by prepare_ucf101.py (raw storage)."""
    root = tmp_path_factory.mktemp("hdf5")
    shutil.copytree(avi_root / "ucfTrainTestlist", root / "ucfTrainTestlist")
    args = prepare_ucf101.get_args_parser().parse_args(["--videos", str(avi_root / "UCF-101"), "--out",
                                                        str(root / "UCF-101-hdf5"), "--workers", "2"])
    prepare_ucf101.main(args)
    return root


@needs_samples
def test_getUCF101_finds_the_original_videos(avi_root):
    classes, (train_paths, train_labels), (test_paths, test_labels) = split_lists.getUCF101(str(avi_root), 1)
    assert list(classes) == list(CLIPS) and list(test_labels) == list(range(6)) == list(train_labels)
    assert all(p.endswith(".avi") and os.path.isfile(p) for p in list(train_paths) + list(test_paths))
    for path, cls in zip(test_paths, CLIPS):
        assert video_files.video_info(path) == (FRAMES[cls], 240, 320, "video")


@needs_samples
def test_avi_frames_clips_and_segments_equal_the_converted_hdf5(avi_root, hdf5_root):
    _, _, (avi_paths, _) = split_lists.getUCF101(str(avi_root), 1)
    _, _, (h5_paths, _) = split_lists.getUCF101(str(hdf5_root), 1)
    assert all(p.endswith(".hdf5") for p in h5_paths)
    rng = np.random.default_rng(0)
    for avi, h5, cls in zip(avi_paths, h5_paths, CLIPS):
        start = int(rng.integers(FRAMES[cls] - 16))
        indices = np.r_[np.arange(start, start + 16), [FRAMES[cls] - 1, 0, 5]]
        np.testing.assert_array_equal(video_files.read_frames(avi, indices), video_files.read_frames(h5, indices))
        for kind, kwargs in (("clip", {"clip_len": 16}), ("frame", {}), ("segments", {"segments": 3})):
            loader = batching.SAMPLE_LOADERS[kind]
            a = loader(avi, True, np.random.default_rng(7), size=32, **kwargs)
            b = loader(h5, True, np.random.default_rng(7), size=32, **kwargs)
            np.testing.assert_array_equal(a, b)  # same frames, same augmentation draws
        chunks_avi = [
            c for *_, c in video_chunks.VideoChunkLoader([avi], lambda t: video_chunks.video_chunk_plan(t, 50), size=24)
        ]
        chunks_h5 = [
            c for *_, c in video_chunks.VideoChunkLoader([h5], lambda t: video_chunks.video_chunk_plan(t, 50), size=24)
        ]
        np.testing.assert_array_equal(np.concatenate(chunks_avi), np.concatenate(chunks_h5))


@needs_samples
def test_whole_videos_stream_from_the_avi_in_a_pool_as_from_hdf5(avi_root, hdf5_root):
    # Workers keep their reader open between chunks; chunks of one video land on different workers.
    _, _, (avi_paths, _) = split_lists.getUCF101(str(avi_root), 1)
    _, _, (h5_paths, _) = split_lists.getUCF101(str(hdf5_root), 1)
    pool = loader_pool.make_pool(2)
    try:
        def frames_of(paths):
            loader = video_chunks.VideoChunkLoader(
                paths, lambda t: video_chunks.video_chunk_plan(t, 30), pool=pool, size=16, depth=3, max_chunk=30
            )
            out = {}
            for index, _, _, chunk in loader:
                out.setdefault(index, []).append(chunk)
            return {i: np.concatenate(c) for i, c in out.items()}
        a, b = frames_of(list(avi_paths)), frames_of(list(h5_paths))
    finally:
        loader_pool.close_pool(pool)
    assert sorted(a) == sorted(b) == list(range(6))
    for i in a:
        np.testing.assert_array_equal(a[i], b[i])


def truncated_copy(source, target, fraction=0.15):
    data = source.read_bytes()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data[:int(len(data) * fraction)])
    return target


@needs_samples
def test_a_truncated_avi_drops_its_sample_only_and_is_named_once(avi_root, tmp_path, caplog):
    root = tmp_path / "data"
    shutil.copytree(avi_root, root)
    broken = truncated_copy(SAMPLES / "Archery" / "v_Archery_g01_c01.avi",
                            root / "UCF-101" / "Archery" / "v_Archery_g20_c01.avi")
    with pytest.raises(video_files.VideoReadError, match="131"):
        video_files.video_info(broken)
    _, (paths, labels), _ = split_lists.getUCF101(str(root), 1)
    loader = batching.BatchLoader(paths, labels, 3, "clip", augment=True, shuffle=True, size=16, clip_len=8)
    with caplog.at_level(logging.WARNING, logger="ucf101"):
        for epoch in range(2):
            loader.set_epoch(epoch)
            batches = list(loader)
            assert sum(len(b.labels) for b in batches) == 5  # the other five every epoch
    assert list(loader.failed) == [str(broken)] and "truncated" in loader.failed[str(broken)]
    assert len([r for r in caplog.records if str(broken) in r.getMessage()]) == 1  # once, not once per epoch


@needs_samples
def test_training_and_testing_on_the_avi_tree(avi_root, tmp_path):
    out = tmp_path / "run"
    train_single_frame.main(train_single_frame.get_args_parser().parse_args(
        ["--data-dir", str(avi_root), "--output-dir", str(out), "--arch", "resnet18", "--pretrained", "none",
         "--image-size", "32", "--batch-size", "3", "--epochs", "1", "--workers", "2", "--device", "cpu",
         "--no-tensorboard"]))
    log = json.loads((out / "log.jsonl").read_text())
    assert log["samples"] == 6 and log["failed_samples"] == 0
    results = test_single_frame.main(test_single_frame.get_args_parser().parse_args(
        ["--checkpoint", str(out / "checkpoint.pth"), "--predictions-dir", str(tmp_path / "p"),
         "--output-dir", str(tmp_path / "o"), "--workers", "2", "--device", "cpu", "--chunk-frames", "64"]))
    assert results["videos"] == 6 and results["failed"] == 0
    _, _, (paths, _) = split_lists.getUCF101(str(avi_root), 1)
    for path, cls in zip(paths, CLIPS):
        assert prediction_files.read_predictions(prediction_files.prediction_path(tmp_path / "p", path)).shape == (
            FRAMES[cls],
            6,
        )


def test_the_lists_alone_are_enough_to_combine_prediction_folders(tmp_path):
    # A laptop with the split lists and the prediction folders copied from the cluster: no videos.
    classes = list(CLIPS)
    write_lists(tmp_path, [(c, n.replace("_g", "_g2")) for c, n in CLIPS.items()], [(c, n) for c, n in CLIPS.items()])
    _, _, (paths, labels) = split_lists.getUCF101(str(tmp_path), 1)
    rng = np.random.default_rng(0)
    for model in ("single_frame", "3d"):
        for path, label in zip(paths, labels):
            logits = rng.normal(size=(5, len(classes))).astype(np.float32)
            logits[:, label] += 3
            prediction_files.write_predictions(prediction_files.prediction_path(tmp_path / model, path), logits)
    result = run_group([sys.executable, "combine_results.py", "--data-dir", str(tmp_path), "--single-frame",
                             str(tmp_path / "single_frame"), "--3d", str(tmp_path / "3d"), "--output-dir",
                             str(tmp_path / "report")], cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "report" / "report.pdf").is_file()
    assert json.loads((tmp_path / "report" / "results.json").read_text())["videos"] == 6
