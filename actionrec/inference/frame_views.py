"""How a single-frame or TSN model (RGB or the motion stream) sees a whole test video: chunks of frames (or
snippets of flow fields / frames), crops averaged, one row per frame or snippet."""

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from actionrec.data import motion, sampling, video_chunks
from actionrec.engine import cli_flags, devices, model_io, trained_model
from actionrec.flow import recorded
from actionrec.zoo import frame_nets

# rows(model, chunk, normalize) -> one row per frame, snippet or window of the chunk
_Normalize = Callable[[torch.Tensor], torch.Tensor]
_Rows = Callable[[nn.Module, torch.Tensor, _Normalize], torch.Tensor]


def frame_plan(num_frames: int | None, chunk_frames: int) -> Callable[[int], list[np.ndarray] | list[tuple[int, int]]]:
    """The frames to test for a video, in chunks of at most chunk_frames: all, or N segment centres."""
    def plan(frames: int) -> list[np.ndarray] | list[tuple[int, int]]:
        if num_frames and num_frames < frames:
            indices = sampling.segment_centres(frames, num_frames)
            return [indices[i:i + chunk_frames] for i in range(0, len(indices), chunk_frames)]
        return video_chunks.video_chunk_plan(frames, chunk_frames)
    return plan


def frame_logits(batch_size: int, crops: int) -> _Rows:
    def rows(model: nn.Module, frames: torch.Tensor, normalize: _Normalize) -> torch.Tensor:
        # uint8 (F, H, W, 3), or (F, crops, H, W, 3) -> logits (F, classes)
        views = frames.reshape((-1,) + frames.shape[-3:])
        logits = torch.cat([model(normalize(x)) for x in model_io.batched(views, batch_size * crops)])
        return model_io.crop_mean(logits, crops)
    return rows


def modality_of(trained: dict) -> tuple[str, int]:
    """(modality, new_length) of a checkpoint's training args (rgb, 1 for checkpoints before the motion stream)."""
    modality = trained.get("modality") or "rgb"
    return modality, trained.get("new_length") or motion.DEFAULT_NEW_LENGTH.get(modality, 1)


MODALITY_TITLES = {"flow": "flow", "rgbdiff": "RGB difference"}


def describe(trained: dict, args: argparse.Namespace) -> dict[str, Any]:
    segments = trained.get("segments", 1)
    arch = trained.get("arch", "resnet50")
    family = f"{arch.replace('resnet', 'ResNet-')}"
    modality, new_length = modality_of(trained)
    rows = "frames" if modality == "rgb" else "snippets"
    frames = f"every {rows[:-1]}" if not args.frames else f"{args.frames} {rows} at segment centres"
    if modality == "rgb":
        name = "tsn" if segments > 1 else "single_frame"
        title = f"TSN ({family}, {segments} segments)" if segments > 1 else f"Single frame ({family})"
        test = {}
    else:
        name = ("tsn_" if segments > 1 else "") + modality
        title = (f"{'TSN ' if segments > 1 else ''}{MODALITY_TITLES[modality]} ({family}, L={new_length}"
                 + (f", {segments} segments)" if segments > 1 else ")"))
        test = {"modality": modality, "new_length": new_length}
    extraction = {}
    if modality == "flow":  # the training flow's extraction (recorded.py), null for older checkpoints
        settings, was_recorded = recorded.settings_of(trained)
        extraction = {"flow_extraction": recorded.as_record(settings) if was_recorded else None}
    return {"name": name, "title": title, **extraction,
            "kind": "frame", "temporal": modality != "rgb", "arch": ("tsn-" if segments > 1 else "") + arch,
            "rows": "frames",
            "test": {"description": f"{frames}, {args.crops} crop{'s' if args.crops > 1 else ''}",
                     "mode": "frames", "frames": args.frames, "crops": args.crops, **test}}


def load_model(checkpoint: dict, trained: dict, ranks: devices.Dist, path: str) -> nn.Module:
    """The trained frame model (single frame or TSN) of a checkpoint, on the CPU. The checkpoint's copy
    of the weights is dropped once loaded (~100 MB for a ResNet-50)."""
    trained_model.check_trained_args(
        trained,
        cli_flags.flags_alone(frame_nets.add_model_flags),
        path,
        ("arch", "dropout", "segments", "modality", "new_length"),
    )
    modality, new_length = modality_of(trained)
    model_args = argparse.Namespace(arch=trained.get("arch", "resnet50"), pretrained="none", weights=None,
                                    dropout=trained.get("dropout", 0.0), segments=trained.get("segments", 1),
                                    modality=modality, new_length=new_length)
    model = trained_model.rebuild_model(
        frame_nets.build_model, model_args, len(checkpoint["class_list"]), ranks, path
    )
    trained_model.load_model_state(model, checkpoint.pop("model"), path)
    return model
