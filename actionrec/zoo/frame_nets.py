"""The 2D ImageNet CNNs of the single-frame and TSN models, RGB or the motion stream (flow, RGB
difference: a first convolution of 2L or 3L channels, TSN's cross-modality initialisation), with their
ImageNet weights (torchvision cache or a file)."""

import argparse
import os
import socket
import urllib.error
from typing import Any

import torch
import torch.nn as nn
import torchvision

from actionrec import guards
from actionrec.data import motion
from actionrec.engine import arg_types, checkpoints, devices, runner
from actionrec.models import weights_file

ARCHS = ("resnet50", "resnet18", "resnet34", "resnet101")


FETCH_HINT = ('python -c "from torchvision.models import {arch}, {weights}; {arch}(weights={weights}.IMAGENET1K_V1)"')


def imagenet_cache_path(arch: str) -> str:
    """Where torchvision keeps (or would download) the ImageNet weights of `arch`: $TORCH_HOME/hub/checkpoints."""
    weights = torchvision.models.get_model_weights(arch).IMAGENET1K_V1
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))


def imagenet_state_dict(arch: str, ranks: devices.Dist) -> Any:
    """torchvision's ImageNet weights from the cache ($TORCH_HOME), downloading them once if possible.

    Compute nodes are often offline: instead of a traceback or a hang, say how to fetch them.
    """
    weights = torchvision.models.get_model_weights(arch).IMAGENET1K_V1
    cached = imagenet_cache_path(arch)
    if not os.path.exists(cached):
        if ranks.local_rank != 0:  # one download per node; the others wait for it
            ranks.barrier()
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(30)  # a firewalled node drops packets: fail in seconds, not hours
        try:
            state = weights.get_state_dict(progress=ranks.main)
        except (urllib.error.URLError, OSError) as e:
            raise guards.UserError(
                f"ImageNet weights for {arch} are not cached at {cached} and cannot be downloaded ({e}). "
                f"Fetch them once on a machine with network (e.g. a login node) with the same TORCH_HOME: "
                + FETCH_HINT.format(arch=arch, weights=type(weights).__name__)
                + " -- or pass --weights PATH or --pretrained none") from None
        finally:
            socket.setdefaulttimeout(previous)
            if ranks.local_rank == 0 and ranks.enabled:
                ranks.barrier()
        return state
    try:
        return checkpoints.load_checkpoint(cached, what="cached ImageNet weights")
    except guards.UserError as e:
        raise guards.UserError(f"{e} (delete it and run again to download it again)") from None


def load_state_dict_file(path: str) -> dict[str, torch.Tensor]:
    state = checkpoints.load_checkpoint(path, what="--weights")
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # one of our checkpoints
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise guards.UserError(f"--weights {path}: expected a state_dict of tensors (torchvision's ImageNet file "
                               f"or one of our checkpoints)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def cross_modality_conv(conv: nn.Conv2d, in_channels: int, from_rgb: bool = True) -> nn.Conv2d:
    """A copy of `conv` taking `in_channels` inputs. from_rgb (TSN's cross-modality initialisation): every
    input channel gets the RGB filters averaged over their 3 input channels, weight[:, c] = weight.mean(1);
    otherwise PyTorch's default initialisation (a network trained from scratch: nothing to average)."""
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, bias=conv.bias is not None)
    if from_rgb:
        with torch.no_grad():
            new.weight.copy_(conv.weight.mean(1, keepdim=True).expand_as(new.weight))
            if conv.bias is not None:
                new.bias.copy_(conv.bias)
    return new


def build_model(args: argparse.Namespace, num_classes: int, ranks: devices.Dist, pretrained: bool = True) -> nn.Module:
    model = getattr(torchvision.models, args.arch)(weights=None)
    loaded = pretrained and bool(args.weights or args.pretrained == "imagenet")
    if loaded:
        state = load_state_dict_file(args.weights) if args.weights else imagenet_state_dict(args.arch, ranks)
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as e:  # TypeError, AttributeError: not a dict
            source = (
                f"--weights {args.weights}"
                if args.weights
                else f"cached ImageNet weights {imagenet_cache_path(args.arch)}"
            )
            raise guards.UserError(f"{source}: not a torchvision {args.arch} state_dict "
                                   f"({weights_file.state_dict_misfit(model, state) or runner.one_line(e)})") from None
    modality = getattr(args, "modality", "rgb")
    new_length = getattr(args, "new_length", None) or motion.DEFAULT_NEW_LENGTH[modality]
    in_channels = motion.model_channels(modality, new_length)
    if in_channels != 3:  # the motion stream: flow (2L) or RGB difference (3L)
        model.conv1 = cross_modality_conv(model.conv1, in_channels, from_rgb=loaded)
    # A new classifier for the dataset's classes (the ImageNet head has 1000).
    fc = nn.Linear(model.fc.in_features, num_classes)
    if getattr(args, "segments", 1) > 1:  # TSN initialises its new classifier N(0, 0.001)
        nn.init.normal_(fc.weight, 0.0, 0.001)
        nn.init.zeros_(fc.bias)
    dropout = getattr(args, "dropout", 0.0)
    model.fc = nn.Sequential(nn.Dropout(dropout), fc) if dropout > 0 else fc
    return model


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that define the model: the training script's, and checked again (cli_flags.flags_alone) when a
    checkpoint is read back for testing."""
    g = parser.add_argument_group("model")
    g.add_argument("--arch", choices=ARCHS, default="resnet50", help="torchvision ResNet (default: resnet50)")
    g.add_argument("--pretrained", choices=("imagenet", "none"), default="imagenet",
                   help="start from torchvision's ImageNet weights or from scratch (default: imagenet)")
    g.add_argument("--weights", default=None,
                   help="a local state_dict (.pth) to start from instead of downloading (default: none)")
    g.add_argument("--dropout", type=float, default=0.0,
                   help="dropout before the classifier (TSN: 0.8) (default: 0, the assignment's head)")
    t = parser.add_argument_group("TSN")
    t.add_argument("--segments", type=arg_types.positive_int, default=1,
                   help="K segments per training sample, one frame (or snippet) from each, logits averaged "
                        "(TSN: 3) (default: 1, the assignment's single-frame model)")
    m = parser.add_argument_group(
        "motion stream (the test script takes these from the checkpoint)",
        "flow: L consecutive optical-flow fields of extract_flow.py's files (uint8, +-20 px) stacked as 2L channels "
        "x1,y1,x2,y2,...; normalised (x/255 - 0.5)/0.226 on every channel (tsn-pytorch's ResNet flow input: mean "
        "~128/255, std the mean of ImageNet's RGB std). rgbdiff: the L differences of L+1 consecutive frames, "
        "computed on the fly from ImageNet-normalised frames (tsn-pytorch's _get_diff), 3L channels. Either way "
        "the first convolution takes 2L or 3L channels, initialised with TSN's cross-modality initialisation "
        "(ImageNet RGB filters averaged over RGB, repeated; PyTorch's default with --pretrained none). "
        "A training flip negates x (255 - x), crops and resizes act on all channels alike. Recipes (tsn-pytorch, "
        "README): flow --new-length 5 --segments 3 --dropout 0.7 --partial-bn --trainable all --optimizer sgd "
        "--lr 1e-3 --weight-decay 5e-4 --lr-schedule step --lr-steps 190,300 --epochs 340 --batch-size 128 "
        "--clip-grad-norm 20; rgbdiff --new-length 5 --segments 7, otherwise the RGB TSN recipe.")
    m.add_argument("--modality", choices=motion.MODALITIES, default="rgb",
                   help="rgb frames, stacked optical flow, or RGB difference (default: rgb)")
    m.add_argument("--new-length", type=arg_types.positive_int, default=None,
                   help="L: flow fields or frame differences per snippet (TSN: 5; the two-stream paper: 10 fields) "
                        "(default: 1 for rgb, 5 for flow and rgbdiff)")

