"""Part 1: fine-tune an ImageNet ResNet-50 on single frames of UCF-101; with --segments K, TSN.

    python train_single_frame.py --data-dir data --output-dir runs/split1/single_frame
    torchrun --nproc_per_node 4 train_single_frame.py --data-dir data --output-dir ...
    # TSN (Wang et al. 2016), RGB, the tsn-pytorch recipe on a ResNet-50:
    python train_single_frame.py --segments 3 --dropout 0.8 --partial-bn --trainable all \
        --optimizer sgd --lr 1e-3 --weight-decay 5e-4 --lr-schedule step --lr-steps 30,60 --epochs 80 \
        --clip-grad-norm 20 --output-dir runs/split1/tsn

A TSN training sample is K frames of one video, one at a random offset in each of K equal segments,
all with the same augmentation; the backbone runs on all of them and the K logit vectors are averaged
before the loss (segmental consensus). Either way the checkpoint holds a per-frame model, tested by
test_single_frame.py. Runs again on the same --output-dir continue from its checkpoint.pth (also
after SIGTERM/SIGUSR1).
"""
import argparse
import os
import socket
import urllib.error

import torch
import torch.nn as nn
import torchvision

import engine
from actionrec.data import normalization

ARCHS = ("resnet50", "resnet18", "resnet34", "resnet101")
FETCH_HINT = ('python -c "from torchvision.models import {arch}, {weights}; {arch}(weights={weights}.IMAGENET1K_V1)"')


def imagenet_cache_path(arch):
    """Where torchvision keeps (or would download) the ImageNet weights of `arch`: $TORCH_HOME/hub/checkpoints."""
    weights = torchvision.models.get_model_weights(arch).IMAGENET1K_V1
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))


def imagenet_state_dict(arch, ranks):
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
            raise engine.UserError(
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
        return engine.load_checkpoint(cached, what="cached ImageNet weights")
    except engine.UserError as e:
        raise engine.UserError(f"{e} (delete it and run again to download it again)") from None


def load_state_dict_file(path):
    state = engine.load_checkpoint(path, what="--weights")
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # one of our checkpoints
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise engine.UserError(f"--weights {path}: expected a state_dict of tensors (torchvision's ImageNet file "
                               f"or one of our checkpoints)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def build_model(args, num_classes, ranks, pretrained=True):
    model = getattr(torchvision.models, args.arch)(weights=None)
    if pretrained and (args.weights or args.pretrained == "imagenet"):
        state = load_state_dict_file(args.weights) if args.weights else imagenet_state_dict(args.arch, ranks)
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as e:  # TypeError, AttributeError: not a dict
            source = (
                f"--weights {args.weights}"
                if args.weights
                else f"cached ImageNet weights {imagenet_cache_path(args.arch)}"
            )
            raise engine.UserError(f"{source}: not a torchvision {args.arch} state_dict "
                                   f"({engine.state_dict_misfit(model, state) or engine.one_line(e)})") from None
    # A new classifier for the dataset's classes (the ImageNet head has 1000).
    fc = nn.Linear(model.fc.in_features, num_classes)
    if getattr(args, "segments", 1) > 1:  # TSN initialises its new classifier N(0, 0.001)
        nn.init.normal_(fc.weight, 0.0, 0.001)
        nn.init.zeros_(fc.bias)
    dropout = getattr(args, "dropout", 0.0)
    model.fc = nn.Sequential(nn.Dropout(dropout), fc) if dropout > 0 else fc
    return model


def get_args_parser():
    parser = argparse.ArgumentParser(
        description="Fine-tune an ImageNet ResNet-50 on single UCF-101 frames (part 1).",
        parents=[engine.common_parser(),
                 engine.train_parser({"output_dir": "runs/split1/single_frame", "batch_size": 100,
                                      "trainable": None,
                                      "trainable_help": "layer4.2,fc: the last block of layer4 and the classifier"})])
    g = parser.add_argument_group("model")
    g.add_argument("--arch", choices=ARCHS, default="resnet50", help="torchvision ResNet (default: resnet50)")
    g.add_argument("--pretrained", choices=("imagenet", "none"), default="imagenet",
                   help="start from torchvision's ImageNet weights or from scratch (default: imagenet)")
    g.add_argument("--weights", default=None,
                   help="a local state_dict (.pth) to start from instead of downloading (default: none)")
    g.add_argument("--dropout", type=float, default=0.0,
                   help="dropout before the classifier (TSN: 0.8) (default: 0, the assignment's head)")
    t = parser.add_argument_group("TSN")
    t.add_argument("--segments", type=engine.positive_int, default=1,
                   help="K segments per training sample, one frame from each, logits averaged (TSN: 3) "
                        "(default: 1, the assignment's single-frame model)")
    return parser


def main(args):
    engine.fill_defaults(args)
    if args.trainable is None:  # the assignment's: the last block of layer4 and the classifier
        args.trainable = "layer4.1,fc" if args.arch == "resnet18" else "layer4.2,fc"
    if not 0 <= args.dropout < 1:
        raise engine.UserError(f"--dropout must be in [0, 1), not {args.dropout}")
    normalize = engine.Normalize(normalization.FRAME_MEAN, normalization.FRAME_STD)
    if args.segments == 1:
        return engine.train(args, build_model, "frame", normalize)
    return engine.train(args, build_model, "segments", normalize, loader_kwargs={"segments": args.segments},
                        eval_kwargs={"centres": True}, forward=engine.Forward(normalize, segments=args.segments))


if __name__ == "__main__":
    engine.run_main(main, get_args_parser())
