"""A whole video through a 3D ResNet, exactly and in memory set by a tile size, not by the video's length.

In eval mode every module of the 3D ResNet up to layer4 is a convolution, a pool or a pointwise map
(BatchNorm is a fixed affine map, ReLU), so each time step of a module's output reads a bounded window of
its input's time steps: output step q reads input steps q*stride - before ... q*stride + after
(:class:`Geometry`), derived from the modules themselves (kernel, stride, padding and dilation in time;
:func:`temporal_geometry`, which refuses a module it does not know rather than guess).

:class:`ResNetStream` is fed the video in tiles of frames and streams every temporal convolution and pool
with carried state (:class:`_TimeOp`): an op sees its input as the video's steps with its own temporal
padding at the true start and end only, computes each output step once all the steps its window reads have
arrived, and keeps between calls only the steps its next output reads (kernel span minus stride at most;
the stride's phase is that of one pass). Each step is thus computed exactly once: the work of one pass, in
more, smaller calls. A residual block streams its main path and its shortcut apart (the main path's
convolutions wait for the steps to come, the shortcut does not) and adds a step once both have it. A
BatchNorm (eval) after a convolution is folded into it, and a max pool runs over space first, then over
time (the same maximum on a smaller tensor to keep). layer4's steps are averaged (over space, then over
every step of the video) before fc, as ``AdaptiveAvgPool3d(1)`` does, so the logits equal
``model(whole video)`` up to float rounding, for any length and any tile size.
"""
import math
import weakref
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

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


def _triple(value):
    return (value,) * 3 if isinstance(value, int) else tuple(value)


# conv -> (what it was folded from, folded weight, bias): one folded copy of each convolution's weight per
# model, kept while the model lives (a stream calls a convolution once per tile or two: folding on every call
# cost ~7% of a 100-frame video's time). Refolded when a weight or a running statistic changes (in place:
# version counter; replaced or moved: storage and device).
_FOLDED: "weakref.WeakKeyDictionary[nn.Conv3d, tuple]" = weakref.WeakKeyDictionary()


def _fold_key(conv, bn):
    tensors = [conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var]
    return tuple((t.data_ptr(), t._version, t.device, t.dtype) if t is not None else None for t in tensors) + (bn.eps,)


def _folded_parameters(conv, bn):
    """conv's weight with bn's scale folded in, and bn's shift (with conv's bias) as the bias."""
    key = _fold_key(conv, bn)
    cached = _FOLDED.get(conv)
    if cached is not None and cached[0] == key:
        return cached[1], cached[2]
    with torch.no_grad():
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)  # (C_out,)
        shift = bn.bias - bn.running_mean * scale
        if conv.bias is not None:
            shift = shift + conv.bias * scale
        weight = conv.weight * scale.view(-1, 1, 1, 1, 1)
    _FOLDED[conv] = (key, weight, shift)
    return weight, shift


def _folded(conv, bn):
    """conv then bn (eval) as one convolution: bn's scale folded into conv's weight, its shift as the bias
    (no second activation, no BatchNorm pass); the folded weights are made once per model (_FOLDED: the
    convolutions' weights a second time, 106 MB for the 3D ResNet-50 up to layer4's first block), here, when
    a stream is built: a video's peak memory then holds all of them whatever its length."""
    _folded_parameters(conv, bn)

    def apply(x, padding):
        weight, shift = _folded_parameters(conv, bn)
        return F.conv3d(x, weight, shift, conv.stride, padding, conv.dilation, conv.groups)
    return apply


def _valid_in_time(module, bn=None):
    """`module` (then `bn`, folded in) as a function without its temporal padding (the stream pads at
    the true edges itself) and the value that padding has (0; -inf for a max pool), or ValueError."""
    padding = (0, *_triple(getattr(module, "padding", 0))[1:])
    if isinstance(module, nn.Conv3d) and module.padding_mode == "zeros":
        if bn is not None:
            fused = _folded(module, bn)
            return (lambda x: fused(x, padding)), 0.0
        return (lambda x: F.conv3d(x, module.weight, module.bias, module.stride, padding, module.dilation,
                                   module.groups)), 0.0
    if isinstance(module, nn.MaxPool3d) and not module.return_indices:
        return (lambda x: F.max_pool3d(x, module.kernel_size, module.stride, padding, module.dilation)), -math.inf
    if isinstance(module, nn.AvgPool3d) and module.count_include_pad and module.divisor_override is None:
        return (lambda x: F.avg_pool3d(x, module.kernel_size, module.stride, padding)), 0.0
    if isinstance(module, ZeroPadShortcut):  # every stride-th step: a kernel of 1, no padding
        return module, 0.0
    raise ValueError(f"cannot stream {module} over time")


def _cat(parts):
    parts = [p for p in parts if p is not None and p.shape[2]]
    return None if not parts else parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)


def _rest(x, start):
    """x's steps from `start` on as a copy (a view would keep all of x alive), or None."""
    start = max(0, start)
    return x[:, :, start:].clone(memory_format=torch.contiguous_format) if start < x.shape[2] else None


class _TimeOp:
    """A convolution or pool streamed over time. Its input is the video's steps with the module's own
    temporal padding at the true start and end only; output step q reads padded steps q*stride ...
    q*stride + span - 1. Between calls it keeps the padded steps from the next output's first one on
    (span - stride at most), so every output step is computed exactly once: the work of one pass."""

    def __init__(self, module, bn=None):
        self.apply, self.pad_value = _valid_in_time(module, bn)
        geometry = temporal_geometry(module)
        self.stride, self.padding = geometry.stride, geometry.before
        self.span = geometry.before + geometry.after + 1
        self.reset()

    def reset(self):
        self.held, self.skip, self.started = None, 0, False  # skip: padded steps to drop (stride > span)
        self.empty = None  # (N, C, 0, H, W): the input's shape, for padding when nothing is held

    def _pad(self, like, steps):
        shape = (like.shape[0], like.shape[1], steps, *like.shape[3:])
        return like.new_full(shape, self.pad_value) if steps else None

    def push(self, x, end):
        """x: the next input steps (N, C, steps, H, W) or None; end: the input is complete. Returns the
        next output steps or None."""
        if x is not None:
            self.empty = x.new_empty((*x.shape[:2], 0, *x.shape[3:]))
        like = self.empty
        if like is None:
            return None
        parts = [self.held]
        if x is not None and not self.started:
            parts.append(self._pad(x, self.padding))
            self.started = True
        parts += [x, self._pad(like, self.padding) if end else None]
        if self.skip:  # only new steps can be skipped: nothing is held then
            x = _cat(parts[1:])
            parts = [None if x is None else x[:, :, self.skip:]]
            self.skip = max(0, self.skip - (0 if x is None else x.shape[2]))
        buffer = _cat(parts)
        if buffer is None or buffer.shape[2] < self.span:
            self.held = None if buffer is None else buffer.clone(memory_format=torch.contiguous_format)
            return None
        outputs = (buffer.shape[2] - self.span) // self.stride + 1
        out = self.apply(buffer)  # the trailing steps that do not complete a window add no output
        self.held = _rest(buffer, outputs * self.stride)
        self.skip = max(0, outputs * self.stride - buffer.shape[2])
        return out


def _split_max_pool(pool):
    """A max pool as a pool over space (pointwise in time) then one over time: the same maximum, and the
    stream keeps the steps of the smaller, spatially pooled tensor, not those of the pool's input."""
    kernel, stride, padding, dilation = (_triple(v) for v in (pool.kernel_size, pool.stride or pool.kernel_size,
                                                                pool.padding, pool.dilation))
    space = nn.MaxPool3d((1, *kernel[1:]), (1, *stride[1:]), (0, *padding[1:]), (1, *dilation[1:]))
    return [space, _TimeOp(nn.MaxPool3d((kernel[0], 1, 1), (stride[0], 1, 1), (padding[0], 0, 0),
                                        (dilation[0], 1, 1)))]


def _foldable(conv, bn):
    return (isinstance(conv, nn.Conv3d) and isinstance(bn, nn.BatchNorm3d) and not bn.training and bn.affine
            and bn.track_running_stats and bn.num_features == conv.out_channels)


def _stream_ops(modules):
    """Each module as streaming ops: pointwise modules apply to whatever steps arrive; a BatchNorm (eval)
    after a convolution is folded into it."""
    ops, modules = [], list(modules)
    for i, m in enumerate(modules):
        if i and _foldable(modules[i - 1], m):
            continue
        if isinstance(m, nn.MaxPool3d) and not m.ceil_mode and not m.return_indices:
            ops += _split_max_pool(m)
        elif isinstance(m, POINTWISE):
            ops.append(m)
        else:
            following = modules[i + 1] if i + 1 < len(modules) else None
            ops.append(_TimeOp(m, following if _foldable(m, following) else None))
    return ops


class _Chain:
    def __init__(self, modules):
        self.ops = _stream_ops(modules)

    def reset(self):
        for op in self.ops:
            if isinstance(op, _TimeOp):
                op.reset()

    def push(self, x, end):
        for op in self.ops:
            if isinstance(op, _TimeOp):
                x = op.push(x, end)
            elif x is not None:  # pointwise
                x = op(x)
            if x is None and not end:
                return None
        return x


class _Block:
    """A residual block: its main path and shortcut streamed apart (the main path's convolutions wait for
    steps to come, the shortcut does not), their steps added once both have them."""

    def __init__(self, block):
        if type(block) not in (BasicBlock, Bottleneck):
            raise ValueError(f"cannot stream {type(block).__name__}: its forward is not BasicBlock's or Bottleneck's")
        names = ["conv1", "bn1", "relu", "conv2", "bn2"] + (["relu", "conv3", "bn3"] if hasattr(block, "conv3") else [])
        self.main = _Chain([getattr(block, name) for name in names])
        downsample = block.downsample
        self.shortcut = None if downsample is None else _Chain(
            list(downsample) if isinstance(downsample, nn.Sequential) else [downsample])
        self.relu = block.relu

    def reset(self):
        self.main.reset()
        if self.shortcut is not None:
            self.shortcut.reset()
        self.main_left = self.shortcut_left = None  # steps one branch has computed ahead of the other

    def push(self, x, end):
        main = _cat([self.main_left, self.main.push(x, end)])
        shortcut = x if self.shortcut is None else self.shortcut.push(x, end)
        left = 0 if self.shortcut_left is None else self.shortcut_left.shape[2]
        new = 0 if shortcut is None else shortcut.shape[2]
        steps = min(0 if main is None else main.shape[2], left + new)
        if not steps:
            self.main_left, self.shortcut_left = main, _cat([self.shortcut_left, shortcut])
            return None
        # The main path's output is its own (bn's): the shortcut is added into it in place, in two parts
        # rather than concatenated (a copy of a whole block output).
        out, self.main_left = main[:, :, :steps], _rest(main, steps)
        if left:
            out[:, :, :left].add_(self.shortcut_left[:, :, :steps])
        if steps > left:
            out[:, :, left:].add_(shortcut[:, :, :steps - left])
        self.shortcut_left = _cat([_rest(self.shortcut_left, steps) if left else None,
                                   _rest(shortcut, steps - left) if new else None])
        return self.relu(out if self.main_left is None else out.contiguous())


class _Queue:
    """A stage's input steps, waiting until the stage can run on `min_steps` at a time (fewer, larger
    calls: each call has a fixed cost); `exact` (the stem): on exactly that many new steps, so that every
    segment has the same size and the same peak."""

    def __init__(self, stage, min_steps, exact=False):
        self.stage, self.min_steps, self.exact = stage, max(1, min_steps), exact
        self.reset()

    def reset(self):
        self.stage.reset()
        self.pieces, self.queued = [], 0

    def push(self, x, end):
        """x: the next input steps or None; end: the input is complete. Returns the stage's output steps
        (a list of tensors)."""
        if x is not None and x.shape[2]:
            self.pieces.append(x)
            self.queued += x.shape[2]
        outs = []
        while not end:
            need = self.min_steps
            if self.queued < need:
                return outs
            steps = _cat(self.pieces)
            if self.exact and self.queued > need:  # the rest waits as a copy, not a view of all of it
                self.pieces, self.queued, steps = [_rest(steps, need)], self.queued - need, steps[:, :, :need]
            else:
                self.pieces, self.queued = [], 0
            outs += [out for out in [self.stage.push(steps, False)] if out is not None]
        steps, self.pieces, self.queued = _cat(self.pieces), [], 0
        return outs + [out for out in [self.stage.push(steps, True)] if out is not None]


class ResNetStream:
    """The logits of a 3D ResNet over a whole video fed in parts: ``feed(x)`` any number of times with
    the next frames (N, 3, F, H, W), normalised, then ``finish()`` -> (N, classes), equal to
    ``model(all frames)``. The stem runs on exactly `tile_frames` new frames at a time (the same size, so
    the same peak, for every segment), and layer1 and layer2 on what each stem call gives them. A
    convolution over few steps costs up to 3x as much per step (its weights are prepared on every call),
    so layer3 waits for `deep_frames` frames' worth of steps (default two tiles) and layer4 for twice that;
    their steps are small (0.4 and 0.2 MB at 112x112 for a ResNet-50), so what waits stays ~10-15 MB.
    """

    def __init__(self, model: nn.Module, tile_frames: int, layer4_blocks: int | None = None,
                 deep_frames: int | None = None) -> None:
        if isinstance(tile_frames, bool) or not isinstance(tile_frames, int) or tile_frames < 1:
            raise ValueError(f"tile_frames must be a positive int, got {tile_frames!r}")
        self.model, self.tile_frames = model, tile_frames
        deep_frames = deep_frames or 2 * tile_frames
        stages = resnet_stages(model, layer4_blocks)
        self.stages = [_Queue(_Chain(stages[0]), tile_frames, exact=True)]
        stride = temporal_geometry(stages[0]).stride  # input frames per step of the stage's input
        for module in stages[1:]:
            downsamples = temporal_geometry(module).stride > 1
            # Only a layer's first block waits: the blocks after it run on what it gives them.
            frames = deep_frames * stride // 4 if downsamples and stride >= 4 else 1
            self.stages.append(_Queue(_Block(module), -(-frames // stride)))
            stride *= temporal_geometry(module).stride
        self.reset()

    def reset(self) -> None:
        """Forget the video fed so far."""
        for stage in self.stages:
            stage.reset()
        self.pooled, self.steps = 0.0, 0  # sum over layer4's steps of their spatial means (N, C); count

    def feed(self, x: torch.Tensor) -> None:
        self._push(x, end=False)

    def finish(self) -> torch.Tensor:
        self._push(None, end=True)
        if not self.steps:
            raise ValueError("finish() before any frames were fed")
        logits = self.model.fc((self.pooled / self.steps).to(self.model.fc.weight.dtype))  # (N, classes)
        self.reset()
        return logits

    def _push(self, x, end):
        parts = [x]
        for stage in self.stages:
            parts = [out for part in parts for out in stage.push(part, False)] + (stage.push(None, True) if end else [])
            if not parts and not end:
                return
        for x in parts:  # layer4 steps (N, C, steps, H, W)
            self.pooled = self.pooled + x.float().mean((3, 4)).sum(2)
            self.steps += x.shape[2]
