"""Trained checkpoints of any training script rebuilt as predictors: each model on the device in eval mode,
with the way its test script sees a video (single frame / TSN: frames; 3D: sliding windows; RNN: the
features of the CNN that made its training features, then windows of them)."""
import argparse
import os
import re
import types
from collections.abc import Callable

import torch

from actionrec import guards
from actionrec.data import feature_files, motion, normalization, sampling
from actionrec.engine import checkpoints, devices, model_io, trained_model
from actionrec.flow import methods, recorded
from actionrec.inference import clip_views, feature_extraction, frame_views, label_sets, rnn_views
from actionrec.zoo import clip_nets, rnn_nets

BATCH_SIZES = {"frame": 100, "features": 64}  # the test scripts' defaults; clips: clip_views.windows_per_pass
CHUNK_FRAMES = {"frame": 100, "clip": 200}  # frames decoded at a time: memory flat in video length
PRETRAINED_SOURCE = re.compile(r"^(imagenet|none) \((\w+)\)$")  # extract_features' "imagenet (resnet50)"


class Predictor(types.SimpleNamespace):
    """One checkpoint rebuilt as its test script rebuilds it, on the device, in eval mode.

    name, title, kind, path, class_list (of every output: with label heads "<head>:<class>"), sets (its
    label_sets.LabelSet: the one class list, or each head's outputs); test (how it is tested, in
    model.json's words: mode, frames, stride, ...); model; normalize (uint8 channels-last -> the model's
    input); image_size; plan(frames) -> chunks (frame_views.frame_plan / clip_views.sliding_plan); rows(model,
    chunk, normalize) -> logits rows; crops (views per frame); modality ("rgb", "flow", "rgbdiff"), reader
    (motion.SnippetReader of the motion stream, else None), flow (the extract.FlowSettings of a flow
    model's input, else None), note (a line to say at load, or None). The RNN ("features") also holds
    its CNN: cnn, cnn_normalize, cnn_plan, cnn_rows, cnn_size, feature_stride, rnn_stride (its training
    run's stride over feature rows), max_frames.
    """


def read_checkpoint(path: str) -> tuple[dict, dict, str]:
    """(checkpoint, training args, kind) of a training script's checkpoint; kind is "frame" (single frame
    and TSN), "clip" or "features". A UserError line for anything else."""
    return trained_model.check_trained(checkpoints.load_checkpoint(path), path)


def model_names(paths: list[str]) -> list[str]:
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


def image_size_of(args: argparse.Namespace, trained: dict) -> int:
    return args.image_size or trained.get("image_size") or sampling.IMAGE_SIZE


def frame_predictor(checkpoint: dict, trained: dict, args: argparse.Namespace, ranks: devices.Dist,
                    path: str) -> dict:
    """The fields of a single-frame, TSN or motion-stream Predictor: what test_single_frame.py does (its
    modality's input and snippets; a flow model's flow is computed from the video with the extraction
    settings of its training, recorded.py, or extract_flow.py's defaults and a `note` for an older checkpoint)."""
    model = frame_views.load_model(checkpoint, trained, ranks, path)
    modality, new_length = frame_views.modality_of(trained)
    batch_size = args.batch_size or BATCH_SIZES["frame"]
    crops = getattr(args, "crops", 1)
    described = frame_views.describe(trained, argparse.Namespace(frames=args.frames, crops=crops))
    fields = dict(
        title=described["title"],
        test=described["test"],
        model=model,
        normalize=model_io.modality_input(modality, new_length),
        image_size=image_size_of(args, trained),
        plan=frame_views.frame_plan(args.frames, motion.chunk_snippets(CHUNK_FRAMES["frame"], modality, new_length)),
        rows=frame_views.frame_logits(batch_size, crops),
        crops=crops, reader=motion.snippet_reader(modality, new_length), modality=modality, flow=None,
    )
    if modality == "flow":
        fields["flow"], was_recorded = recorded.settings_of(trained, getattr(args, "raft_weights", None))
        if fields["flow"].method in methods.RAFT_METHODS:
            try:
                methods.load_raft_state(fields["flow"].raft_weights, fields["flow"].method)
            except ValueError as e:
                raise guards.UserError(f"{path} was trained on {fields['flow'].method} flow: {e}") from None
        if not was_recorded:
            fields["note"] = (f"{path} does not record how its training flow was extracted (written before "
                              f"it did): its flow is computed with extract_flow.py's defaults "
                              f"({recorded.describe(fields['flow'])})")
    return fields


def clip_predictor(checkpoint: dict, trained: dict, args: argparse.Namespace, ranks: devices.Dist,
                   path: str) -> dict:
    """The fields of a 3D Predictor: what test_3d.py does for --mode sliding."""
    image_size = image_size_of(args, trained)
    model, clip_len, norm = clip_views.load_model(checkpoint, trained, ranks, path, image_size)
    batch_size = clip_views.windows_per_pass(args)
    described = clip_views.describe(trained, argparse.Namespace(mode="sliding", stride=args.stride,
                                                             max_frames=None, crops=1), clip_len)
    return dict(title=described["title"], test=described["test"], model=model, normalize=clip_nets.normalizer(norm),
                image_size=image_size, clip_len=clip_len,
                plan=clip_views.sliding_plan(clip_len, args.stride, CHUNK_FRAMES["clip"]),
                rows=clip_views.clip_logits("sliding", clip_len, args.stride, batch_size, 1))


def feature_cnn(info: dict, features_dir: str, args: argparse.Namespace,
                ranks: devices.Dist) -> tuple[torch.nn.Module, int]:
    """(the CNN that made the features of features.json `info`, up to its global average pool; its image
    size), rebuilt with feature_extraction.backbone."""
    source = str(info.get("weights", ""))
    arch = info.get("arch", "resnet50")
    image_size = args.image_size or info.get("image_size")  # the size the features were made at
    made_by = os.path.join(features_dir, feature_files.FEATURES_INFO)
    known = PRETRAINED_SOURCE.match(source)
    if known and known.group(1) == "none":
        raise guards.UserError(f"{made_by}: the features were made by a randomly initialised {known.group(2)} "
                               f"(--pretrained none), which cannot be made again: nothing to predict with")
    if known:
        cnn_args = argparse.Namespace(checkpoint=None, arch=known.group(2), pretrained="imagenet", weights=None,
                                      image_size=image_size)
        return feature_extraction.backbone(cnn_args, ranks)[0], image_size or sampling.IMAGE_SIZE
    if not source or not os.path.isfile(source):
        raise guards.UserError(f"{made_by} says the features were made by the CNN {source or '(not recorded)'}, "
                               f"which is not found: put that checkpoint or weights file back at that path")
    state = checkpoints.load_checkpoint(source, what=f"the CNN of {made_by}")
    is_checkpoint = isinstance(state, dict) and isinstance(state.get("model"), dict) and "class_list" in state
    del state  # backbone() reads the file itself
    if is_checkpoint:  # a part-1 checkpoint (extract_features.py --checkpoint); its training size if none recorded
        cnn_args = argparse.Namespace(checkpoint=source, image_size=image_size, arch=arch)
        model = feature_extraction.backbone(cnn_args, ranks)[0]
        return model, cnn_args.image_size or sampling.IMAGE_SIZE
    # an ImageNet state_dict (extract_features.py --weights)
    cnn_args = argparse.Namespace(checkpoint=None, arch=arch, pretrained="imagenet", weights=source,
                                  image_size=image_size)
    return feature_extraction.backbone(cnn_args, ranks)[0], image_size or sampling.IMAGE_SIZE


def features_predictor(checkpoint: dict, trained: dict, args: argparse.Namespace, ranks: devices.Dist,
                       path: str) -> dict:
    """The fields of an RNN Predictor: what test_rnn.py does, plus the CNN of extract_features.py in front."""
    features_dir = trained.get("features")
    if not features_dir:
        raise guards.UserError(f"{path}: the RNN checkpoint does not name its features folder, so the CNN that "
                               f"made its features is unknown")
    try:
        info = rnn_nets.read_features_info(features_dir)
    except guards.UserError as e:
        raise guards.UserError(f"{path}: its features.json (which CNN made the RNN's features) cannot be read: "
                               f"{e}") from None
    model, max_frames, rnn_stride = rnn_views.load_model(checkpoint, trained, ranks, path, info["dims"])
    cnn, cnn_size = feature_cnn(info, features_dir, args, ranks)
    batch_size = args.batch_size or BATCH_SIZES["features"]
    described = rnn_views.describe(trained, info, max_frames, rnn_stride)
    return dict(title=described["title"], test=described["test"], model=model,
                normalize=model_io.FeatureInput(), image_size=None, plan=None,
                rows=rnn_views.window_logits(max_frames, batch_size), max_frames=max_frames,
                rnn_stride=rnn_stride, cnn=cnn, cnn_size=cnn_size,
                cnn_normalize=model_io.Normalize(normalization.FRAME_MEAN, normalization.FRAME_STD),
                cnn_plan=feature_extraction.stride_plan(info.get("frame_stride", 1), CHUNK_FRAMES["frame"]),
                cnn_rows=feature_extraction.feature_rows(args.batch_size or BATCH_SIZES["frame"]),
                feature_stride=info.get("frame_stride", 1))


BUILDERS = {"frame": frame_predictor, "clip": clip_predictor, "features": features_predictor}


def load_predictor(path: str, name: str, args: argparse.Namespace, ranks: devices.Dist,
                   device: torch.device) -> Predictor:
    """The checkpoint at `path` as a Predictor on `device`, or a UserError line."""
    checkpoint, trained, kind = read_checkpoint(path)
    sets = label_sets.label_sets(checkpoint)  # label heads: a softmax each, never one over all outputs
    fields = BUILDERS[kind](checkpoint, trained, args, ranks, path)
    fields["model"] = devices.prepare_model(fields["model"], device).eval()
    for key in ("normalize", "cnn_normalize"):
        if key in fields:
            fields[key] = fields[key].to(device)
    if "cnn" in fields:
        fields["cnn"] = devices.prepare_model(fields["cnn"], device).eval()
    fields = {"crops": 1, "reader": None, "modality": "rgb", "flow": None, "note": None, **fields}
    return Predictor(name=name, path=path, kind=kind, class_list=[str(c) for c in checkpoint["class_list"]],
                     sets=sets, **fields)


def load_predictors(args: argparse.Namespace, ranks: devices.Dist, device: torch.device,
                    say: Callable[[str], None]) -> tuple[list[Predictor], list[int], int]:
    """The checkpoints of --checkpoint that load and share the first one's class list: (predictors, their
    index in --checkpoint, number left out); `say` gets one line per checkpoint left out. With a single
    --checkpoint its UserError is raised (nothing left to predict with)."""
    predictors, kept, left_out = [], [], 0
    for i, (path, name) in enumerate(zip(args.checkpoint, model_names(args.checkpoint))):
        try:
            p = load_predictor(path, name, args, ranks, device)
        except guards.UserError as e:
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
        if p.note:
            say(p.note)
        predictors.append(p)
        kept.append(i)
    return predictors, kept, left_out
