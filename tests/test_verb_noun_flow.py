"""Issue 26's flow stream: extract_flow.py --annotations writes one flow file per uid of the CSV, a two-head
TSN flow model trains and tests on them with no flow flag, each uid's own flow file is read, and a missing
one is one line naming the extraction command. CPU, tiny (12 segments of 10 frames, 24x32)."""
import csv
import json
import shutil
import sys

import h5py
import numpy as np
import pytest
import torch

import extract_flow
import make_synthetic_ucf101
import test_single_frame
import train_single_frame
from actionrec.engine import runner
from actionrec.evaluation import head_scores
from actionrec.evaluation import predictions as prediction_files
from actionrec.evaluation import scores as video_scores
from actionrec.flow import extract

FRAMES, HEIGHT, WIDTH = 10, 24, 32
EXTRACT = ["--method", "dis-ultrafast", "--size", "native", "--workers", "0"]
TRAIN = ["--modality", "flow", "--new-length", "2", "--segments", "2", "--arch", "resnet18", "--pretrained", "none",
         "--image-size", "32", "--batch-size", "4", "--epochs", "1", "--max-steps", "1", "--workers", "0",
         "--device", "cpu", "--seed", "1", "--no-tensorboard"]
TEST = ["--frames", "2", "--workers", "0", "--device", "cpu"]
MOVED = "rec01_seg02"  # a test segment whose video lies in a sub-folder of the videos folder


def run(script, argv, monkeypatch, capsys):
    """(exit status, stdout, stderr) of `python SCRIPT.py ARGV` under runner.run_main, in this process."""
    monkeypatch.setattr(sys, "argv", [f"{script.__name__}.py"])  # the error line's program name
    capsys.readouterr()
    try:
        runner.run_main(script.main, script.get_args_parser(), argv)
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """(root, rows of the CSV, {uid: video path}); the flow extracted to the default <videos>-flow."""
    root = tmp_path_factory.mktemp("verbnoun_flow")
    make_synthetic_ucf101.make_verb_noun_dataset(root, recordings=4, segments=3, val_recordings=1, test_recordings=1,
                                                 frames=FRAMES, size=(HEIGHT, WIDTH), seed=0)
    (root / "videos" / "sub").mkdir()
    shutil.move(root / "videos" / f"{MOVED}.hdf5", root / "videos" / "sub" / f"{MOVED}.hdf5")
    rows = read_csv(root / "annotations.csv")
    videos = {r["uid"]: root / "videos" / ("sub" if r["uid"] == MOVED else "") / f"{r['uid']}.hdf5" for r in rows}
    args = extract_flow.get_args_parser().parse_args(
        ["--annotations", str(root / "annotations.csv"), "--videos", str(root / "videos"), *EXTRACT])
    extract_flow.main(args)
    return root, rows, videos


def flow_files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_extract_flow_writes_one_flow_file_per_uid(data, tmp_path, monkeypatch, capsys):
    root, rows, videos = data
    uids = [r["uid"] for r in rows]
    assert len(uids) == 12 and {r["split"] for r in rows} == {"train", "val", "test"}
    assert flow_files(root / "videos-flow") == sorted(f"{uid}.hdf5" for uid in uids)
    for uid in uids:
        with h5py.File(root / "videos-flow" / f"{uid}.hdf5", "r") as f:
            assert f["flow"].shape == (FRAMES - 1, HEIGHT, WIDTH, 2) and f["flow"].dtype == np.uint8
            assert f.attrs["source"] == str(videos[uid]) and f.attrs["method"] == "dis-ultrafast"
    # the same bytes as the split lists' extraction of that video
    settings = extract.FlowSettings(method="dis-ultrafast", size=None)
    extract.write_flow(tmp_path / "direct.hdf5", videos[MOVED], settings)
    with h5py.File(tmp_path / "direct.hdf5", "r") as direct, h5py.File(root / "videos-flow" / f"{MOVED}.hdf5") as f:
        assert np.array_equal(direct["flow"][:], f["flow"][:]) and np.ptp(f["flow"][:]) > 0
    # two shards cover every uid once; a rerun skips what is done
    argv = ["--annotations", str(root / "annotations.csv"), "--videos", str(root / "videos"),
            "--flow-dir", str(tmp_path / "sharded"), *EXTRACT]
    shards = []
    for shard in ("0/2", "1/2"):
        code, out, err = run(extract_flow, [*argv, "--shard", shard], monkeypatch, capsys)
        assert code == 0 and "extracted 6, skipped 0" in out, err
        shards.append(set(flow_files(tmp_path / "sharded")) - set().union(*shards))
    assert not shards[0] & shards[1] and shards[0] | shards[1] == {f"{uid}.hdf5" for uid in uids}
    code, out, _ = run(extract_flow, argv, monkeypatch, capsys)
    assert code == 0 and "extracted 0, skipped 12" in out
    code, _, err = run(extract_flow, ["--annotations", str(root / "annotations.csv"), *EXTRACT], monkeypatch, capsys)
    assert code == 2 and err.strip() == ("extract_flow.py: error: --annotations needs --videos DIR: the folder of "
                                         "the segments' video files")


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    root, _, _ = data
    out = tmp_path_factory.mktemp("flow_run")
    args = train_single_frame.get_args_parser().parse_args(
        ["--annotations", str(root / "annotations.csv"), "--videos", str(root / "videos"), "--output-dir", str(out),
         *TRAIN])
    train_single_frame.main(args)
    return out / "checkpoint.pth"


def hand_results(pred_dir, rows, videos):
    """(verb, noun, action) top-1 of the test segments, from the prediction files alone."""
    hits = []
    for row in rows:
        logits = prediction_files.read_predictions(prediction_files.prediction_path(pred_dir, videos[row["uid"]]))
        verb = video_scores.video_score(logits[:, :3]).argmax() == int(row["verb_class"])
        noun = video_scores.video_score(logits[:, 3:]).argmax() == int(row["noun_class"])
        hits.append((verb, noun, verb and noun))
    return np.array(hits, dtype=float).mean(0)


def test_a_two_head_flow_model_trains_and_tests_on_each_uids_flow(data, trained, tmp_path):
    root, rows, videos = data
    checkpoint = torch.load(trained, map_location="cpu", weights_only=True)
    assert checkpoint["args"]["flow_dir"] == str(root / "videos-flow")
    assert (checkpoint["args"]["flow_method"], checkpoint["args"]["flow_size"]) == ("dis-ultrafast", "native")
    assert checkpoint["model"]["conv1.weight"].shape[1] == 4 and checkpoint["model"]["fc.weight"].shape[0] == 6
    assert checkpoint["heads"]["names"] == ["verb", "noun"]
    pred = tmp_path / "pred"
    test_single_frame.main(test_single_frame.get_args_parser().parse_args(
        ["--checkpoint", str(trained), "--predictions-dir", str(pred), "--output-dir", str(tmp_path / "test"), *TEST]))
    test_rows = [r for r in rows if r["split"] == "test"]
    assert MOVED in {r["uid"] for r in test_rows}
    for row in test_rows:  # named after the video (sub/ too), both heads' logits side by side
        path = prediction_files.prediction_path(pred, videos[row["uid"]])
        heads = head_scores.read_head_predictions(path)
        assert [heads[h].shape for h in ("verb", "noun")] == [(2, 3), (2, 3)]
        logits = prediction_files.read_predictions(path)
        assert np.array_equal(np.concatenate([heads["verb"], heads["noun"]], 1), logits)
    results = json.loads((tmp_path / "test" / "results.json").read_text())
    verb, noun, action = hand_results(pred, test_rows, videos)
    assert results["videos"] == len(test_rows) == 3
    assert (results["heads"]["verb"]["top1"], results["heads"]["noun"]["top1"], results["action"]["top1"]) == \
        pytest.approx((verb, noun, action))
    model = json.loads((pred / "model.json").read_text())
    assert model["flow_extraction"]["method"] == "dis-ultrafast" and model["test"]["modality"] == "flow"
    # each uid reads its own flow file: swap two test segments' files and their logits swap
    first, second = (r["uid"] for r in test_rows[:2])
    swapped = tmp_path / "swapped"
    shutil.copytree(root / "videos-flow", swapped)
    (swapped / f"{first}.hdf5").replace(tmp_path / "first.hdf5")
    (swapped / f"{second}.hdf5").replace(swapped / f"{first}.hdf5")
    (tmp_path / "first.hdf5").replace(swapped / f"{second}.hdf5")
    test_single_frame.main(test_single_frame.get_args_parser().parse_args(
        ["--checkpoint", str(trained), "--flow-dir", str(swapped), "--predictions-dir", str(tmp_path / "pred2"),
         "--output-dir", str(tmp_path / "test2"), *TEST]))
    before = {uid: prediction_files.read_predictions(prediction_files.prediction_path(pred, videos[uid]))
              for uid in (first, second)}
    after = {uid: prediction_files.read_predictions(prediction_files.prediction_path(tmp_path / "pred2", videos[uid]))
             for uid in (first, second)}
    assert not np.allclose(before[first], before[second], atol=1e-4)
    assert np.allclose(after[first], before[second], atol=1e-5) and np.allclose(after[second], before[first], atol=1e-5)


def test_a_missing_flow_file_is_one_line_naming_the_extraction(data, trained, tmp_path, monkeypatch, capsys):
    root, rows, _ = data
    csv_path, videos_dir = root / "annotations.csv", root / "videos"
    train_uid = next(r["uid"] for r in rows if r["split"] == "train")
    partial = tmp_path / "partial"
    shutil.copytree(root / "videos-flow", partial)
    (partial / f"{train_uid}.hdf5").unlink()
    argv = ["--annotations", str(csv_path), "--videos", str(videos_dir), "--flow-dir", str(partial),
            "--output-dir", str(tmp_path / "run"), *TRAIN]
    code, _, err = run(train_single_frame, argv, monkeypatch, capsys)
    assert code == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if "error" in line]
    assert lines == [f"train_single_frame.py: error: --flow-dir {partial}: 1 of 6 videos have no flow file (e.g. "
                     f"{partial / train_uid}.hdf5): run extract_flow.py --annotations {csv_path} --videos {videos_dir} "
                     f"--out {partial} first"]
    assert not (tmp_path / "run" / "checkpoint.pth").exists()
    # at test, a missing test segment's flow: the same line from test_single_frame.py
    test_uid = next(r["uid"] for r in rows if r["split"] == "test")
    shutil.copy(root / "videos-flow" / f"{train_uid}.hdf5", partial)
    (partial / f"{test_uid}.hdf5").unlink()
    code, _, err = run(test_single_frame, ["--checkpoint", str(trained), "--flow-dir", str(partial),
                                           "--predictions-dir", str(tmp_path / "pred"), "--output-dir",
                                           str(tmp_path / "test"), *TEST], monkeypatch, capsys)
    assert code == 2 and "Traceback" not in err
    assert [line for line in err.splitlines() if "error" in line] == [
        f"test_single_frame.py: error: --flow-dir {partial}: 1 of 3 videos have no flow file (e.g. "
        f"{partial / test_uid}.hdf5): run extract_flow.py --annotations {csv_path} --videos {videos_dir} "
        f"--out {partial} first"]


def test_the_test_reads_the_flow_folder_training_was_given(data, tmp_path, monkeypatch, capsys):
    root, rows, _ = data
    own = tmp_path / "own-flow"
    shutil.copytree(root / "videos-flow", own)
    argv = ["--annotations", str(root / "annotations.csv"), "--videos", str(root / "videos"), "--flow-dir", str(own),
            "--output-dir", str(tmp_path / "run"), *TRAIN]
    code, _, err = run(train_single_frame, argv, monkeypatch, capsys)
    assert code == 0, err
    test_uid = next(r["uid"] for r in rows if r["split"] == "test")
    (own / f"{test_uid}.hdf5").unlink()  # only the training's folder lacks it: an error names that folder
    code, _, err = run(test_single_frame, ["--checkpoint", str(tmp_path / "run" / "checkpoint.pth"),
                                           "--predictions-dir", str(tmp_path / "pred"), "--output-dir",
                                           str(tmp_path / "test"), *TEST], monkeypatch, capsys)
    assert code == 2 and f"error: --flow-dir {own}: 1 of 3 videos have no flow file" in err
