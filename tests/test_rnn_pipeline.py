"""Per-frame features (extract_features.py) and the recurrent model over them (train_rnn.py, test_rnn.py).
CPU, a tiny synthetic set and a tiny ResNet-18 trained in a fixture."""
import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch

import extract_features
import make_synthetic_ucf101
import test_rnn
import train_rnn
import train_single_frame
from actionrec import guards
from actionrec.data import feature_files, normalization, split_lists, video_chunks
from actionrec.engine import checkpoints, devices, loop, model_io
from actionrec.evaluation import predictions as prediction_files
from actionrec.inference import feature_extraction
from actionrec.zoo import frame_nets, rnn_nets
from helpers import read_log, start_group

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPU = ["--workers", "0", "--device", "cpu"]
RNN = CPU + ["--seed", "3", "--batch-size", "5", "--hidden", "16", "--no-tensorboard"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    make_synthetic_ucf101.make_dataset(str(out), classes=3, train_per_class=6, test_per_class=2, frames=14,
                                       size=(32, 40), seed=0)
    return str(out)


@pytest.fixture(scope="module")
def cnn(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cnn")
    train_single_frame.main(train_single_frame.get_args_parser().parse_args(
        ["--data-dir", data_dir, "--output-dir", str(out), "--arch", "resnet18", "--pretrained", "none",
         "--image-size", "32", "--batch-size", "8", "--epochs", "1", "--no-tensorboard", *CPU]))
    return str(out / "checkpoint.pth")


def extract(data_dir, cnn, out, *extra):
    return extract_features.main(extract_features.get_args_parser().parse_args(
        ["--data-dir", data_dir, "--checkpoint", cnn, "--output-dir", str(out), "--chunk-frames", "5", *CPU, *extra]))


@pytest.fixture(scope="module")
def features(data_dir, cnn, tmp_path_factory):
    out = tmp_path_factory.mktemp("features")
    extract(data_dir, cnn, out)
    return out


def all_videos(data_dir):
    _, (train, _), (test, _) = split_lists.getUCF101(data_dir, 1)
    return list(train) + list(test)


# ----------------------------------------------------------------------------------------------
# Extraction

def test_feature_files_hold_every_frame_as_float16(data_dir, features):
    for path in all_videos(data_dir):
        with h5py.File(prediction_files.prediction_path(features, path)) as f:
            ds = f["features"]
            assert ds.dtype == np.float16 and ds.shape == (14, 512)  # resnet18: 512 features per frame
            assert ds.attrs["arch"] == "resnet18" and ds.attrs["image_size"] == 32 and ds.attrs["frames"] == 14
            assert ds.attrs["frame_stride"] == 1 and str(ds.attrs["weights"]).endswith("checkpoint.pth")
    info = json.loads((features / "features.json").read_text())
    assert info["dims"] == 512 and info["subsets"] == ["train", "test"]


def test_features_equal_the_backbones_pooled_output(data_dir, cnn, features):
    ckpt = torch.load(cnn, weights_only=True)
    model = frame_nets.build_model(train_single_frame.get_args_parser().parse_args(
        ["--arch", "resnet18", "--pretrained", "none"]), 3, devices.Dist(), pretrained=False)
    model.load_state_dict(ckpt["model"])
    model.fc = torch.nn.Identity()
    model.eval()
    path = all_videos(data_dir)[4]
    frames = torch.from_numpy(video_chunks.load_chunk(path, 0, 14, 32))
    with torch.no_grad():
        direct = model(model_io.Normalize(normalization.FRAME_MEAN, normalization.FRAME_STD)(frames)).numpy()
    with h5py.File(prediction_files.prediction_path(features, path)) as f:
        stored = f["features"][()].astype(np.float32)
    np.testing.assert_allclose(stored, direct, rtol=2e-3, atol=2e-3)  # float16 storage


def test_frame_stride_keeps_every_nth_frame(data_dir, cnn, features, tmp_path):
    extract(data_dir, cnn, tmp_path / "strided", "--frame-stride", "3", "--subsets", "test", "--limit", "2")
    _, _, (test, _) = split_lists.getUCF101(data_dir, 1)
    for path in test[:2]:
        with h5py.File(prediction_files.prediction_path(tmp_path / "strided", path)) as f:
            strided = f["features"][()]
        with h5py.File(prediction_files.prediction_path(features, path)) as f:
            every = f["features"][()]
        np.testing.assert_array_equal(strided, every[::3])


def test_a_rerun_skips_finished_files_and_redoes_a_broken_one(data_dir, cnn, tmp_path, monkeypatch):
    out = tmp_path / "features"
    extract(data_dir, cnn, out, "--subsets", "test")
    _, _, (test, _) = split_lists.getUCF101(data_dir, 1)
    broken = prediction_files.prediction_path(out, test[1])
    with open(broken, "wb") as f:
        f.write(b"half a file")
    written, original = [], feature_extraction.write_features
    monkeypatch.setattr(feature_extraction, "write_features",
                        lambda path, *a: (written.append(path), original(path, *a)))
    extract(data_dir, cnn, out, "--subsets", "test")
    assert written == [broken] and feature_files.feature_info(broken) == (14, 512)


def test_a_killed_extraction_leaves_only_whole_files(data_dir, cnn, tmp_path):
    out = tmp_path / "features"
    cmd = [sys.executable, "extract_features.py", "--data-dir", data_dir, "--checkpoint", cnn, "--output-dir", str(out),
           "--chunk-frames", "2", "--batch-size", "2", "--image-size", "128", *CPU]  # slow enough to be caught
    with start_group(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as proc:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(out.rglob("*.hdf5"))) < 3:
            time.sleep(0.05)
        proc.kill()
        proc.wait(timeout=60)
    finished = [p for p in out.rglob("*.hdf5") if ".tmp-" not in p.name]
    assert 3 <= len(finished) < len(all_videos(data_dir))
    for path in finished:  # every file under its final name is complete
        assert feature_files.feature_info(path) == (14, 512)
    extract(data_dir, cnn, out, "--image-size", "128")  # and a rerun finishes the job
    assert len([p for p in out.rglob("*.hdf5") if ".tmp-" not in p.name]) == len(all_videos(data_dir))


def test_sigterm_stops_extraction_after_the_video_in_progress(data_dir, cnn, tmp_path, monkeypatch):
    out = tmp_path / "features"
    calls, original = [], feature_extraction.write_features

    def write_then_signal(path, *args):
        original(path, *args)
        calls.append(path)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
    monkeypatch.setattr(feature_extraction, "write_features", write_then_signal)
    with pytest.raises(SystemExit) as exit_info:
        extract(data_dir, cnn, out)
    assert exit_info.value.code == checkpoints.EXIT_PREEMPTED and len(calls) == 2
    assert len(list(out.rglob("*.hdf5"))) == 2


# ----------------------------------------------------------------------------------------------
# The recurrent model

def train(data_dir, features, out, *extra):
    return train_rnn.main(train_rnn.get_args_parser().parse_args(
        ["--data-dir", data_dir, "--features", str(features), "--output-dir", str(out), *RNN, *extra]))


@pytest.fixture(scope="module")
def rnn_run(data_dir, features, tmp_path_factory):
    out = tmp_path_factory.mktemp("rnn")
    train(data_dir, features, out, "--epochs", "2", "--max-frames", "6", "--frame-loss")
    return out


def test_rnn_trains_with_the_notebooks_defaults(rnn_run):
    parser = train_rnn.get_args_parser()
    defaults = parser.parse_args(["--features", "x"])
    assert (
        defaults.cell,
        defaults.layers,
        defaults.hidden,
        defaults.optimizer,
        defaults.lr,
        defaults.clip_grad_norm,
        defaults.batch_size,
        defaults.head,
    ) == ("gru", 2, 256, "adam", 1e-3, 1.0, 256, "last")
    log = read_log(rnn_run)
    assert [e["epoch"] for e in log] == [1, 2] and all(e["samples"] == 18 for e in log)
    ckpt = torch.load(rnn_run / "checkpoint.pth", weights_only=True)
    assert ckpt["kind"] == "features" and ckpt["args"]["input_size"] == 512


def test_rnn_resumes_mid_epoch_after_sigterm(data_dir, features, rnn_run, tmp_path, monkeypatch):
    out = tmp_path / "stopped"
    original = loop.train_one_epoch

    def stop(*args, **kwargs):
        def on_step(step):
            if step == 2:
                os.kill(os.getpid(), signal.SIGTERM)
        return original(*args, on_step=on_step, **kwargs)
    monkeypatch.setattr(loop, "train_one_epoch", stop)
    with pytest.raises(SystemExit) as exit_info:
        train(data_dir, features, out, "--epochs", "2", "--max-frames", "6", "--frame-loss")
    assert exit_info.value.code == checkpoints.EXIT_PREEMPTED
    monkeypatch.undo()
    train(data_dir, features, out, "--epochs", "2", "--max-frames", "6", "--frame-loss")
    for x, y in zip(read_log(rnn_run), read_log(out)):
        for key in ("train_loss", "train_acc", "test_acc"):
            assert x[key] == pytest.approx(y[key], rel=1e-4, abs=1e-6), key
    a = torch.load(rnn_run / "checkpoint.pth", weights_only=True)["model"]
    b = torch.load(out / "checkpoint.pth", weights_only=True)["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def run_test(rnn_run, out, *extra):
    return test_rnn.main(test_rnn.get_args_parser().parse_args(
        ["--checkpoint", str(rnn_run / "checkpoint.pth"), "--predictions-dir", str(out / "p"),
         "--output-dir", str(out / "o"), *CPU, *extra]))


def test_test_rnn_predictions_do_not_depend_on_the_batch_size(data_dir, rnn_run, tmp_path):
    one = run_test(rnn_run, tmp_path / "one", "--batch-size", "1", "--workers", "2")
    many = run_test(rnn_run, tmp_path / "many", "--batch-size", "64")
    _, _, (test, _) = split_lists.getUCF101(data_dir, 1)
    for path in test:
        a = prediction_files.read_predictions(prediction_files.prediction_path(tmp_path / "one" / "p", path))
        b = prediction_files.read_predictions(prediction_files.prediction_path(tmp_path / "many" / "p", path))
        assert a.shape == (3, 3)  # 14 features in windows of at most 6: 6 + 6 + 2
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert one["top1"] == many["top1"] and one["model"]["kind"] == "features"
    info = json.loads((tmp_path / "one" / "p" / "model.json").read_text())
    assert info["rows"] == "windows" and info["test"]["max_frames"] == 6


def test_test_rnn_rows_equal_the_model_on_each_window(data_dir, rnn_run, tmp_path):
    run_test(rnn_run, tmp_path)
    ckpt = torch.load(rnn_run / "checkpoint.pth", weights_only=True)
    import argparse
    model = rnn_nets.build_model(argparse.Namespace(**ckpt["args"]), 3, devices.Dist())
    model.load_state_dict(ckpt["model"])
    model.eval()
    _, _, (test, _) = split_lists.getUCF101(data_dir, 1)
    feats = feature_files.read_features(
        prediction_files.prediction_path(ckpt["args"]["features"], test[0]), np.arange(14)
    )
    with torch.no_grad():
        expected = torch.cat([model(torch.from_numpy(feats[a:a + 6]).float()[None], torch.tensor([len(feats[a:a + 6])]))
                              for a in range(0, 14, 6)]).numpy()
    stored = prediction_files.read_predictions(prediction_files.prediction_path(tmp_path / "p", test[0]))
    np.testing.assert_allclose(stored, expected, rtol=1e-5, atol=1e-5)


def test_a_feature_file_with_nan_is_refused_by_name(data_dir, rnn_run, features, tmp_path):
    import shutil
    copy = tmp_path / "features"
    shutil.copytree(features, copy)
    _, _, (test, _) = split_lists.getUCF101(data_dir, 1)
    bad = prediction_files.prediction_path(copy, test[2])
    with h5py.File(bad, "r+") as f:
        f["features"][3, 7] = np.nan
    with pytest.raises(guards.UserError, match="non-finite") as error:
        run_test(rnn_run, tmp_path, "--features", str(copy))
    assert bad in str(error.value)


def test_missing_features_are_one_line(data_dir, tmp_path):
    with pytest.raises(guards.UserError, match="extract_features.py"):
        train(data_dir, tmp_path / "nowhere", tmp_path / "run")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "features.json").write_text(json.dumps({"dims": 512}))
    with pytest.raises(guards.UserError, match="no feature file"):
        train(data_dir, tmp_path / "empty", tmp_path / "run")
