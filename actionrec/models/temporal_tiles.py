"""A whole video through a 3D ResNet, exactly and in memory set by a tile size, not by the video's length.

In eval mode every module of the 3D ResNet up to layer4 is a convolution, a pool or a pointwise map
(BatchNorm is a fixed affine map, ReLU), so each time step of a module's output reads a bounded window of
its input's time steps: output step q reads input steps q*stride - before ... q*stride + after
(:class:`Geometry`), derived from the modules themselves (kernel, stride, padding and dilation in time;
:func:`temporal_geometry`, which refuses a module it does not know rather than guess).

:class:`ResNetStream` is fed the video in tiles of frames. Each stage (the stem, then every residual
block) holds the few input steps it still needs and computes an output step once every input step that
step reads has arrived, or the video has ended. A stage runs on a segment of its input that starts at a
multiple of its stride (so its downsampling keeps the phase of a single pass) and either at the video's
first step or early enough that no kept step reads the segment's left edge; at the video's end the segment
ends with the video. So the network's own padding acts exactly where a single pass has it, at the true
start and end, and nowhere else. The steps a segment computes beyond those kept are computed again by the
next segment: the cost of exactness, a few steps per stage and tile. layer4's steps are averaged (over
space, then over every step of the video) before fc, as ``AdaptiveAvgPool3d(1)`` does, so the logits equal
``model(whole video)`` up to float rounding, for any length.
"""
from typing import NamedTuple

import torch
import torch.nn as nn

from resnet_3d import BasicBlock, Bottleneck, ResNet, ZeroPadShortcut

POINTWISE = (nn.BatchNorm3d, nn.ReLU, nn.Identity, nn.Dropout)


class Geometry(NamedTuple):
    """Output step q of a module reads its input steps q*stride - before ... q*stride + after."""
    stride: int
    before: int
    after: int

    def then(self, other: "Geometry") -> "Geometry":
        """This module followed by `other`."""
        return Geometry(self.stride * other.stride, other.before * self.stride + self.before,
                        other.after * self.stride + self.after)

    def union(self, other: "Geometry") -> "Geometry":
        """Two branches over the same input whose outputs are added (a residual block)."""
        if self.stride != other.stride:
            raise ValueError(f"branches of temporal strides {self.stride} and {other.stride} cannot be added")
        return Geometry(self.stride, max(self.before, other.before), max(self.after, other.after))


IDENTITY = Geometry(1, 0, 0)


def _in_time(value):
    """A module's int or (time, height, width) parameter, in time."""
    return value if isinstance(value, int) else value[0]


def _chain(modules):
    geometry = IDENTITY
    for module in modules:
        geometry = geometry.then(temporal_geometry(module))
    return geometry


def temporal_geometry(module: nn.Module) -> Geometry:
    """The :class:`Geometry` of `module` (eval mode) in time; ValueError for a module it cannot derive."""
    if isinstance(module, (nn.Conv3d, nn.MaxPool3d, nn.AvgPool3d)):
        if isinstance(module.padding, str) or getattr(module, "ceil_mode", False):
            raise ValueError(f"{module}: 'same' padding or ceil_mode has no fixed temporal window here")
        kernel, stride, padding = (_in_time(module.kernel_size), _in_time(module.stride),
                                   _in_time(module.padding))
        dilation = _in_time(getattr(module, "dilation", 1))
        return Geometry(stride, padding, dilation * (kernel - 1) - padding)
    if isinstance(module, POINTWISE):
        return IDENTITY
    if isinstance(module, ZeroPadShortcut):  # every stride-th step
        return Geometry(module.stride, 0, 0)
    if isinstance(module, nn.Sequential):
        return _chain(module)
    if isinstance(module, (BasicBlock, Bottleneck)):  # conv1 -> conv2 (-> conv3), plus the shortcut
        main = _chain(getattr(module, name) for name in ("conv1", "conv2", "conv3") if hasattr(module, name))
        shortcut = IDENTITY if module.downsample is None else temporal_geometry(module.downsample)
        return main.union(shortcut)
    raise ValueError(f"cannot derive the temporal window of {type(module).__name__}")


def resnet_stages(model: nn.Module, layer4_blocks: int | None = None) -> list[nn.Module]:
    """The modules a :class:`resnet_3d.ResNet` runs up to its pooling, in order: the stem, then each
    residual block (the first `layer4_blocks` of layer4, default the model's own setting)."""
    if not isinstance(model, ResNet):
        raise ValueError(f"the exact tiled pass is for the 3D ResNet, not {type(model).__name__}")
    k = model.layer4_blocks if layer4_blocks is None else layer4_blocks
    stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
    return [stem, *model.layer1, *model.layer2, *model.layer3, *model.layer4[:k]]


def receptive_field(model: nn.Module, layer4_blocks: int | None = None) -> Geometry:
    """The Geometry of the whole network up to layer4 (input frames per layer4 step and its window)."""
    return _chain(resnet_stages(model, layer4_blocks))


class _Stage:
    """One stage fed its input steps in order; returns each output step once it is exact, at least
    `min_steps` at a time until the input ends (fewer, larger calls: each call has a fixed cost), and
    only once it holds `min_in` input steps (the stem: a fixed segment, so a fixed peak)."""

    def __init__(self, module, min_steps=1, min_in=0):
        self.module, self.geometry, self.min_steps, self.min_in = module, temporal_geometry(module), min_steps, min_in
        self.reset()

    def reset(self):
        self.pieces = []  # the held input steps first, first + 1, ... as consecutive (N, C, steps, H, W)
        self.first = 0
        self.held = 0  # input steps held
        self.next_out = 0  # the first output step not returned yet

    def _segment_start(self):
        """Where a segment computing step next_out begins: a multiple of the stride, reading no edge."""
        stride = self.geometry.stride
        return max(0, self.next_out * stride - self.geometry.before) // stride * stride

    def _steps(self, start, stop):
        """Input steps start ... stop - 1 as one contiguous tensor: one copy (none for a whole contiguous
        piece), where concatenating everything held and then slicing a segment would copy twice."""
        parts, offset = [], self.first
        for piece in self.pieces:
            a, b = max(start, offset), min(stop, offset + piece.shape[2])
            if a < b:
                parts.append(piece if b - a == piece.shape[2] else piece[:, :, a - offset:b - offset])
            offset += piece.shape[2]
        if len(parts) == 1 and parts[0].is_contiguous():  # a whole piece: a time slice of more than one
            return parts[0]  # channel is never contiguous
        return torch.cat(parts, dim=2)

    def push(self, x, end):
        """x: the next input steps (None: none); end: the input is complete. Returns the next exact
        output steps (N, C', steps, H', W'), or None."""
        if x is not None and x.shape[2]:
            self.pieces.append(x)
            self.held += x.shape[2]
        if not self.held or (not end and self.held < self.min_in):
            return None
        stride, after = self.geometry.stride, self.geometry.after
        received = self.first + self.held
        start = self._segment_start()
        if end:
            stop = received  # the video's end: its padding is the network's own
        else:
            last = (received - 1 - after) // stride  # the last output step whose whole window has arrived
            if last + 1 - self.next_out < self.min_steps:
                return None
            stop = last * stride + after + 1
        if start >= stop:
            return None
        out = self.module(self._steps(start, stop))
        out = out[:, :, self.next_out - start // stride:]
        if not end:
            out = out[:, :, :last + 1 - self.next_out]
        self.next_out += out.shape[2]
        keep = self._segment_start()
        # A copy of the few steps kept (contiguous): a view would keep its whole piece alive.
        self.pieces = [self._steps(keep, received)] if keep < received else []
        self.first, self.held = keep, received - keep
        return out if out.shape[2] else None


class ResNetStream:
    """The logits of a 3D ResNet over a whole video fed in parts: ``feed(x)`` any number of times with
    the next frames (N, 3, F, H, W), normalised, then ``finish()`` -> (N, classes), equal to
    ``model(all frames)``. The stem runs on segments of `tile_frames` frames, the few of its margin
    included, whatever the sizes of the parts fed (the first segment of a video and every later one
    have the same size, so the same peak); every other stage waits until it can run on about a quarter
    tile of new input steps: each tile at half the frame rate (layer1, where a step holds the most), every
    few tiles deeper in, where time is downsampled and a step holds less, so that those stages run less
    often.
    """

    def __init__(self, model: nn.Module, tile_frames: int, layer4_blocks: int | None = None) -> None:
        if isinstance(tile_frames, bool) or not isinstance(tile_frames, int) or tile_frames < 1:
            raise ValueError(f"tile_frames must be a positive int, got {tile_frames!r}")
        self.model, self.tile_frames = model, tile_frames
        self.stages = []
        for module in resnet_stages(model, layer4_blocks):
            stage = _Stage(module)
            stage.min_steps = max(1, -(-tile_frames // (4 * stage.geometry.stride)))  # output steps
            self.stages.append(stage)
        stem = self.stages[0]
        # The stem runs on segments of tile_frames frames, its margin included (at least enough for a step
        # beyond it): the first segment of a video and every later one have the same size, so its peak does
        # not depend on the video's length (margin plus a full tile of new frames made later ones larger).
        geometry = stem.geometry
        stem.min_steps, stem.min_in = 1, max(tile_frames, geometry.before + geometry.after + 2 * geometry.stride)
        self.reset()

    def reset(self) -> None:
        """Forget the video fed so far."""
        for stage in self.stages:
            stage.reset()
        self.pooled, self.steps = 0.0, 0  # sum over layer4's steps of their spatial means (N, C); count

    def feed(self, x: torch.Tensor) -> None:
        stem = self.stages[0]
        while x.shape[2]:
            room = stem.min_in - stem.held  # the frames that fill the stem's next segment
            part, x = x[:, :, :room], x[:, :, room:]
            # A part that does not fill the segment waits in the stem: as a copy, not a view of all of x.
            self._push(part if part.shape[2] == room else part.clone(), end=False)

    def finish(self) -> torch.Tensor:
        self._push(None, end=True)
        if not self.steps:
            raise ValueError("finish() before any frames were fed")
        logits = self.model.fc((self.pooled / self.steps).to(self.model.fc.weight.dtype))  # (N, classes)
        self.reset()
        return logits

    def _push(self, x, end):
        for stage in self.stages:
            x = stage.push(x, end)
            if x is None and not end:
                return
        if x is not None:  # layer4 steps (N, C, steps, H, W)
            self.pooled = self.pooled + x.float().mean((3, 4)).sum(2)
            self.steps += x.shape[2]
