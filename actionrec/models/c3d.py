"""C3D (Tran et al., ICCV 2015) as re-released for PyTorch, with a loader for its released weights.

The layers, names and shapes are those of jfzhang95/pytorch-video-recognition's ``C3D_model.py``,
so its ``c3d-pretrained.pth`` (the Caffe Sports-1M C3D converted; R-C3D.pytorch ships the same
file) loads through :func:`load_pretrained`, as does DavideA/c3d-pytorch's ``c3d.pickle``.
Neither release says whether the file holds Sports-1M weights only or a model already fine-tuned
on UCF-101 (it was first published as ``ucf101-caffe.pth``); if it is the latter, it has seen test
videos of other splits, so say so next to any UCF-101 number obtained from it.

The weights expect BGR frames (OpenCV's order) on the 0-255 scale, resized to 128x171 (H x W,
aspect ignored), cropped to 112x112, minus the per-channel mean ``MEAN_BGR``, no std, laid out
(N, C, T, H, W) with ``CLIP_LEN`` frames.

Additions to the released architecture, both off by default:
- ``width`` scales every layer's channels and the fc6/fc7 hidden size, so that a small C3D can
  be trained from scratch on a CPU (``width=1.0`` is the released model);
- ``adaptive_pool=True`` average-pools pool5's output to 1x4x4, so that other clip lengths and
  frame sizes still give fc6 the inputs it expects (an exact identity for 16x112x112 clips).

Public API: ``C3D``, ``load_pretrained(model, path_or_state)`` and the constants ``CLIP_LEN``,
``IMAGE_SIZE``, ``RESIZE_HW``, ``MEAN_BGR``, ``HEAD``, ``LAST_CONV``.
"""
import os
from typing import Any

import torch
import torch.nn as nn

from actionrec.models import weights_file

__all__ = ["C3D", "load_pretrained", "CLIP_LEN", "IMAGE_SIZE", "RESIZE_HW", "MEAN_BGR",
           "HEAD", "LAST_CONV"]

CLIP_LEN = 16                    # frames per clip
IMAGE_SIZE = 112                 # crop size (H = W)
RESIZE_HW = (128, 171)           # frames are resized to this (H, W) before the crop
MEAN_BGR = (90.0, 98.0, 102.0)   # subtracted on the 0-255 scale, BGR order; no std
HEAD = "fc8"                     # prefix of the classifier's parameters (replaced for new classes)
LAST_CONV = "conv5b"             # last convolution, for Grad-CAM

# Layer name -> released channels at width 1, in forward order.
CONV_CHANNELS = {"conv1": 64, "conv2": 128, "conv3a": 256, "conv3b": 256,
                 "conv4a": 512, "conv4b": 512, "conv5a": 512, "conv5b": 512}
FC_HIDDEN = 4096
POOL5_THW = (1, 4, 4)            # pool5's output for a 16x112x112 clip

# c3d-pretrained.pth wraps the layers in two nn.Sequential containers (ReLUs, pools and dropouts
# take the missing indices); this is where each named layer sits there.
SEQUENTIAL_NAMES = {
    "features.0": "conv1", "features.3": "conv2", "features.6": "conv3a", "features.8": "conv3b",
    "features.11": "conv4a", "features.13": "conv4b", "features.16": "conv5a",
    "features.18": "conv5b", "classifier.0": "fc6", "classifier.3": "fc7", "classifier.6": "fc8",
}
LAYER_TO_SEQUENTIAL = {layer: index for index, layer in SEQUENTIAL_NAMES.items()}


class C3D(nn.Module):
    """C3D on clips (N, 3, T, H, W), released size T=16, H=W=112; returns logits (N, num_classes).

    Initialisation (training from scratch): convolutions and fc6/fc7 Kaiming normal (fan_in,
    ReLU gain), fc8 N(0, 0.01), all biases zero. :func:`load_pretrained` overwrites them.
    """

    def __init__(
        self, num_classes: int = 487, dropout: float = 0.5, width: float = 1.0, adaptive_pool: bool = False
    ) -> None:
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
            raise ValueError(f"width must be a positive number, got {width!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.num_classes = num_classes
        self.width = float(width)
        self.adaptive_pool = bool(adaptive_pool)
        c = {name: max(1, round(n * width)) for name, n in CONV_CHANNELS.items()}
        hidden = max(1, round(FC_HIDDEN * width))

        def conv(cin, cout):
            return nn.Conv3d(cin, cout, kernel_size=3, stride=1, padding=1, bias=True)

        self.conv1 = conv(3, c["conv1"])
        self.pool1 = nn.MaxPool3d(kernel_size=(1, 2, 2), stride=(1, 2, 2))
        self.conv2 = conv(c["conv1"], c["conv2"])
        self.pool2 = nn.MaxPool3d(kernel_size=2, stride=2)
        self.conv3a = conv(c["conv2"], c["conv3a"])
        self.conv3b = conv(c["conv3a"], c["conv3b"])
        self.pool3 = nn.MaxPool3d(kernel_size=2, stride=2)
        self.conv4a = conv(c["conv3b"], c["conv4a"])
        self.conv4b = conv(c["conv4a"], c["conv4b"])
        self.pool4 = nn.MaxPool3d(kernel_size=2, stride=2)
        self.conv5a = conv(c["conv4b"], c["conv5a"])
        self.conv5b = conv(c["conv5a"], c["conv5b"])
        # The padding turns 7x7 into 4x4 (8192 fc6 inputs); without it the flatten is 4608.
        self.pool5 = nn.MaxPool3d(kernel_size=2, stride=2, padding=(0, 1, 1))
        self.pool5_fit = nn.AdaptiveAvgPool3d(POOL5_THW) if self.adaptive_pool else nn.Identity()
        self.fc6 = nn.Linear(c["conv5b"] * POOL5_THW[0] * POOL5_THW[1] * POOL5_THW[2], hidden)
        self.fc7 = nn.Linear(hidden, hidden)
        self.fc8 = nn.Linear(hidden, num_classes)
        # Not in place: a Grad-CAM hook on conv5b must see conv5b's output, not its ReLU.
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(p=dropout)

        for m in self.modules():
            if isinstance(m, (nn.Conv3d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.fc8.weight, std=0.01)

    def _check_input(self, x):
        """Refuse, before any work, a clip that pool5 cannot turn into fc6's inputs."""
        if x.dim() != 5 or x.size(1) != 3:
            raise ValueError(f"C3D expects clips of shape (N, 3, T, H, W), got {tuple(x.shape)}")
        t, h, w = x.shape[2:]
        # pool1-pool4 (floor mode) divide T by 8 and H, W by 16; pool5 halves T and, with its
        # padding of 1, maps H, W to H // 2 + 1. Below 16 in any of them a pool has no output.
        too_small = t < 16 or h < 16 or w < 16
        pool5 = (t // 16, h // 32 + 1, w // 32 + 1)
        if not self.adaptive_pool and (too_small or pool5 != POOL5_THW):
            got = f"got {tuple(x.shape)}" if too_small else \
                f"got {tuple(x.shape)}, whose pool5 output {pool5} is not the {POOL5_THW} fc6 needs"
            size = f"{CLIP_LEN} frames of {IMAGE_SIZE}x{IMAGE_SIZE}"
            raise ValueError(
                f"C3D expects clips of {size} (input (N, 3, {CLIP_LEN}, {IMAGE_SIZE}, "
                f"{IMAGE_SIZE})), {got}; build C3D(adaptive_pool=True) to accept other clip "
                f"lengths and frame sizes")
        if too_small:
            raise ValueError(f"C3D needs clips of at least 16 frames of 16x16 pixels (its pools "
                             f"divide T, H and W by 16), got input {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        # x: (N, 3, 16, 112, 112); shapes below at width 1.
        x = self.pool1(self.relu(self.conv1(x)))   # (N, 64, 16, 56, 56): pool1 keeps time
        x = self.pool2(self.relu(self.conv2(x)))   # (N, 128, 8, 28, 28)
        x = self.relu(self.conv3a(x))              # (N, 256, 8, 28, 28)
        x = self.pool3(self.relu(self.conv3b(x)))  # (N, 256, 4, 14, 14)
        x = self.relu(self.conv4a(x))              # (N, 512, 4, 14, 14)
        x = self.pool4(self.relu(self.conv4b(x)))  # (N, 512, 2, 7, 7)
        x = self.relu(self.conv5a(x))              # (N, 512, 2, 7, 7)
        x = self.pool5(self.relu(self.conv5b(x)))  # (N, 512, 1, 4, 4)
        x = self.pool5_fit(x)                      # (N, 512, 1, 4, 4) whatever T, H, W were
        x = x.flatten(1)                           # (N, 8192) in (C, T, H, W) order, as released
        x = self.dropout(self.relu(self.fc6(x)))   # (N, 4096)
        x = self.dropout(self.relu(self.fc7(x)))   # (N, 4096)
        return self.fc8(x)                         # (N, num_classes)


def _to_layer_name(key, sequential):
    """File key (``module.`` stripped) -> the model's parameter name, or None if it has none."""
    prefix, dot, param = key.rpartition(".")
    if not dot or param not in ("weight", "bias"):
        return None
    layer = SEQUENTIAL_NAMES.get(prefix) if sequential else prefix
    return f"{layer}.{param}" if layer in CONV_CHANNELS or layer in ("fc6", "fc7", "fc8") else None


def _file_key(name, sequential):
    """The model's parameter name -> how the file should call it, for error messages."""
    layer, _, param = name.rpartition(".")
    if sequential and layer in LAYER_TO_SEQUENTIAL:
        return f"{LAYER_TO_SEQUENTIAL[layer]}.{param} ({name})"
    return name


def _match_keys(state, model_state, sequential):
    """(the model's parameters found in the file, fitting: {name: tensor}; the file's keys of an fc8 of
    another class count; the weights_file.Misfit of the rest) of a file's state_dict."""
    to_load, unexpected, mismatched, misshapen, fc8_keys = {}, [], [], set(), []
    for original, tensor in state.items():
        key = str(original)
        key = key[len("module."):] if key.startswith("module.") else key
        name = _to_layer_name(key, sequential)
        if name is None or name not in model_state or name in to_load:
            unexpected.append(str(original))
            continue
        target = model_state[name].shape
        if tensor.shape == target:
            to_load[name] = tensor
        elif name.startswith(HEAD + ".") and tensor.shape[1:] == target[1:]:
            fc8_keys.append(str(original))  # another class count: the model keeps its own fc8
        else:
            mismatched.append(weights_file.shape_mismatch(str(original), tensor.shape, target))
            misshapen.add(name)
    missing = [_file_key(name, sequential) for name in model_state
               if name not in to_load and name not in misshapen and not name.startswith(HEAD + ".")]
    fc8_loaded = [name for name in model_state if name.startswith(HEAD + ".") and name in to_load]
    if fc8_loaded and len(fc8_loaded) != 2:
        # Half an fc8 (a weight without its bias, or one that fits beside one that does not)
        # would be a broken classifier.
        mismatched.append(f"{HEAD}: the file has {weights_file.summarise(fc8_loaded)} fitting the model, "
                          f"need weight and bias")
    return to_load, fc8_keys, weights_file.Misfit(missing, unexpected, mismatched)


def load_pretrained(model: nn.Module, path_or_state: str | os.PathLike[str] | dict[str, Any]) -> dict[str, Any]:
    """Load released C3D weights into ``model`` (a :class:`C3D`) in place.

    ``path_or_state`` is a path or an already loaded object, in one of the released layouts:
    - ``"sequential"``: jfzhang95's / R-C3D's ``c3d-pretrained.pth``, keys
      ``features.{0,3,6,8,11,13,16,18}.{weight,bias}`` (conv1 ... conv5b) and
      ``classifier.{0,3,6}.{weight,bias}`` (fc6, fc7, fc8 with 487 Sports-1M classes);
    - ``"named"``: DavideA's ``c3d.pickle``, keys ``conv1.weight`` ... ``fc8.bias``.
    Either may sit under a ``"state_dict"`` key and carry a ``module.`` prefix.

    Every convolution and fc6/fc7 must be in the file with the model's shapes. fc8 is loaded
    when its shape matches; when only its class count differs (or the file has no fc8) the
    model keeps its own fc8. Returns ``{"format", "loaded", "dropped", "dropped_fc8"}``:
    ``loaded`` lists the model's parameter names that were copied, ``dropped`` the file's keys
    that were not. Anything else raises a one-line ValueError naming the source and the keys
    that do not fit; nothing is copied then.
    """
    if isinstance(path_or_state, (str, os.PathLike)):
        source = os.fspath(path_or_state)
        checkpoint = weights_file.read_weights(path_or_state, "C3D weights such as c3d-pretrained.pth or c3d.pickle")
    else:
        source = "given state_dict"
        checkpoint = path_or_state
    expected = "expected c3d-pretrained.pth (features.N / classifier.N keys) or c3d.pickle " \
               "(conv1.weight ... fc8.bias)"

    if not isinstance(checkpoint, dict):
        raise ValueError(f"{source}: expected a dict of tensors, got {type(checkpoint).__name__}; "
                         f"{expected}")
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{source}: no state_dict of tensors found (keys: "
                         f"{weights_file.summarise(map(str, checkpoint))}); {expected}")
    model_state = model.state_dict()
    sequential = any(str(k).startswith(("features.", "classifier.", "module.features.",
                                         "module.classifier.")) for k in state)
    to_load, fc8_keys, misfit = _match_keys(state, model_state, sequential)
    if any(misfit):
        model_desc = f"C3D(num_classes={model.num_classes}, width={model.width:g})" \
            if isinstance(model, C3D) else type(model).__name__
        raise ValueError(f"{source} does not fit {model_desc}: {weights_file.describe_misfit(misfit)}; {expected}")

    model.load_state_dict(to_load, strict=False)
    return {"format": "sequential" if sequential else "named",
            "loaded": [name for name in model_state if name in to_load],
            "dropped": fc8_keys, "dropped_fc8": bool(fc8_keys)}
