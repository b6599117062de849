"""The motion stream (issue 22): flow stacks and RGB difference through the frame models' sampler, builder,
training and test. CPU, tiny inputs."""
import json
import os
import shutil
import sys

import h5py
import numpy as np
import pytest
import torch

import make_synthetic_ucf101
import test_single_frame
import train_single_frame
from actionrec import guards
from actionrec.data import batching, motion, normalization, sampling, split_lists, video_chunks, video_files
from actionrec.engine import checkpoints, devices, model_io
from actionrec.evaluation import predictions as prediction_files
from actionrec.flow import codec, extract
from actionrec.zoo import frame_nets
from helpers import run_group

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = ["--image-size", "32", "--workers", "0", "--device", "cpu", "--seed", "3", "--arch", "resnet18",
        "--pretrained", "none", "--trainable", "all", "--batch-size", "4", "--no-tensorboard"]


def write_flow_file(path, fields):
    """A flow file as extract_flow.py writes it (raw storage): uint8 fields [T-1, H, W, 2]."""
    with h5py.File(path, "w") as f:
        f.create_dataset(extract.FLOW_KEY, data=fields)
        f.attrs.update(method="test", bound=20.0, width=fields.shape[2], height=fields.shape[1], storage="raw",
                       source="none", source_frames=len(fields) + 1, pairs=len(fields), version=1)
    return str(path)


def numbered_fields(count, height=12, width=16):
    """Field i: x = 10 + i and y = 100 + i everywhere (a field's number survives any crop and resize)."""
    fields = np.empty((count, height, width, 2), dtype=np.uint8)
    fields[..., 0] = (10 + np.arange(count))[:, None, None]
    fields[..., 1] = (100 + np.arange(count))[:, None, None]
    return fields


# ----------------------------------------------------------------------------------------------
# Sampling and stacking

def test_snippet_starts_at_train_fall_one_in_each_segment_and_fit_in_the_video():
    rng = np.random.default_rng(0)
    count, length, segments = 20, 5, 4  # 16 start positions, 4 per segment
    seen = set()
    for _ in range(300):
        starts = motion.train_starts(count, segments, length, rng)
        assert [s // 4 for s in starts] == [0, 1, 2, 3]
        assert (starts + length - 1 < count).all()  # the whole snippet lies in the video
        seen.update(int(s) for s in starts)
    assert seen == set(range(16))
    # test: the centres of the positions, tsn-pytorch's int(tick / 2 + tick * k), tick = (T - L + 1) / K
    tick = (count - length + 1) / 4
    assert list(motion.test_starts(count, 4, length)) == [int(tick / 2 + tick * k) for k in range(4)] == [2, 6, 10, 14]
    assert list(motion.test_starts(184, 25, 6)) == [int((k + 0.5) * 179 / 25) for k in range(25)]
    # a video shorter than one snippet: start 0, the fields loop
    assert list(motion.test_starts(3, 2, 5)) == [0, 0]
    assert motion.stack_indices([0], 5, 3).tolist() == [[0, 1, 2, 0, 1]]


def test_flow_stacks_are_x1_y1_x2_y2_of_consecutive_fields(tmp_path):
    path = write_flow_file(tmp_path / "v.hdf5", numbered_fields(19))  # 20 frames -> 19 fields
    sample = motion._flow_segments_raw(path, False, np.random.default_rng(0), size=8, segments=3, centres=True,
                                       new_length=4)
    assert sample.shape == (3, 8, 8, 8) and sample.dtype == np.uint8
    for snippet, start in zip(sample, motion.test_starts(19, 3, 4)):
        expected = [v for i in range(start, start + 4) for v in (10 + i, 100 + i)]  # x1, y1, x2, y2, ...
        assert snippet[0, 0].tolist() == expected
        assert (snippet == snippet[:1, :1]).all()
    one = motion._flow_segments_raw(path, False, np.random.default_rng(0), size=8, segments=1, centres=True,
                                    new_length=2)
    assert one.shape == (8, 8, 4)  # one segment: no segment axis, as a single frame


def test_a_flip_negates_x_of_a_known_field_in_the_sampler(tmp_path):
    # Rightward motion x = +10 px everywhere; y a left-to-right ramp that shows whether the sample was mirrored.
    fields = np.zeros((6, 12, 16, 2), dtype=np.float32)
    fields[..., 0] = 10.0
    fields[..., 1] = np.linspace(-15, 15, 16)[None, None, :]
    levels = codec.quantize(fields)
    path = write_flow_file(tmp_path / "v.hdf5", levels)
    right, left = int(levels[0, 0, 0, 0]), 255 - int(levels[0, 0, 0, 0])
    flipped_seen = plain_seen = 0
    for seed in range(40):
        sample = motion._flow_segments_raw(path, True, np.random.default_rng(seed), size=8, segments=2, new_length=3)
        x, y = sample[..., 0::2], sample[..., 1::2]
        mirrored = y[0, 0, 0, 0] > y[0, 0, -1, 0]  # the ramp runs right-to-left: the sample was flipped
        assert (x == (left if mirrored else right)).all()  # every x channel of every segment, negated iff flipped
        np.testing.assert_allclose(codec.dequantize(np.stack([x[..., 0], x[..., 0]], -1))[..., 0],
                                   -10.0 if mirrored else 10.0, atol=0.1)
        flipped_seen += bool(mirrored)
        plain_seen += not mirrored
    assert flipped_seen and plain_seen
    # TSN's 10-crop test: the mirrored views negate x too, the others keep it
    views = video_chunks.load_chunk(path, [0], size=8, crops=10, reader=motion.SnippetReader("flow", 3))
    assert views.shape == (1, 10, 8, 8, 6)
    assert (views[0, :5, ..., 0::2] == right).all() and (views[0, 5:, ..., 0::2] == left).all()
    np.testing.assert_array_equal(views[0, 5:, ..., 1::2], views[0, :5, :, ::-1, 1::2])  # y only mirrored


def test_rgbdiff_channels_are_the_frame_differences(tmp_path):
    rng = np.random.default_rng(1)
    video = rng.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    path = str(tmp_path / "v.hdf5")
    video_files.write_video_hdf5(path, video)
    length = 3
    sample = motion._rgbdiff_segments_raw(path, False, None, size=8, segments=2, centres=True, new_length=length)
    assert sample.shape == (2, 8, 8, 3 * (length + 1))
    x = model_io.modality_input("rgbdiff", length)(torch.from_numpy(sample.reshape(-1, 8, 8, 3 * (length + 1))))
    assert x.shape == (2, 3 * length, 8, 8)
    std = torch.tensor(normalization.FRAME_STD).view(3, 1, 1)
    for k, start in enumerate(motion.test_starts(12, 2, length + 1)):
        frames = torch.from_numpy(video[start:start + length + 1]).float().permute(0, 3, 1, 2)  # (L+1, 3, H, W)
        expected = ((frames[1:] - frames[:-1]) / (255 * std)).reshape(3 * length, 8, 8)
        torch.testing.assert_close(x[k], expected, atol=1e-4, rtol=1e-4)


def test_flow_normalisation_is_the_documented_one():
    x = model_io.modality_input("flow", 2)(torch.full((1, 4, 4, 4), 128, dtype=torch.uint8))
    assert x.shape == (1, 4, 4, 4)
    torch.testing.assert_close(x, torch.full_like(x, (128 / 255 - 0.5) / 0.226))


def test_the_batch_loader_ships_flow_segments(tmp_path):
    paths = [write_flow_file(tmp_path / f"v{i}.hdf5", numbered_fields(9 + i)) for i in range(3)]
    loader = batching.BatchLoader(paths, [0, 1, 2], 2, "flow", augment=True, size=8, segments=3, new_length=2)
    batches = list(loader)
    assert [b.data.shape for b in batches] == [(2, 3, 8, 8, 4), (1, 3, 8, 8, 4)]
    assert loader._empty_data().shape == (0, 3, 8, 8, 4)


# ----------------------------------------------------------------------------------------------
# The model

def test_cross_modality_init_repeats_the_mean_rgb_filter(tmp_path):
    torch.manual_seed(0)
    import torchvision
    rgb = torchvision.models.resnet18(weights=None).state_dict()
    weights = tmp_path / "imagenet.pth"
    torch.save(rgb, weights)
    parser = train_single_frame.get_args_parser()
    mean_filter = rgb["conv1.weight"].mean(1, keepdim=True)  # (64, 1, 7, 7)
    for modality, length, channels in (("flow", 5, 10), ("rgbdiff", 5, 15), ("flow", 10, 20)):
        args = parser.parse_args(["--arch", "resnet18", "--weights", str(weights), "--modality", modality,
                                  "--new-length", str(length)])
        model = frame_nets.build_model(args, 4, devices.Dist(), pretrained=True)
        assert model.conv1.weight.shape == (64, channels, 7, 7)
        torch.testing.assert_close(model.conv1.weight, mean_filter.expand(-1, channels, -1, -1))
        torch.testing.assert_close(model.layer1[0].conv1.weight, rgb["layer1.0.conv1.weight"])
    scratch = frame_nets.build_model(parser.parse_args(["--arch", "resnet18", "--pretrained", "none",
                                                        "--modality", "flow"]), 4, devices.Dist())
    assert scratch.conv1.weight.shape == (64, 10, 7, 7)
    assert scratch.eval()(torch.zeros(1, 10, 32, 32)).shape == (1, 4)
    rgb_model = frame_nets.build_model(parser.parse_args(["--arch", "resnet18", "--pretrained", "none"]), 4,
                                       devices.Dist())
    assert rgb_model.conv1.weight.shape == (64, 3, 7, 7)


def test_new_length_needs_a_motion_modality():
    assert motion.resolve_new_length("flow", None) == 5 and motion.resolve_new_length("rgb", None) == 1
    with pytest.raises(ValueError, match="--new-length"):
        motion.resolve_new_length("rgb", 5)


# ----------------------------------------------------------------------------------------------
# End to end on a tiny synthetic set

@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("synthetic"))
    make_synthetic_ucf101.make_dataset(out, classes=4, train_per_class=4, test_per_class=2, frames=14,
                                       size=(32, 40), seed=0)
    done = run_group([sys.executable, os.path.join(REPO, "extract_flow.py"), "--data-dir", out,
                      "--method", "dis-ultrafast", "--size", "40x32", "--workers", "0"], timeout=240, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return out


def train_and_test(data_dir, tmp_path, flags, test_flags):
    out = tmp_path / "run"
    train_single_frame.main(train_single_frame.get_args_parser().parse_args(
        ["--data-dir", data_dir, "--output-dir", str(out), *FAST, "--epochs", "1", "--max-steps", "2", *flags]))
    results = test_single_frame.main(test_single_frame.get_args_parser().parse_args(
        ["--checkpoint", str(out / "checkpoint.pth"), "--predictions-dir", str(tmp_path / "p"),
         "--output-dir", str(tmp_path / "o"), "--workers", "0", "--device", "cpu", *test_flags]))
    return out, results


def test_the_flow_stream_trains_and_tests_end_to_end(data_dir, tmp_path):
    out, results = train_and_test(data_dir, tmp_path, ["--modality", "flow", "--new-length", "3", "--segments", "2"],
                                  ["--frames", "4", "--crops", "10"])
    trained = checkpoints.load_checkpoint(str(out / "checkpoint.pth"), what="test")
    assert trained["args"]["modality"] == "flow" and trained["args"]["new_length"] == 3
    assert trained["kind"] == "flow" and trained["model"]["conv1.weight"].shape[1] == 6
    _, _, (paths, _) = split_lists.getUCF101(data_dir, 1)
    for path in paths:
        assert prediction_files.read_predictions(prediction_files.prediction_path(tmp_path / "p", path)).shape == (4, 4)
    info = json.loads((tmp_path / "p" / "model.json").read_text())
    assert info["name"] == "tsn_flow" and info["test"]["modality"] == "flow" and info["temporal"] is True
    assert info["test"]["description"] == "4 snippets at segment centres, 10 crops"
    assert results["videos"] == len(paths)


def test_a_missing_flow_folder_is_one_line(data_dir, tmp_path):
    with pytest.raises(guards.UserError, match="no flow file.*extract_flow.py"):
        train_single_frame.main(train_single_frame.get_args_parser().parse_args(
            ["--data-dir", data_dir, "--output-dir", str(tmp_path / "r"), *FAST, "--modality", "flow",
             "--flow-dir", str(tmp_path / "nowhere")]))
    with pytest.raises(guards.UserError, match="--new-length"):
        train_single_frame.main(train_single_frame.get_args_parser().parse_args(
            ["--data-dir", data_dir, "--output-dir", str(tmp_path / "r"), *FAST, "--new-length", "5"]))


def test_the_test_reads_the_flow_folder_training_was_given(data_dir, tmp_path):
    """A flow model trained with its own --flow-dir is tested on that folder when the test reads the training's
    --data-dir; another data folder gets that folder's default."""
    own = tmp_path / "own-flow"
    shutil.copytree(os.path.join(data_dir, "UCF-101-flow"), own)
    out, results = train_and_test(data_dir, tmp_path, ["--modality", "flow", "--new-length", "3", "--segments",
                                                       "2", "--flow-dir", str(own)], ["--frames", "2"])
    assert results["videos"] == len(split_lists.getUCF101(data_dir, 1)[2][0])
    test_video = split_lists.getUCF101(data_dir, 1)[2][0][0]
    # only the training's folder lacks this test video's flow now: the error names that folder
    (own / os.path.basename(os.path.dirname(test_video)) / (os.path.splitext(os.path.basename(test_video))[0]
                                                           + ".hdf5")).unlink()
    with pytest.raises(guards.UserError, match=f"--flow-dir {own}: 1 of"):
        test_single_frame.main(test_single_frame.get_args_parser().parse_args(
            ["--checkpoint", str(out / "checkpoint.pth"), "--predictions-dir", str(tmp_path / "p2"),
             "--output-dir", str(tmp_path / "o2"), "--workers", "0", "--device", "cpu", "--frames", "2"]))


def test_the_rgbdiff_stream_trains_and_tests_end_to_end(data_dir, tmp_path):
    out, results = train_and_test(data_dir, tmp_path, ["--modality", "rgbdiff", "--new-length", "2"],
                                  ["--frames", "3", "--crops", "3"])
    trained = checkpoints.load_checkpoint(str(out / "checkpoint.pth"), what="test")
    assert trained["args"]["modality"] == "rgbdiff" and trained["model"]["conv1.weight"].shape[1] == 6
    info = json.loads((tmp_path / "p" / "model.json").read_text())
    assert info["name"] == "rgbdiff" and info["test"]["new_length"] == 2
    assert results["videos"] == len(split_lists.getUCF101(data_dir, 1)[2][0])


def test_sampling_module_is_unchanged_for_rgb():
    assert motion.sample_kind("rgb", 1) == "frame" and motion.sample_kind("rgb", 3) == "segments"
    assert motion.loader_kwargs("rgb", 3, 1) == {"segments": 3}
    assert batching.SAMPLE_LOADERS["segments"] is sampling._segments_raw


def test_rgb_and_flow_fuse_in_combine_results_as_computed_by_hand(data_dir, tmp_path):
    """Two-stream fusion through combine_results.py (TSN's 1 : 1.5): its top-1 and per-video scores equal
    numpy's weighted sum of each model's mean log-softmax over its rows, from the written prediction files."""
    import combine_results
    train_and_test(data_dir, tmp_path / "rgb", ["--segments", "2"], ["--frames", "3"])
    train_and_test(data_dir, tmp_path / "flow", ["--modality", "flow", "--new-length", "3", "--segments", "2"],
                   ["--frames", "3"])
    results = combine_results.main(combine_results.get_args_parser().parse_args(
        ["--data-dir", data_dir, "--model", f"rgb={tmp_path / 'rgb' / 'p'}",
         "--model", f"flow={tmp_path / 'flow' / 'p'}", "--fuse", "rgb,flow", "--weights", "1,1.5",
         "--fusion", "logmean", "--output-dir", str(tmp_path / "report")]))
    _, _, (paths, labels) = split_lists.getUCF101(data_dir, 1)

    def mean_log_softmax(folder, path):
        logits = prediction_files.read_predictions(prediction_files.prediction_path(folder, path)).astype(np.float64)
        shifted = logits - logits.max(axis=1, keepdims=True)
        return (shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))).mean(axis=0)
    fused = np.stack([1.0 * mean_log_softmax(tmp_path / "rgb" / "p", p)
                      + 1.5 * mean_log_softmax(tmp_path / "flow" / "p", p) for p in paths])
    hand_top1 = float(np.mean(fused.argmax(axis=1) == np.asarray(labels)))
    assert results["evaluation"]["rgb+flow"]["top1"] == pytest.approx(hand_top1)
    assert results["fusions"]["rgb+flow"]["weights"] == pytest.approx([1.0, 1.5])
    hand_per_class = {}
    for c, name in enumerate(results["class_list"]):
        mine = np.asarray(labels) == c
        hand_per_class[name] = float(np.mean(fused[mine].argmax(axis=1) == c))
    assert results["evaluation"]["rgb+flow"]["per_class_accuracy"] == pytest.approx(hand_per_class)
    hand_confusion = np.zeros((len(results["class_list"]),) * 2, dtype=np.int64)
    np.add.at(hand_confusion, (np.asarray(labels), fused.argmax(axis=1)), 1)
    assert np.array_equal(np.load(tmp_path / "report" / "confusion_rgb+flow.npy"), hand_confusion)
