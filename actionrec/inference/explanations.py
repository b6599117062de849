"""Grad-CAM explanations (gradcam.py) of a predictor on a video, for predict.py --explain: which frames are
explained for each kind of model, the maps as OUT_DIR/<video stem>.<model>.npy and the frames with their
maps as OUT_DIR/<video stem>.<model>.png.

  2D models  [n, S, S]: n frames at the segment centres; layer4. The motion stream (flow, RGB
             difference): n snippets at the segment centres of its snippet positions, as predicted
             (a flow model's flow computed from the video again), each map shown on the middle frame
             of its snippet
  3D models  [clips, clip_len, S, S]: windows of clip_len frames centred on the segment centres (looped
             when the video is shorter); gradcam.default_layer, upsampled in time and space
  RNN        [n, S, S], through its CNN's frames: for n of the RNN's steps at the segment centres, the
             gradient of the RNN's logit (of the window holding the step) with respect to that frame's
             CNN layer4 activations
"""
import argparse
import os

import numpy as np
import torch
import torch.nn as nn

from actionrec.data import sampling, video_chunks, video_files
from actionrec.engine import devices, model_io
from actionrec.inference import clip_views, gradcam, predictor, video_logits

Maps = tuple[np.ndarray, np.ndarray]  # (Grad-CAM maps in [0, 1] at the model's input size, their frame indices)


def spread(count: int, n: int) -> np.ndarray:
    """n positions of 0..count-1 evenly spread (all of them when count <= n)."""
    return np.unique(np.linspace(0, count - 1, min(n, count)).round().astype(np.int64))


def explain_frames_2d(p: predictor.Predictor, path: str, frames: int, target: int, args: argparse.Namespace,
                      device: torch.device) -> Maps:
    """Maps [n, S, S] of a 2D model on n frames at the segment centres, and their frame indices. The motion
    stream: on n snippets at the segment centres of its snippet positions (of the flow computed from the
    video, or of its frames), each drawn on the middle frame of the frames its snippet spans."""
    if p.reader is not None:
        with video_logits.model_input(p, path) as source:
            positions = p.reader.length(source)
            starts = sampling.segment_centres(positions, min(args.explain_frames, positions))
            chunk = video_chunks.load_chunk(source, starts, size=p.image_size, reader=p.reader)
        # snippet i spans frames i .. i + L (L flow fields, or L + 1 frames): its middle frame, looped
        indices = (starts + p.reader.new_length // 2) % frames
        return _maps_2d(p, chunk, target, args, device), indices
    indices = sampling.segment_centres(frames, min(args.explain_frames, frames))
    return _maps_2d(p, video_chunks.load_chunk(path, indices, size=p.image_size), target, args, device), indices


def _maps_2d(p: predictor.Predictor, chunk: np.ndarray, target: int, args: argparse.Namespace,
             device: torch.device) -> np.ndarray:
    """Grad-CAM maps [n, S, S] of a 2D model on the uint8 chunk [n, S, S, C] of its input."""
    x = p.normalize(devices.to_device(chunk, device))
    maps = np.concatenate([gradcam.grad_cam(p.model, batch, target)[0]
                           for batch in model_io.batched(x, args.batch_size or predictor.BATCH_SIZES["frame"])])
    return gradcam.upsample(maps, (p.image_size, p.image_size))


def explain_clips(p: predictor.Predictor, path: str, frames: int, target: int, args: argparse.Namespace,
                  device: torch.device) -> Maps:
    """Maps [clips, clip_len, S, S] of a 3D model on windows centred on the segment centres, and their
    frame indices [clips, clip_len] (looped past the end)."""
    centres = sampling.segment_centres(frames, args.explain_clips)
    starts = np.clip(centres - p.clip_len // 2, 0, max(frames - p.clip_len, 0))
    indices = (starts[:, None] + np.arange(p.clip_len)) % frames  # (clips, clip_len)
    chunk = video_chunks.load_chunk(path, indices.ravel(), size=p.image_size)
    clips = devices.to_device(chunk.reshape(indices.shape + chunk.shape[1:]), device)  # (clips, T, S, S, 3)
    maps = np.concatenate([gradcam.grad_cam(p.model, p.normalize(batch), target)[0]
                           for batch in model_io.batched(clips, clip_views.windows_per_pass(args))])
    return gradcam.upsample(maps, (p.clip_len, p.image_size, p.image_size)), indices


class ThroughCNN(nn.Module):
    """The RNN's logits as a function of n frames: row k is the RNN on the window holding step
    steps[k], that step's features replaced by the CNN's features of frame k (the other steps are the
    video's fixed features), so that row k depends on frame k alone, as gradcam.grad_cam requires."""

    def __init__(self, cnn: nn.Module, rnn: nn.Module, features: torch.Tensor, steps: list[int], max_frames: int):
        super().__init__()
        self.cnn, self.rnn, self.features, self.steps, self.max_frames = cnn, rnn, features, steps, max_frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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


def explain_rnn(p: predictor.Predictor, path: str, frames: int, target: int, args: argparse.Namespace,
                device: torch.device) -> Maps:
    """Maps [n, S, S] on the CNN frames of n of the RNN's steps at the segment centres, and their frame
    indices."""
    if getattr(p, "last_features", (None,))[0] != path:
        p.last_features = (path, video_logits.video_features(p, path, device, (False, torch.float32)))
    features = torch.from_numpy(p.last_features[1]).to(device).float()
    step_frames = np.arange(0, frames, p.feature_stride)[::p.rnn_stride]  # the frame of each RNN step
    steps = sampling.segment_centres(len(step_frames), min(args.explain_frames, len(step_frames)))
    indices = step_frames[steps]
    x = p.cnn_normalize(devices.to_device(video_chunks.load_chunk(path, indices, size=p.cnn_size), device))
    wrapper = ThroughCNN(p.cnn, p.model, features, steps.tolist(), p.max_frames).eval()
    # cuDNN's RNN has no backward pass in eval mode: the explained RNN runs on PyTorch's own kernels.
    with torch.backends.cudnn.flags(enabled=False):
        maps = gradcam.grad_cam(wrapper, x, target, layer=p.cnn.layer4)[0]
    return gradcam.upsample(maps, (p.cnn_size, p.cnn_size)), indices


EXPLAINERS = {"frame": explain_frames_2d, "clip": explain_clips, "features": explain_rnn}


def explain(p: predictor.Predictor, path: str, frames: int, target: int, stem: str, args: argparse.Namespace,
            device: torch.device) -> str:
    """Write OUT_DIR/<stem>.<model>.png and .npy for class index `target`; returns the PNG's path."""
    maps, indices = EXPLAINERS[p.kind](p, path, frames, target, args, device)
    base = os.path.join(args.explain, f"{stem}.{p.name}")
    gradcam.save_maps(maps, base + ".npy")
    flat_maps, flat_indices = maps.reshape((-1,) + maps.shape[-2:]), np.asarray(indices).ravel()
    shown = spread(len(flat_indices), args.explain_frames)  # 3D: a few of each clip's frames
    originals = video_files.read_frames(path, flat_indices[shown])
    titles = [f"f{i} {p.class_list[target]}" for i in flat_indices[shown]]
    return gradcam.overlay_strip(originals, flat_maps[shown], base + ".png", titles=titles,
                                 max_tiles=args.explain_frames)


def explain_stems(paths: list[str]) -> list[str]:
    """A file stem per video for its maps: its own, made unique with -2, -3, ..."""
    stems, seen = [], {}
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        seen[stem] = seen.get(stem, 0) + 1
        stems.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return stems
