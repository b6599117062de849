"""test_3d.py --mode full computes the whole video exactly in temporal tiles (temporal_tiles.py): the tiled
logits equal one forward pass over the whole clip for 3D ResNet-18 and -50, every layer4_blocks, short,
unaligned and long videos and many tile sizes; the temporal windows derived from the modules agree with a
numerical probe; what cannot be derived is refused; and test_3d.py writes the whole-video row (a video
longer than the old 512-frame pieces, where the older full mode wrote two rows of pieces run alone).
CPU, tiny frames (8x8: the time axis is what is tested)."""
import argparse
import json

import numpy as np
import pytest
import torch
import torch.nn as nn

import make_synthetic_ucf101
import resnet_3d
import test_3d
from actionrec import guards
from actionrec.data import split_lists, video_chunks
from actionrec.engine import devices
from actionrec.evaluation import predictions as prediction_files
from actionrec.models import c3d, temporal_tiles
from actionrec.zoo import clip_nets

SIZE = 8
# (video frames, tile sizes): a clip, one frame past it (an unaligned end), and videos longer than a
# tile, than the receptive field and than the old 512-frame pieces; tiles from 1 frame (far below the
# receptive field of 150-220 frames) to larger than the video.
CASES = [(16, (1, 16)), (17, (1, 5)), (100, (7, 64, 128)), (513, (48, 200)), (1000, (64, 333))]


def random_eval_model(depth, layer4_blocks, seed=0):
    """A 3D ResNet in eval mode whose BatchNorms are not the identity (random running statistics)."""
    torch.manual_seed(seed)
    model = resnet_3d.generate_model(depth, num_classes=5, layer4_blocks=layer4_blocks).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm3d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.normal_(1, 0.1)
            m.bias.data.normal_(0, 0.1)
    return model


def tiled(model, video, tile_frames, feed_frames=37):
    """The stream fed in parts of feed_frames (the loader's chunks), independent of the tile."""
    stream = temporal_tiles.ResNetStream(model, tile_frames)
    for start in range(0, video.shape[2], feed_frames):
        stream.feed(video[:, :, start:start + feed_frames])
    return stream.finish()


@pytest.mark.parametrize("depth, layer4_blocks", [(18, 1), (18, 2), (50, 1), (50, 2), (50, 3)])
def test_tiled_logits_equal_one_pass_over_the_whole_video(depth, layer4_blocks):
    model = random_eval_model(depth, layer4_blocks)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for frames, tiles in CASES:
            video = torch.randn(1, 3, frames, SIZE, SIZE, generator=generator)
            whole = model(video)  # (1, 5)
            for tile in tiles:
                difference = (tiled(model, video, tile) - whole).abs().max().item()
                assert difference < 1e-4, (frames, tile, difference)


@pytest.mark.parametrize("deep_frames", [1, 20, 400])
def test_blocks_run_on_any_number_of_steps(deep_frames):
    """layer3 and layer4 run on every step (1), in odd groups (20 frames: 5 steps of layer3's input, the
    stride-2 ops' phase) or once at the end."""
    model = random_eval_model(18, 2)
    video = torch.randn(1, 3, 150, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        stream = temporal_tiles.ResNetStream(model, 24, deep_frames=deep_frames)
        for start in range(0, 150, 41):
            stream.feed(video[:, :, start:start + 41])
        torch.testing.assert_close(stream.finish(), model(video), atol=1e-4, rtol=0)


def test_each_streamed_op_equals_one_pass():
    """Strided, dilated, skipping (stride > kernel) convolutions and pools, a folded BatchNorm, padding
    wider than the kernel, fed in parts of every size from 1 to 7 steps."""
    torch.manual_seed(3)
    bn = nn.BatchNorm3d(3).eval()
    bn.running_mean.normal_(0, 0.5)
    bn.running_var.uniform_(0.5, 2.0)
    modules = [nn.Conv3d(2, 3, (3, 3, 3), stride=(2, 1, 1), padding=(2, 1, 1), dilation=(2, 1, 1)), bn, nn.ReLU(),
               nn.MaxPool3d(3, stride=2, padding=1), nn.Conv3d(3, 4, 1, stride=(3, 1, 1)),
               nn.Conv3d(4, 4, 1, padding=(2, 0, 0)),  # steps of padding alone at both ends (the bias)
               nn.AvgPool3d((2, 1, 1), stride=(2, 1, 1), padding=(1, 0, 0))]
    x = torch.randn(1, 2, 61, 5, 5)
    with torch.no_grad():
        whole = nn.Sequential(*modules)(x)
        for part in range(1, 8):
            chain = temporal_tiles._Chain(modules)
            chain.reset()
            outs = [chain.push(x[:, :, a:a + part], end=False) for a in range(0, 61, part)]
            outs.append(chain.push(None, end=True))
            torch.testing.assert_close(torch.cat([o for o in outs if o is not None], 2), whole, atol=1e-5, rtol=0)


def test_a_stream_is_reused_video_after_video():
    model = random_eval_model(18, 1)
    stream = temporal_tiles.ResNetStream(model, 24)
    with torch.no_grad():
        for frames in (40, 17):
            video = torch.randn(2, 3, frames, SIZE, SIZE)  # a batch of two videos streams together
            stream.feed(video)
            torch.testing.assert_close(stream.finish(), model(video), atol=1e-4, rtol=0)


def test_the_folded_weights_follow_the_model():
    """The BatchNorms folded into the convolutions are made once per model and made again when a weight or a
    running statistic changes (in place, as load_state_dict does, or replaced)."""
    model = random_eval_model(18, 1)
    video = torch.randn(1, 3, 40, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        before = tiled(model, video, 16)
        torch.testing.assert_close(before, model(video), rtol=0, atol=1e-4)
        model.load_state_dict(random_eval_model(18, 1, seed=3).state_dict())  # copied in place
        torch.testing.assert_close(tiled(model, video, 16), model(video), rtol=0, atol=1e-4)
        model.layer1[0].bn1.running_var.mul_(4)  # one statistic, in place
        torch.testing.assert_close(tiled(model, video, 16), model(video), rtol=0, atol=1e-4)
        model.layer2[0].conv1.weight = nn.Parameter(model.layer2[0].conv1.weight * 2)  # replaced
        after = tiled(model, video, 16)
        torch.testing.assert_close(after, model(video), rtol=0, atol=1e-4)
    assert (after - before).abs().max() > 1e-2


def probe(model, frames, t):
    """The layer4 steps that change when input frame t changes (a large change, random weights)."""
    layers = nn.Sequential(*temporal_tiles.resnet_stages(model))
    video = torch.randn(1, 3, frames, SIZE, SIZE)
    changed = video.clone()
    changed[:, :, t] += 100.0
    with torch.no_grad():
        difference = (layers(changed) - layers(video)).abs().amax((0, 1, 3, 4))  # (layer4 steps,)
    return {q for q, d in enumerate(difference.tolist()) if d > 0}


@pytest.mark.parametrize("depth, layer4_blocks", [(18, 1), (18, 2), (50, 3)])
def test_derived_windows_agree_with_a_numerical_probe(depth, layer4_blocks):
    model = random_eval_model(depth, layer4_blocks)
    geometry = temporal_tiles.receptive_field(model)
    assert geometry.stride == 16  # maxpool and layers 2-4 halve time
    frames = 512
    for t in (200, 250, 263):
        derived = {q for q in range(frames // 16) if q * 16 - geometry.before <= t <= q * 16 + geometry.after}
        observed = probe(model, frames, t)
        assert observed <= derived  # exactness needs this: nothing outside the window matters
        assert min(observed) == min(derived) and max(observed) == max(derived)  # and the window is not loose


def test_layer4_blocks_and_depth_set_the_window():
    windows = {(d, k): temporal_tiles.receptive_field(random_eval_model(d, k)) for d, k in
               [(18, 1), (18, 2), (50, 1), (50, 2), (50, 3)]}
    assert windows[(50, 1)] == (16, 76, 76) and windows[(50, 3)] == (16, 108, 108)
    assert windows[(18, 1)] == (16, 78, 78) and windows[(18, 2)] == (16, 110, 110)
    model = random_eval_model(50, 3)
    assert temporal_tiles.receptive_field(model, layer4_blocks=1) == windows[(50, 1)]


def test_what_cannot_be_derived_is_refused():
    with pytest.raises(ValueError, match="ceil_mode"):
        temporal_tiles.temporal_geometry(nn.MaxPool3d(3, stride=2, ceil_mode=True))
    with pytest.raises(ValueError, match="same"):
        temporal_tiles.temporal_geometry(nn.Conv3d(3, 3, 3, padding="same"))
    with pytest.raises(ValueError, match="LSTM"):
        temporal_tiles.temporal_geometry(nn.Sequential(nn.Conv3d(3, 3, 3), nn.LSTM(3, 3)))
    with pytest.raises(ValueError, match="3D ResNet"):
        temporal_tiles.ResNetStream(c3d.C3D(num_classes=4, width=0.125, adaptive_pool=True), 64)
    model = random_eval_model(18, 1)
    for tile in (0, -16, 1.5, True):
        with pytest.raises(ValueError, match="tile_frames"):
            temporal_tiles.ResNetStream(model, tile)
    with pytest.raises(ValueError, match="cannot stream"):
        temporal_tiles._Chain([nn.Conv3d(3, 3, 3, padding=1, padding_mode="reflect")])
    with pytest.raises(ValueError, match="cannot stream"):
        temporal_tiles._Chain([nn.AvgPool3d(3, padding=1, count_include_pad=False)])
    with pytest.raises(ValueError, match="before any frames"):
        temporal_tiles.ResNetStream(model, 16).finish()


def test_dilated_and_strided_windows():
    conv = nn.Conv3d(1, 1, (3, 1, 1), stride=(2, 1, 1), padding=(2, 0, 0), dilation=(2, 1, 1))
    assert temporal_tiles.temporal_geometry(conv) == (2, 2, 2)
    pool = nn.AvgPool3d((4, 1, 1), stride=(4, 1, 1))
    assert temporal_tiles.temporal_geometry(nn.Sequential(conv, nn.ReLU(), pool)) == (8, 2, 8)


# test_3d.py end to end: a video longer than 512 frames (the older full mode's default pieces).

LONG = 530


@pytest.fixture(scope="module")
def long_videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("long")
    data = str(root / "data")
    make_synthetic_ucf101.make_dataset(data, classes=2, train_per_class=1, test_per_class=1, frames=LONG,
                                       size=(16, 20), seed=0)
    class_list, _, (paths, _) = split_lists.getUCF101(data, 1)
    torch.manual_seed(0)
    trained = {"arch": "resnet", "depth": 10, "layer4_blocks": 1, "clip_len": 8, "norm": "assignment",
               "image_size": 16, "data_dir": data, "split": 1}
    model = clip_nets.build_model(argparse.Namespace(**trained), 2, devices.Dist(), pretrained=False)
    checkpoint = str(root / "checkpoint.pth")
    torch.save({"model": model.state_dict(), "class_list": [str(c) for c in class_list], "kind": "clip",
                "args": trained}, checkpoint)
    return argparse.Namespace(data=data, paths=list(paths), model=model.eval(), checkpoint=checkpoint)


def test_full_mode_writes_the_whole_video_pass(long_videos, tmp_path):
    test_3d.main(test_3d.get_args_parser().parse_args(
        ["--checkpoint", long_videos.checkpoint, "--predictions-dir", str(tmp_path / "p"), "--output-dir",
         str(tmp_path / "o"), "--workers", "0", "--device", "cpu", "--mode", "full", "--tile-frames", "48",
         "--chunk-frames", "100"]))
    normalize = clip_nets.normalizer("assignment")
    for path in long_videos.paths:
        logits, attrs = prediction_files.read_prediction_file(prediction_files.prediction_path(tmp_path / "p", path))
        video = torch.from_numpy(video_chunks.load_chunk(path, 0, LONG, 16))
        with torch.no_grad():
            whole = long_videos.model(normalize(video[None])).numpy()  # (1, classes)
        assert logits.shape == whole.shape
        np.testing.assert_allclose(logits, whole, rtol=0, atol=1e-4)
        assert attrs["rows"] == "video" and attrs["frames"] == LONG
        assert "exact" in attrs["test"] and "tiles of 48 frames" in attrs["test"]
    info = json.loads((tmp_path / "p" / "model.json").read_text())
    assert info["rows"] == "video" and info["test"]["mode"] == "full" and info["test"]["max_frames"] is None
    assert "tiles of 48 frames" in info["test"]["description"]


def test_max_frames_is_the_pieces_approximation(long_videos, tmp_path):
    test_3d.main(test_3d.get_args_parser().parse_args(
        ["--checkpoint", long_videos.checkpoint, "--predictions-dir", str(tmp_path / "p"), "--output-dir",
         str(tmp_path / "o"), "--workers", "0", "--device", "cpu", "--mode", "full", "--max-frames", "512"]))
    logits, attrs = prediction_files.read_prediction_file(
        prediction_files.prediction_path(tmp_path / "p", long_videos.paths[0])
    )
    assert logits.shape[0] == 2 and attrs["rows"] == "pieces" and "approximated" in attrs["test"]


def test_c3d_has_no_exact_full_mode(tmp_path):
    model = c3d.C3D(num_classes=2, width=0.125, adaptive_pool=True)
    checkpoint = tmp_path / "c3d.pth"
    torch.save({"model": model.state_dict(), "class_list": ["a", "b"], "kind": "clip",
                "args": {"arch": "c3d", "c3d_width": 0.125, "c3d_adaptive_pool": True, "image_size": 16,
                         "clip_len": 16, "norm": "c3d", "data_dir": str(tmp_path)}}, checkpoint)
    with pytest.raises(guards.UserError, match="--max-frames N for the pieces approximation"):
        test_3d.main(test_3d.get_args_parser().parse_args(
            ["--checkpoint", str(checkpoint), "--predictions-dir", str(tmp_path / "p"), "--output-dir",
             str(tmp_path / "o"), "--mode", "full", "--device", "cpu"]))
