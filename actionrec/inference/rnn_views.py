"""How the feature RNN sees a whole test video: the middle window of its feature sequence."""

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from actionrec import guards
from actionrec.engine import cli_flags, devices, trained_model
from actionrec.zoo import rnn_nets

# rows(model, chunk, normalize) -> one row per frame, snippet or window of the chunk
_Normalize = Callable[[torch.Tensor], torch.Tensor]
_Rows = Callable[[nn.Module, torch.Tensor, _Normalize], torch.Tensor]


def window_plan(frame_stride: int) -> Callable[[int], list[np.ndarray]]:
    def plan(frames: int) -> list[np.ndarray]:  # one chunk per video: all of its (strided) feature rows
        return [np.arange(0, frames, frame_stride)]
    return plan


def window_logits(max_frames: int, batch_size: int) -> _Rows:
    def rows(model: nn.Module, features: torch.Tensor, normalize: _Normalize) -> torch.Tensor:
        # float16 (steps, dims) -> logits (windows, classes)
        windows = list(torch.split(features, max_frames))
        lengths = torch.tensor([len(w) for w in windows])
        padded = torch.nn.utils.rnn.pad_sequence(windows, batch_first=True)  # (windows, longest, dims)
        return torch.cat([model(normalize(padded[i:i + batch_size]), lengths[i:i + batch_size])
                          for i in range(0, len(windows), batch_size)])
    return rows


def load_model(
    checkpoint: dict, trained: dict, ranks: devices.Dist, path: str, dims: int
) -> tuple[nn.Module, int, int]:
    """(the trained RNN of a checkpoint on the CPU, its window length, its feature stride), for features
    of `dims` values per frame (which must be what it was trained on)."""
    if dims != trained.get("input_size"):
        raise guards.UserError(f"{path}: the features hold {dims} values per frame, but the checkpoint's model reads "
                               f"{trained.get('input_size')}: use the features it was trained on")
    trained_model.check_trained_args(trained, cli_flags.flags_alone(rnn_nets.add_model_flags), path, (
        "cell", "layers", "hidden", "bidirectional", "dropout", "head", "max_frames", "frame_stride", "features"))
    model_args = argparse.Namespace(**{k: trained.get(k, d) for k, d in (
        ("input_size", dims), ("cell", "gru"), ("layers", 2), ("hidden", 256), ("bidirectional", False),
        ("dropout", 0.0), ("head", "last"))})
    model = trained_model.rebuild_model(rnn_nets.build_model, model_args, len(checkpoint["class_list"]), ranks, path)
    trained_model.load_model_state(model, checkpoint.pop("model"), path)
    return model, trained.get("max_frames", 250), trained.get("frame_stride", 1)


def describe(trained: dict, info: dict[str, Any], max_frames: int, stride: int) -> dict[str, Any]:
    """model.json's identity and test settings of an RNN tested in windows of max_frames steps, reading
    every stride-th feature of features.json `info`."""
    cell = trained.get("cell", "gru")
    description = (f"whole sequence in windows of at most {max_frames} steps"
                   + (f", every {stride}th feature" if stride > 1 else "") + f" ({info['arch']} features)")
    return {"name": "rnn", "title": f"{cell.upper()} over {info['arch']} features", "kind": "features",
            "temporal": True, "arch": cell, "rows": "windows",
            "test": {"description": description, "mode": "windows", "max_frames": max_frames,
                     "frame_stride": stride, "features": info}}
