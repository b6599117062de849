"""3D models through the engine: C3D trains, resumes and stops on SIGTERM like the 3D ResNet; test_3d's
prediction rows equal direct forward passes of the documented whole video, windows and pieces; C3D's
normalisation and the refusals. CPU, tiny inputs (a C3D of width 1/8 with adaptive pooling)."""
import argparse
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

import make_synthetic_ucf101
import test_3d
import train_3d
from actionrec import guards
from actionrec.data import split_lists, video_chunks, video_files
from actionrec.engine import checkpoints, devices, loop, model_io
from actionrec.evaluation import predictions as prediction_files
from actionrec.inference import clip_views
from actionrec.models import c3d
from actionrec.zoo import clip_nets
from helpers import read_log, run_group, start_group

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = ["--image-size", "32", "--workers", "0", "--device", "cpu", "--seed", "2", "--no-tensorboard"]
C3D = FAST + ["--arch", "c3d", "--c3d-checkpoint", "none", "--c3d-width", "0.125", "--c3d-adaptive-pool",
              "--batch-size", "4"]
RESNET = FAST + ["--depth", "10", "--kinetics-checkpoint", "none", "--batch-size", "4", "--clip-len", "8",
                 "--trainable", "all"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    make_synthetic_ucf101.make_dataset(str(out), classes=4, train_per_class=6, test_per_class=3, frames=24,
                                       size=(32, 40), seed=0)
    return str(out)


def train(data_dir, out, flags, *extra):
    return train_3d.main(train_3d.get_args_parser().parse_args(
        ["--data-dir", data_dir, "--output-dir", str(out), *flags, *extra]))


@pytest.fixture(scope="module")
def c3d_run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("c3d")
    train(data_dir, out, C3D, "--epochs", "2")
    return out


@pytest.fixture(scope="module")
def resnet_run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("resnet")
    train(data_dir, out, RESNET, "--epochs", "1")
    return out


def test_c3d_trains_and_records_its_architecture(c3d_run):
    log = read_log(c3d_run)
    assert [e["epoch"] for e in log] == [1, 2] and all(e["samples"] == 24 for e in log)
    ckpt = torch.load(c3d_run / "checkpoint.pth", weights_only=True)
    assert ckpt["kind"] == "clip" and ckpt["args"]["arch"] == "c3d" and ckpt["args"]["norm"] == "c3d"
    assert ckpt["args"]["clip_len"] == 16 and ckpt["args"]["trainable"] == "all"
    assert "fc8.weight" in ckpt["model"] and "conv5b.weight" in ckpt["model"]


def test_c3d_resumes_after_sigterm_like_an_uninterrupted_run(data_dir, c3d_run, tmp_path, monkeypatch):
    out = tmp_path / "stopped"
    original = loop.train_one_epoch

    def stop_at_step_2(*args, **kwargs):
        def on_step(step):
            if step == 2:
                os.kill(os.getpid(), signal.SIGTERM)
        return original(*args, on_step=on_step, **kwargs)
    monkeypatch.setattr(loop, "train_one_epoch", stop_at_step_2)
    with pytest.raises(SystemExit) as exit_info:
        train(data_dir, out, C3D, "--epochs", "2")
    assert exit_info.value.code == checkpoints.EXIT_PREEMPTED
    assert torch.load(out / "checkpoint.pth", weights_only=True)["step"] == 2
    monkeypatch.undo()
    train(data_dir, out, C3D, "--epochs", "2")
    for x, y in zip(read_log(c3d_run), read_log(out)):
        for key in ("train_loss", "train_acc", "test_acc"):
            assert x[key] == pytest.approx(y[key], rel=1e-4, abs=1e-6), key  # dropout 0.5 included
    a = torch.load(c3d_run / "checkpoint.pth", weights_only=True)["model"]
    b = torch.load(out / "checkpoint.pth", weights_only=True)["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_c3d_sigterm_to_a_real_process_exits_75(data_dir, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "train_3d.py", "--data-dir", data_dir, "--output-dir", str(out), *C3D, "--epochs", "50",
           "--batch-size", "2"]
    with start_group(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        for line in proc.stdout:
            if line.startswith("epoch 1/"):
                break
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == checkpoints.EXIT_PREEMPTED, stderr
    assert "SIGTERM: saved" in stdout and "Traceback" not in stderr


def direct_rows(model, normalize, path, mode, clip_len, stride, max_frames):
    """What test_3d.py must write for a video, computed straight from its documented definition."""
    frames = video_files.video_info(path)[0]
    video = torch.from_numpy(video_chunks.load_chunk(path, 0, max(frames, clip_len), 32))  # looped when short
    rows = []
    with torch.no_grad():
        if mode == "sliding":
            for start in clip_views.window_starts(frames, clip_len, stride):
                rows.append(model(normalize(video[start:start + clip_len][None]))[0])
        elif mode == "full":  # one pass over the whole video
            rows.append(model(normalize(video[None]))[0])
        else:  # --max-frames: the pieces approximation
            for start, stop in clip_views.full_plan(clip_len, max_frames)(frames):
                piece = torch.from_numpy(video_chunks.load_chunk(path, start, stop, 32))
                rows.append(model(normalize(piece[None]))[0])
    return torch.stack(rows).numpy()


def rebuild(run):
    ckpt = torch.load(run / "checkpoint.pth", weights_only=True)
    args = argparse.Namespace(**ckpt["args"])
    model = clip_nets.build_model(args, 4, devices.Dist(), pretrained=False)
    model.load_state_dict(ckpt["model"])
    return model.eval(), clip_nets.normalizer(args.norm), args.clip_len


@pytest.mark.parametrize("which, mode", [("resnet", "full"), ("resnet", "pieces"), ("resnet", "sliding"),
                                         ("c3d", "sliding")])
def test_3d_prediction_rows_equal_direct_forward_passes(data_dir, resnet_run, c3d_run, tmp_path, which, mode):
    run = resnet_run if which == "resnet" else c3d_run
    # Small chunks, tiles and pieces so that windows straddle chunk borders, the whole video streams through
    # several chunks and tiles, and videos have several pieces.
    pieces = ["--max-frames", "16" if which == "c3d" else "10"] if mode == "pieces" else []
    test_3d.main(test_3d.get_args_parser().parse_args(
        ["--checkpoint", str(run / "checkpoint.pth"), "--predictions-dir", str(tmp_path / "p"), "--output-dir",
         str(tmp_path / "o"), "--workers", "2", "--device", "cpu", "--mode", "sliding" if mode == "sliding" else "full",
         "--stride", "3", "--tile-frames", "7", "--chunk-frames", "20", *pieces]))
    model, normalize, clip_len = rebuild(run)
    _, _, (paths, _) = split_lists.getUCF101(data_dir, 1)
    for path in paths[::3]:
        stored = prediction_files.read_predictions(prediction_files.prediction_path(tmp_path / "p", path))
        expected = direct_rows(model, normalize, path, mode, clip_len, 3, 16 if which == "c3d" else 10)
        np.testing.assert_allclose(stored, expected, rtol=1e-4, atol=1e-4)
    info = json.loads((tmp_path / "p" / "model.json").read_text())
    assert info["name"] == ("c3d" if which == "c3d" else "3d") and info["temporal"] is True
    assert info["rows"] == {"full": "video", "pieces": "pieces", "sliding": "windows"}[mode]
    assert info["test"]["mode"] == ("sliding" if mode == "sliding" else "full")
    _, attrs = prediction_files.read_prediction_file(prediction_files.prediction_path(tmp_path / "p", paths[0]))
    assert attrs["rows"] == info["rows"] and attrs["test"] == info["test"]["description"]


def test_c3d_defaults_to_sliding_and_refuses_full_mode_without_adaptive_pooling(tmp_path):
    model = c3d.C3D(num_classes=4, width=0.125)  # the released architecture: fixed fc6
    ckpt = {"model": model.state_dict(), "class_list": ["a", "b", "c", "d"], "kind": "clip",
            "args": {"arch": "c3d", "c3d_width": 0.125, "c3d_adaptive_pool": False, "image_size": 112,
                     "clip_len": 16, "norm": "c3d", "data_dir": str(tmp_path)}}
    torch.save(ckpt, tmp_path / "c3d.pth")
    result = run_group([sys.executable, "test_3d.py", "--checkpoint", str(tmp_path / "c3d.pth"), "--mode", "full",
                             "--predictions-dir", str(tmp_path / "p"), "--output-dir", str(tmp_path / "o")],
                            cwd=REPO, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--mode sliding" in result.stderr.strip().splitlines()[-1]


def test_c3d_size_needs_the_explicit_option(data_dir, tmp_path):
    with pytest.raises(guards.UserError, match="--c3d-adaptive-pool"):
        train(data_dir, tmp_path / "run", FAST + ["--arch", "c3d", "--c3d-checkpoint", "none"])
    with pytest.raises(guards.UserError, match="clip-len"):
        train(data_dir, tmp_path / "run", C3D + ["--clip-len", "8"])


def test_c3d_normalisation_is_bgr_minus_the_mean():
    mean, std, bgr = clip_nets.NORMS["c3d"]
    normalize = model_io.Normalize(mean, std, bgr=bgr)
    pixel = torch.tensor([[[[200, 100, 50]]]], dtype=torch.uint8)  # (1, 1, 1, 1, 3) as (N, T, H, W, RGB)
    out = normalize(pixel[None])[0, :, 0, 0, 0]  # (3,)
    torch.testing.assert_close(out, torch.tensor([50 - 90.0, 100 - 98.0, 200 - 102.0]), atol=1e-3, rtol=1e-5)


def test_a_released_c3d_file_starts_training(data_dir, tmp_path):
    # The released layout (features.N / classifier.N, 487 classes) of a small-width model: loaded, fc8 new.
    source = c3d.C3D(num_classes=487, width=0.125, adaptive_pool=True)
    state = {
        c3d.LAYER_TO_SEQUENTIAL[k.split(".")[0]] + "." + k.split(".")[1]: v for k, v in source.state_dict().items()
    }
    torch.save(state, tmp_path / "c3d-pretrained.pth")
    out = tmp_path / "run"
    flags = [f for f in C3D if f not in ("--c3d-checkpoint", "none")]
    train(data_dir, out, flags, "--c3d-checkpoint", str(tmp_path / "c3d-pretrained.pth"), "--epochs", "1",
          "--max-steps", "1", "--trainable", "fc8")
    ckpt = torch.load(out / "checkpoint.pth", weights_only=True)["model"]
    assert torch.equal(ckpt["conv1.weight"], source.conv1.weight) and ckpt["fc8.weight"].shape == (4, 4096 // 8)


def test_amp_on_the_cpu_keeps_3d_convolutions_in_float32(data_dir, tmp_path):
    # Issue 19: oneDNN's bf16 3D-convolution backward (on CPUs with AVX-512 and no AMX, e.g. AMD EPYC
    # Zen 4) corrupted the heap for the 3D ResNet-50's conv1 on 4-frame clips and the process aborted.
    # ONEDNN_MAX_CPU_ISA puts oneDNN on that path here too (it only lowers the ISA, never raises it).
    result = run_group([sys.executable, "train_3d.py", "--data-dir", data_dir, "--output-dir", str(tmp_path / "r"),
                        *FAST, "--kinetics-checkpoint", "none", "--layer4-blocks", "3", "--trainable", "all",
                        "--batch-size", "2", "--clip-len", "4", "--image-size", "16", "--epochs", "1",
                        "--max-steps", "2", "--amp"],
                       cwd=REPO, timeout=240, env={**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert devices.CPU_3D_AMP_NOTE in result.stderr and "amp off" in result.stdout
    args = argparse.Namespace(amp=True)
    model = clip_nets.build_model(train_3d.get_args_parser().parse_args(
        ["--kinetics-checkpoint", "none", "--depth", "10"]), 4, devices.Dist())
    assert devices.amp_settings(args, torch.device("cpu"), model) == (False, torch.float32)
    assert devices.amp_settings(args, torch.device("cpu"), torch.nn.Conv2d(3, 3, 3)) == (True, torch.bfloat16)
