"""Normalisation statistics of each recipe and the uint8 -> float normalisation."""

from collections.abc import Sequence

import numpy as np

# Normalisation on RGB in [0, 1]: ImageNet's for part 1, the assignment's clip statistics for part 2.
FRAME_MEAN = (0.485, 0.456, 0.406)


FRAME_STD = (0.229, 0.224, 0.225)


CLIP_MEAN = (0.433, 0.4045, 0.3776)


CLIP_STD = (0.1519876, 0.14855877, 0.156976)


# The motion stream's uint8 flow levels (0..255 over +-20 px, 128 ~ no motion), normalised as tsn-pytorch
# does for a ResNet: x / 255 minus 0.5 (~128/255), over the mean of ImageNet's RGB std (0.226), the
# same for x and y. RGB difference: frames normalised with FRAME_MEAN/FRAME_STD, then differenced.
FLOW_MEAN = 0.5


FLOW_STD = float(np.mean(FRAME_STD))


# Hara et al. fed RGB in 0..255 minus this mean and no std; expressed on [0, 1] so one formula serves all.
KINETICS_MEAN = (114.7748 / 255, 107.7354 / 255, 99.4750 / 255)


KINETICS_STD = (1 / 255, 1 / 255, 1 / 255)


def normalize_numpy(frames: np.ndarray, mean: float | Sequence[float], std: float | Sequence[float]) -> np.ndarray:
    """uint8 [..., 3] -> float32 [..., 3] of (x / 255 - mean) / std."""
    scale = (1.0 / (255.0 * np.asarray(std, np.float32))).astype(np.float32)
    shift = (np.asarray(mean, np.float32) / np.asarray(std, np.float32)).astype(np.float32)
    return frames.astype(np.float32) * scale - shift


def normalize_channels_first(frames: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 [..., 3] -> float32 [3, ...] of (x / 255 - mean) / std, channels first.

    One channel at a time: numpy broadcasting over a last axis of 3 runs a 3-element inner loop and
    is ~6x slower; writing channels first also saves the transpose copy.
    """
    scale = (1.0 / (255.0 * np.asarray(std, np.float32))).astype(np.float32)
    shift = (np.asarray(mean, np.float32) / np.asarray(std, np.float32)).astype(np.float32)
    out = np.empty((3,) + frames.shape[:-1], dtype=np.float32)
    for c in range(3):
        np.multiply(frames[..., c], scale[c], out=out[c])
        out[c] -= shift[c]
    return out
