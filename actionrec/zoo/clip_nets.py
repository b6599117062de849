"""The 3D CNNs of the clip models (Hara et al.'s 3D ResNet, C3D), their input normalisation and their
released weights."""

import argparse
import os

import torch.nn as nn

import resnet_3d
from actionrec import guards
from actionrec.data import normalization, sampling
from actionrec.engine import arg_types, checkpoints, devices, model_io
from actionrec.models import c3d

# Per normalisation: (mean, std) on [0, 1] and whether the model wants BGR.
NORMS = {
    "assignment": (normalization.CLIP_MEAN, normalization.CLIP_STD, False),
    "kinetics": (normalization.KINETICS_MEAN, normalization.KINETICS_STD, False),
    # C3D: BGR on 0..255 minus (90, 98, 102), no std, written on [0, 1] like the others
    "c3d": (tuple(m / 255 for m in c3d.MEAN_BGR), (1 / 255,) * 3, True),
}


ARCHS = ("resnet", "c3d")


def normalizer(norm: str) -> model_io.Normalize:
    mean, std, bgr = NORMS[norm]
    return model_io.Normalize(mean, std, bgr=bgr)


def pretrained_path(args: argparse.Namespace) -> str | None:
    """The released weights to start from, or None (from scratch)."""
    given = args.c3d_checkpoint if args.arch == "c3d" else args.kinetics_checkpoint
    if given is None:
        return os.path.join(args.data_dir, "c3d-pretrained.pth" if args.arch == "c3d" else "resnet-50-kinetics.pth")
    return None if given == "none" else given


def released_weights_problem(error: ValueError) -> str:
    """load_pretrained's ValueError about a state it was given, worded for the file it came from."""
    return str(error).replace("given state_dict: ", "").replace("given state_dict ", "it ")


# Per architecture: the flag naming its released weights, what the file is, how to load it, what loaded.
RELEASED = {
    "resnet": ("--kinetics-checkpoint", "resnet-50-kinetics.pth (Hara et al., 3D-ResNets-PyTorch)",
               resnet_3d.load_pretrained,
               lambda info: f"{info['loaded']} tensors (arch {info['arch']}, epoch {info['epoch']})"
                            + ("; new classifier" if info["dropped_fc"] else "")),
    "c3d": ("--c3d-checkpoint", "c3d-pretrained.pth (the Sports-1M C3D of pytorch-video-recognition)",
            c3d.load_pretrained,
            lambda info: f"{len(info['loaded'])} tensors ({info['format']} format)"
                         + ("; new classifier (fc8)" if info["dropped_fc8"] else "")),
}


def load_released(model: nn.Module, arch: str, path: str, ranks: devices.Dist) -> None:
    """The released weights at `path` into `model`, or one line saying what is wrong with the file."""
    flag, what, load, loaded = RELEASED[arch]
    if not os.path.exists(path):
        raise guards.UserError(f"{path} not found: put {what} there, pass {flag} PATH, or {flag} none")
    state = checkpoints.load_checkpoint(path, what=flag)
    try:
        info = load(model, state)
    except ValueError as e:
        raise guards.UserError(f"{flag} {path}: {released_weights_problem(e)}") from None
    if ranks.main:
        print(f"loaded {loaded(info)} from {path}", flush=True)


def build_model(args: argparse.Namespace, num_classes: int, ranks: devices.Dist, pretrained: bool = True) -> nn.Module:
    arch = getattr(args, "arch", "resnet")
    if arch == "c3d":
        model = c3d.C3D(num_classes=num_classes, dropout=args.c3d_dropout, width=args.c3d_width,
                        adaptive_pool=args.c3d_adaptive_pool)
    else:
        try:
            model = resnet_3d.generate_model(args.depth, shortcut_type="B" if args.depth >= 50 else "A",
                                             num_classes=num_classes, layer4_blocks=args.layer4_blocks)
        except ValueError as e:  # more --layer4-blocks than the depth has, an unknown depth
            raise guards.UserError(f"--depth {args.depth} --layer4-blocks {args.layer4_blocks}: {e}") from None
    path = pretrained_path(args) if pretrained else None
    if path is not None:
        load_released(model, arch, path, ranks)
    return model


def freeze_unused_blocks(model: nn.Module) -> None:
    """Blocks of layer4 past --layer4-blocks never run: freeze them so DDP sees no unused gradients."""
    if not isinstance(model, resnet_3d.ResNet):
        return
    for block in model.layer4[model.layer4_blocks or len(model.layer4):]:
        for p in block.parameters():
            p.requires_grad = False


def resolve_arch_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Defaults that depend on --arch (C3D: 112x112 clips, all layers trained, its own normalisation)."""
    if args.arch == "c3d":
        args.image_size = args.image_size or c3d.IMAGE_SIZE
        args.clip_len = args.clip_len or c3d.CLIP_LEN
        args.norm = args.norm or "c3d"
        args.trainable = args.trainable or "all"
        if not args.c3d_adaptive_pool and (args.image_size, args.clip_len) != (c3d.IMAGE_SIZE, c3d.CLIP_LEN):
            raise guards.UserError(
                f"C3D's fc6 takes clips of {c3d.CLIP_LEN} frames of {c3d.IMAGE_SIZE}x{c3d.IMAGE_SIZE}, not "
                f"{args.clip_len} of {args.image_size}x{args.image_size}: use those, or --c3d-adaptive-pool")
        if args.clip_len < c3d.CLIP_LEN or args.image_size < 16:
            raise guards.UserError(f"C3D's pools divide time and space by 16: it needs --clip-len of at least "
                                   f"{c3d.CLIP_LEN} and --image-size of at least 16")
        if not 0 < args.c3d_width <= 4 or not 0 <= args.c3d_dropout < 1:
            raise guards.UserError("--c3d-width must be in (0, 4] and --c3d-dropout in [0, 1)")
    else:
        args.clip_len = args.clip_len or sampling.CLIP_LEN
        args.norm = args.norm or "assignment"
        args.trainable = args.trainable or "layer4.0,fc"
    return args


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that define the model: the training script's, and checked again (cli_flags.flags_alone) when a
    checkpoint is read back for testing."""
    g = parser.add_argument_group("model")
    g.add_argument("--arch", choices=ARCHS, default="resnet",
                   help="resnet: Hara et al.'s 3D ResNet; c3d: Tran et al.'s C3D (default: resnet)")
    g.add_argument("--clip-len", type=arg_types.positive_int, default=None,
                   help=f"frames per clip (default: {sampling.CLIP_LEN})")
    g.add_argument("--norm", choices=tuple(NORMS), default=None,
                   help="assignment: its mean/std on [0,1]; kinetics: Hara's 0-255 minus mean; c3d: BGR 0-255 minus "
                        "(90, 98, 102), what the released C3D weights expect (default: assignment; c3d for C3D)")
    r = parser.add_argument_group("3D ResNet")
    r.add_argument("--kinetics-checkpoint", default=None,
                   help="Hara et al.'s released checkpoint, or 'none' to train from scratch "
                        "(default: DATA_DIR/resnet-50-kinetics.pth)")
    r.add_argument("--depth", type=int, choices=(10, 18, 34, 50, 101, 152, 200), default=50,
                   help="3D ResNet depth (default: 50, the released Kinetics model)")
    r.add_argument("--layer4-blocks", type=int, choices=(1, 2, 3), default=1,
                   help="run only the first k blocks of layer4; 1 is the assignment's truncation for a small "
                        "GPU, 3 the whole network (default: 1)")
    c = parser.add_argument_group("C3D")
    c.add_argument("--c3d-checkpoint", default=None,
                   help="the released c3d-pretrained.pth (Sports-1M; see the README on what it may hold), or "
                        "'none' to train from scratch (default: DATA_DIR/c3d-pretrained.pth)")
    c.add_argument("--c3d-dropout", type=float, default=0.5, help="dropout after fc6 and fc7 (default: 0.5)")
    c.add_argument("--c3d-width", type=float, default=1.0,
                   help="channel multiplier of every layer, for a small C3D trained from scratch on a CPU "
                        "(default: 1, the released architecture)")
    c.add_argument("--c3d-adaptive-pool", action="store_true",
                   help="average-pool pool5 to 1x4x4 so that clips other than 16x112x112 fit fc6 "
                        "(default: off: the released architecture takes only 16 frames of 112x112)")
