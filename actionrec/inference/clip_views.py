"""How a 3D model sees a whole test video: sliding 16-frame windows, or the exact full pass in temporal tiles."""

import argparse
import math
from collections.abc import Callable

import torch
import torch.nn as nn

from actionrec import guards
from actionrec.data import sampling
from actionrec.engine import cli_flags, devices, model_io, trained_model
from actionrec.models import temporal_tiles
from actionrec.zoo import clip_nets

BATCH_CUDA = 32  # sliding windows per forward pass on CUDA


BATCH_CPU = 8  # on the CPU a pass's activations are host memory: 8 windows keep it flat in video length


TILE_FRAMES = 96  # exact full mode: frames per forward pass (bench/README.md: memory and speed)


SLIDING_MAX_FRAMES = 512  # what older versions recorded as max_frames of a sliding test (unused there)


def windows_per_pass(args: argparse.Namespace) -> int:
    """--batch-size, else the default for the device: on the CPU the windows of a pass are the memory
    bound, not the speed."""
    return args.batch_size or (BATCH_CUDA if devices.uses_cuda(args) else BATCH_CPU)


def stream_plan(clip_len: int, chunk_frames: int) -> Callable[[int], list[tuple[int, int]]]:
    """The whole video (looped to clip_len frames when shorter) in consecutive chunks of chunk_frames."""
    def plan(frames: int) -> list[tuple[int, int]]:
        total = max(frames, clip_len)
        return [(a, min(a + chunk_frames, total)) for a in range(0, total, chunk_frames)]
    return plan


class TiledFull:
    """The exact full mode for engine.test_videos: rows(model, frames, normalize) feeds a video's chunks
    (F, H, W, 3) or (F, crops, H, W, 3) to one temporal_tiles.ResNetStream per crop, tile by tile, and
    returns no rows; end(model) -> (1, classes), the whole video's logits averaged over the crops."""

    def __init__(self, tile_frames: int, crops: int) -> None:
        self.tile_frames, self.crops = tile_frames, crops
        self.streams = None

    def start(self) -> None:
        self.streams = None  # built on the model of the video's first chunk

    def rows(self, model: nn.Module, frames: torch.Tensor, normalize: nn.Module) -> torch.Tensor:
        views = frames[:, None] if self.crops == 1 else frames
        if self.streams is None:
            self.streams = [temporal_tiles.ResNetStream(model, self.tile_frames) for _ in range(views.shape[1])]
        for c, stream in enumerate(self.streams):
            for start in range(0, len(views), self.tile_frames):
                stream.feed(normalize(views[start:start + self.tile_frames, c][None]))  # (1, 3, tile, H, W)
        return torch.zeros(0, model.fc.out_features, device=frames.device)

    def end(self, model: nn.Module) -> torch.Tensor:
        logits = torch.stack([stream.finish() for stream in self.streams]).mean(0)  # (1, classes)
        self.streams = None
        return logits


def full_plan(clip_len: int, max_frames: int) -> Callable[[int], list[tuple[int, int]]]:
    """--max-frames (the approximation): pieces of about equal length, each at most max_frames and at
    least clip_len (looped) frames."""
    def plan(frames):
        pieces = math.ceil(frames / max_frames)
        bounds = [round(i * frames / pieces) for i in range(pieces + 1)]
        return [(a, max(b, a + clip_len)) for a, b in zip(bounds[:-1], bounds[1:])]
    return plan


def window_starts(frames: int, clip_len: int, stride: int) -> list[int]:
    """Every window at `stride`, plus one ending at the last frame so the tail is covered."""
    if frames <= clip_len:
        return [0]
    starts = list(range(0, frames - clip_len + 1, stride))
    if starts[-1] != frames - clip_len:
        starts.append(frames - clip_len)
    return starts


def sliding_plan(clip_len: int, stride: int, chunk_frames: int) -> Callable[[int], list[tuple[int, int]]]:
    """Chunks of whole windows at `stride`; an unaligned last window is a chunk of its own."""
    per_chunk = max(1, (chunk_frames - clip_len) // stride + 1)

    def plan(frames):
        starts = window_starts(frames, clip_len, stride)
        aligned = [s for s in starts if s % stride == 0]
        ranges = [(group[0], group[-1] + clip_len)
                  for group in (aligned[i:i + per_chunk] for i in range(0, len(aligned), per_chunk))]
        ranges += [(s, s + clip_len) for s in starts if s % stride]
        return ranges
    return plan


def clip_logits(
    mode: str, clip_len: int, stride: int, batch_size: int, crops: int
) -> Callable[[nn.Module, torch.Tensor, nn.Module], torch.Tensor]:
    def rows(model, frames, normalize):  # uint8 frames (F, H, W, 3), or (F, crops, H, W, 3)
        views = frames[:, None] if crops == 1 else frames
        logits = []
        for c in range(views.shape[1]):
            clip = views[:, c]  # (F, H, W, 3)
            if mode == "full":
                logits.append(model(normalize(clip[None])))  # (1, 3, F, H, W) -> (1, classes)
                continue
            windows = clip.unfold(0, clip_len, stride).permute(0, 4, 1, 2, 3)  # (windows, clip_len, H, W, 3)
            logits.append(torch.cat([model(normalize(x)) for x in model_io.batched(windows, batch_size)]))
        return torch.stack(logits).mean(0)  # averaged over the crops
    return rows


def describe(trained: dict, args: argparse.Namespace, clip_len: int) -> dict:
    is_c3d = trained.get("arch") == "c3d"
    max_frames = args.max_frames if args.mode == "full" else SLIDING_MAX_FRAMES
    exact = args.mode == "full" and args.max_frames is None
    if exact:
        test = (f"full video in one pass, exact: layer4 averaged over all its time steps, computed in tiles "
                f"of {args.tile_frames} frames")
    elif args.mode == "full":
        test = f"full video approximated by pieces of at most {args.max_frames} frames, each run alone"
    else:
        test = f"sliding {clip_len}-frame windows, stride {args.stride}"
    if args.crops > 1:
        test += f", {args.crops} crops"
    depth = trained.get("depth", 50)
    return {"name": "c3d" if is_c3d else "3d", "title": "C3D" if is_c3d else f"3D ResNet-{depth}",
            "kind": "clip", "temporal": True, "arch": "c3d" if is_c3d else f"resnet3d-{depth}",
            "rows": "video" if exact else "pieces" if args.mode == "full" else "windows",
            "test": {"description": test, "mode": args.mode, "clip_len": clip_len, "stride": args.stride,
                     "max_frames": max_frames, "crops": args.crops}}


def load_model(
    checkpoint: dict, trained: dict, ranks: devices.Dist, path: str, image_size: int
) -> tuple[nn.Module, int, str]:
    """(the trained 3D ResNet or C3D of a checkpoint on the CPU, its clip length, its normalisation name).
    A C3D with the released fixed fc6 takes only the image size it was trained at."""
    trained_model.check_trained_args(trained, cli_flags.flags_alone(clip_nets.add_model_flags), path, (
        "arch", "depth", "layer4_blocks", "clip_len", "norm", "c3d_dropout", "c3d_width", "c3d_adaptive_pool"))
    if trained.get("arch") == "c3d":
        model_args = argparse.Namespace(arch="c3d", c3d_dropout=trained.get("c3d_dropout", 0.5),
                                        c3d_width=trained.get("c3d_width", 1.0),
                                        c3d_adaptive_pool=trained.get("c3d_adaptive_pool", False))
        if image_size != trained.get("image_size") and not model_args.c3d_adaptive_pool:
            size = trained.get("image_size")
            raise guards.UserError(f"{path}: C3D was trained at {size}x{size}; its fc6 takes no other --image-size")
    else:
        model_args = argparse.Namespace(arch="resnet", depth=trained.get("depth", 50),
                                        layer4_blocks=trained.get("layer4_blocks", 1))
    model = trained_model.rebuild_model(clip_nets.build_model, model_args, len(checkpoint["class_list"]), ranks, path)
    trained_model.load_model_state(model, checkpoint.pop("model"), path)  # and free the copy
    norm = trained.get("norm") or ("c3d" if model_args.arch == "c3d" else "assignment")
    return model, trained.get("clip_len") or sampling.CLIP_LEN, norm
