"""3D ResNets of Hara et al. (3D-ResNets-PyTorch, ``models/resnet.py``) for current PyTorch.

Parameter and buffer names match the released Kinetics checkpoints, so
``resnet-50-kinetics.pth`` loads into ``resnet50(shortcut_type='B', num_classes=400)``
through :func:`load_pretrained` (which also swaps in a fresh classifier for another number
of classes).

Differences from the original code:
- the final fixed ``AvgPool3d`` is an ``AdaptiveAvgPool3d(1)``, so any clip length and frame
  size work (``sample_size`` and ``sample_duration`` are kept for signature compatibility only);
- shortcut 'A' pads with zeros on the input's own device and dtype (no ``Variable``, no
  ``.cuda()``);
- ``layer4_blocks`` runs only the first k blocks of layer4, to fit training on a small GPU.

Public API: ``ResNet``, ``BasicBlock``, ``Bottleneck``, ``resnet10`` ... ``resnet200``,
``generate_model(depth, **kwargs)`` and ``load_pretrained(model, path_or_state)``.
"""
import os
import re
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from actionrec.models import weights_file

__all__ = [
    "ResNet", "BasicBlock", "Bottleneck", "generate_model", "load_pretrained",
    "resnet10", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet200",
]


def conv3x3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv3d:
    return nn.Conv3d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class ZeroPadShortcut(nn.Module):
    """Shortcut 'A': strided identity, with the extra output channels filled with zeros.

    Has no parameters, so it adds nothing to the state_dict (as in Hara's checkpoints).
    """

    def __init__(self, out_planes: int, stride: int):
        super().__init__()
        self.out_planes = out_planes
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Same as Hara's avg_pool3d(kernel_size=1, stride): take every stride-th voxel.
        out = x[:, :, ::self.stride, ::self.stride, ::self.stride]  # (N, C, T', H', W')
        extra = self.out_planes - out.size(1)
        # F.pad pads the last dims first: (W, H, T, C) pairs.
        return F.pad(out, (0, 0, 0, 0, 0, 0, 0, extra))

    def extra_repr(self):
        return f"out_planes={self.out_planes}, stride={self.stride}"


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3x3(planes, planes)
        self.bn2 = nn.BatchNorm3d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv3d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


class ResNet(nn.Module):
    """3D ResNet on clips of shape (N, 3, T, H, W); returns logits (N, num_classes).

    ``sample_size`` and ``sample_duration`` are accepted for compatibility with Hara's code
    and stored, but unused: pooling is adaptive. ``layer4_blocks`` (None = all, else 1..len)
    limits how many blocks of layer4 run; it can be changed later through the attribute of
    the same name or per call through ``forward(x, layer4_blocks=k)``.
    """

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: list[int], sample_size: int = 112,
                 sample_duration: int = 16, shortcut_type: str = "B", num_classes: int = 400,
                 layer4_blocks: int | None = None):
        super().__init__()
        if shortcut_type not in ("A", "B"):
            raise ValueError(f"shortcut_type must be 'A' or 'B', got {shortcut_type!r}")
        self.block = block
        self.layers = list(layers)
        self.sample_size = sample_size
        self.sample_duration = sample_duration
        self.shortcut_type = shortcut_type
        self.inplanes = 64

        self.conv1 = nn.Conv3d(3, 64, kernel_size=7, stride=(1, 2, 2), padding=(3, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0], shortcut_type)
        self.layer2 = self._make_layer(block, 128, layers[1], shortcut_type, stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], shortcut_type, stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], shortcut_type, stride=2)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        self._check_layer4_blocks(layer4_blocks)
        self.layer4_blocks = layer4_blocks

        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def depth(self) -> int:
        """Number of weight layers (10, 18, 34, 50, 101, 152, 200 for the standard configs)."""
        convs_per_block = 3 if issubclass(self.block, Bottleneck) else 2
        return convs_per_block * sum(self.layers) + 2

    def _make_layer(self, block, planes, blocks, shortcut_type, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            if shortcut_type == "A":
                downsample = ZeroPadShortcut(planes * block.expansion, stride)
            else:
                downsample = nn.Sequential(
                    nn.Conv3d(self.inplanes, planes * block.expansion, kernel_size=1,
                              stride=stride, bias=False),
                    nn.BatchNorm3d(planes * block.expansion),
                )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _check_layer4_blocks(self, k):
        if k is None:
            return
        n = len(self.layer4)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
            raise ValueError(f"layer4_blocks must be None or an int in 1..{n} (a ResNet-{self.depth} has {n} "
                             f"block{'s' if n > 1 else ''} in layer4), got {k!r}")

    def forward(self, x: torch.Tensor, layer4_blocks: int | None = None) -> torch.Tensor:
        k = self.layer4_blocks if layer4_blocks is None else layer4_blocks
        self._check_layer4_blocks(k)
        # x: (N, 3, T, H, W)
        x = self.relu(self.bn1(self.conv1(x)))  # (N, 64, T, H/2, W/2)
        x = self.maxpool(x)                     # (N, 64, T/2, H/4, W/4)
        x = self.layer1(x)                      # (N, 64*e, T/2, H/4, W/4)
        x = self.layer2(x)                      # (N, 128*e, T/4, H/8, W/8)
        x = self.layer3(x)                      # (N, 256*e, T/8, H/16, W/16)
        # Iterate instead of calling self.layer4 so that skipped blocks never run.
        for block in self.layer4[:k]:
            x = block(x)                        # (N, 512*e, T/16, H/32, W/32), sizes rounded up
        x = self.avgpool(x).flatten(1)          # (N, 512*e)
        return self.fc(x)                       # (N, num_classes)


def resnet10(**kwargs: Any) -> ResNet:
    return ResNet(BasicBlock, [1, 1, 1, 1], **kwargs)


def resnet18(**kwargs: Any) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], **kwargs)


def resnet34(**kwargs: Any) -> ResNet:
    return ResNet(BasicBlock, [3, 4, 6, 3], **kwargs)


def resnet50(**kwargs: Any) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], **kwargs)


def resnet101(**kwargs: Any) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 23, 3], **kwargs)


def resnet152(**kwargs: Any) -> ResNet:
    return ResNet(Bottleneck, [3, 8, 36, 3], **kwargs)


def resnet200(**kwargs: Any) -> ResNet:
    return ResNet(Bottleneck, [3, 24, 36, 3], **kwargs)


_MODEL_FNS = {10: resnet10, 18: resnet18, 34: resnet34, 50: resnet50,
              101: resnet101, 152: resnet152, 200: resnet200}


def generate_model(depth: int, **kwargs: Any) -> ResNet:
    """Build the 3D ResNet of the given depth; kwargs go to :class:`ResNet`."""
    if depth not in _MODEL_FNS:
        raise ValueError(f"unsupported ResNet depth {depth!r}; choose one of {sorted(_MODEL_FNS)}")
    return _MODEL_FNS[depth](**kwargs)


def load_pretrained(model: nn.Module, path_or_state: str | os.PathLike[str] | dict,
                    strict_fc: bool = False) -> dict:
    """Load Hara-style weights into ``model`` (a :class:`ResNet`) in place.

    ``path_or_state`` is a checkpoint path or an already loaded object: either the released
    format (dict with ``epoch``, ``arch``, ``state_dict``, ``optimizer``) or a bare state_dict;
    a ``module.`` prefix (DataParallel) is stripped. ``num_batches_tracked`` buffers missing
    from the checkpoint keep the model's values. If the checkpoint's ``fc`` has another shape
    (e.g. 400 Kinetics classes vs 101), it is dropped and the model keeps its own fc, unless
    ``strict_fc`` is true, in which case that is an error like any other mismatch.

    Returns ``{"arch", "epoch", "loaded", "dropped_fc"}``; ``loaded`` counts tensors copied.
    Raises ValueError naming the missing/unexpected keys and shape mismatches otherwise.
    """
    if isinstance(path_or_state, (str, os.PathLike)):
        source = os.fspath(path_or_state)
        checkpoint = weights_file.read_weights(path_or_state, "a .pth file holding a state_dict or Hara's "
                                                              "{'arch', 'epoch', 'state_dict'} dict")
    else:
        source = "given state_dict"
        checkpoint = path_or_state

    if not isinstance(checkpoint, dict):
        raise ValueError(f"{source}: expected a dict checkpoint, got {type(checkpoint).__name__}")
    arch, epoch = None, None
    if "state_dict" in checkpoint:
        arch, epoch = checkpoint.get("arch"), checkpoint.get("epoch")
        state = checkpoint["state_dict"]
    else:
        state = checkpoint
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        keys = weights_file.summarise(map(str, checkpoint), sort=True)
        raise ValueError(f"{source}: no state_dict of tensors found (keys: {keys})")
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}

    model_state = model.state_dict()
    dropped_fc = False
    fc_keys = ("fc.weight", "fc.bias")
    if not strict_fc and any(k in state and k in model_state and state[k].shape != model_state[k].shape
                             for k in fc_keys):
        state = {k: v for k, v in state.items() if k not in fc_keys}
        dropped_fc = True

    optional = {k for k in model_state if k.endswith("num_batches_tracked")}
    if dropped_fc:
        optional.update(fc_keys)
    misfit = weights_file.find_misfit(model_state, state, optional)
    if any(misfit):
        model_arch = f"resnet-{model.depth}" if isinstance(model, ResNet) else type(model).__name__
        other_arch = isinstance(arch, str) and re.sub(r"[-_]", "", arch.lower()) != model_arch.replace("-", "")
        said = f"checkpoint arch is {arch!r} but the model is {model_arch}; " if other_arch else ""
        raise ValueError(f"{source} does not fit {model_arch}: {said}{weights_file.describe_misfit(misfit)}")

    model.load_state_dict(state, strict=False)
    return {"arch": arch, "epoch": epoch, "loaded": len(state), "dropped_fc": dropped_fc}
