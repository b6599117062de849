"""What do the trained models say about *my* video, and where do they look?

    python predict.py my_video.mp4 --checkpoint runs/split1/3d/checkpoint.pth
    python predict.py a.avi b.hdf5 --checkpoint runs/split1/single_frame/checkpoint.pth \\
        --checkpoint runs/split1/3d/checkpoint.pth --weights runs/split1/report/results.json --json
    python predict.py a.avi --checkpoint runs/split1/tsn/checkpoint.pth --explain explain/

Every video goes through every checkpoint the way its test script tests it (one view per frame or
window, no crops) and gets, per model, its top classes with probabilities (the softmax of the video
score, video_scores.video_score: the mean log-softmax over the rows), plus the fusion of the models by
combine_results.py's rule. Nothing is written except the --explain maps.
"""
import argparse
import json
import os
import re
import sys
import types

import cv2
import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

import engine
import extract_features
import gradcam
import helperFunctions as hf
import test_3d
import test_rnn
import test_single_frame
import train_3d
import train_rnn
from actionrec.evaluation import calibration
from actionrec.evaluation import fusion as score_fusion
from actionrec.evaluation import scores as video_scores

BATCH_SIZES = {"frame": 100, "features": 64}  # the test scripts' defaults; clips: test_3d.windows_per_pass
CHUNK_FRAMES = {"frame": 100, "clip": 200}  # frames decoded at a time: memory flat in video length
PRETRAINED_SOURCE = re.compile(r"^(imagenet|none) \((\w+)\)$")  # extract_features' "imagenet (resnet50)"

EPILOG = """\
how each checkpoint kind is run (the way its test script tests it, one view per frame or window):
  single frame / TSN  every frame, or --frames N frames at the segment centres int((k + 0.5) * T / N)
                      (test_single_frame.py); one row of logits per frame
  3D ResNet / C3D     every window of the training clip length at --stride, as test_3d.py --mode
                      sliding: windows are what the models were trained on (clips of clip_len
                      frames; --mode full shows a 3D ResNet a whole video, longer than any input it
                      saw, and C3D's fc6 takes one clip only); a video shorter than a clip is
                      looped; one row per window
  RNN                 its checkpoint names the features folder of its training run; that folder's
                      features.json says which CNN made them ("imagenet (resnet50)", an ImageNet
                      weights file or a part-1 checkpoint): that CNN is rebuilt and makes the video's
                      features here (its image size and frame stride), then the RNN runs over
                      consecutive windows of its training length, as test_rnn.py; one row per window

probabilities:
  a model's   softmax of its video score (mean log-softmax over its rows)
  --fusion logmean  softmax of the fused score sum_i w_i * s_i (weights as given: they act as a
                    temperature, so 0.5,0.5 is the geometric mean of the models' distributions)
  --fusion prob     sum_i w_i * softmax(s_i), weights normalised to sum 1 (sums to 1)
  --fusion max      max_i w_i * softmax(s_i), weights normalised to sum 1 (sums to at most 1;
                    not renormalised, as combine_results.py ranks it)
  with --weights PATH/results.json of combine_results.py --weights auto, each s_i is the model's video
  score divided by its recorded temperature T_i (temperature scaling fitted on validation videos)
  Ties rank the lower class index (classInd order) first.

several checkpoints: the first one that loads sets the class list; a later checkpoint of another
class list (names or order) is left out with one line on stderr, as is an unreadable one; the others
still run, and the exit status is 1. --weights W1,W2,... gives one weight per --checkpoint in order
(a left-out checkpoint's weight is dropped); --weights PATH/results.json takes the rule, weights and
temperatures (--weights auto: each model's scores are divided by its temperature before the weights
apply) that combine_results.py recorded for a fusion of exactly the checkpoints that load. Each checkpoint is
matched to a model of the results.json by checkpoint path (model.json) or else by model name, and
among several tests of one checkpoint to the one tested as predict.py tests it: in the same mode (a
3D checkpoint: test_3d.py --mode sliding, not --mode full), and of those the one with the same frames,
stride and crops if there is one. A line on stderr says which fusion and models it took, and any
setting in which a model's test differs from predict.py's. A model's name is its checkpoint's folder
(runs/split1/3d/checkpoint.pth -> 3d; another file name: its stem), made unique with -2, -3.

--explain OUT_DIR: Grad-CAM (gradcam.py) of each model for --explain-class (default: that model's own
top class), written as OUT_DIR/<video stem>.<model>.png (frames on top, heat maps below, each titled
with its frame number and the class) and OUT_DIR/<video stem>.<model>.npy, float32 maps in [0, 1] at
the model's input size (the whole frame resized to S x S, as the model saw it):
  2D models  [n, S, S]: n = min(--explain-frames, T) frames at the segment centres; layer4
  3D models  [clips, clip_len, S, S]: --explain-clips windows of clip_len frames centred on the
             segment centres (looped when the video is shorter); the last convolutional block that
             runs (gradcam.default_layer), upsampled in time and space; the PNG shows
             --explain-frames of those frames evenly spread
  RNN        [n, S, S], explained through its CNN's frames: for n = min(--explain-frames, steps) of
             the RNN's steps at the segment centres, the gradient of the RNN's logit (of the window
             holding the step) with respect to that frame's CNN layer4 activations

CPU: a video is read in this process (a single video is not worth forked loader workers) and the
models run with torch's default threads (every core; on cores shared with other jobs, set
OMP_NUM_THREADS to your share: spinning threads that wait on each other are slower than fewer).
exit status: 0 all predicted; 1 a video failed, its Grad-CAM could not be made or a checkpoint was
left out (one line each on stderr, the rest predicted); 2 a usage error (bad flag, no usable
checkpoint, --weights that do not fit or an unmatched results.json).
"""


class VideoFailed(Exception):
    """A video that cannot be predicted: the message is its one line."""


# ----------------------------------------------------------------------------------------------
# Flags

def get_args_parser():
    parser = argparse.ArgumentParser(
        prog="predict.py",
        description="Predict the action in videos of your own with trained checkpoints (any kind), fuse "
                    "them, and show where they look (Grad-CAM).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="+", metavar="VIDEO",
                        help=f"video files: the course's .hdf5 or {', '.join(hf.VIDEO_SUFFIXES)}")
    parser.add_argument("--checkpoint", action="append", required=True, metavar="CKPT",
                        help="checkpoint.pth of any training script; repeat for several models (required)")
    parser.add_argument("--top", type=engine.positive_int, default=5,
                        metavar="K",
                   help="classes listed per model and for the fusion (default: 5)")
    parser.add_argument("--json", action="store_true",
                        help='one JSON object per video and line: {"path", "frames", "models": {name: '
                             '[[class, p], ...]}, "fused": [[class, p], ...] or null} (default: a table)')
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                        help="auto: CUDA when present, else CPU with a warning (default: auto)")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                        help="mixed precision for the predictions (Grad-CAM runs in float32) "
                             "(default: on for CUDA, off on CPU)")
    f = parser.add_argument_group("fusion (two or more checkpoints)")
    f.add_argument("--fusion", choices=tuple(score_fusion.FUSION_RULES), default=None,
                   help="combine_results.py's fusion rule (default: logmean, or the rule --weights PATH records)")
    f.add_argument("--weights", default=None,
                   metavar="W1,W2,...|RESULTS_JSON",
                   help="W1,W2,... one non-negative weight per --checkpoint, or a combine_results.py results.json "
                        "(default: equal weights)")
    t = parser.add_argument_group("how the models see the video")
    t.add_argument("--frames", type=engine.non_negative_int, default=0,
                   metavar="N",
                   help="single frame / TSN: N frames at the segment centres; 0 = every frame (default: 0)")
    t.add_argument("--stride", type=engine.positive_int, default=8,
                   metavar="FRAMES",
                   help="3D models: stride of the sliding windows (default: 8)")
    t.add_argument("--batch-size", type=engine.positive_int, default=None,
                   metavar="N",
                   help="frames, windows or RNN windows per forward pass (default: the test scripts': 100 frames, "
                        "32 clips on CUDA and 8 on the CPU, 64 RNN windows)")
    t.add_argument("--image-size", type=engine.positive_int, default=None,
                   metavar="PIXELS",
                   help="frame size fed to every model (default: each checkpoint's training size; the RNN's CNN: "
                        "its features.json's)")
    e = parser.add_argument_group("explanations (Grad-CAM)")
    e.add_argument("--explain", default=None, metavar="OUT_DIR",
                   help="write <video stem>.<model>.png and .npy Grad-CAM maps here (default: off)")
    e.add_argument("--explain-class", default=None, metavar="NAME",
                   help="class to explain, a name of the class list (default: each model's top class)")
    e.add_argument("--explain-frames", type=engine.positive_int, default=8,
                   metavar="N",
                   help="2D models and the RNN: frames explained; 3D models: frames shown (default: 8)")
    e.add_argument("--explain-clips", type=engine.positive_int, default=2,
                   metavar="N",
                   help="3D models: clips explained, centred on the segment centres (default: 2)")
    return parser


# ----------------------------------------------------------------------------------------------
# Checkpoints -> models

def read_checkpoint(path):
    """(checkpoint, training args, kind) of a training script's checkpoint; kind is "frame" (single frame
    and TSN), "clip" or "features". A UserError line for anything else."""
    return engine.check_trained(engine.load_checkpoint(path), path)


def model_names(paths):
    """A name per checkpoint: its folder for checkpoint.pth (runs/split1/3d/checkpoint.pth -> 3d), else
    its file stem; repeated names get -2, -3, ..."""
    names, seen = [], {}
    for path in paths:
        absolute = os.path.abspath(path)
        stem = os.path.splitext(os.path.basename(absolute))[0]
        name = os.path.basename(os.path.dirname(absolute)) if stem == "checkpoint" else stem
        name = name or stem
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return names


class Predictor(types.SimpleNamespace):
    """One checkpoint rebuilt as its test script rebuilds it, on the device, in eval mode.

    name, title, kind, path, class_list; test (how it is tested, in model.json's words: mode, frames, stride,
    ...); model; normalize (uint8 channels-last -> the model's input);
    image_size; plan(frames) -> chunks (test_single_frame.frame_plan / test_3d.sliding_plan); rows(model,
    chunk, normalize) -> logits rows. The RNN ("features") also holds its CNN: cnn, cnn_normalize,
    cnn_plan, cnn_rows, rnn_stride (its training run's stride over feature rows), max_frames.
    """


def image_size_of(args, trained):
    return args.image_size or trained.get("image_size") or hf.IMAGE_SIZE


def frame_predictor(checkpoint, trained, args, ranks, path):
    model = test_single_frame.load_model(checkpoint, trained, ranks, path)
    batch_size = args.batch_size or BATCH_SIZES["frame"]
    described = test_single_frame.describe(trained, argparse.Namespace(frames=args.frames, crops=1))
    return dict(title=described["title"], test=described["test"], model=model,
                normalize=engine.Normalize(hf.FRAME_MEAN, hf.FRAME_STD), image_size=image_size_of(args, trained),
                plan=test_single_frame.frame_plan(args.frames, CHUNK_FRAMES["frame"]),
                rows=test_single_frame.frame_logits(batch_size, 1))


def clip_predictor(checkpoint, trained, args, ranks, path):
    # What test_3d.main does for --mode sliding.
    image_size = image_size_of(args, trained)
    model, clip_len, norm = test_3d.load_model(checkpoint, trained, ranks, path, image_size)
    batch_size = test_3d.windows_per_pass(args)
    described = test_3d.describe(trained, argparse.Namespace(mode="sliding", stride=args.stride,
                                                             max_frames=None, crops=1), clip_len)
    return dict(title=described["title"], test=described["test"], model=model, normalize=train_3d.normalizer(norm),
                image_size=image_size, clip_len=clip_len,
                plan=test_3d.sliding_plan(clip_len, args.stride, CHUNK_FRAMES["clip"]),
                rows=test_3d.clip_logits("sliding", clip_len, args.stride, batch_size, 1))


def feature_cnn(info, features_dir, args, ranks):
    """(the CNN that made the features of features.json `info`, up to its global average pool; its image
    size), rebuilt with extract_features.backbone."""
    source = str(info.get("weights", ""))
    arch = info.get("arch", "resnet50")
    image_size = args.image_size or info.get("image_size")  # the size the features were made at
    made_by = os.path.join(features_dir, extract_features.FEATURES_INFO)
    known = PRETRAINED_SOURCE.match(source)
    if known and known.group(1) == "none":
        raise engine.UserError(f"{made_by}: the features were made by a randomly initialised {known.group(2)} "
                               f"(--pretrained none), which cannot be made again: nothing to predict with")
    if known:
        cnn_args = argparse.Namespace(checkpoint=None, arch=known.group(2), pretrained="imagenet", weights=None,
                                      image_size=image_size)
        return extract_features.backbone(cnn_args, ranks)[0], image_size or hf.IMAGE_SIZE
    if not source or not os.path.isfile(source):
        raise engine.UserError(f"{made_by} says the features were made by the CNN {source or '(not recorded)'}, "
                               f"which is not found: put that checkpoint or weights file back at that path")
    state = engine.load_checkpoint(source, what=f"the CNN of {made_by}")
    is_checkpoint = isinstance(state, dict) and isinstance(state.get("model"), dict) and "class_list" in state
    del state  # backbone() reads the file itself
    if is_checkpoint:  # a part-1 checkpoint (extract_features.py --checkpoint); its training size if none recorded
        cnn_args = argparse.Namespace(checkpoint=source, image_size=image_size, arch=arch)
        model = extract_features.backbone(cnn_args, ranks)[0]
        return model, cnn_args.image_size or hf.IMAGE_SIZE
    # an ImageNet state_dict (extract_features.py --weights)
    cnn_args = argparse.Namespace(checkpoint=None, arch=arch, pretrained="imagenet", weights=source,
                                  image_size=image_size)
    return extract_features.backbone(cnn_args, ranks)[0], image_size or hf.IMAGE_SIZE


def features_predictor(checkpoint, trained, args, ranks, path):
    # What test_rnn.main does, plus the CNN of extract_features.py in front.
    features_dir = trained.get("features")
    if not features_dir:
        raise engine.UserError(f"{path}: the RNN checkpoint does not name its features folder, so the CNN that "
                               f"made its features is unknown")
    try:
        info = train_rnn.read_features_info(features_dir)
    except engine.UserError as e:
        raise engine.UserError(f"{path}: its features.json (which CNN made the RNN's features) cannot be read: "
                               f"{e}") from None
    model, max_frames, rnn_stride = test_rnn.load_model(checkpoint, trained, ranks, path, info["dims"])
    cnn, cnn_size = feature_cnn(info, features_dir, args, ranks)
    batch_size = args.batch_size or BATCH_SIZES["features"]
    described = test_rnn.describe(trained, info, max_frames, rnn_stride)
    return dict(title=described["title"], test=described["test"], model=model,
                normalize=engine.FeatureInput(), image_size=None, plan=None,
                rows=test_rnn.window_logits(max_frames, batch_size), max_frames=max_frames,
                rnn_stride=rnn_stride, cnn=cnn, cnn_size=cnn_size,
                cnn_normalize=engine.Normalize(hf.FRAME_MEAN, hf.FRAME_STD),
                cnn_plan=extract_features.stride_plan(info.get("frame_stride", 1), CHUNK_FRAMES["frame"]),
                cnn_rows=extract_features.feature_rows(args.batch_size or BATCH_SIZES["frame"]),
                feature_stride=info.get("frame_stride", 1))


BUILDERS = {"frame": frame_predictor, "clip": clip_predictor, "features": features_predictor}


def load_predictor(path, name, args, ranks, device):
    """The checkpoint at `path` as a Predictor on `device`, or a UserError line."""
    checkpoint, trained, kind = read_checkpoint(path)
    fields = BUILDERS[kind](checkpoint, trained, args, ranks, path)
    fields["model"] = engine.prepare_model(fields["model"], device).eval()
    for key in ("normalize", "cnn_normalize"):
        if key in fields:
            fields[key] = fields[key].to(device)
    if "cnn" in fields:
        fields["cnn"] = engine.prepare_model(fields["cnn"], device).eval()
    return Predictor(name=name, path=path, kind=kind, class_list=[str(c) for c in checkpoint["class_list"]],
                     **fields)


# ----------------------------------------------------------------------------------------------
# Videos -> rows of logits

def check_video(path):
    """(frames, height, width) of a readable video, or VideoFailed with its one line."""
    if not os.path.exists(path):
        raise VideoFailed(f"{path}: no such file")
    if os.path.isdir(path):
        raise VideoFailed(f"{path}: is a directory, not a video file")
    try:
        frames, height, width, _ = hf.video_info(path)
    except hf.READ_ERRORS as e:
        raise VideoFailed(read_error(path, e)) from None
    return frames, height, width


def read_error(path, error):
    text = engine.one_line(error)
    text = text[len(path) + 2:] if text.startswith(f"{path}: ") else text
    if isinstance(error, OSError) and not hf.is_video_path(path):
        text = (f"neither an HDF5 video file nor a video ({', '.join(hf.VIDEO_SUFFIXES)}) ({text})")
    return f"{path}: {text}"


def chunk_rows(model, plan, rows_fn, normalize, size, path, device, amp, desc):
    """rows_fn over the chunks plan(frames) says, read in this process: float32 numpy [rows, ...]."""
    loader = hf.VideoChunkLoader([path], plan, pool=None, size=size)
    amp = engine.model_amp(amp, device, model)  # 3D convolutions stay float32 on the CPU
    out = []
    with torch.no_grad():
        for *_, chunk in engine.progress(loader, engine.Dist(), desc=desc, unit="chunk", leave=False):
            if isinstance(chunk, str):  # "VideoDecodeError: path: frame 40 does not decode ..."
                reason = chunk.partition(": ")[2] or chunk
                raise VideoFailed(reason if reason.startswith(path) else f"{path}: {reason}")
            with engine.autocast(device, amp):
                out.append(rows_fn(model, engine.to_device(chunk, device), normalize).float().cpu().numpy())
    return np.concatenate(out)


def video_features(p, path, device, amp):
    """The RNN's input for a video: float16 features of its CNN at the features' frame stride, every
    rnn_stride-th row, as extract_features.py stores them and test_rnn.py reads them: [steps, dims]."""
    features = chunk_rows(p.cnn, p.cnn_plan, p.cnn_rows, p.cnn_normalize, p.cnn_size, path, device, amp,
                          f"{p.name} features")
    return features.astype(np.float16)[::p.rnn_stride]


def video_logits(p, path, device, amp):
    """Rows of logits [rows, classes] of one video, as p's test script computes them."""
    if p.kind != "features":
        logits = chunk_rows(p.model, p.plan, p.rows, p.normalize, p.image_size, path, device, amp, p.name)
    else:
        features = video_features(p, path, device, amp)
        p.last_features = (path, features)  # for --explain
        with torch.no_grad(), engine.autocast(device, amp):
            logits = p.rows(p.model, torch.from_numpy(features).to(device), p.normalize).float().cpu().numpy()
    if not np.isfinite(logits).all():
        raise VideoFailed(f"{path}: {p.name}'s outputs are not finite"
                          + (" (rerun with --no-amp: fp16 overflow is the usual cause)" if amp[0] else ""))
    return logits


# ----------------------------------------------------------------------------------------------
# Scores, fusion, output

def top_classes(distribution, class_list, k):
    """[[class, p], ...] of the k best entries of a distribution [C], best first (ties: lower index)."""
    order = video_scores.rank_classes(np.asarray(distribution)[None])[0][:k]
    return [[class_list[i], float(distribution[i])] for i in order]


def fused_distribution(scores, rule, weights, temperatures=None):
    """combine_results.py's fusion of video scores [C] each, each divided by its temperature first (None:
    1), as a distribution: softmax of the fused score for logmean, the fused score itself for prob and max
    (already in [0, 1])."""
    fused = score_fusion.fuse_scores(calibration.calibrate([s[None] for s in scores], temperatures), rule, weights)[0]
    return video_scores.softmax(fused) if rule == "logmean" else fused


CHECKPOINT_ORDER, RESULTS_JSON = "one per --checkpoint in order", "a combine_results.py results.json"


def is_results_path(text):
    return text.lower().endswith(".json") or os.path.isfile(text)


# The settings that make a model's scores what they are, per test mode of model.json's "test" (the 3D
# ResNet tested in two modes is two models of a results.json, of one checkpoint).
TEST_SETTINGS = {"frames": ("frames", "crops"), "sliding": ("clip_len", "stride", "crops"),
                 "full": ("clip_len", "max_frames", "crops"), "windows": ("max_frames", "frame_stride")}


def test_differences(p, model):
    """The settings in which a results.json model's test (its model.json "test") differs from how predict.py
    tests predictor p: ["mode"] for another mode, [] when they agree or the test is not recorded."""
    test = model.get("test") if isinstance(model, dict) else None
    if not isinstance(test, dict) or "mode" not in test:
        return []
    if test["mode"] != p.test["mode"]:
        return ["mode"]
    return [key for key in TEST_SETTINGS.get(p.test["mode"], ()) if key in test and test[key] != p.test.get(key)]


def tested_as(model):
    """How a results.json model was tested, in words."""
    model = model if isinstance(model, dict) else {}
    test = model.get("test") if isinstance(model.get("test"), dict) else {}
    return model.get("test_description") or test.get("description") or "test not recorded"


def recorded_model(results_path, models, p):
    """(name, how it was chosen, in words) of the model of a results.json that is predictor p tested as
    predict.py tests it: of the models of p's checkpoint (else the model of p's name), the one of p's test
    mode, preferably with p's other settings too (frames, stride, ...); or a UserError line."""
    checkpoint = os.path.realpath(p.path)
    same_checkpoint = [name for name, m in models.items()
                       if isinstance(m, dict) and isinstance(m.get("checkpoint"), str)
                       and os.path.realpath(m["checkpoint"]) == checkpoint]
    candidates = same_checkpoint or ([p.name] if p.name in models else [])
    if not candidates:
        raise engine.UserError(f"--weights {results_path}: cannot be matched: {p.path} is none of its models "
                               f"({', '.join(models)}) by checkpoint path or by name ({p.name})")
    differences = {name: test_differences(p, models[name]) for name in candidates}
    same_mode = [name for name in candidates if differences[name] != ["mode"]]
    if not same_mode:
        raise engine.UserError(f"--weights {results_path}: cannot be matched: {p.path} is in it only as "
                               + ", ".join(f"{name} ({tested_as(models[name])})" for name in candidates)
                               + f", and predict.py tests it in {p.test['mode']} mode ({p.test['description']}): "
                               f"give combine_results.py a test of that mode")
    exact = [name for name in same_mode if not differences[name]]
    chosen = exact or same_mode
    if len(chosen) > 1:
        chosen = [name for name in chosen if name == p.name] or chosen
    if len(chosen) > 1:
        alike = "" if exact else f" of {p.test['mode']} mode, none"
        raise engine.UserError(f"--weights {results_path}: cannot be matched: {p.path} is several of its models"
                               f"{alike} tested as predict.py tests it ({p.test['description']}): "
                               + ", ".join(f"{name} ({tested_as(models[name])})" for name in chosen))
    name = chosen[0]
    how = f"{p.name} as its {name} ({tested_as(models[name])}"
    if differences[name]:
        how += f"; predict.py: {p.test['description']}"
    how += ")" + "".join(f", not {other} ({tested_as(models[other])})" for other in candidates if other != name)
    return name, how


def recorded_fusion(results_path, predictors, rule):
    """(rule, weights and temperatures in predictors' order, description) of the fusion that combine_results.py
    recorded in
    `results_path` for exactly these models (recorded_model: by checkpoint path, else by name, and by how
    predict.py tests each), or a UserError. The description says which fusion and models were taken."""
    try:
        with open(results_path, encoding="utf-8") as f:
            results = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise engine.UserError(f"--weights {results_path}: not a readable results.json "
                               f"({engine.one_line(e)})") from None
    models, fusions = (results.get("models"), results.get("fusions")) if isinstance(results, dict) else (None, None)
    if not isinstance(models, dict) or not isinstance(fusions, dict):
        raise engine.UserError(f"--weights {results_path}: not a results.json of combine_results.py "
                               f"(no models/fusions)")
    matched, hows = [], []
    for p in predictors:
        name, how = recorded_model(results_path, models, p)
        if name in matched:
            raise engine.UserError(f"--weights {results_path}: cannot be matched: {p.path} and "
                                   f"{predictors[matched.index(name)].path} are both its model {name}")
        matched.append(name)
        hows.append(how)
    for fusion_name, fusion in fusions.items():
        members = fusion.get("members") or []
        if sorted(members) == sorted(matched) and (rule is None or fusion.get("rule") == rule):
            weights = [float(fusion["weights"][members.index(m)]) for m in matched]
            # --weights auto records a temperature per member (older results.json files: none, i.e. 1)
            recorded = fusion.get("temperatures") or [1.0] * len(members)
            temperatures = [float(recorded[members.index(m)]) for m in matched]
            return (fusion["rule"], weights, f"fusion {fusion_name} of {results_path}; " + "; ".join(hows),
                    temperatures)
    raise engine.UserError(f"--weights {results_path}: cannot be matched: it records no fusion of exactly "
                           f"{', '.join(matched)}" + (f" with rule {rule}" if rule else "")
                           + f" (its fusions: {', '.join(fusions) or 'none'})")


def plan_fusion(args, predictors, kept):
    """(rule, weights, description, temperatures) for the predictors that loaded, or None for a single model.
    `kept`: the index in --checkpoint of each predictor (for numeric weights)."""
    if len(predictors) < 2:
        return None
    if args.weights and is_results_path(args.weights):
        return recorded_fusion(args.weights, predictors, args.fusion)
    rule = args.fusion or "logmean"
    if args.weights:
        weights = score_fusion.parse_weights(args.weights, len(args.checkpoint), CHECKPOINT_ORDER, RESULTS_JSON)
        weights = [weights[i] for i in kept]
        if sum(weights) == 0:
            raise engine.UserError("--weights: every checkpoint that loaded has weight 0")
        return rule, weights, "weights given", [1.0] * len(predictors)
    return rule, [1.0 / len(predictors)] * len(predictors), "equal weights", [1.0] * len(predictors)


def format_table(path, frames, tops, fused, fusion):
    """The text output of one video: a column of top classes per model and for the fusion."""
    columns = list(tops.items())
    if fused is not None:
        columns.append((f"fused ({fusion[0]})", fused))
    widths = [max([len(name)] + [len(c) + 8 for c, _ in entries]) for name, entries in columns]
    lines = [f"{path} ({frames} frames)",
             ("  rank  " + "  ".join(f"{name:<{w}}" for (name, _), w in zip(columns, widths))).rstrip()]
    for rank in range(max(len(entries) for _, entries in columns)):
        cells = []
        for (_, entries), w in zip(columns, widths):
            c, p = entries[rank]
            cells.append(f"{c:<{w - 8}}  {p:6.4f}")
        lines.append(f"  {rank + 1:>4}  " + "  ".join(cells))
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Grad-CAM

def spread(count, n):
    """n positions of 0..count-1 evenly spread (all of them when count <= n)."""
    return np.unique(np.linspace(0, count - 1, min(n, count)).round().astype(np.int64))


def explain_frames_2d(p, path, frames, target, args, device):
    """Maps [n, S, S] of a 2D model on n frames at the segment centres, and their frame indices."""
    indices = hf.segment_centres(frames, min(args.explain_frames, frames))
    x = p.normalize(engine.to_device(hf.load_chunk(path, indices, size=p.image_size), device))
    maps = np.concatenate([gradcam.grad_cam(p.model, batch, target)[0]
                           for batch in engine.batched(x, args.batch_size or BATCH_SIZES["frame"])])
    return gradcam.upsample(maps, (p.image_size, p.image_size)), indices


def explain_clips(p, path, frames, target, args, device):
    """Maps [clips, clip_len, S, S] of a 3D model on windows centred on the segment centres, and their
    frame indices [clips, clip_len] (looped past the end)."""
    centres = hf.segment_centres(frames, args.explain_clips)
    starts = np.clip(centres - p.clip_len // 2, 0, max(frames - p.clip_len, 0))
    indices = (starts[:, None] + np.arange(p.clip_len)) % frames  # (clips, clip_len)
    chunk = hf.load_chunk(path, indices.ravel(), size=p.image_size)
    clips = engine.to_device(chunk.reshape(indices.shape + chunk.shape[1:]), device)  # (clips, T, S, S, 3)
    maps = np.concatenate([gradcam.grad_cam(p.model, p.normalize(batch), target)[0]
                           for batch in engine.batched(clips, test_3d.windows_per_pass(args))])
    return gradcam.upsample(maps, (p.clip_len, p.image_size, p.image_size)), indices


class ThroughCNN(nn.Module):
    """The RNN's logits as a function of n frames: row k is the RNN on the window holding step
    steps[k], that step's features replaced by the CNN's features of frame k (the other steps are the
    video's fixed features), so that row k depends on frame k alone, as gradcam.grad_cam requires."""

    def __init__(self, cnn, rnn, features, steps, max_frames):
        super().__init__()
        self.cnn, self.rnn, self.features, self.steps, self.max_frames = cnn, rnn, features, steps, max_frames

    def forward(self, x):
        new = self.cnn(x).float()  # (n, dims)
        windows, lengths = [], []
        for k, step in enumerate(self.steps):
            first = step // self.max_frames * self.max_frames
            window = self.features[first:first + self.max_frames]  # (L, dims) constant
            mask = torch.zeros(len(window), 1, device=window.device)
            mask[step - first] = 1
            windows.append(window * (1 - mask) + mask * new[k])
            lengths.append(len(window))
        padded = nn.utils.rnn.pad_sequence(windows, batch_first=True)
        return self.rnn(padded, torch.tensor(lengths))


def explain_rnn(p, path, frames, target, args, device):
    """Maps [n, S, S] on the CNN frames of n of the RNN's steps at the segment centres, and their frame
    indices."""
    if getattr(p, "last_features", (None,))[0] != path:
        p.last_features = (path, video_features(p, path, device, (False, torch.float32)))
    features = torch.from_numpy(p.last_features[1]).to(device).float()
    step_frames = np.arange(0, frames, p.feature_stride)[::p.rnn_stride]  # the frame of each RNN step
    steps = hf.segment_centres(len(step_frames), min(args.explain_frames, len(step_frames)))
    indices = step_frames[steps]
    x = p.cnn_normalize(engine.to_device(hf.load_chunk(path, indices, size=p.cnn_size), device))
    wrapper = ThroughCNN(p.cnn, p.model, features, steps.tolist(), p.max_frames).eval()
    # cuDNN's RNN has no backward pass in eval mode: the explained RNN runs on PyTorch's own kernels.
    with torch.backends.cudnn.flags(enabled=False):
        maps = gradcam.grad_cam(wrapper, x, target, layer=p.cnn.layer4)[0]
    return gradcam.upsample(maps, (p.cnn_size, p.cnn_size)), indices


EXPLAINERS = {"frame": explain_frames_2d, "clip": explain_clips, "features": explain_rnn}


def explain(p, path, frames, target, stem, args, device):
    """Write OUT_DIR/<stem>.<model>.png and .npy for class index `target`; returns the PNG's path."""
    maps, indices = EXPLAINERS[p.kind](p, path, frames, target, args, device)
    base = os.path.join(args.explain, f"{stem}.{p.name}")
    gradcam.save_maps(maps, base + ".npy")
    flat_maps, flat_indices = maps.reshape((-1,) + maps.shape[-2:]), np.asarray(indices).ravel()
    shown = spread(len(flat_indices), args.explain_frames)  # 3D: a few of each clip's frames
    originals = hf.read_frames(path, flat_indices[shown])
    titles = [f"f{i} {p.class_list[target]}" for i in flat_indices[shown]]
    return gradcam.overlay_strip(originals, flat_maps[shown], base + ".png", titles=titles,
                                 max_tiles=args.explain_frames)


# ----------------------------------------------------------------------------------------------

def say(message):
    tqdm.write(f"predict.py: {message}", file=sys.stderr)


def load_predictors(args, ranks, device):
    """The checkpoints that load and share the first one's class list; (predictors, their index in
    --checkpoint, number left out)."""
    predictors, kept, left_out = [], [], 0
    for i, (path, name) in enumerate(zip(args.checkpoint, model_names(args.checkpoint))):
        try:
            p = load_predictor(path, name, args, ranks, device)
        except engine.UserError as e:
            if len(args.checkpoint) == 1:  # nothing left to predict with: the usage error, one line
                raise
            say(f"checkpoint left out: {e}")
            left_out += 1
            continue
        if predictors and p.class_list != predictors[0].class_list:
            say(f"checkpoint left out: {path} was trained on {len(p.class_list)} classes "
                f"({', '.join(p.class_list[:3])}, ...), not the class list of {predictors[0].path} "
                f"({len(predictors[0].class_list)}: {', '.join(predictors[0].class_list[:3])}, ...)")
            left_out += 1
            continue
        predictors.append(p)
        kept.append(i)
    return predictors, kept, left_out


def explain_stems(paths):
    stems, seen = [], {}
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        seen[stem] = seen.get(stem, 0) + 1
        stems.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return stems


def main(args):  # noqa: C901 (split up in the restructure, issue 21)
    if (args.weights or args.fusion) and len(args.checkpoint) < 2:
        raise engine.UserError("--fusion/--weights: there is nothing to fuse with one --checkpoint")
    if args.weights and not is_results_path(args.weights):
        score_fusion.parse_weights(
            args.weights, len(args.checkpoint), CHECKPOINT_ORDER, RESULTS_JSON
        )  # a usage error before any model loads
    engine.check_output_paths({"--explain": args.explain}, {
        "VIDEO": args.videos, "--checkpoint": args.checkpoint,
        "--weights": [args.weights] if args.weights and is_results_path(args.weights) else []})
    # OpenCV logs its own warning about a file FFmpeg cannot open; the one line below says it.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    ranks = engine.Dist()
    device = engine.resolve_device(args.device, ranks)
    amp = engine.amp_settings(args, device)
    predictors, kept, left_out = load_predictors(args, ranks, device)
    if not predictors:
        raise engine.UserError("no checkpoint could be used (see the lines above)")
    fusion = plan_fusion(args, predictors, kept)
    class_list = predictors[0].class_list
    target = None
    if args.explain_class is not None:
        if args.explain_class not in class_list:
            raise engine.UserError(f"--explain-class {args.explain_class!r} is not a class of the checkpoints "
                                   f"({', '.join(class_list[:5])}, ...)")
        target = class_list.index(args.explain_class)
    if fusion is not None and fusion[2].startswith("fusion "):  # say what was taken from the results.json
        calibrated = any(t != 1.0 for t in fusion[3])
        say(f"fusion: {fusion[0]}, weights " + ", ".join(f"{p.name} {w:g}" for p, w in zip(predictors, fusion[1]))
            + (", temperatures " + ", ".join(f"{p.name} {t:.4g}" for p, t in zip(predictors, fusion[3]))
               if calibrated else "") + f" ({fusion[2]})")

    if not args.json:
        for p in predictors:
            tqdm.write(f"{p.name}: {p.title} ({p.path})", file=sys.stdout)
    failed = 0
    stems = explain_stems(args.videos)
    for path, stem in zip(engine.progress(args.videos, ranks, desc="videos", unit="video"), stems):
        try:
            frames, _, _ = check_video(path)
            scores = {p.name: video_scores.video_score(video_logits(p, path, device, amp)) for p in predictors}
        except VideoFailed as e:
            say(str(e))
            failed += 1
            continue
        tops = {name: top_classes(video_scores.softmax(s), class_list, args.top) for name, s in scores.items()}
        fused = None
        if fusion is not None:
            fused = top_classes(fused_distribution(list(scores.values()), fusion[0], fusion[1], fusion[3]),
                                class_list, args.top)
        if args.json:
            line = {"path": path, "frames": int(frames), "models": tops, "fused": fused}
            tqdm.write(json.dumps(line), file=sys.stdout)
        else:
            tqdm.write(format_table(path, frames, tops, fused, fusion), file=sys.stdout)
        if args.explain:
            for p in predictors:
                chosen = target if target is not None else int(np.argmax(scores[p.name]))
                try:
                    explain(p, path, frames, chosen, stem, args, device)
                except (OSError, ValueError, VideoFailed) as e:
                    say(f"{path}: no Grad-CAM of {p.name}: {engine.one_line(e)}")
                    failed += 1
        sys.stdout.flush()
    return 1 if failed or left_out else 0


if __name__ == "__main__":
    sys.exit(engine.run_main(main, get_args_parser()))
