"""Part 1: fine-tune an ImageNet ResNet-50 on single frames of UCF-101.

    python train_single_frame.py --data-dir data --output-dir runs/split1/single_frame
    torchrun --nproc_per_node 4 train_single_frame.py --data-dir data --output-dir ...

Runs again on the same --output-dir continue from its checkpoint.pth (also after SIGTERM/SIGUSR1).
"""
import argparse
import os
import socket
import urllib.error

import torch
import torch.nn as nn
import torchvision

import engine
import helperFunctions as hf

ARCHS = ("resnet50", "resnet18", "resnet34", "resnet101")
FETCH_HINT = ('python -c "from torchvision.models import {arch}, {weights}; {arch}(weights={weights}.IMAGENET1K_V1)"')


def imagenet_state_dict(arch, ranks):
    """torchvision's ImageNet weights from the cache ($TORCH_HOME), downloading them once if possible.

    Compute nodes are often offline: instead of a traceback or a hang, say how to fetch them.
    """
    weights = torchvision.models.get_model_weights(arch).IMAGENET1K_V1
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
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
                + " -- or pass --weights PATH or --pretrained none")
        finally:
            socket.setdefaulttimeout(previous)
            if ranks.local_rank == 0 and ranks.enabled:
                ranks.barrier()
        return state
    return torch.load(cached, map_location="cpu", weights_only=True)


def load_state_dict_file(path):
    if not os.path.isfile(path):
        raise engine.UserError(f"--weights {path}: no such file")
    state = engine.load_checkpoint(path)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # one of our checkpoints
    return {k.removeprefix("module."): v for k, v in state.items()}


def build_model(args, num_classes, ranks, pretrained=True):
    model = getattr(torchvision.models, args.arch)(weights=None)
    if pretrained and (args.weights or args.pretrained == "imagenet"):
        state = load_state_dict_file(args.weights) if args.weights else imagenet_state_dict(args.arch, ranks)
        model.load_state_dict(state)
    # A new classifier for the dataset's classes (the ImageNet head has 1000).
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


def get_args_parser():
    parser = argparse.ArgumentParser(
        description="Fine-tune an ImageNet ResNet-50 on single UCF-101 frames (part 1).",
        parents=[engine.common_parser(),
                 engine.train_parser({"output_dir": "runs/split1/single_frame", "batch_size": 100,
                                      "trainable": None})])
    g = parser.add_argument_group("model")
    g.add_argument("--arch", choices=ARCHS, default="resnet50", help="torchvision ResNet (default: resnet50)")
    g.add_argument("--pretrained", choices=("imagenet", "none"), default="imagenet",
                   help="start from torchvision's ImageNet weights or from scratch (default: imagenet)")
    g.add_argument("--weights", default=None,
                   help="a local state_dict (.pth) to start from instead of downloading (default: none)")
    return parser


def main(args):
    engine.fill_defaults(args)
    if args.trainable is None:  # the assignment's: the last block of layer4 and the classifier
        args.trainable = "layer4.1,fc" if args.arch == "resnet18" else "layer4.2,fc"
    return engine.train(args, build_model, "frame", (hf.FRAME_MEAN, hf.FRAME_STD))


if __name__ == "__main__":
    engine.run_main(main, get_args_parser())
