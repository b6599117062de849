"""Every script x every file or folder argument it takes x every bad kind of file: one line on stderr
that names the file, exit status 2 (or the status the README documents), no traceback, and nothing
already written lost or half-written; a file crafted to run code when unpickled is refused without
running it. Then: writes that fail on a full disk, non-finite model outputs, and a few real processes.

The matrix is data. To add a script: one SCRIPTS entry (its module, and whether its `__main__` goes
through engine.run_main), then one ARGS entry per file or folder argument: the kinds of plant() that
apply, a build(world, tmp) -> (argv, path of the bad thing) and, where the documented outcome is not
"exit 2, one line naming the path", an Expect per kind. Cases run in this process through the
script's own command-line entry (the program name it prints included), which costs milliseconds
instead of the ~3 s of a torch import per subprocess.
"""
import errno
import hashlib
import json
import os
import pickle
import shutil
import sys
from typing import Callable, NamedTuple, Optional

import h5py
import numpy as np
import pytest
import torch
import torchvision

import combine_results
import extract_features
import make_split_lists
import make_synthetic_ucf101
import predict
import prepare_ucf101
import resnet_3d
import test_3d
import test_rnn
import test_single_frame
import train_3d
import train_rnn
import train_single_frame
from actionrec import guards
from actionrec.data import feature_files, split_lists, video_groups
from actionrec.engine import checkpoints, devices, output_provenance, runlog, runner
from actionrec.evaluation import jsonfile
from actionrec.evaluation import predictions as prediction_files
from actionrec.inference import clip_views, feature_extraction, frame_views, rnn_views
from actionrec.models import c3d, feature_rnn
from actionrec.zoo import frame_nets
from helpers import run_group

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPU = ["--workers", "0", "--device", "cpu"]
CLASSES = 3
FRAMES = 10
DIMS = 8  # feature size of the crafted feature files
TESTED = 3  # test videos the test scripts run on (--limit): the bad one is the second


# ----------------------------------------------------------------------------------------------
# The world the cases start from: a tiny dataset, checkpoints of every kind, features, predictions

def frame_model():
    return frame_nets.build_model(
        train_single_frame.get_args_parser().parse_args(["--arch", "resnet18", "--pretrained", "none"]),
        CLASSES, devices.Dist(), pretrained=False)


def clip_model():
    return resnet_3d.generate_model(10, shortcut_type="A", num_classes=CLASSES, layer4_blocks=1)


def rnn_model():
    return feature_rnn.FeatureRNN(input_size=DIMS, num_classes=CLASSES, layers=1, hidden=4)


class World(NamedTuple):
    root: str
    data: str           # the synthetic dataset (lists + UCF-101-hdf5)
    class_list: list
    test_videos: list
    features: str       # extract_features.py-style folder for every video, DIMS features per frame
    files: dict         # kind -> a file of that kind (checkpoints, released weights)
    predictions: dict   # model name -> prediction folder of the test videos (combine_results)
    val_predictions: dict  # model name -> prediction folder of the validation videos (group 3)
    trained_run: str    # OUTPUT_DIR of a one-epoch train_single_frame.py run (checkpoint.pth, log.jsonl)


def training_checkpoint(model, kind, args, class_list):
    """What the training scripts write (engine.train's state), with a fresh optimizer."""
    optimizer = torch.optim.Adam(model.parameters())
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scaler": torch.amp.GradScaler("cpu", enabled=False).state_dict(), "epoch": 1, "step": 0,
            "partial": None, "args": args, "class_list": class_list, "kind": kind, "global_batch": 4,
            "val_groups": [], "lr_schedule": {"schedule": "constant", "steps_per_epoch": 3, "factor": 1.0}}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    data = str(root / "data")
    make_synthetic_ucf101.make_dataset(data, classes=CLASSES, train_per_class=5, test_per_class=2,
                                       frames=FRAMES, size=(32, 40), seed=0)
    class_list, (train_paths, _), (test_paths, _) = split_lists.getUCF101(data, 1)
    class_list = [str(c) for c in class_list]
    torch.manual_seed(0)
    common = {"data_dir": data, "split": 1, "image_size": 32, "seed": 0}
    files = {}

    def save(name, obj):
        files[name] = str(root / f"{name}.pth")
        torch.save(obj, files[name])

    frame = training_checkpoint(frame_model(), "frame", {**common, "arch": "resnet18"}, class_list)
    save("frame-ckpt", frame)
    save("misfit-frame-ckpt", {**frame, "args": {**common, "arch": "resnet34"}})  # weights of another arch
    save("stripped-frame-ckpt", {k: frame[k] for k in ("model", "class_list", "args", "kind")})  # saved by hand
    save("odd-ckpt", {"model": frame["model"], "class_list": class_list, "args": ["resnet18"], "kind": ["frame"]})
    save("clip-ckpt", training_checkpoint(clip_model(), "clip", {
        **common, "arch": "resnet", "depth": 10, "layer4_blocks": 1, "clip_len": 8, "norm": "assignment"}, class_list))
    features = str(root / "features")
    save("rnn-ckpt", training_checkpoint(rnn_model(), "features", {
        **common, "input_size": DIMS, "cell": "gru", "layers": 1, "hidden": 4, "features": features,
        "max_frames": FRAMES}, class_list))
    kinetics = resnet_3d.generate_model(10, shortcut_type="A", num_classes=400)
    save("kinetics-file", {"epoch": 200, "arch": "resnet-10", "optimizer": {},
                           "state_dict": {f"module.{k}": v for k, v in kinetics.state_dict().items()}})
    save("c3d-file", c3d.C3D(num_classes=487, width=0.125).state_dict())
    save("imagenet-file", torchvision.models.resnet18(weights=None).state_dict())
    rng = np.random.default_rng(0)
    for path in list(train_paths) + list(test_paths):
        feature_extraction.write_features(prediction_files.prediction_path(features, path),
                                        rng.normal(size=(FRAMES, DIMS)), {"frames": FRAMES})
    jsonfile.write_json(os.path.join(features, feature_files.FEATURES_INFO),
                       {"arch": "resnet18", "weights": "test", "image_size": 32, "frame_stride": 1, "dims": DIMS})
    predictions, val_predictions = {}, {}
    for name in ("single_frame", "3d"):
        predictions[name], val_predictions[name] = str(root / name / "predictions"), str(root / name / "val")
        for path in test_paths:
            prediction_files.write_predictions(
                prediction_files.prediction_path(predictions[name], path), rng.normal(size=(3, CLASSES))
            )
        for path in train_paths:
            if video_groups.video_group(path) == 3:
                prediction_files.write_predictions(prediction_files.prediction_path(val_predictions[name], path),
                                          rng.normal(size=(3, CLASSES)))
    run = str(root / "trained")
    train_single_frame.main(train_single_frame.get_args_parser().parse_args(
        ["--data-dir", data, "--output-dir", run, "--epochs", "1", "--max-steps", "1", "--image-size", "32",
         "--no-tensorboard", "--arch", "resnet18", "--pretrained", "none", "--batch-size", "8", *CPU]))
    return World(str(root), data, class_list, [str(p) for p in test_paths], features, files, predictions,
                 val_predictions, run)


# ----------------------------------------------------------------------------------------------
# Bad kinds of files and folders

MARKER_NAME = "unpickled-code-ran"


class RunsCode:
    """Unpickling this creates a marker file: what a checkpoint crafted to run code would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant(kind, path, world):
    """Put a bad `kind` of file or folder at `path` (kinds of world.files are copied there)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    marker = os.path.join(os.path.dirname(path), MARKER_NAME)
    if kind == "missing":
        return
    if kind in ("directory", "empty-dir"):
        os.makedirs(path)
        if kind == "directory":
            open(os.path.join(path, "notes.txt"), "w").close()
        return
    if kind in world.files:
        os.symlink(world.files[kind], path)  # not copied: some are 45 MB
        return
    if kind == "truncated":  # half of a real checkpoint: what a killed copy or a full disk leaves
        with open(world.files["rnn-ckpt"], "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[:len(data) // 2])
        return
    if kind == "tensor":  # a real torch file, but not a dict
        torch.save(torch.zeros(3), path)
        return
    if kind == "evil-zip":  # torch.save's zip format with a pickle that calls open()
        torch.save({"model": RunsCode(marker)}, path)
        return
    if kind == "nan-features":
        feature_extraction.write_features(path, np.full((FRAMES, DIMS), np.nan), {"frames": FRAMES})
        return
    if kind == "nan-predictions":
        prediction_files.write_predictions(path, np.full((3, CLASSES), np.nan))
        return
    if kind == "wrong-shape":
        prediction_files.write_predictions(path, np.zeros((3, CLASSES + 2)))
        return
    if kind == "no-video-dataset":
        with h5py.File(path, "w") as f:
            f.create_dataset("frames", data=np.zeros((3, 4, 4, 3), np.uint8))
        return
    contents = {
        "random": bytes([0xff, 0xfe]) + np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "empty": b"",
        "text": b"notes: train for 10 epochs\nthen test\n",
        "json": json.dumps({"model": "resnet18", "epochs": 10}).encode(),
        "file": b"a file where a folder is expected\n",
        "evil-pickle": pickle.dumps(RunsCode(marker), protocol=2),  # the legacy (non-zip) format
        "malformed": b"1 Alpha\r\nthree Gamma\r\n",
        "unknown-class": b"NoSuchClass/v_NoSuchClass_g01_c01.avi 1\r\n",
    }
    with open(path, "wb") as f:
        f.write(contents[kind])


CHECKPOINT_KINDS = ("missing", "random", "empty", "text", "json", "directory", "truncated", "tensor",
                    "evil-pickle", "evil-zip")
FOLDER_KINDS = ("missing", "file", "empty-dir")
LIST_KINDS = ("random", "empty", "malformed", "directory", "unknown-class")


# ----------------------------------------------------------------------------------------------
# Running a script's command line in this process

class Script(NamedTuple):
    module: object
    engine_cli: bool  # True: `runner.run_main(main, get_args_parser())`; False: `main(get_args_parser().parse_args())`


SCRIPTS = {
    "train_single_frame.py": Script(train_single_frame, True),
    "test_single_frame.py": Script(test_single_frame, True),
    "train_3d.py": Script(train_3d, True),
    "test_3d.py": Script(test_3d, True),
    "extract_features.py": Script(extract_features, True),
    "train_rnn.py": Script(train_rnn, True),
    "test_rnn.py": Script(test_rnn, True),
    "prepare_ucf101.py": Script(prepare_ucf101, True),
    "make_split_lists.py": Script(make_split_lists, False),
    "make_synthetic_ucf101.py": Script(make_synthetic_ucf101, False),
    "combine_results.py": Script(combine_results, True),
    "predict.py": Script(predict, True),
}


def run_script(name, argv, monkeypatch, capsys):
    """(exit status, stdout, stderr) of `python NAME ARGV`, run in this process."""
    script = SCRIPTS[name]
    monkeypatch.setattr(sys, "argv", [name] + argv)  # argparse takes the program name from here
    capsys.readouterr()
    try:
        parser = script.module.get_args_parser()
        if script.engine_cli:
            result = runner.run_main(script.module.main, parser, argv)
        else:
            result = script.module.main(parser.parse_args(argv))
        code = result if type(result) is int else 0  # predict.py's main returns its exit status
    except SystemExit as e:
        code = e.code
        if isinstance(code, str):  # what the interpreter does with sys.exit("message")
            print(code, file=sys.stderr)
            code = 1
        code = code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def error_lines(stderr, prog):
    return [line for line in stderr.splitlines() if line.startswith(f"{prog}: error: ")]


def assert_one_line(code, stderr, prog, expected_code, needles):
    assert "Traceback" not in stderr, stderr
    assert code == expected_code, stderr[-3000:]
    lines = error_lines(stderr, prog)
    assert len(lines) == 1, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == lines[0], stderr[-3000:]  # nothing after the error
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    # torch's own message advises loading with weights_only=False (running whatever the file holds), in
    # terminal colours: never pass it on
    assert "weights_only" not in lines[0] and "\x1b[" not in lines[0], lines[0]
    return lines[0]


def snapshot(folder):
    """{relative path: sha1} of every file under folder (a symbolic link: where it points)."""
    found = {}
    for directory, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(directory, name)
            if os.path.islink(path):
                found[os.path.relpath(path, folder)] = "-> " + os.readlink(path)
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    found[os.path.relpath(path, folder)] = hashlib.sha1(f.read()).hexdigest()
    return found


def assert_nothing_lost(before, after):
    changed = [p for p, digest in before.items() if after.get(p) != digest]
    assert not changed, f"changed or removed by the failed run: {changed}"
    leftovers = [p for p in after if ".tmp-" in p or p.endswith(".tmp")]
    assert not leftovers, f"temporary files left: {leftovers}"
    assert not [p for p in after if os.path.basename(p) == MARKER_NAME], "unpickling ran code"


# ----------------------------------------------------------------------------------------------
# The file and folder arguments of every script

class Expect(NamedTuple):
    """What a case must end in, when not "exit 2, one line naming the file"."""
    code: int = 2
    # check(world, case, code, stdout, stderr, caplog): replaces the one-line check (for documented
    # outcomes that are not an error: a bad video is skipped and named, not a reason to stop)
    check: Optional[Callable] = None
    needles: tuple = ()  # more text the error line must hold


class Case(NamedTuple):
    tmp: str     # the case's folder (everything under it must survive a failed run)
    bad: str     # where the bad file or folder is
    argv: list


class Arg(NamedTuple):
    script: str
    name: str                 # the argument as a user sees it
    kinds: tuple
    build: Callable           # (world, tmp) -> (argv, path of the bad file or folder)
    expect: dict = {}         # kind -> Expect, where it differs from Expect()
    needle: Optional[Callable] = None  # (world, case) -> what the error line must name (default: case.bad)


def already_written(world, tmp):
    """A finished prediction file and an earlier results.json: a failed run must leave them as they are."""
    predictions, output = os.path.join(tmp, "predictions"), os.path.join(tmp, "test")
    prediction_files.write_predictions(
        prediction_files.prediction_path(predictions, world.test_videos[0]), np.zeros((2, CLASSES))
    )
    jsonfile.write_json(os.path.join(output, "results.json"), {"top1": 0.5})
    return predictions, output


def argv_of_test_script(world, tmp, checkpoint, extra=(), data=None):
    predictions, output = already_written(world, tmp)
    return ["--checkpoint", checkpoint, "--predictions-dir", predictions, "--output-dir", output,
            "--data-dir", data or world.data, "--limit", str(TESTED), *CPU, *extra]


TRAIN_FLAGS = {
    "train_single_frame.py": ["--arch", "resnet18", "--batch-size", "8"],
    "train_3d.py": ["--depth", "10", "--clip-len", "8", "--batch-size", "4"],
    "train_rnn.py": ["--hidden", "4", "--layers", "1", "--max-frames", "10", "--batch-size", "4"],
}
PRETRAINED_OFF = {"train_single_frame.py": ["--pretrained", "none"], "train_3d.py": ["--kinetics-checkpoint", "none"],
                  "train_rnn.py": []}


def train_argv(world, tmp, script, extra=(), data=None, output=None, pretrained_off=True):
    features = [] if script != "train_rnn.py" or "--features" in extra else ["--features", world.features]
    return ["--data-dir", data or world.data, "--output-dir", output or os.path.join(tmp, "run"), "--epochs", "1",
            "--image-size", "32", "--no-tensorboard", *CPU, *TRAIN_FLAGS[script],
            *(PRETRAINED_OFF[script] if pretrained_off else []), *features, *extra]


def bad(tmp, name):
    return os.path.join(tmp, "bad", name)


def checkpoint_arg(script, kind_checkpoint, extra=()):
    """--checkpoint of a test script."""
    return lambda world, tmp: (
        argv_of_test_script(world, tmp, bad(tmp, "checkpoint.pth"), extra),
        bad(tmp, "checkpoint.pth"),
    )


def resume_arg(script):
    """OUTPUT_DIR/checkpoint.pth of a training script, read to resume; the earlier log must survive."""
    def build(world, tmp):
        run = os.path.join(tmp, "run")
        os.makedirs(run)
        with open(os.path.join(run, runlog.LOG_NAME), "w") as f:
            f.write(json.dumps({"epoch": 1, "train_loss": 1.0}) + "\n")
        path = os.path.join(run, checkpoints.CHECKPOINT_NAME)
        return train_argv(world, tmp, script), path
    return build


def log_arg(world, tmp):
    """OUTPUT_DIR/log.jsonl of a real one-epoch run (its checkpoint resumes): the checkpoint must survive."""
    run = os.path.join(tmp, "run")
    shutil.copytree(world.trained_run, run)
    os.remove(os.path.join(run, runlog.LOG_NAME))
    return train_argv(world, tmp, "train_single_frame.py", ["--epochs", "2", "--max-steps", "1"]), \
        os.path.join(run, runlog.LOG_NAME)


def data_dir_arg(script):
    def build(world, tmp):
        path = bad(tmp, "data")
        return argv_with_data(world, tmp, script, path), path
    return build


def argv_with_data(world, tmp, script, data):
    if script in ("train_single_frame.py", "train_3d.py", "train_rnn.py"):
        return train_argv(world, tmp, script, data=data)
    if script == "extract_features.py":
        return ["--data-dir", data, "--output-dir", os.path.join(tmp, "features"), "--pretrained", "none",
                "--arch", "resnet18", "--image-size", "32", "--subsets", "test", "--limit", str(TESTED), *CPU]
    if script == "combine_results.py":
        return combine_argv(world, tmp, data=data)
    checkpoint = {"test_single_frame.py": "frame-ckpt", "test_3d.py": "clip-ckpt", "test_rnn.py": "rnn-ckpt"}[script]
    return argv_of_test_script(world, tmp, world.files[checkpoint], data=data)


def list_arg(script, list_name):
    """A split list of --data-dir: the lists are copied, the videos linked."""
    def build(world, tmp):
        data = os.path.join(tmp, "data")
        shutil.copytree(os.path.join(world.data, "ucfTrainTestlist"), os.path.join(data, "ucfTrainTestlist"))
        os.symlink(os.path.join(world.data, split_lists.HDF5_DIR), os.path.join(data, split_lists.HDF5_DIR))
        path = os.path.join(data, "ucfTrainTestlist", list_name)
        os.remove(path)
        return argv_with_data(world, tmp, script, data), path
    return build


def combine_argv(world, tmp, data=None, single_frame=None, val=None):
    report = os.path.join(tmp, "report")
    jsonfile.write_json(os.path.join(report, "results.json"), {"split": 1})  # an earlier report: kept
    argv = [
        "--data-dir",
        data or world.data,
        "--model",
        f"single_frame={single_frame or world.predictions['single_frame']}",
        "--model",
        f"3d={world.predictions['3d']}",
        "--output-dir",
        report,
    ]
    return argv + (["--val", f"single_frame={val}", "--val", f"3d={world.val_predictions['3d']}", "--val-groups", "3",
                    "--weights", "auto"] if val else [])


def combine_folder_arg(flag):
    def build(world, tmp):
        path = bad(tmp, "predictions")
        return (combine_argv(world, tmp, single_frame=path) if flag == "--model" else
                combine_argv(world, tmp, val=path)), path
    return build


def combine_file_arg(world, tmp):
    """A bad file inside a --model prediction folder (the folder is copied)."""
    folder = os.path.join(tmp, "predictions")
    shutil.copytree(world.predictions["single_frame"], folder)
    path = prediction_files.prediction_path(folder, world.test_videos[1])
    os.remove(path)
    return combine_argv(world, tmp, single_frame=folder), path


def summarize_arg(world, tmp):
    good = os.path.join(tmp, "split1")
    jsonfile.write_json(os.path.join(good, "results.json"), {
        "split": 1, "evaluation": {"single_frame": {"top1": 0.5}}, "order": ["single_frame"]})
    path = bad(tmp, "split2")
    return ["--summarize", good, path, "--output-dir", os.path.join(tmp, "summary")], path


def summarize_results_arg(world, tmp):
    argv, folder = summarize_arg(world, tmp)
    os.makedirs(folder)
    return argv, os.path.join(folder, "results.json")


def features_arg(script):
    def build(world, tmp):
        path = bad(tmp, "features")
        if script == "train_rnn.py":
            return train_argv(world, tmp, script, extra=["--features", path]), path
        return argv_of_test_script(world, tmp, world.files["rnn-ckpt"], ["--features", path]), path
    return build


def features_info_arg(script):
    """features.json of a --features folder (the folder is copied)."""
    def build(world, tmp):
        folder = os.path.join(tmp, "features")
        shutil.copytree(world.features, folder)
        path = os.path.join(folder, feature_files.FEATURES_INFO)
        os.remove(path)
        return features_arg_argv(world, tmp, script, folder), path
    return build


def features_arg_argv(world, tmp, script, folder):
    if script == "train_rnn.py":
        return train_argv(world, tmp, script, extra=["--features", folder])
    return argv_of_test_script(world, tmp, world.files["rnn-ckpt"], ["--features", folder])


def feature_file_arg(script):
    """One video's feature file (a test video's for test_rnn, a training video's for train_rnn)."""
    def build(world, tmp):
        folder = os.path.join(tmp, "features")
        shutil.copytree(world.features, folder)
        _, (train_paths, _), _ = split_lists.getUCF101(world.data, 1)
        video = world.test_videos[1] if script == "test_rnn.py" else train_paths[1]
        path = prediction_files.prediction_path(folder, video)
        os.remove(path)
        return features_arg_argv(world, tmp, script, folder), path
    return build


def video_arg(script):
    """A bad video inside a copy of --data-dir (a test video for the test scripts, a training video else)."""
    def build(world, tmp):
        data = os.path.join(tmp, "data")
        shutil.copytree(world.data, data)
        _, (train_paths, _), (test_paths, _) = split_lists.getUCF101(data, 1)
        path = str(test_paths[1] if script.startswith(("test_", "extract_")) else train_paths[1])
        os.remove(path)
        return argv_with_data(world, tmp, script, data), path
    return build


def output_file_arg(script, flag):
    """An output folder that is a file."""
    def build(world, tmp):
        path = bad(tmp, "out")
        if script.startswith("train_"):
            return train_argv(world, tmp, script, output=path), path
        if script == "extract_features.py":
            argv = argv_with_data(world, tmp, script, world.data)
            argv[argv.index(flag) + 1] = path
            return argv, path
        argv = argv_of_test_script(
            world,
            tmp,
            world.files[
                {"test_single_frame.py": "frame-ckpt", "test_3d.py": "clip-ckpt", "test_rnn.py": "rnn-ckpt"}[script]
            ],
            ["--features", world.features] if script == "test_rnn.py" else [],
        )
        argv[argv.index(flag) + 1] = path
        return argv, path
    return build


def weights_arg(script, flag):
    def build(world, tmp):
        path = bad(tmp, "weights.pth")
        if script == "extract_features.py":
            return ["--data-dir", world.data, "--output-dir", os.path.join(tmp, "features"), "--arch", "resnet18",
                    "--image-size", "32", flag, path, *CPU], path
        if script == "train_3d.py" and flag == "--c3d-checkpoint":
            return train_argv(world, tmp, script, ["--arch", "c3d", "--c3d-width", "0.125", "--c3d-adaptive-pool",
                                                   "--clip-len", "16", flag, path], pretrained_off=False), path
        return train_argv(world, tmp, script, [flag, path], pretrained_off=False), path
    return build


def imagenet_cache_arg(world, tmp):
    """The ImageNet weights torchvision cached (--pretrained imagenet, the default): a damaged download."""
    return train_argv(world, tmp, "train_single_frame.py", pretrained_off=False), \
        frame_nets.imagenet_cache_path("resnet18")


def extract_checkpoint_arg(world, tmp):
    path = bad(tmp, "checkpoint.pth")
    return ["--data-dir", world.data, "--output-dir", os.path.join(tmp, "features"), "--checkpoint", path, *CPU], path


def prepare_arg(flag):
    def build(world, tmp):
        videos, out = os.path.join(tmp, "videos"), os.path.join(tmp, "out")
        os.makedirs(os.path.join(videos, "Alpha"))
        shutil.copyfile(os.path.join(REPO, "README.md"), os.path.join(videos, "Alpha", "v_Alpha_g01_c01.avi"))
        os.makedirs(out)
        with open(os.path.join(out, "kept.hdf5"), "wb") as f:  # an earlier conversion: kept
            f.write(b"earlier output")
        argv = {"--videos": ["--videos", bad(tmp, "videos"), "--out", out],
                "--list": ["--videos", videos, "--out", out, "--list", bad(tmp, "list.txt")],
                "--out": ["--videos", videos, "--out", bad(tmp, "out")]}[flag]
        return argv + ["--workers", "0"], argv[argv.index(flag) + 1]
    return build


def split_lists_arg(flag):
    def build(world, tmp):
        argv = {"--videos": ["--videos", bad(tmp, "videos"), "--out", os.path.join(tmp, "lists")],
                "--out": ["--videos", os.path.join(world.data, split_lists.HDF5_DIR), "--out", bad(tmp, "lists")]}[flag]
        return argv, argv[argv.index(flag) + 1]
    return build


def synthetic_arg(world, tmp):
    path = bad(tmp, "synthetic")
    return ["--out", path, "--classes", "2", "--train-per-class", "1", "--test-per-class", "1", "--frames", "2",
            "--size", "16x16"], path


def skipped_and_named_in_the_log(world, case, code, out, err, caplog):
    """Training: a video that cannot be read is dropped from its batch and named; the run goes on to
    its end, names it again there, and the exit status is 1 (the README's contract)."""
    assert code == 1 and "Traceback" not in err, err
    assert case.bad in caplog.text and f"  {case.bad}: " in out
    log = runlog.read_log(os.path.join(case.tmp, "run", runlog.LOG_NAME))
    assert log[-1]["failed_samples"] == 1


def counted_as_failed(world, case, code, out, err, caplog):
    """Testing: the video is named and listed as unreadable in results.json; the others are tested;
    it is named at the end and the exit status is 1."""
    assert code == 1 and "Traceback" not in err, err
    assert f"  {case.bad}: " in out
    results = json.loads(open(os.path.join(case.tmp, "test", "results.json")).read())
    assert results["failed_videos"] == [case.bad] and results["videos"] == TESTED - 1


def listed_with_exit_1(world, case, code, out, err, caplog):
    """extract_features.py: unreadable videos are listed at the end and make the exit status 1."""
    assert code == 1 and "Traceback" not in err, err
    assert f"  {case.bad}: " in out


VIDEO_KINDS = ("random", "empty", "text", "directory", "no-video-dataset")
FRAME_OTHERS = ("clip-ckpt", "rnn-ckpt", "kinetics-file", "imagenet-file")
TEST_CHECKPOINT_KINDS = CHECKPOINT_KINDS + ("odd-ckpt",)
WEIGHT_KINDS = CHECKPOINT_KINDS + ("kinetics-file", "c3d-file", "clip-ckpt", "rnn-ckpt")
RESUME_KINDS = tuple(k for k in CHECKPOINT_KINDS if k != "missing")

ARGS = [
    # test scripts
    Arg(
        "test_single_frame.py",
        "--checkpoint",
        TEST_CHECKPOINT_KINDS + FRAME_OTHERS + ("misfit-frame-ckpt",),
        checkpoint_arg("test_single_frame.py", "frame-ckpt"),
        {"clip-ckpt": Expect(needles=("test_3d.py",)), "rnn-ckpt": Expect(needles=("test_rnn.py",))},
    ),
    Arg(
        "test_3d.py",
        "--checkpoint",
        TEST_CHECKPOINT_KINDS + ("frame-ckpt", "rnn-ckpt", "kinetics-file", "c3d-file"),
        checkpoint_arg("test_3d.py", "clip-ckpt"),
        {"frame-ckpt": Expect(needles=("test_single_frame.py",))},
    ),
    Arg(
        "test_rnn.py",
        "--checkpoint",
        TEST_CHECKPOINT_KINDS + ("frame-ckpt", "clip-ckpt", "imagenet-file"),
        checkpoint_arg("test_rnn.py", "rnn-ckpt", ["--features", "unused"]),
    ),
    Arg("test_rnn.py", "--features", FOLDER_KINDS, features_arg("test_rnn.py")),
    Arg(
        "test_rnn.py",
        "--features/features.json",
        ("random", "empty", "text", "directory"),
        features_info_arg("test_rnn.py"),
    ),
    Arg(
        "test_rnn.py",
        "--features/<video>.hdf5",
        ("nan-features",),
        feature_file_arg("test_rnn.py"),
        {"nan-features": Expect(needles=("non-finite",))},
    ),
    Arg(
        "test_rnn.py",
        "--features/<video>.hdf5 (unreadable)",
        ("random", "empty", "directory"),
        feature_file_arg("test_rnn.py"),
        {k: Expect(1, counted_as_failed) for k in ("random", "empty", "directory")},
    ),
    # training scripts
    Arg("train_single_frame.py", "--weights", WEIGHT_KINDS, weights_arg("train_single_frame.py", "--weights")),
    Arg(
        "train_single_frame.py",
        "OUTPUT_DIR/checkpoint.pth",
        RESUME_KINDS + FRAME_OTHERS + ("stripped-frame-ckpt",),
        resume_arg("train_single_frame.py"),
    ),
    Arg("train_single_frame.py", "OUTPUT_DIR/log.jsonl", ("random", "text", "json", "directory"), log_arg),
    Arg(
        "train_single_frame.py",
        "$TORCH_HOME/hub/checkpoints/<ImageNet weights>",
        ("random", "empty", "truncated", "tensor", "evil-zip", "directory", "c3d-file"),
        imagenet_cache_arg,
    ),
    Arg(
        "train_3d.py",
        "--kinetics-checkpoint",
        CHECKPOINT_KINDS + ("c3d-file", "imagenet-file", "frame-ckpt"),
        weights_arg("train_3d.py", "--kinetics-checkpoint"),
    ),
    Arg(
        "train_3d.py",
        "--c3d-checkpoint",
        CHECKPOINT_KINDS + ("kinetics-file", "imagenet-file", "clip-ckpt"),
        weights_arg("train_3d.py", "--c3d-checkpoint"),
    ),
    Arg(
        "train_3d.py",
        "OUTPUT_DIR/checkpoint.pth",
        RESUME_KINDS + ("frame-ckpt", "rnn-ckpt", "kinetics-file"),
        resume_arg("train_3d.py"),
    ),
    Arg(
        "train_rnn.py",
        "OUTPUT_DIR/checkpoint.pth",
        ("random", "truncated", "evil-zip", "frame-ckpt", "clip-ckpt"),
        resume_arg("train_rnn.py"),
    ),
    Arg("train_rnn.py", "--features", FOLDER_KINDS, features_arg("train_rnn.py")),
    Arg(
        "train_rnn.py",
        "--features/features.json",
        ("random", "empty", "text", "directory"),
        features_info_arg("train_rnn.py"),
    ),
    Arg(
        "train_rnn.py",
        "--features/<video>.hdf5",
        ("nan-features", "random"),
        feature_file_arg("train_rnn.py"),
        {k: Expect(1, skipped_and_named_in_the_log) for k in ("nan-features", "random")},
    ),
    # feature extraction
    Arg("extract_features.py", "--checkpoint", CHECKPOINT_KINDS + FRAME_OTHERS, extract_checkpoint_arg),
    Arg("extract_features.py", "--weights", WEIGHT_KINDS, weights_arg("extract_features.py", "--weights")),
    # the data folder, its split lists and its videos, for every script that reads them
    *[
        Arg(script, "--data-dir", FOLDER_KINDS, data_dir_arg(script))
        for script in (
            "train_single_frame.py",
            "test_single_frame.py",
            "train_3d.py",
            "test_3d.py",
            "extract_features.py",
            "train_rnn.py",
            "test_rnn.py",
            "combine_results.py",
        )
    ],
    *[
        Arg(script, f"--data-dir/ucfTrainTestlist/{name}", LIST_KINDS, list_arg(script, name))
        for script in ("train_single_frame.py", "test_3d.py", "extract_features.py", "combine_results.py")
        for name in ("classInd.txt", "trainlist01.txt", "testlist01.txt")
        if not (script == "combine_results.py" and name == "trainlist01.txt")
    ],  # combine reads no training videos
    Arg(
        "train_single_frame.py",
        "--data-dir/<video>.hdf5",
        ("random", "no-video-dataset"),
        video_arg("train_single_frame.py"),
        {k: Expect(1, skipped_and_named_in_the_log) for k in VIDEO_KINDS},
    ),
    *[
        Arg(
            script,
            "--data-dir/<video>.hdf5",
            VIDEO_KINDS,
            video_arg(script),
            {k: Expect(1, counted_as_failed) for k in VIDEO_KINDS},
        )
        for script in ("test_single_frame.py", "test_3d.py")
    ],
    Arg(
        "extract_features.py",
        "--data-dir/<video>.hdf5",
        ("random", "directory"),
        video_arg("extract_features.py"),
        {k: Expect(1, listed_with_exit_1) for k in VIDEO_KINDS},
    ),
    # output folders that are files
    *[
        Arg(script, flag, ("file",), output_file_arg(script, flag))
        for script, flag in (
            ("train_single_frame.py", "--output-dir"),
            ("test_single_frame.py", "--predictions-dir"),
            ("test_single_frame.py", "--output-dir"),
            ("test_3d.py", "--predictions-dir"),
            ("test_rnn.py", "--predictions-dir"),
            ("extract_features.py", "--output-dir"),
        )
    ],
    # data preparation
    Arg("prepare_ucf101.py", "--videos", ("missing", "file"), prepare_arg("--videos")),
    Arg(
        "prepare_ucf101.py",
        "--list",
        ("missing", "directory", "random", "empty", "text", "json"),
        prepare_arg("--list"),
    ),
    Arg("prepare_ucf101.py", "--out", ("file",), prepare_arg("--out")),
    Arg("make_split_lists.py", "--videos", FOLDER_KINDS, split_lists_arg("--videos")),
    Arg("make_split_lists.py", "--out", ("file",), split_lists_arg("--out")),
    Arg("make_synthetic_ucf101.py", "--out", ("file",), synthetic_arg),
    # fusion and the report
    Arg("combine_results.py", "--model NAME=DIR", FOLDER_KINDS, combine_folder_arg("--model")),
    Arg(
        "combine_results.py",
        "--model NAME=DIR/<video>.hdf5",
        ("nan-predictions", "wrong-shape", "random", "empty", "directory"),
        combine_file_arg,
        needle=lambda world, case: os.path.splitext(os.path.basename(case.bad))[0],
    ),
    Arg("combine_results.py", "--val NAME=DIR", FOLDER_KINDS, combine_folder_arg("--val")),
    Arg("combine_results.py", "--summarize DIR", FOLDER_KINDS, summarize_arg),
    Arg(
        "combine_results.py",
        "--summarize DIR/results.json",
        ("random", "empty", "text", "json", "directory"),
        summarize_results_arg,
    ),
]


def predict_checkpoint_arg(world, tmp):
    """predict.py's only --checkpoint: nothing left to predict with, so a usage error naming it."""
    path = bad(tmp, "checkpoint.pth")
    return [world.test_videos[0], "--checkpoint", path, "--device", "cpu"], path


def predict_video_arg(world, tmp):
    """A bad video among good ones: named in one line, the others predicted, exit status 1."""
    path = bad(tmp, "my_video.avi")
    return [path, world.test_videos[0], "--checkpoint", world.files["frame-ckpt"], "--json", "--device", "cpu"], path


def named_and_the_others_predicted(world, case, code, out, err, caplog):
    assert code == 1 and "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if case.bad in line]
    assert len(lines) == 1 and lines[0].startswith("predict.py: "), err[-3000:]
    predicted = [json.loads(line)["path"] for line in out.splitlines() if line.startswith("{")]
    assert predicted == [world.test_videos[0]]


ARGS += [
    Arg("predict.py", "--checkpoint", TEST_CHECKPOINT_KINDS + ("kinetics-file", "c3d-file", "imagenet-file"),
        predict_checkpoint_arg),
    Arg("predict.py", "VIDEO", ("missing", "random", "empty", "text", "directory"), predict_video_arg,
        {k: Expect(1, named_and_the_others_predicted) for k in ("missing", "random", "empty", "text", "directory")}),
]
CASES = [pytest.param(arg, kind, id=f"{arg.script} {arg.name} {kind}") for arg in ARGS for kind in arg.kinds]


@pytest.mark.parametrize("arg, kind", CASES)
def test_bad_input(world, arg, kind, tmp_path, monkeypatch, capsys, caplog):
    tmp = str(tmp_path)
    monkeypatch.setenv("TORCH_HOME", os.path.join(tmp, "torch_home"))  # no case may find or fetch real weights
    argv, path = arg.build(world, tmp)
    plant(kind, path, world)
    case = Case(tmp, path, [str(a) for a in argv])
    before = snapshot(tmp)
    code, out, err = run_script(arg.script, case.argv, monkeypatch, capsys)
    expect = arg.expect.get(kind, Expect())
    if expect.check is not None:
        expect.check(world, case, code, out, err, caplog)
    else:
        needle = arg.needle(world, case) if arg.needle else path
        assert_one_line(code, err, arg.script, expect.code, (needle,) + expect.needles)
    after = snapshot(tmp)
    if code != 0 and expect.check is None:  # a refusal loses nothing (exit 1 with the others done rewrites results)
        assert_nothing_lost(before, after)
    assert not [p for p in after if ".tmp-" in p] and MARKER_NAME not in " ".join(after)


# ----------------------------------------------------------------------------------------------
# Writes that fail (a full disk): the previous file is kept, no temporary is left, one line.
# The simulated errors are the ones measured on a full tmpfs: torch.save raises RuntimeError
# "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598", h5py an OSError (errno 28)
# whose message runs over two lines.

H5PY_FULL_DISK = ("Can't synchronously write data (file write failed: time = Tue Dec  1 20:58:04 2026\n, filename = "
                  "'{path}', file descriptor = 3, errno = 28, error message = 'No space left on device')")


class FullDiskH5py:
    """h5py, except that the `fail_on`-th file opened for writing fails half-way, as on a full disk."""

    def __init__(self, fail_on):
        self.fail_on, self.opened = fail_on, 0

    def __getattr__(self, name):
        return getattr(h5py, name)

    def File(self, path, mode="r", *args, **kwargs):
        if mode == "w":
            self.opened += 1
            if self.opened == self.fail_on:
                with open(path, "wb") as f:
                    f.write(b"\x89HDF\r\n half a file")
                raise OSError(errno.ENOSPC, H5PY_FULL_DISK.format(path=path))
        return h5py.File(path, mode, *args, **kwargs)


@pytest.mark.parametrize("error", ["torch-zip-writer", "enospc"])
def test_a_checkpoint_write_that_fails_keeps_the_previous_checkpoint(world, tmp_path, monkeypatch, capsys, error):
    run = tmp_path / "run"
    real_save, calls = torch.save, []

    def save(obj, path, *args, **kwargs):
        calls.append(path)
        if len(calls) < 2:
            return real_save(obj, path, *args, **kwargs)
        with open(path, "wb") as f:  # half a file, then the failure
            f.write(b"PK\x03\x04 half a checkpoint")
        if error == "enospc":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
    monkeypatch.setattr(torch, "save", save)
    argv = train_argv(
        world, str(tmp_path), "train_single_frame.py", ["--epochs", "2", "--max-steps", "1"], output=str(run)
    )
    code, _, err = run_script("train_single_frame.py", argv, monkeypatch, capsys)
    checkpoint = run / checkpoints.CHECKPOINT_NAME
    line = assert_one_line(code, err, "train_single_frame.py", 2, (checkpoint, "the previous checkpoint is kept"))
    assert ("No space left on device" if error == "enospc" else "MB free there") in line
    assert len(calls) == 2 and sorted(os.listdir(run)) == [checkpoints.CHECKPOINT_NAME, runlog.LOG_NAME]  # no temporary
    kept = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert kept["epoch"] == 1 and [e["epoch"] for e in runlog.read_log(run / runlog.LOG_NAME)] == [1]


def test_a_log_write_that_fails_keeps_the_previous_log(tmp_path, monkeypatch):
    log = tmp_path / runlog.LOG_NAME
    runlog.write_log(log, [{"epoch": 1, "train_loss": 1.0}])
    before = log.read_bytes()

    def full_disk(obj):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(json, "dumps", full_disk)
    with pytest.raises(guards.UserError, match="No space left on device.*the previous log is kept"):
        runlog.write_log(log, [{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 0.5}])
    assert log.read_bytes() == before and os.listdir(tmp_path) == [runlog.LOG_NAME]


def files_under(folder):
    """The files under folder, its provenance record aside (written before the first video)."""
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, files in os.walk(folder) for f in files
                  if f != guards.PROVENANCE_NAME)


def test_a_prediction_write_that_fails_keeps_the_finished_files(world, tmp_path, monkeypatch, capsys):
    predictions = tmp_path / "predictions"
    second = prediction_files.prediction_path(predictions, world.test_videos[1])
    prediction_files.write_predictions(second, np.zeros((2, CLASSES + 1)))  # a wrong file being redone: kept as it was
    with open(second, "rb") as f:
        earlier = f.read()
    full = FullDiskH5py(fail_on=3)  # the first video, the second's earlier file above, then the second video
    full.opened = 1
    monkeypatch.setattr(prediction_files, "h5py", full)
    argv = ["--checkpoint", world.files["frame-ckpt"], "--predictions-dir", str(predictions), "--output-dir",
            str(tmp_path / "test"), "--data-dir", world.data, "--limit", "3", *CPU]
    code, _, err = run_script("test_single_frame.py", argv, monkeypatch, capsys)
    assert_one_line(
        code, err, "test_single_frame.py", 2, (second, "No space left on device", "finished videos are kept")
    )
    first = prediction_files.prediction_path(predictions, world.test_videos[0])
    assert prediction_files.predictions_complete(first, CLASSES)
    with open(second, "rb") as f:
        assert f.read() == earlier
    assert files_under(predictions) == sorted(os.path.relpath(p, predictions) for p in (first, second))
    assert not (tmp_path / "test" / "results.json").exists()


def test_a_feature_write_that_fails_keeps_the_finished_files(world, tmp_path, monkeypatch, capsys):
    out = tmp_path / "features"
    monkeypatch.setattr(prediction_files, "h5py", FullDiskH5py(fail_on=2))  # write_features: evaluation/predictions
    monkeypatch.setattr(feature_extraction, "h5py", prediction_files.h5py)
    argv = ["--data-dir", world.data, "--output-dir", str(out), "--pretrained", "none", "--arch", "resnet18",
            "--image-size", "32", "--subsets", "test", "--limit", "3", *CPU]
    code, _, err = run_script("extract_features.py", argv, monkeypatch, capsys)
    second = prediction_files.prediction_path(out, world.test_videos[1])
    assert_one_line(code, err, "extract_features.py", 2, (second, "No space left on device"))
    first = prediction_files.prediction_path(out, world.test_videos[0])
    assert feature_files.feature_info(first) == (FRAMES, 512)
    assert files_under(out) == [os.path.relpath(first, out)]  # no temporary, no half file, no features.json


# ----------------------------------------------------------------------------------------------
# Non-finite outputs: the test stops at the video, names it, suggests --no-amp, keeps the finished ones

ROWS_FUNCTIONS = {"test_single_frame.py": (frame_views, "frame_logits", "frame-ckpt", []),
                  "test_3d.py": (clip_views, "clip_logits", "clip-ckpt", []),  # pieces; exact full: below
                  "test_rnn.py": (rnn_views, "window_logits", "rnn-ckpt", ["--features"])}


@pytest.mark.parametrize("script", sorted(ROWS_FUNCTIONS))
def test_non_finite_outputs_stop_at_the_video_and_keep_the_finished_ones(world, tmp_path, monkeypatch, capsys,
                                                                         script):
    module, name, checkpoint, extra = ROWS_FUNCTIONS[script]
    real, videos = getattr(module, name), []

    def overflowing(*args, **kwargs):  # what an fp16 overflow gives: inf and NaN for the second video
        rows = real(*args, **kwargs)

        def patched(model, frames, normalize):
            videos.append(1)
            out = rows(model, frames, normalize)
            return out * float("nan") if len(videos) == 2 else out
        return patched
    monkeypatch.setattr(module, name, overflowing)
    predictions = tmp_path / "predictions"
    argv = ["--checkpoint", world.files[checkpoint], "--predictions-dir", str(predictions), "--output-dir",
            str(tmp_path / "test"), "--data-dir", world.data, "--limit", "3", *CPU,
            *(extra + [world.features] if extra else []),
            *(["--max-frames", "512"] if script == "test_3d.py" else [])]  # test_3d: one rows call a video
    code, _, err = run_script(script, argv, monkeypatch, capsys)
    bad_video = world.test_videos[1]
    if script == "test_rnn.py":
        bad_video = prediction_files.prediction_path(world.features, bad_video)
    assert_one_line(code, err, script, 2, (bad_video, "not finite", "--no-amp"))
    first = prediction_files.prediction_path(predictions, world.test_videos[0])
    assert files_under(predictions) == [os.path.relpath(first, predictions)]
    assert np.isfinite(prediction_files.read_predictions(first)).all()


def test_non_finite_whole_video_logits_stop_at_the_video(world, tmp_path, monkeypatch, capsys):
    # test_3d.py --mode full: the video's row comes after its last chunk (TiledFull.end).
    real, videos = clip_views.TiledFull.end, []

    def overflowing(self, model):
        videos.append(1)
        out = real(self, model)
        return out * float("nan") if len(videos) == 2 else out
    monkeypatch.setattr(clip_views.TiledFull, "end", overflowing)
    predictions = tmp_path / "predictions"
    argv = ["--checkpoint", world.files["clip-ckpt"], "--predictions-dir", str(predictions), "--output-dir",
            str(tmp_path / "test"), "--data-dir", world.data, "--limit", "3", *CPU, "--mode", "full"]
    code, _, err = run_script("test_3d.py", argv, monkeypatch, capsys)
    assert_one_line(code, err, "test_3d.py", 2, (world.test_videos[1], "not finite", "--no-amp"))
    first = prediction_files.prediction_path(predictions, world.test_videos[0])
    assert files_under(predictions) == [os.path.relpath(first, predictions)]
    assert np.isfinite(prediction_files.read_predictions(first)).all()


@pytest.mark.parametrize("script", sorted(ROWS_FUNCTIONS))
def test_a_checkpoint_with_nan_weights_is_stopped_at_its_first_video(world, tmp_path, monkeypatch, capsys, script):
    _, _, checkpoint, extra = ROWS_FUNCTIONS[script]
    state = torch.load(world.files[checkpoint], map_location="cpu", weights_only=True)
    state["model"]["fc.weight"].fill_(float("nan"))
    path = tmp_path / "nan.pth"
    torch.save(state, path)
    argv = ["--checkpoint", str(path), "--predictions-dir", str(tmp_path / "p"), "--output-dir", str(tmp_path / "o"),
            "--data-dir", world.data, "--limit", "2", *CPU, *(extra + [world.features] if extra else [])]
    code, _, err = run_script(script, argv, monkeypatch, capsys)
    first = world.test_videos[0] if script != "test_rnn.py" else prediction_files.prediction_path(world.features,
                                                                                          world.test_videos[0])
    assert_one_line(code, err, script, 2, (first, "--no-amp"))
    assert files_under(tmp_path / "p") == []


# ----------------------------------------------------------------------------------------------
# The command line itself: a few real processes (the cases above run the same code in this process)

def cli(*args):
    return run_group([sys.executable, *map(str, args)], cwd=REPO, timeout=180)


@pytest.mark.parametrize("script, kind", [("test_single_frame.py", "text"), ("test_3d.py", "evil-zip"),
                                          ("train_single_frame.py", "json")])
def test_the_command_line_gives_one_line(world, tmp_path, script, kind):
    path = str(tmp_path / "bad" / "file.pth")
    plant(kind, path, world)
    if script.startswith("test_"):
        argv = ["--checkpoint", path, "--predictions-dir", tmp_path / "p", "--output-dir", tmp_path / "o"]
    else:
        argv = ["--weights", path, "--data-dir", world.data, "--output-dir", tmp_path / "run", *CPU]
    result = cli(script, *argv)
    assert_one_line(result.returncode, result.stderr, script, 2, (path,))
    assert not os.path.exists(os.path.join(os.path.dirname(path), MARKER_NAME))


def test_the_data_scripts_command_lines_exit_2(world, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("train for 10 epochs\n")
    (tmp_path / "videos" / "Alpha").mkdir(parents=True)
    result = cli("prepare_ucf101.py", "--videos", tmp_path / "videos", "--out", tmp_path / "out", "--list", notes)
    assert_one_line(result.returncode, result.stderr, "prepare_ucf101.py", 2, (notes,))
    result = cli("make_synthetic_ucf101.py", "--out", notes)
    assert_one_line(result.returncode, result.stderr, "make_synthetic_ucf101.py", 2, (notes,))


# ----------------------------------------------------------------------------------------------
# Issue 20, second round: outputs that would overwrite inputs, resumes of another run, lists and
# flags whose numbers would be silently wrong. Each case runs on copies, so a guard that failed
# could only damage the copy.

def copy_world(world, tmp):
    """A copy of the dataset, the features and a test checkpoint of each kind, under tmp."""
    data, features = os.path.join(tmp, "data"), os.path.join(tmp, "features")
    shutil.copytree(world.data, data)
    shutil.copytree(world.features, features)
    return data, features


def refused(code, err, script, *needles):
    return assert_one_line(code, err, script, 2, needles)


def overwrite_cases():
    """(id, script, build(world, tmp, data, features) -> (argv, the input it would overwrite))."""
    def test_script(script, kind, predictions, output=None, extra=()):
        def build(world, tmp, data, features):
            where = {
                "videos": os.path.join(data, split_lists.HDF5_DIR),
                "video-class": os.path.join(data, split_lists.HDF5_DIR, "AppearanceRed"),
                "data": data,
                "features": features,
                "lists": os.path.join(data, "ucfTrainTestlist"),
            }
            target = where[predictions] if predictions in where else os.path.join(tmp, predictions)
            out = where.get(output, os.path.join(tmp, output or "test"))
            argv = ["--checkpoint", world.files[kind], "--predictions-dir", target, "--output-dir", out,
                    "--data-dir", data, "--limit", "2", *CPU, *extra]
            if script == "test_rnn.py":
                argv += ["--features", features]
            return argv, (where.get(output) if output in where else where.get(predictions))
        return build

    cases = [
        ("predictions-dir=videos", "test_single_frame.py", test_script("test_single_frame.py", "frame-ckpt", "videos")),
        ("predictions-dir=class-folder", "test_3d.py", test_script("test_3d.py", "clip-ckpt", "video-class")),
        (
            "predictions-dir=data-root",
            "test_single_frame.py",
            test_script("test_single_frame.py", "frame-ckpt", "data"),
        ),
        ("output-dir=lists", "test_3d.py", test_script("test_3d.py", "clip-ckpt", "p", output="lists")),
        ("predictions-dir=features", "test_rnn.py", test_script("test_rnn.py", "rnn-ckpt", "features")),
    ]

    def extract(world, tmp, data, features):
        return (["--data-dir", data, "--output-dir", os.path.join(data, split_lists.HDF5_DIR), "--pretrained", "none",
                 "--arch", "resnet18", "--image-size", "32", *CPU], os.path.join(data, split_lists.HDF5_DIR))

    def extract_onto_checkpoint(world, tmp, data, features):
        checkpoint = os.path.join(tmp, "cnn", "checkpoint.pth")
        os.makedirs(os.path.dirname(checkpoint))
        shutil.copy(world.files["frame-ckpt"], checkpoint)
        return (["--data-dir", data, "--checkpoint", checkpoint, "--output-dir", os.path.dirname(checkpoint), *CPU],
                checkpoint)

    def train(script):
        def build(world, tmp, data, features):
            return train_argv(world, tmp, script, data=data, output=os.path.join(data, split_lists.HDF5_DIR),
                              extra=["--features", features] if script == "train_rnn.py" else []), \
                os.path.join(data, split_lists.HDF5_DIR)
        return build

    def train_onto_features(world, tmp, data, features):
        return train_argv(world, tmp, "train_rnn.py", data=data, output=os.path.join(features, "AppearanceRed"),
                          extra=["--features", features]), features

    def combine_onto_model(world, tmp, data, features):
        model = os.path.join(tmp, "sf")
        shutil.copytree(world.predictions["single_frame"], model)
        return ["--data-dir", data, "--model", f"single_frame={model}", "--output-dir", model], model

    def summarize_into_parent(world, tmp, data, features):
        return ["--summarize", os.path.join(tmp, "r", "s1"), os.path.join(tmp, "r", "s2"),
                "--output-dir", os.path.join(tmp, "r")], os.path.join(tmp, "r", "s1")

    cases += [("extract --output-dir=videos", "extract_features.py", extract),
              ("extract --output-dir=the checkpoint's folder", "extract_features.py", extract_onto_checkpoint),
              ("train --output-dir=videos", "train_single_frame.py", train("train_single_frame.py")),
              ("train_3d --output-dir=videos", "train_3d.py", train("train_3d.py")),
              ("train_rnn --output-dir inside features", "train_rnn.py", train_onto_features),
              ("combine --output-dir=a --model folder", "combine_results.py", combine_onto_model),
              ("combine --summarize into the reports' parent", "combine_results.py", summarize_into_parent)]
    return cases


@pytest.mark.parametrize("name, script, build", overwrite_cases(), ids=[c[0] for c in overwrite_cases()])
def test_an_output_that_is_or_holds_an_input_is_refused_before_anything_is_written(world, tmp_path, monkeypatch,
                                                                                  capsys, name, script, build):
    tmp = str(tmp_path)
    data, features = copy_world(world, tmp)
    argv, victim = build(world, tmp, data, features)
    before = snapshot(tmp)
    code, _, err = run_script(script, argv, monkeypatch, capsys)
    line = refused(code, err, script, victim)
    assert "overwrite" in line
    assert_nothing_lost(before, snapshot(tmp))
    assert set(snapshot(tmp)) == set(before)  # nothing new either


def run_tested(world, tmp, script, kind, predictions, monkeypatch, capsys, *extra):
    argv = ["--checkpoint", world.files[kind] if os.path.sep not in kind else kind, "--predictions-dir", predictions,
            "--output-dir", os.path.join(tmp, "o"), "--data-dir", world.data, "--limit", "2", *CPU, *extra]
    return run_script(script, argv, monkeypatch, capsys)


def test_another_checkpoint_into_a_finished_predictions_folder_is_refused(world, tmp_path, monkeypatch, capsys):
    tmp, predictions = str(tmp_path), str(tmp_path / "p")
    code, _, err = run_tested(world, tmp, "test_single_frame.py", "frame-ckpt", predictions, monkeypatch, capsys)
    assert code == 0, err
    before = snapshot(predictions)
    other = str(tmp_path / "other.pth")
    state = torch.load(world.files["frame-ckpt"], weights_only=True)
    state["model"] = {k: v + 0.01 if v.is_floating_point() else v for k, v in state["model"].items()}
    torch.save(state, other)  # the same model, trained further: another checkpoint
    code, _, err = run_tested(world, tmp, "test_single_frame.py", other, predictions, monkeypatch, capsys)
    refused(code, err, "test_single_frame.py", predictions, "checkpoint_sha256", "--no-resume")
    assert snapshot(predictions) == before
    # Another view of the same checkpoint is another run too.
    code, _, err = run_tested(world, tmp, "test_single_frame.py", "frame-ckpt", predictions, monkeypatch, capsys,
                          "--crops", "3")
    refused(code, err, "test_single_frame.py", predictions, "crops")
    # --no-resume starts over: every video redone, results and the record name the new checkpoint.
    code, out, err = run_tested(
        world, tmp, "test_single_frame.py", other, predictions, monkeypatch, capsys, "--no-resume"
    )
    assert code == 0 and "already done" not in out, err
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert results["checkpoint"] == other
    record = json.loads((tmp_path / "p" / guards.PROVENANCE_NAME).read_text())
    assert record["identity"]["checkpoint_sha256"] == output_provenance.file_sha256(other)
    after = snapshot(predictions)
    redone = [p for p in before if p.endswith(".hdf5")]
    assert redone and all(after[p] != before[p] for p in redone)
    # The same run again resumes.
    code, out, err = run_tested(world, tmp, "test_single_frame.py", other, predictions, monkeypatch, capsys)
    assert code == 0 and "2 videos already done" in out, err


def test_another_3d_mode_into_a_finished_folder_is_refused(world, tmp_path, monkeypatch, capsys):
    tmp, predictions = str(tmp_path), str(tmp_path / "p")
    code, _, err = run_tested(
        world, tmp, "test_3d.py", "clip-ckpt", predictions, monkeypatch, capsys, "--mode", "sliding"
    )
    assert code == 0, err
    code, _, err = run_tested(world, tmp, "test_3d.py", "clip-ckpt", predictions, monkeypatch, capsys, "--mode", "full")
    refused(code, err, "test_3d.py", predictions, "full")


def test_an_older_folder_whose_model_json_names_another_checkpoint_is_refused(world, tmp_path, monkeypatch, capsys):
    # Written before provenance.json existed: its model.json still says which checkpoint made it.
    tmp, predictions = str(tmp_path), tmp_path / "p"
    code, _, err = run_tested(world, tmp, "test_single_frame.py", "frame-ckpt", str(predictions), monkeypatch, capsys)
    assert code == 0, err
    (predictions / guards.PROVENANCE_NAME).unlink()
    info = json.loads((predictions / "model.json").read_text())
    jsonfile.write_json(predictions / "model.json", {**info, "checkpoint": "/elsewhere/checkpoint.pth"})
    code, _, err = run_tested(world, tmp, "test_single_frame.py", "frame-ckpt", str(predictions), monkeypatch, capsys)
    refused(code, err, "test_single_frame.py", str(predictions), "/elsewhere/checkpoint.pth")


def test_features_of_another_extraction_into_a_finished_folder_are_refused(world, tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "f")
    base = ["--data-dir", world.data, "--output-dir", out, "--pretrained", "none", "--image-size", "32",
            "--limit", "1", "--subsets", "test", *CPU]
    code, _, err = run_script("extract_features.py", base + ["--arch", "resnet18"], monkeypatch, capsys)
    assert code == 0, err
    before = snapshot(out)
    code, _, err = run_script("extract_features.py", base + ["--arch", "resnet34"], monkeypatch, capsys)
    refused(code, err, "extract_features.py", out, "resnet34")
    assert snapshot(out) == before  # features.json still describes the files that are there


def write_lists(data, train_lines=None, test_lines=None):
    lists = os.path.join(data, "ucfTrainTestlist")
    for name, lines in (("trainlist01.txt", train_lines), ("testlist01.txt", test_lines)):
        if lines is not None:
            with open(os.path.join(lists, name), "w", newline="") as f:
                f.write("".join(line + "\r\n" for line in lines))


def read_lines(data, name):
    with open(os.path.join(data, "ucfTrainTestlist", name)) as f:
        return [line.strip() for line in f if line.strip()]


@pytest.mark.parametrize("defect", ["test video twice", "training video twice", "test video in training"])
def test_a_list_that_counts_a_video_twice_is_refused_by_name(world, tmp_path, monkeypatch, capsys, defect):
    data = str(tmp_path / "data")
    shutil.copytree(world.data, data)
    train, test = read_lines(data, "trainlist01.txt"), read_lines(data, "testlist01.txt")
    if defect == "test video twice":
        write_lists(data, test_lines=test + [test[0]])
        entry, listed = test[0], "testlist01.txt"
    elif defect == "training video twice":
        write_lists(data, train_lines=train + [train[1]])
        entry, listed = train[1].rsplit(" ", 1)[0], "trainlist01.txt"
    else:
        label = world.class_list.index(test[0].split("/")[0]) + 1
        write_lists(data, train_lines=train + [f"{test[0]} {label}"])
        entry, listed = test[0], "testlist01.txt"
    for script, argv in (
        (
            "test_single_frame.py",
            [
                "--checkpoint",
                world.files["frame-ckpt"],
                "--predictions-dir",
                str(tmp_path / "p"),
                "--output-dir",
                str(tmp_path / "o"),
            ],
        ),
        ("train_single_frame.py", train_argv(world, str(tmp_path), "train_single_frame.py", data=data)),
        (
            "combine_results.py",
            ["--model", f"single_frame={world.predictions['single_frame']}", "--output-dir", str(tmp_path / "r")],
        ),
    ):
        if "--data-dir" not in argv:
            argv = argv + ["--data-dir", data] + (CPU if script != "combine_results.py" else [])
        code, _, err = run_script(script, argv, monkeypatch, capsys)
        line = refused(code, err, script, entry, listed)
        assert "twice" in line
        assert not (tmp_path / "p").exists() and not (tmp_path / "r").exists()


def test_a_video_name_with_a_space_is_read_as_listed(world, tmp_path, monkeypatch, capsys):
    data = str(tmp_path / "data")
    shutil.copytree(world.data, data)
    test = read_lines(data, "testlist01.txt")
    train = read_lines(data, "trainlist01.txt")
    folder, name = test[0].split("/")
    spaced = name.replace("_g01", " g01")  # "v_AppearanceRed g01_c01.avi"
    os.rename(os.path.join(data, split_lists.HDF5_DIR, folder, name.replace(".avi", ".hdf5")),
              os.path.join(data, split_lists.HDF5_DIR, folder, spaced.replace(".avi", ".hdf5")))
    tfolder, tname = train[0].rsplit(" ", 1)[0].split("/")
    tspaced = tname.replace("_c", " _c")
    os.rename(os.path.join(data, split_lists.HDF5_DIR, tfolder, tname.replace(".avi", ".hdf5")),
              os.path.join(data, split_lists.HDF5_DIR, tfolder, tspaced.replace(".avi", ".hdf5")))
    write_lists(data, train_lines=[f"{tfolder}/{tspaced} {train[0].rsplit(' ', 1)[1]}"] + train[1:],
                test_lines=[f"{folder}/{spaced}"] + test[1:])
    class_list, (train_paths, _), (test_paths, labels) = split_lists.getUCF101(data, 1)
    assert test_paths[0].endswith(f"{folder}/{spaced.replace('.avi', '.hdf5')}") and os.path.isfile(test_paths[0])
    assert train_paths[0].endswith(tspaced.replace(".avi", ".hdf5")) and os.path.isfile(train_paths[0])
    code, _, err = run_script("test_single_frame.py", ["--checkpoint", world.files["frame-ckpt"], "--predictions-dir",
                                                       str(tmp_path / "p"), "--output-dir", str(tmp_path / "o"),
                                                       "--data-dir", data, "--limit", "1", *CPU],
                              monkeypatch, capsys)
    assert code == 0, err
    assert os.path.isfile(prediction_files.prediction_path(str(tmp_path / "p"), test_paths[0]))


@pytest.mark.parametrize("script, flag", [("test_single_frame.py", "--limit"), ("extract_features.py", "--limit"),
                                          ("train_single_frame.py", "--max-steps"), ("test_3d.py", "--workers"),
                                          ("test_single_frame.py", "--frames")])
def test_a_negative_count_is_a_usage_error(world, tmp_path, monkeypatch, capsys, script, flag):
    if script.startswith("train"):
        argv = train_argv(world, str(tmp_path), script)
    elif script == "extract_features.py":
        argv = ["--data-dir", world.data, "--output-dir", str(tmp_path / "f"), *CPU]
    else:
        argv = ["--checkpoint", world.files["frame-ckpt"], "--predictions-dir", str(tmp_path / "p"),
                "--output-dir", str(tmp_path / "o"), "--data-dir", world.data, *CPU]
    code, _, err = run_script(script, argv + [flag, "-1"], monkeypatch, capsys)
    refused(code, err, script, flag, "-1")
    assert not (tmp_path / "p").exists() and not (tmp_path / "run").exists()


def test_combine_refuses_predictions_of_another_class_order(world, tmp_path, monkeypatch, capsys):
    # The test script records its class list; combine_results with a classInd.txt in another order would
    # score the same predictions against the wrong classes.
    tmp, predictions = str(tmp_path), str(tmp_path / "p")
    code, _, err = run_tested(world, tmp, "test_single_frame.py", "frame-ckpt", predictions, monkeypatch, capsys,
                          "--limit", "0")
    assert code == 0, err
    data = str(tmp_path / "data")
    shutil.copytree(world.data, data)
    names = world.class_list
    with open(os.path.join(data, "ucfTrainTestlist", "classInd.txt"), "w") as f:
        f.write("".join(f"{i} {n}\r\n" for i, n in enumerate([names[1], names[0]] + names[2:], 1)))
    for name in ("trainlist01.txt",):  # the training labels follow the new index
        lines = read_lines(data, name)
        order = {n: i + 1 for i, n in enumerate([names[1], names[0]] + names[2:])}
        write_lists(data, train_lines=[f"{e} {order[e.split('/')[0]]}" for e in (ln.rsplit(" ", 1)[0] for ln in lines)])
    code, _, err = run_script("combine_results.py", ["--data-dir", data, "--model", f"single_frame={predictions}",
                                                     "--output-dir", str(tmp_path / "r")], monkeypatch, capsys)
    refused(code, err, "combine_results.py", predictions, "class list")


@pytest.mark.parametrize("where", ["inside", "equal", "holds"])
def test_prepare_refuses_an_out_folder_that_overlaps_the_videos(tmp_path, monkeypatch, capsys, where):
    videos = tmp_path / "root" / "UCF-101"
    (videos / "Archery").mkdir(parents=True)
    (videos / "Archery" / "v_Archery_g01_c01.avi").write_bytes(b"not decoded: refused before")
    out = {"inside": videos / "hdf5", "equal": videos, "holds": tmp_path / "root"}[where]
    code, _, err = run_script("prepare_ucf101.py", ["--videos", str(videos), "--out", str(out), "--workers", "0"],
                              monkeypatch, capsys)
    refused(code, err, "prepare_ucf101.py", str(out), str(videos))
    assert sorted(p.name for p in videos.rglob("*")) == ["Archery", "v_Archery_g01_c01.avi"]


def test_predict_explain_into_the_videos_folder_is_refused(world, tmp_path, monkeypatch, capsys):
    data, _ = copy_world(world, str(tmp_path))
    video = os.path.join(
        data,
        split_lists.HDF5_DIR,
        os.path.relpath(world.test_videos[0], os.path.join(world.data, split_lists.HDF5_DIR)),
    )
    before = snapshot(str(tmp_path))
    code, _, err = run_script("predict.py", [video, "--checkpoint", world.files["frame-ckpt"], "--explain",
                                             os.path.dirname(video), "--device", "cpu"], monkeypatch, capsys)
    refused(code, err, "predict.py", video, "--explain")
    assert snapshot(str(tmp_path)) == before


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"identity": 5}'])
def test_a_damaged_provenance_record_is_one_line_and_no_resume_replaces_it(world, tmp_path, monkeypatch, capsys,
                                                                           content):
    tmp, predictions = str(tmp_path), tmp_path / "p"
    predictions.mkdir()
    (predictions / guards.PROVENANCE_NAME).write_text(content)
    code, _, err = run_tested(world, tmp, "test_single_frame.py", "frame-ckpt", str(predictions), monkeypatch, capsys)
    refused(code, err, "test_single_frame.py", guards.PROVENANCE_NAME, "--no-resume")
    code, _, err = run_tested(world, tmp, "test_single_frame.py", "frame-ckpt", str(predictions), monkeypatch, capsys,
                              "--no-resume")
    assert code == 0, err
    assert "identity" in json.loads((predictions / guards.PROVENANCE_NAME).read_text())
