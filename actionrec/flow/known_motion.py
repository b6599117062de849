"""Frame pairs with a known flow, to measure a flow method's accuracy (tests and bench/bench_flow.py).

    frames, truth = affine_pair(textured_image(128, 128), shift=(1.5, -0.75), degrees=2)
    error = endpoint_error(estimator.flows(frames)[0], truth)
"""
import cv2
import numpy as np


def textured_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """uint8 [H, W, 3] RGB grey texture: noise smoothed at several scales (every scale has detail to
    track, as in a natural image; no flat region where flow is undetermined)."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width), np.float32)
    for sigma, weight in ((1.0, 0.5), (3.0, 1.0), (8.0, 1.0)):
        layer = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), sigma)
        image += weight * layer / layer.std()
    image = (image - image.min()) / (image.max() - image.min()) * 255
    return np.repeat(image.astype(np.uint8)[..., None], 3, axis=2)


def affine_matrix(height: int, width: int, shift=(0.0, 0.0), degrees: float = 0.0) -> np.ndarray:
    """2x3 matrix of a rotation by `degrees` (counter-clockwise on screen) about the image centre
    followed by a shift (x, y) in pixels."""
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), degrees, 1.0)
    matrix[:, 2] += shift
    return matrix


def affine_pair(image: np.ndarray, shift=(0.0, 0.0), degrees: float = 0.0):
    """(uint8 [2, H, W, 3] frames, float32 [H, W, 2] true flow): the second frame is the first moved
    by affine_matrix, so the point p of the first frame is at M p in the second, flow M p - p."""
    height, width = image.shape[:2]
    matrix = affine_matrix(height, width, shift, degrees)
    moved = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    truth = np.stack([matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2] - xs,
                      matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2] - ys], axis=-1)
    return np.stack([image, moved]), truth.astype(np.float32)


def endpoint_error(flow: np.ndarray, truth: np.ndarray, margin: int = 16) -> float:
    """Mean end-point error (pixels) of [H, W, 2] `flow` against `truth`, `margin` pixels from the edges
    left out (what moved in from outside the frame cannot be matched)."""
    inner = (slice(margin, -margin or None), slice(margin, -margin or None))
    return float(np.linalg.norm(flow[inner] - truth[inner], axis=-1).mean())
