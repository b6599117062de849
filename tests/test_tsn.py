"""TSN: segment sampling, segmental consensus before the loss, --frames/--crops at test time, and a
--segments 3 run that trains and resumes. CPU, tiny inputs."""
import json
import os
import signal

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import make_synthetic_ucf101
import test_single_frame
import train_single_frame
from actionrec.data import batching, normalization, sampling, split_lists, video_chunks, video_files
from actionrec.engine import checkpoints, devices, loop, model_io
from actionrec.evaluation import predictions as prediction_files
from actionrec.inference import clip_views, frame_views
from actionrec.zoo import frame_nets

FAST = ["--image-size", "32", "--workers", "0", "--device", "cpu", "--seed", "4"]
TSN = FAST + ["--arch", "resnet18", "--pretrained", "none", "--batch-size", "4", "--segments", "3",
              "--trainable", "all"]


def index_video(path, frames, height=24, width=40):
    """Frame t is uniform grey-green: green = 10 + 3 t (survives any resize), red 100, blue a gradient."""
    video = np.empty((frames, height, width, 3), dtype=np.uint8)
    video[..., 0] = 100
    video[..., 1] = (10 + 3 * np.arange(frames))[:, None, None]
    video[..., 2] = (np.arange(width) * 6)[None, None, :]
    video_files.write_video_hdf5(str(path), video)
    return str(path)


def frame_index(frame):
    green = frame[..., 1]
    assert (green == green.flat[0]).all()
    return (int(green.flat[0]) - 10) // 3


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    make_synthetic_ucf101.make_dataset(str(out), classes=4, train_per_class=6, test_per_class=3, frames=20,
                                       size=(32, 40), seed=0)
    return str(out)


# ----------------------------------------------------------------------------------------------
# Sampling

def test_segment_centres_are_the_documented_frames():
    assert list(sampling.segment_centres(100, 4)) == [12, 37, 62, 87]  # int((k + 0.5) * 100 / 4)
    assert list(sampling.segment_centres(184, 25)) == [int((k + 0.5) * 184 / 25) for k in range(25)]
    assert list(sampling.segment_centres(2, 3)) == [0, 1, 1]  # shorter than K: frames repeat


def test_segment_offsets_fall_one_in_each_segment():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        indices = sampling.segment_offsets(30, 3, rng)
        assert [i // 10 for i in indices] == [0, 1, 2]
        seen.update(int(i) for i in indices)
    assert seen == set(range(30))  # every offset of every segment is drawn
    short = sampling.segment_offsets(2, 3, rng)  # fewer frames than segments: valid, non-decreasing indices
    assert len(short) == 3 and short.min() >= 0 and short.max() <= 1 and list(short) == sorted(short)


def test_a_segments_sample_is_one_frame_per_segment_with_one_augmentation(tmp_path):
    path = index_video(tmp_path / "v.hdf5", 30)
    plain = sampling._segments_raw(path, False, np.random.default_rng(1), size=16, segments=3, centres=True)
    assert [frame_index(f) for f in plain] == list(sampling.segment_centres(30, 3))
    for seed in range(20):
        sample = sampling._segments_raw(path, True, np.random.default_rng(seed), size=16, segments=3)
        # The red plane is constant before augmentation: brightness moves it by the same amount in
        # every frame, and the crop/flip act on the blue gradient the same way in every frame.
        assert len({int(f[0, 0, 0]) for f in sample}) == 1
        assert all(np.array_equal(f[..., 2], sample[0][..., 2]) for f in sample)


# ----------------------------------------------------------------------------------------------
# Consensus

class Pixels(torch.nn.Module):
    """A frame model whose logits are a linear map of the mean colour: (N, 3, H, W) -> (N, 4)."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 4)

    def forward(self, x):
        assert x.dim() == 4  # the backbone only ever sees single frames
        return self.fc(x.mean((2, 3)))


def test_consensus_averages_the_segment_logits_before_the_loss():
    torch.manual_seed(0)
    model, normalize = Pixels(), model_io.Normalize(normalization.FRAME_MEAN, normalization.FRAME_STD)
    data = np.random.default_rng(0).integers(0, 256, (5, 3, 8, 8, 3), dtype=np.uint8)  # (N, K, H, W, 3)
    labels = torch.tensor([0, 1, 2, 3, 1])
    batch = batching.Batch(data, labels.numpy(), np.arange(5), 5)
    logits, extra = model_io.Forward(normalize, segments=3)(model, batch, torch.device("cpu"))
    per_segment = torch.stack([model(normalize(torch.from_numpy(data[:, k]))) for k in range(3)], 1)  # (N, K, C)
    assert extra is None
    torch.testing.assert_close(logits, per_segment.mean(1))
    expected = -torch.log_softmax(per_segment.mean(1), 1)[torch.arange(5), labels].mean()
    torch.testing.assert_close(F.cross_entropy(logits, labels), expected)
    # Not the mean of the per-segment losses: consensus comes before the softmax.
    per_segment_loss = F.cross_entropy(per_segment.reshape(15, 4), labels.repeat_interleave(3))
    assert not torch.isclose(F.cross_entropy(logits, labels), per_segment_loss)


def test_the_logged_training_loss_is_the_consensus_loss(data_dir, tmp_path):
    # One step of a real run: its logged loss equals the hand-built consensus loss of the initial model
    # on the same batch (same seed, same permutation, same augmentation).
    out = tmp_path / "run"
    args = train_single_frame.get_args_parser().parse_args(
        ["--data-dir", data_dir, "--output-dir", str(out), *TSN, "--epochs", "1", "--max-steps", "1",
         "--no-tensorboard", "--eval-batch-size", "12"])
    train_single_frame.main(args)
    logged = json.loads((out / "log.jsonl").read_text().splitlines()[0])

    torch.manual_seed(4)
    model = frame_nets.build_model(args, 4, devices.Dist(), pretrained=False)
    model.train()
    _, (paths, labels), _ = split_lists.getUCF101(data_dir, 1)
    loader = batching.BatchLoader(paths, labels, 4, "segments", augment=True, shuffle=True, seed=4, size=32, segments=3)
    loader.set_epoch(0)
    batch = next(iter(loader))
    x = model_io.Normalize(normalization.FRAME_MEAN, normalization.FRAME_STD)(
        torch.from_numpy(batch.data.reshape(12, 32, 32, 3))
    )
    with torch.no_grad():
        consensus = model(x).view(4, 3, -1).mean(1)
    expected = F.cross_entropy(consensus, torch.from_numpy(batch.labels)).item()
    assert logged["samples"] == 4 and logged["train_loss"] == pytest.approx(expected, rel=1e-5)


def test_segments_train_and_resume_like_an_uninterrupted_run(data_dir, tmp_path, monkeypatch):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"

    def train(out, *extra):
        args = train_single_frame.get_args_parser().parse_args(
            ["--data-dir", data_dir, "--output-dir", str(out), *TSN, "--epochs", "2", "--dropout", "0.5",
             "--partial-bn", *extra])
        return train_single_frame.main(args)

    train(straight)
    original = loop.train_one_epoch

    def stop_at_step_3(*args, **kwargs):
        def on_step(step):
            if step == 3:
                os.kill(os.getpid(), signal.SIGTERM)
        return original(*args, on_step=on_step, **kwargs)
    monkeypatch.setattr(loop, "train_one_epoch", stop_at_step_3)
    with pytest.raises(SystemExit) as exit_info:
        train(stopped)
    assert exit_info.value.code == checkpoints.EXIT_PREEMPTED
    monkeypatch.undo()
    train(stopped)
    a, b = [[json.loads(line) for line in (d / "log.jsonl").read_text().splitlines()] for d in (straight, stopped)]
    assert [e["epoch"] for e in b] == [1, 2]
    for x, y in zip(a, b):
        assert x["samples"] == y["samples"] == 24
        for key in ("train_loss", "train_acc", "test_acc"):
            assert x[key] == pytest.approx(y[key], rel=1e-4, abs=1e-6), key
    ckpt = torch.load(stopped / "checkpoint.pth", weights_only=True)
    assert ckpt["kind"] == "segments" and ckpt["args"]["segments"] == 3
    assert "fc.1.weight" in ckpt["model"]  # dropout before the classifier
    # partial BN: only the first BatchNorm learned its affine parameters
    initial = frame_nets.build_model(train_single_frame.get_args_parser().parse_args(
        TSN + ["--dropout", "0.5"]), 4, devices.Dist(), pretrained=False).state_dict()
    assert not torch.equal(ckpt["model"]["bn1.weight"], initial["bn1.weight"])
    assert torch.equal(ckpt["model"]["layer1.0.bn1.weight"], initial["layer1.0.bn1.weight"])
    assert torch.equal(ckpt["model"]["layer1.0.bn1.running_mean"], initial["layer1.0.bn1.running_mean"])


# ----------------------------------------------------------------------------------------------
# Testing: --frames and --crops

def test_frames_plan_picks_the_segment_centres(tmp_path):
    path = index_video(tmp_path / "v.hdf5", 40)
    plan = frame_views.frame_plan(5, 3)
    loader = video_chunks.VideoChunkLoader([path], plan, size=16)
    chunks = [c for *_, c in loader]
    assert [len(c) for c in chunks] == [3, 2]
    assert [frame_index(f) for c in chunks for f in c] == [int((k + 0.5) * 40 / 5) for k in range(5)]
    all_frames = frame_views.frame_plan(0, 30)(40)
    assert all_frames == [(0, 30), (30, 40)]
    assert frame_views.frame_plan(50, 30)(40) == all_frames  # N >= T: every frame


def position_frame(height, width):
    """Blue = x, green = y: every pixel says where it came from (before any resize)."""
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    frame[..., 2] = np.arange(width)[None, :]
    frame[..., 1] = np.arange(height)[:, None]
    return frame


@pytest.mark.parametrize("height, width", [(240, 320), (320, 240)])
def test_crop_boxes_are_the_documented_regions(height, width):
    size = 224
    (h3, w3), boxes3 = video_chunks.crop_boxes(height, width, size, 3)
    assert min(h3, w3) == size and abs(max(h3, w3) - size * max(height, width) / min(height, width)) <= 1
    long_side = max(h3, w3)
    starts = [b[1] if width > height else b[0] for b in boxes3]
    assert starts == [0, (long_side - size) // 2, long_side - size] and not any(b[2] for b in boxes3)
    (h10, w10), boxes10 = video_chunks.crop_boxes(height, width, size, 10)
    assert min(h10, w10) == 256
    corners = {(y, x) for y, x, _ in boxes10}
    assert corners == {(0, 0), (0, w10 - size), (h10 - size, 0), (h10 - size, w10 - size),
                       ((h10 - size) // 2, (w10 - size) // 2)}
    assert sum(flip for *_, flip in boxes10) == 5


def test_crops_cut_where_the_boxes_say_and_mirror():
    frame = position_frame(24, 32)
    out = np.empty((1, 10, 8, 8, 3), dtype=np.uint8)
    video_chunks._crop_views(frame[None], 8, 10, out)
    (h, w), boxes = video_chunks.crop_boxes(24, 32, 8, 10)
    import cv2
    resized = cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)
    for view, (y, x, flip) in zip(out[0], boxes):
        expected = resized[y:y + 8, x:x + 8]
        np.testing.assert_array_equal(view, expected[:, ::-1] if flip else expected)


def test_a_uniform_frame_gives_the_same_logits_for_1_3_and_10_crops(tmp_path):
    video = np.full((6, 30, 44, 3), (90, 140, 40), dtype=np.uint8)
    path = str(tmp_path / "uniform.hdf5")
    video_files.write_video_hdf5(path, video)
    torch.manual_seed(0)
    model = frame_nets.build_model(train_single_frame.get_args_parser().parse_args(
        ["--arch", "resnet18", "--pretrained", "none"]), 5, devices.Dist(), pretrained=False).eval()
    normalize = model_io.Normalize(normalization.FRAME_MEAN, normalization.FRAME_STD)
    logits = {}
    with torch.no_grad():
        for crops in (1, 3, 10):
            chunk = torch.from_numpy(video_chunks.load_chunk(path, 0, 6, size=32, crops=crops))
            logits[crops] = frame_views.frame_logits(4, crops)(model, chunk, normalize)
            assert logits[crops].shape == (6, 5)
    torch.testing.assert_close(logits[3], logits[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits[10], logits[1], atol=1e-5, rtol=1e-5)
    # The 3D rows average over crops the same way.
    import resnet_3d
    model3d = resnet_3d.resnet10(num_classes=5, shortcut_type="A").eval()
    with torch.no_grad():
        rows = {
            c: clip_views.clip_logits("sliding", 4, 2, 8, c)(
                model3d, torch.from_numpy(video_chunks.load_chunk(path, 0, 6, size=32, crops=c)), normalize
            )
            for c in (1, 10)
        }
    torch.testing.assert_close(rows[10], rows[1], atol=1e-5, rtol=1e-5)


def test_tsn_checkpoint_is_tested_with_frames_and_crops(data_dir, tmp_path):
    out = tmp_path / "run"
    train_single_frame.main(train_single_frame.get_args_parser().parse_args(
        ["--data-dir", data_dir, "--output-dir", str(out), *TSN, "--epochs", "1", "--no-tensorboard"]))
    results = test_single_frame.main(test_single_frame.get_args_parser().parse_args(
        ["--checkpoint", str(out / "checkpoint.pth"), "--predictions-dir", str(tmp_path / "p"),
         "--output-dir", str(tmp_path / "o"), "--workers", "0", "--device", "cpu", "--frames", "5", "--crops", "10"]))
    _, _, (paths, _) = split_lists.getUCF101(data_dir, 1)
    for path in paths:
        file = prediction_files.prediction_path(tmp_path / "p", path)
        assert prediction_files.read_predictions(file).shape == (5, 4)
        import h5py
        with h5py.File(file) as f:
            assert f["predictions"].attrs["crops"] == 10 and f["predictions"].attrs["frames"] == 20
    info = json.loads((tmp_path / "p" / "model.json").read_text())
    assert info["name"] == "tsn" and info["test"]["description"] == "5 frames at segment centres, 10 crops"
    assert info["timing"]["crops"] == 10 and info["timing"]["videos"] == len(paths)
    assert info["timing"]["views_per_video"] == 5 * 10  # 5 frames x 10 crops, what the report's speed table shows
    assert results["videos"] == len(paths) and results["model"]["name"] == "tsn"
