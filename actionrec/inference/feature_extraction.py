"""Per-frame CNN features of whole videos (the inputs of the feature RNN), one file per video."""

import argparse
import os
from collections.abc import Callable
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn as nn

from actionrec import atomic
from actionrec.data import feature_files, video_files
from actionrec.engine import devices, model_io, trained_model
from actionrec.inference import frame_views
from actionrec.zoo import frame_nets

# rows(model, chunk, normalize) -> one row per frame, snippet or window of the chunk
_Normalize = Callable[[torch.Tensor], torch.Tensor]
_Rows = Callable[[nn.Module, torch.Tensor, _Normalize], torch.Tensor]


def backbone(args: argparse.Namespace, ranks: devices.Dist) -> tuple[nn.Module, str]:
    """(2D ResNet up to its global average pool, description of its weights); args.source says what
    they are ("imagenet", "weights" for a local ImageNet file, "checkpoint" for a part-1 model, "none")."""
    torch.manual_seed(getattr(args, "seed", 0))  # --pretrained none: the same random CNN for the same seed
    args.source = ("checkpoint" if args.checkpoint else "weights" if getattr(args, "weights", None)
                   else getattr(args, "pretrained", "imagenet"))
    if args.checkpoint:
        checkpoint, trained = trained_model.load_trained(argparse.Namespace(checkpoint=args.checkpoint), ranks, "frame")
        model = frame_views.load_model(checkpoint, trained, ranks, args.checkpoint)
        args.arch, source = trained.get("arch", "resnet50"), os.path.abspath(args.checkpoint)
        if args.image_size is None:
            args.image_size = trained.get("image_size")
    else:
        model_args = argparse.Namespace(arch=args.arch, pretrained=args.pretrained, weights=args.weights)
        model = frame_nets.build_model(model_args, 1000, ranks, pretrained=True)
        source = os.path.abspath(args.weights) if args.weights else f"{args.pretrained} ({args.arch})"
    model.fc = nn.Identity()  # the global average pool's output, (N, 2048) for ResNet-50
    return model, source


def feature_rows(batch_size: int) -> _Rows:
    def rows(model: nn.Module, frames: torch.Tensor, normalize: _Normalize) -> torch.Tensor:
        # uint8 (F, H, W, 3) -> features (F, dims)
        return torch.cat([model(normalize(x)) for x in model_io.batched(frames, batch_size)])
    return rows


def stride_plan(stride: int, chunk_frames: int) -> Callable[[int], list[np.ndarray]]:
    def plan(frames: int) -> list[np.ndarray]:
        indices = np.arange(0, frames, stride)
        return [indices[i:i + chunk_frames] for i in range(0, len(indices), chunk_frames)]
    return plan


def feature_file_complete(path: str) -> bool:
    try:
        feature_files.feature_info(path)
        return True
    except video_files.READ_ERRORS:
        return False


def write_features(path: str, features: np.ndarray, attrs: dict[str, Any]) -> None:
    """Atomically write float16 [frames, dims] features with their attributes."""
    def write(tmp_path: str) -> None:
        with h5py.File(tmp_path, "w") as f:
            ds = f.create_dataset(feature_files.FEATURES_KEY, data=np.asarray(features, dtype=np.float16))
            for key, value in attrs.items():
                ds.attrs[key] = value
    atomic.atomic_write(path, write)
