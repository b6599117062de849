"""Grad-CAM ("where does the model look?") for 2D frame models and 3D clip models.

Grad-CAM (Selvaraju et al., 2017) weights the activations ``A`` of one layer by the
gradient of the target logit, averaged over all positions of that layer, and keeps the
positive part: ``map = ReLU(sum_k w_k A_k)`` with ``w_k = mean(d logit / d A_k)``. The
same code serves ``A`` of shape [N, K, H', W'] (a torchvision ResNet on frames) and
[N, K, T', H', W'] (the 3D ResNet, C3D on clips), so the 3D map also says *when*.

Only the part of the model after ``layer`` needs a graph: the forward pass runs under
``no_grad`` and a forward hook swaps the layer's output for a detached copy that requires
grad. That makes the result independent of the parameters' ``requires_grad`` flags (they
are never touched, and no ``.grad`` is written), works when the caller is under
``no_grad``, and saves the memory of the layers before ``layer``.

Public API: ``grad_cam``, ``default_layer``, ``upsample``, ``overlay_strip``, ``save_maps``.
Nothing runs at import time.
"""
import os
from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["grad_cam", "default_layer", "upsample", "overlay_strip", "save_maps",
           "MAX_TILES", "MAX_TILE_HEIGHT"]

MAX_TILES = 10          # overlay_strip: more frames than this are subsampled evenly
MAX_TILE_HEIGHT = 160   # overlay_strip: taller frames are scaled down to this height (px)
TILE_GAP = 2            # px of white between tiles and between the two rows
TITLE_HEIGHT = 18       # px of the title band above the tiles (only when titles are given)


def default_layer(model: nn.Module) -> nn.Module:
    """The layer whose activations explain ``model`` best, for the project's models.

    - a module with a ``conv5b`` attribute (C3D): ``model.conv5b``;
    - the 3D ResNet (has ``layer4_blocks``): the last block of layer4 that runs,
      ``model.layer4[k - 1]`` (hooking the container would never fire: its blocks are
      called one by one);
    - a module with ``layer4`` (torchvision ResNet): ``model.layer4``.

    Raises ValueError for any other model: pass ``layer=`` to :func:`grad_cam` yourself.
    """
    conv5b = getattr(model, "conv5b", None)
    if isinstance(conv5b, nn.Module):
        return conv5b
    layer4 = getattr(model, "layer4", None)
    if isinstance(layer4, nn.Module):
        if hasattr(model, "layer4_blocks"):
            k = model.layer4_blocks or len(layer4)
            return layer4[k - 1]
        return layer4
    raise ValueError(f"no default Grad-CAM layer for {type(model).__name__} (it has neither "
                     f"'conv5b' nor 'layer4'); pass the layer to explain explicitly")


def _target_indices(target, n):
    """``target`` (an int, or N ints) as a LongTensor [N]."""
    if isinstance(target, bool):
        raise ValueError(f"target must be a class index or {n} class indices, got {target!r}")
    indices = torch.as_tensor(target)
    if indices.dtype.is_floating_point or indices.dtype.is_complex or indices.dtype == torch.bool:
        raise ValueError(f"target must hold integer class indices, got dtype {indices.dtype}")
    if indices.ndim == 0:
        indices = indices.expand(n)
    if indices.shape != (n,):
        raise ValueError(f"target must be one class index or one per input ({n}), "
                         f"got shape {tuple(indices.shape)}")
    return indices.long()


def grad_cam(model: nn.Module, x: torch.Tensor, target: int | Sequence[int] | torch.Tensor,
             layer: nn.Module | None = None) -> tuple[np.ndarray, torch.Tensor]:
    """Grad-CAM maps of ``model`` on the batch ``x`` for the classes ``target``.

    ``model``: an nn.Module in eval mode mapping ``x`` ([N, 3, H, W] frames or
    [N, 3, T, H, W] clips, already normalised) to logits [N, C]. In train mode BatchNorm
    would mix the inputs of a batch and dropout would make the map random.
    ``target``: a class index for every input, or a sequence/tensor of N indices.
    ``layer``: the module whose output A ([N, K, H', W'] or [N, K, T', H', W']) is used;
    it must run exactly once per forward pass. None = :func:`default_layer`. Whatever
    follows the layer (a functional or in-place ReLU) does not matter: A is the layer's
    output as it returned it.

    Returns ``(maps, logits)``: ``maps`` float32 numpy [N, H', W'] or [N, T', H', W'],
    each input's map scaled to [0, 1] by its maximum (an all-zero map stays zero);
    ``logits`` the model's output [N, C], detached, on the model's device. No hook stays
    registered and the grad mode is restored, also when an exception is raised.
    """
    if layer is None:
        layer = default_layer(model)
    indices = _target_indices(target, x.shape[0])
    logits, activation = _forward_capturing(model, x, layer)
    num_classes = logits.shape[1]
    if indices.min() < 0 or indices.max() >= num_classes:
        raise ValueError(f"target class indices must lie in 0..{num_classes - 1}, "
                         f"got {indices.tolist()}")
    if not logits.requires_grad:
        raise ValueError("the logits do not depend on the Grad-CAM layer's output")

    # Inputs do not interact in eval mode, so the gradient of the sum with respect to
    # A[n] is the gradient of input n's own target logit.
    with torch.enable_grad():  # the caller may be under no_grad
        score = logits.gather(1, indices.to(logits.device)[:, None]).sum()
    (grads,) = torch.autograd.grad(score, activation, allow_unused=True)
    if grads is None:
        raise ValueError("the logits do not depend on the Grad-CAM layer's output")
    return _weighted_maps(activation.detach().float(), grads.float()), logits.detach()


def _forward_capturing(model, x, layer):
    """(logits [N, C], the layer's output A as a leaf that requires grad) of one forward pass that builds a
    graph only from ``layer`` on."""
    captured = []

    def swap_output(module, inputs, output):
        if not isinstance(output, torch.Tensor) or output.ndim not in (4, 5):
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
            raise ValueError(f"Grad-CAM needs a layer output of shape [N, K, (T,) H, W], got {shape}")
        activation = output.detach().requires_grad_(True)
        captured.append(activation)
        torch.set_grad_enabled(True)  # the rest of the forward pass builds a graph from here
        # A clone, so that an in-place op after the layer (ReLU(inplace=True)) leaves the
        # captured activation as the layer returned it and does not touch a leaf.
        return activation.clone()

    handle = layer.register_forward_hook(swap_output)
    try:
        with torch.no_grad():  # restores the caller's grad mode on exit
            logits = model(x)
    finally:
        handle.remove()

    if len(captured) != 1:
        raise ValueError(f"the Grad-CAM layer ran {len(captured)} times in one forward pass; "
                         f"pick a module that runs exactly once (for the 3D ResNet with "
                         f"layer4_blocks=k: model.layer4[k - 1])")
    if not (isinstance(logits, torch.Tensor) and logits.ndim == 2 and logits.shape[0] == x.shape[0]):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"the model must return logits [N, C] with N = {x.shape[0]}, got {shape}")
    return logits, captured[0]


def _weighted_maps(activation, grads):
    """ReLU(sum_k w_k A_k), w_k the mean gradient over A's positions, each map scaled to [0, 1] by its
    maximum: float32 numpy [N, (T',) H', W']."""
    positions = tuple(range(2, activation.ndim))                  # (T',) H', W'
    weights = grads.mean(dim=positions, keepdim=True)            # [N, K, 1, 1(, 1)]
    maps = (weights * activation).sum(dim=1).clamp_min(0)        # [N, (T',) H', W']
    peak = maps.flatten(1).amax(dim=1)
    scale = torch.where(peak > 0, 1 / peak, torch.zeros_like(peak))
    maps = maps * scale.view(-1, *([1] * (maps.ndim - 1)))
    return maps.cpu().numpy().astype(np.float32)


def upsample(maps: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Resize maps to the input size: [N, h, w] -> [N, H, W] bilinear (``size`` = (H, W)),
    [N, t, h, w] -> [N, T, H, W] trilinear (``size`` = (T, H, W)). Returns float32 numpy."""
    maps = torch.as_tensor(np.asarray(maps, dtype=np.float32))
    size = tuple(int(s) for s in size)
    modes = {2: "bilinear", 3: "trilinear"}
    if maps.ndim - 1 not in modes or len(size) != maps.ndim - 1:
        raise ValueError(f"upsample takes maps [N, h, w] with size (H, W) or [N, t, h, w] with "
                         f"size (T, H, W); got maps {tuple(maps.shape)} and size {size}")
    out = F.interpolate(maps[:, None], size=size, mode=modes[len(size)], align_corners=False)
    return out[:, 0].numpy()


def _fit_text(text, width, font, scale, thickness):
    """``text`` shortened until it fits in ``width`` pixels."""
    while text and cv2.getTextSize(text, font, scale, thickness)[0][0] > width:
        text = text[:-1]
    return text


def overlay_strip(frames: np.ndarray, maps: np.ndarray, path: str | os.PathLike[str],
                  titles: Sequence[str] | None = None, alpha: float = 0.5, max_tiles: int = MAX_TILES,
                  max_tile_height: int = MAX_TILE_HEIGHT) -> str | os.PathLike[str]:
    """Draw frames and their heat maps as one PNG and return ``path``.

    ``frames``: uint8 [n, H, W, 3] RGB; ``maps``: float [n, h, w] in [0, 1] (resized to the
    tiles, so any h, w will do); ``titles``: None or n strings (e.g. "frame 12").
    Top row: the frames side by side; bottom row: the same frames with the map drawn over
    them in the jet colour map (blue = 0, red = 1) at opacity ``alpha``. More than
    ``max_tiles`` frames are subsampled evenly; tiles taller than ``max_tile_height`` are
    scaled down (aspect kept). With tiles of h x w the image is
    ``[title band +] 2 h + gap`` high and ``m w + (m - 1) gap`` wide for m tiles.
    Parent folders are created.
    """
    frames = np.asarray(frames)
    maps = np.asarray(maps, dtype=np.float32)
    _check_strip(frames, maps, path, titles, alpha)

    picked = np.arange(len(frames))
    if len(frames) > max_tiles:
        picked = np.unique(np.linspace(0, len(frames) - 1, max_tiles).round().astype(int))
    height, width = frames.shape[1:3]
    scale = min(1.0, max_tile_height / height)
    tile_h, tile_w = max(1, round(height * scale)), max(1, round(width * scale))
    band = TITLE_HEIGHT if titles is not None else 0
    canvas = np.full((band + 2 * tile_h + TILE_GAP,
                      len(picked) * tile_w + (len(picked) - 1) * TILE_GAP, 3), 255, np.uint8)

    font = cv2.FONT_HERSHEY_SIMPLEX
    for column, i in enumerate(picked):
        frame = cv2.cvtColor(cv2.resize(frames[i], (tile_w, tile_h), interpolation=cv2.INTER_AREA),
                             cv2.COLOR_RGB2BGR)  # OpenCV writes BGR
        heat_map = np.nan_to_num(cv2.resize(maps[i], (tile_w, tile_h), interpolation=cv2.INTER_LINEAR))
        heat = cv2.applyColorMap((np.clip(heat_map, 0, 1) * 255).round().astype(np.uint8),
                                 cv2.COLORMAP_JET)
        blended = cv2.addWeighted(frame, 1 - alpha, heat, alpha, 0)
        left = column * (tile_w + TILE_GAP)
        canvas[band:band + tile_h, left:left + tile_w] = frame
        canvas[band + tile_h + TILE_GAP:, left:left + tile_w] = blended
        if titles is not None:
            text = _fit_text(str(titles[i]), tile_w - 2, font, 0.4, 1)
            cv2.putText(canvas, text, (left + 1, band - 5), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)

    return _write_png(canvas, path)


def _check_strip(frames, maps, path, titles, alpha):
    """overlay_strip's arguments, or a ValueError saying which one is wrong."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [n, H, W, 3] RGB, got {frames.dtype} {frames.shape}")
    if maps.ndim != 3 or maps.shape[0] != frames.shape[0]:
        raise ValueError(f"maps must be [n, H, W] with n = {frames.shape[0]} (one per frame), "
                         f"got {maps.shape}")
    if titles is not None and len(titles) != len(frames):
        raise ValueError(f"titles must be one per frame ({len(frames)}), got {len(titles)}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if not os.fspath(path).lower().endswith(".png"):
        raise ValueError(f"overlay_strip writes a PNG; the path must end in .png, got {path}")


def _write_png(image, path):
    """Write a BGR uint8 image as a PNG at ``path`` (parent folders created); return ``path``."""
    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} image as PNG")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(png.tobytes())
    return path


def save_maps(maps: np.ndarray, path: str | os.PathLike[str]) -> str:
    """Save maps as float32 .npy (numpy appends ``.npy`` when missing); return the path written."""
    path = os.fspath(path)
    if not path.endswith(".npy"):
        path += ".npy"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.save(path, np.asarray(maps, dtype=np.float32))
    return path


if __name__ == "__main__":
    raise SystemExit("gradcam.py is the library behind predict.py --explain OUT_DIR; run that instead "
                     "(python predict.py --help)")
