"""The 8-bit form of a flow field, as TSN stores it, and the horizontal flip of a field.

A flow field is float32 [..., H, W, 2] in pixels, last axis (x, y): x to the right, y down. Its 8-bit
form clips each component to +-bound (TSN / denseflow: bound 20) and maps it to 0..255 linearly,
q = round((f + bound) * 255 / (2 * bound)), rounding halves up. dequantize is the exact inverse map
of the levels, f = q * 2 * bound / 255 - bound, so one level is 40 / 255 = 0.157 px for bound 20 and
a round trip is off by at most half a level inside the bound.

Zero flow lands exactly halfway (127.5) and rounds to 128 (+0.078 px): there is no level for 0.
The flip of the 8-bit form is x -> 255 - x, and dequantize(255 - q) = -dequantize(q) exactly, so
flipping the stored form negates the dequantized field exactly (128 -> 127, +0.078 -> -0.078); it can
differ by one level from quantizing the negated float field, where that rounding falls halfway.
"""
import numpy as np

BOUND = 20.0  # px; TSN's denseflow -b=20, mmaction2's flow_to_img
LEVELS = 255


def quantize(flow: np.ndarray, bound: float = BOUND) -> np.ndarray:
    """float [..., 2] pixels -> uint8 [..., 2]: clipped to +-bound, mapped to 0..255, halves rounded up."""
    scaled = (np.asarray(flow, dtype=np.float32) + bound) * (LEVELS / (2 * bound))
    return np.clip(np.floor(scaled + 0.5), 0, LEVELS).astype(np.uint8)


def dequantize(levels: np.ndarray, bound: float = BOUND) -> np.ndarray:
    """uint8 [..., 2] -> float32 [..., 2] pixels: the inverse map of quantize's levels."""
    return np.asarray(levels, dtype=np.float32) * np.float32(2 * bound / LEVELS) - np.float32(bound)


def hflip(flow: np.ndarray) -> np.ndarray:
    """A flow field [..., H, W, 2] mirrored left-right: columns reversed and x negated (x -> 255 - x
    for the uint8 form, exact in the dequantized values). y is unchanged. Returns a new array."""
    flow = np.asarray(flow)
    flipped = flow[..., ::-1, :].copy()
    if flipped.dtype == np.uint8:
        flipped[..., 0] = LEVELS - flipped[..., 0]
    elif np.issubdtype(flipped.dtype, np.floating):
        flipped[..., 0] = -flipped[..., 0]
    else:
        raise ValueError(f"a flow field is float pixels or uint8 levels, not {flipped.dtype}")
    return flipped
