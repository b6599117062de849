"""Mistakes and odd inputs that used to end in a traceback (issue 20, item 4) or in a silently empty
result (item 6): each is now one line naming the bad thing (exit status 2), or, for a bad video, the
video is skipped and named and the others are done.

Scripts run in this process through their own command line (engine.run_main), as in test_bad_inputs.py:
milliseconds instead of the ~3 s of a torch import per subprocess.
"""
import json
import os
import sys

import h5py
import numpy as np
import pytest
import torch

import combine_results
import extract_features
import make_split_lists
import make_synthetic_ucf101
import predict
import resnet_3d
import test_3d
import test_rnn
import test_single_frame
import train_3d
import train_single_frame
from actionrec.data import batching, feature_files, split_lists, video_files
from actionrec.engine import arg_types, checkpoints, devices, optim, runlog, runner
from actionrec.evaluation import jsonfile
from actionrec.evaluation import predictions as prediction_files
from actionrec.zoo import frame_nets

CPU = ["--workers", "0", "--device", "cpu"]
CLASSES = 3
SMALL = ["--arch", "resnet18", "--pretrained", "none", "--image-size", "32", "--no-tensorboard", *CPU]
SCRIPTS = {"train_single_frame.py": train_single_frame, "test_single_frame.py": test_single_frame,
           "train_3d.py": train_3d, "test_3d.py": test_3d, "test_rnn.py": test_rnn,
           "extract_features.py": extract_features, "predict.py": predict}


def run_script(name, argv, monkeypatch, capsys):
    """(exit status, stdout, stderr) of `python NAME ARGV` through engine.run_main, in this process."""
    module = SCRIPTS[name]
    monkeypatch.setattr(sys, "argv", [name] + argv)  # argparse takes the program name from here
    monkeypatch.setenv("TORCH_HOME", os.path.join(os.path.dirname(__file__), "no-torch-home"))  # never fetch weights
    capsys.readouterr()
    try:
        result = runner.run_main(module.main, module.get_args_parser(), argv)
        code = result if type(result) is int else 0  # predict.py's main returns its exit status
    except SystemExit as e:
        code = e.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error_line(code, err, prog, *needles):
    """The one `PROG: error: ...` line that ends stderr, exit status 2, no traceback."""
    assert "Traceback" not in err, err[-3000:]
    assert code == 2, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith(f"{prog}: error: ")]
    assert len(lines) == 1 and err.strip().splitlines()[-1] == lines[0], err[-3000:]
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """9 training videos (3 per class) and 3 test videos of 6 frames, 32x40."""
    root = str(tmp_path_factory.mktemp("data"))
    make_synthetic_ucf101.make_dataset(root, classes=CLASSES, train_per_class=3, test_per_class=1, frames=6,
                                       size=(32, 40), seed=0)
    return root


def copy_dataset(data, tmp_path):
    """A copy of the dataset whose videos a test may damage."""
    import shutil
    target = str(tmp_path / "data")
    shutil.copytree(data, target)
    return target


def plant_group_video(path):
    """An HDF5 file whose `video` is a group, not a dataset."""
    os.remove(path)
    with h5py.File(path, "w") as f:
        f.create_group("video").create_dataset("frames", data=np.zeros((3, 4, 4, 3), np.uint8))


def save_checkpoint(path, kind, args, model=None):
    """A training-script checkpoint with the given args (weights: `model`'s, or none at all)."""
    torch.save(
        {
            "model": model.state_dict() if model is not None else {},
            "class_list": [f"C{i}" for i in range(CLASSES)],
            "args": args,
            "kind": kind,
        },
        path,
    )
    return str(path)


# ----------------------------------------------------------------------------------------------
# 1. An HDF5 video whose `video` entry is a group: an unreadable video like any damaged file

def test_a_video_group_is_a_read_error(tmp_path):
    path = str(tmp_path / "v_X_g01_c01.hdf5")
    open(path, "w").close()
    plant_group_video(path)
    for read in (video_files.video_info, lambda p: video_files.read_frames(p, [0])):
        with pytest.raises(video_files.READ_ERRORS) as caught:
            read(path)
        assert isinstance(caught.value, video_files.VideoReadError) and "no 'video' dataset" in str(caught.value)
        assert "group" in str(caught.value)


@pytest.fixture(scope="module")
def frame_checkpoint(data, tmp_path_factory):
    """A one-step train_single_frame.py run at 32x32 on `data`."""
    out = str(tmp_path_factory.mktemp("frame_run"))
    train_single_frame.main(train_single_frame.get_args_parser().parse_args(
        ["--data-dir", data, "--output-dir", out, "--epochs", "1", "--max-steps", "1", "--batch-size", "4", *SMALL]))
    return os.path.join(out, checkpoints.CHECKPOINT_NAME)


def test_the_test_skips_a_video_group_and_tests_the_others(data, frame_checkpoint, tmp_path, monkeypatch, capsys):
    data = copy_dataset(data, tmp_path)
    _, _, (test_paths, _) = split_lists.getUCF101(data, 1)
    bad = str(test_paths[1])
    plant_group_video(bad)
    code, out, err = run_script("test_single_frame.py", [
        "--checkpoint", frame_checkpoint, "--data-dir", data, "--predictions-dir", str(tmp_path / "pred"),
        "--output-dir", str(tmp_path / "test"), *CPU], monkeypatch, capsys)
    assert code == 1 and "Traceback" not in err, err[-3000:]  # the others done, it named: exit status 1
    assert f"  {bad}: " in out
    results = json.loads((tmp_path / "test" / "results.json").read_text())
    assert results["failed_videos"] == [bad] and results["videos"] == len(test_paths) - 1


def test_predict_names_a_video_group_and_predicts_the_next_video(data, frame_checkpoint, tmp_path, monkeypatch,
                                                                 capsys):
    bad = str(tmp_path / "v_Bad_g01_c01.hdf5")
    open(bad, "w").close()
    plant_group_video(bad)
    _, _, (test_paths, _) = split_lists.getUCF101(data, 1)
    good = str(test_paths[0])
    code, out, err = run_script("predict.py", [bad, good, "--checkpoint", frame_checkpoint, "--json",
                                               "--device", "cpu"], monkeypatch, capsys)
    assert code == 1 and "Traceback" not in err, err[-3000:]
    named = [line for line in err.splitlines() if bad in line]
    assert len(named) == 1 and named[0].startswith("predict.py: ") and "no 'video' dataset" in named[0]
    assert [json.loads(line)["path"] for line in out.splitlines() if line.startswith("{")] == [good]


# ----------------------------------------------------------------------------------------------
# 2. BatchNorm and a training batch of one sample

def test_a_training_tail_of_one_sample_joins_the_step_before():
    paths, labels = [f"v{i}.hdf5" for i in range(9)], [0] * 9
    assert [len(s) for s in batching.BatchLoader(paths, labels, 4, shuffle=True)._steps()] == [4, 4, 1]
    assert [len(s) for s in batching.BatchLoader(paths, labels, 4, shuffle=True, min_share=2)._steps()] == [4, 5]
    # two ranks: a tail of 3 would leave rank 1 one sample
    steps = batching.BatchLoader(paths[:7], labels[:7], 2, world_size=2, min_share=2)._steps()
    assert [len(s) for s in steps] == [7]


def test_only_a_model_that_trains_batchnorm_gets_the_longer_last_step():
    model = frame_nets.build_model(train_single_frame.get_args_parser().parse_args(
        ["--arch", "resnet18", "--pretrained", "none"]), CLASSES, devices.Dist(), pretrained=False)
    optim.set_trainable(model, "fc")  # every BatchNorm frozen: kept in eval mode, any batch will do
    assert not optim.trains_batchnorm(model, bn_drift=False) and optim.trains_batchnorm(model, bn_drift=True)
    optim.set_trainable(model, "layer4.1,fc")
    assert optim.trains_batchnorm(model, bn_drift=False)


def train_log(out):
    with open(os.path.join(out, runlog.LOG_NAME)) as f:
        return [json.loads(line) for line in f]


def test_training_at_a_small_size_with_a_tail_of_one_sample(data, tmp_path, monkeypatch, capsys):
    # 9 training videos, batch 4: the last sample used to be a batch of its own, which BatchNorm refuses
    # at 32x32 (layer4's maps are 1x1)
    out = str(tmp_path / "run")
    code, _, err = run_script("train_single_frame.py", ["--data-dir", data, "--output-dir", out, "--epochs", "1",
                                                         "--batch-size", "4", *SMALL], monkeypatch, capsys)
    assert code == 0 and "Traceback" not in err, err[-3000:]
    assert train_log(out)[0]["samples"] == 9  # every sample trained on


def test_batch_size_1_where_batchnorm_cannot_train_is_one_line(data, tmp_path, monkeypatch, capsys):
    code, _, err = run_script("train_single_frame.py", ["--data-dir", data, "--output-dir", str(tmp_path / "run"),
                                                         "--epochs", "1", "--batch-size", "1", *SMALL],
                              monkeypatch, capsys)
    one_error_line(code, err, "train_single_frame.py", "--batch-size 1", "--image-size")


def test_a_batch_an_unreadable_video_leaves_one_sample_is_skipped(data, tmp_path, monkeypatch, capsys):
    data = copy_dataset(data, tmp_path)
    _, (train_paths, train_labels), _ = split_lists.getUCF101(data, 1)
    # The video in the first step (2 samples) of epoch 0, as the training loader draws it.
    loader = batching.BatchLoader(train_paths, train_labels, 2, shuffle=True, seed=0, min_share=2)
    first_step = loader._steps()[0]
    assert len(first_step) == 2
    with open(train_paths[first_step[0]], "wb") as f:
        f.write(b"not a video")
    out = str(tmp_path / "run")
    code, _, err = run_script("train_single_frame.py", ["--data-dir", data, "--output-dir", out, "--epochs", "1",
                                                         "--batch-size", "2", *SMALL], monkeypatch, capsys)
    assert code == 1 and "Traceback" not in err, err[-3000:]  # trained to the end; the video named: exit 1
    assert "note: step 1 skipped" in err
    assert train_log(out)[0]["samples"] == 9 - 2  # the unreadable video and the one left alone in its batch


# ----------------------------------------------------------------------------------------------
# 3, 6. Flags the shared parser refuses: a negative or too large seed, an image size beyond allocation

@pytest.mark.parametrize("script", ["train_single_frame.py", "test_single_frame.py", "train_3d.py",
                                    "extract_features.py"])
@pytest.mark.parametrize("flag, value", [("--seed", "-1"), ("--seed", str(2 ** 64)), ("--image-size", "100000")])
def test_the_shared_flags_refuse_values_that_cannot_work(script, flag, value, tmp_path, monkeypatch, capsys):
    argv = {"test_single_frame.py": ["--checkpoint", "c.pth", "--predictions-dir", "p", "--output-dir", "o"],
            "extract_features.py": ["--output-dir", "o"]}.get(script, [])
    code, _, err = run_script(script, argv + [flag, value], monkeypatch, capsys)
    one_error_line(code, err, script, f"argument {flag}", value)


def test_the_largest_seed_torch_takes_trains(data, tmp_path, monkeypatch, capsys):
    code, _, err = run_script("train_single_frame.py", [
        "--data-dir", data, "--output-dir", str(tmp_path / "run"), "--epochs", "1", "--max-steps", "1",
        "--batch-size", "4", "--seed", str(arg_types.MAX_SEED), *SMALL], monkeypatch, capsys)
    assert code == 0, err[-3000:]


@pytest.mark.parametrize("error", [
    MemoryError("Unable to allocate 27.9 GiB for an array with shape (1, 100000, 100000, 3) and data type uint8"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you "
                 "tried to allocate 10000000000000 bytes. Error code 12 (Cannot allocate memory)"),
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
])
def test_an_allocation_that_fails_is_one_line(error, monkeypatch, capsys):
    def main(args):
        raise error
    monkeypatch.setattr(sys, "argv", ["train_single_frame.py"])
    with pytest.raises(SystemExit) as caught:
        runner.run_main(main, train_single_frame.get_args_parser(), [])
    line = one_error_line(caught.value.code, capsys.readouterr().err, "train_single_frame.py", "out of memory",
                          "--batch-size or --image-size")
    assert "enforce fail" not in line


def test_a_runtime_error_that_is_no_allocation_keeps_its_traceback():
    def main(args):
        raise RuntimeError("a bug")
    with pytest.raises(RuntimeError, match="a bug"):
        runner.run_main(main, train_single_frame.get_args_parser(), [])


# ----------------------------------------------------------------------------------------------
# 4. --layer4-blocks beyond what the 3D ResNet's depth has

def test_train_3d_layer4_blocks_beyond_the_depth_is_one_line(data, tmp_path, monkeypatch, capsys):
    code, _, err = run_script("train_3d.py", [
        "--data-dir", data, "--output-dir", str(tmp_path / "run"), "--depth", "10", "--layer4-blocks", "2",
        "--kinetics-checkpoint", "none", "--image-size", "32", "--clip-len", "4", "--no-tensorboard", *CPU],
        monkeypatch, capsys)
    one_error_line(code, err, "train_3d.py", "--layer4-blocks 2", "ResNet-10 has 1 block in layer4")


def clip_args(data, **changes):
    return {"data_dir": data, "split": 1, "image_size": 32, "seed": 0, "arch": "resnet", "depth": 10,
            "layer4_blocks": 1, "clip_len": 4, "norm": "assignment", **changes}


def test_test_3d_layer4_blocks_beyond_the_depth_is_one_line(data, tmp_path, monkeypatch, capsys):
    model = resnet_3d.generate_model(10, shortcut_type="A", num_classes=CLASSES)
    path = save_checkpoint(tmp_path / "clip.pth", "clip", clip_args(data), model)
    code, _, err = run_script("test_3d.py", ["--checkpoint", path, "--predictions-dir", str(tmp_path / "p"),
                                             "--output-dir", str(tmp_path / "o"), "--layer4-blocks", "3", *CPU],
                              monkeypatch, capsys)
    one_error_line(code, err, "test_3d.py", "--layer4-blocks 3", path, "1 block(s) in layer4")


# ----------------------------------------------------------------------------------------------
# 5. combine_results.py --output-dir naming a file

def test_combine_results_output_dir_that_is_a_file_is_one_line(data, tmp_path, capsys, monkeypatch):
    _, _, (test_paths, _) = split_lists.getUCF101(data, 1)
    predictions = tmp_path / "pred"
    rng = np.random.default_rng(0)
    for path in test_paths:
        prediction_files.write_predictions(
            prediction_files.prediction_path(str(predictions), path), rng.normal(size=(3, CLASSES))
        )
    output = tmp_path / "report"
    output.write_text("my notes\n")
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["combine_results.py"])  # argparse takes the program name from here
    with pytest.raises(SystemExit) as caught:
        runner.run_main(combine_results.main, combine_results.get_args_parser(),
                        ["--data-dir", data, "--single-frame", str(predictions), "--output-dir", str(output)])
    one_error_line(caught.value.code, capsys.readouterr().err, "combine_results.py", str(output), "is a file")
    assert output.read_text() == "my notes\n"


# ----------------------------------------------------------------------------------------------
# 7. Damaged values in a checkpoint's args: one line naming the checkpoint and the value

FRAME_ARGS = {"split": 1, "image_size": 32, "seed": 0, "arch": "resnet18"}
DAMAGED_FRAME_ARGS = [({"arch": "resnet999"}, "'resnet999'"), ({"image_size": "32"}, "image_size='32'"),
                      ({"image_size": 32.5}, "32.5"), ({"image_size": 100000}, "100000"),
                      ({"segments": 0}, "segments=0"), ({"split": 7}, "split=7"), ({"dropout": 5.0}, "dropout")]


@pytest.mark.parametrize("changes, needle", DAMAGED_FRAME_ARGS, ids=[str(c) for c, _ in DAMAGED_FRAME_ARGS])
@pytest.mark.parametrize("script", ["test_single_frame.py", "predict.py", "extract_features.py"])
def test_damaged_frame_checkpoint_args_are_one_line(script, changes, needle, data, tmp_path, monkeypatch, capsys):
    path = save_checkpoint(tmp_path / "frame.pth", "frame", {"data_dir": data, **FRAME_ARGS, **changes})
    _, _, (test_paths, _) = split_lists.getUCF101(data, 1)
    argv = {"test_single_frame.py": ["--checkpoint", path, "--predictions-dir", str(tmp_path / "p"),
                                     "--output-dir", str(tmp_path / "o"), *CPU],
            "predict.py": [str(test_paths[0]), "--checkpoint", path, "--device", "cpu"],
            "extract_features.py": ["--checkpoint", path, "--data-dir", data, "--output-dir", str(tmp_path / "f"),
                                    *CPU]}[script]
    code, _, err = run_script(script, argv, monkeypatch, capsys)
    one_error_line(code, err, script, path, needle)


DAMAGED_CLIP_ARGS = [({"depth": 7}, "depth=7"), ({"norm": "imagenet"}, "'imagenet'"),
                     ({"layer4_blocks": 3}, "layer4"), ({"clip_len": -4}, "clip_len=-4"), ({"arch": "i3d"}, "'i3d'")]


@pytest.mark.parametrize("changes, needle", DAMAGED_CLIP_ARGS, ids=[str(c) for c, _ in DAMAGED_CLIP_ARGS])
@pytest.mark.parametrize("script", ["test_3d.py", "predict.py"])
def test_damaged_clip_checkpoint_args_are_one_line(script, changes, needle, data, tmp_path, monkeypatch, capsys):
    path = save_checkpoint(tmp_path / "clip.pth", "clip", clip_args(data, **changes))
    _, _, (test_paths, _) = split_lists.getUCF101(data, 1)
    argv = {"test_3d.py": ["--checkpoint", path, "--predictions-dir", str(tmp_path / "p"),
                           "--output-dir", str(tmp_path / "o"), *CPU],
            "predict.py": [str(test_paths[0]), "--checkpoint", path, "--device", "cpu"]}[script]
    code, _, err = run_script(script, argv, monkeypatch, capsys)
    one_error_line(code, err, script, path, needle)


DAMAGED_RNN_ARGS = [({"cell": "transformer"}, "'transformer'"), ({"hidden": 0}, "hidden=0"),
                    ({"bidirectional": "yes"}, "bidirectional='yes'"), ({"max_frames": 2.5}, "max_frames=2.5")]


@pytest.mark.parametrize("changes, needle", DAMAGED_RNN_ARGS, ids=[str(c) for c, _ in DAMAGED_RNN_ARGS])
def test_damaged_rnn_checkpoint_args_are_one_line(changes, needle, data, tmp_path, monkeypatch, capsys):
    features = tmp_path / "features"
    jsonfile.write_json(str(features / feature_files.FEATURES_INFO), {"arch": "resnet18", "dims": 8})
    path = save_checkpoint(tmp_path / "rnn.pth", "features", {
        "data_dir": data, "split": 1, "image_size": 32, "seed": 0, "input_size": 8, "cell": "gru", "layers": 1,
        "hidden": 4, "features": str(features), "max_frames": 6, **changes})
    code, _, err = run_script("test_rnn.py", ["--checkpoint", path, "--predictions-dir", str(tmp_path / "p"),
                                              "--output-dir", str(tmp_path / "o"), *CPU], monkeypatch, capsys)
    one_error_line(code, err, "test_rnn.py", path, needle)


# ----------------------------------------------------------------------------------------------
# Item 6: make_split_lists.py with nothing it could put in a test list

def test_make_split_lists_with_one_video_per_label_writes_nothing(tmp_path, capsys):
    videos = tmp_path / "videos"
    for label in ("Alpha", "Beta", "Gamma"):
        (videos / label).mkdir(parents=True)
        (videos / label / f"{label.lower()}.mp4").touch()
    out = tmp_path / "lists"
    with pytest.raises(SystemExit) as caught:
        make_split_lists.main(make_split_lists.get_args_parser().parse_args(
            ["--videos", str(videos), "--out", str(out)]))
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err  # no warning per label before it
    one_error_line(caught.value.code, err, "make_split_lists.py", "cannot split", "Alpha (1 video)", "Gamma")
    assert not out.exists()
