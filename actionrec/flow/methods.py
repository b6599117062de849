"""Dense optical flow between consecutive frames, by method.

    estimator = create_estimator("dis-medium")
    flows = estimator.flows(frames)      # uint8 [n, H, W, 3] RGB -> float32 [n - 1, H, W, 2] (x, y) px

CPU methods (OpenCV, on grey frames): "tvl1" (Dual TV-L1, opencv-contrib: the flow of the two-stream
and TSN papers), "dis-ultrafast" / "dis-fast" / "dis-medium" (DIS, Kroeger et al. 2016, OpenCV's
presets) and "farneback". GPU-or-CPU methods: "raft-small" / "raft-large" (torchvision's RAFT, on
RGB), from a weights file the user supplies: nothing is downloaded. bench/bench_flow.py measures
speed and accuracy of each (bench/README.md).

Building an estimator can be costly (TV-L1 allocates its pyramids, RAFT loads its weights): make one
per process and reuse it for every pair, e.g. through cached_estimator.
"""
import functools
import os

import cv2
import numpy as np

CV_METHODS = ("tvl1", "dis-ultrafast", "dis-fast", "dis-medium", "farneback")
RAFT_METHODS = ("raft-small", "raft-large")
METHODS = CV_METHODS + RAFT_METHODS
DEFAULT_METHOD = "dis-medium"  # extract_flow.py's, chosen by bench/bench_flow.py: see README.md, "Optical flow"
DIS_PRESETS = {"dis-ultrafast": cv2.DISOpticalFlow_PRESET_ULTRAFAST, "dis-fast": cv2.DISOpticalFlow_PRESET_FAST,
               "dis-medium": cv2.DISOpticalFlow_PRESET_MEDIUM}
# OpenCV's documented example values (also mmaction2's and most tutorials'): 3 levels halving the size,
# a 15 px window, 3 iterations, polynomial of 5 px with sigma 1.2.
FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)
RAFT_ITERATIONS = 12  # torchvision's default number of flow updates
RAFT_BATCH = 8        # pairs per forward pass
RAFT_MIN_SIDE = 128   # its correlation pyramid needs feature maps of 16+ at 1/8 of the image


class OpenCVFlow:
    """One OpenCV estimator (tvl1, dis-*, farneback) for every pair it is given."""

    def __init__(self, method: str):
        if method not in CV_METHODS:
            raise ValueError(f"not an OpenCV flow method: {method!r} (one of {', '.join(CV_METHODS)})")
        self.method = method
        if method == "tvl1":
            self._algorithm = cv2.optflow.DualTVL1OpticalFlow_create()
        elif method in DIS_PRESETS:
            self._algorithm = cv2.DISOpticalFlow_create(DIS_PRESETS[method])
        else:
            self._algorithm = None

    def pair(self, grey0: np.ndarray, grey1: np.ndarray) -> np.ndarray:
        """float32 [H, W, 2] flow from uint8 grey frame grey0 to grey1 (same size)."""
        if self._algorithm is None:
            return cv2.calcOpticalFlowFarneback(grey0, grey1, None, **FARNEBACK)
        return self._algorithm.calc(grey0, grey1, None)

    def flows(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [n, H, W, 3] RGB (n >= 2) -> float32 [n - 1, H, W, 2]: the flow of each consecutive pair."""
        grey = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]
        return np.stack([self.pair(a, b) for a, b in zip(grey[:-1], grey[1:])])


class RaftFlow:
    """torchvision's RAFT (small or large) with weights from a file; CUDA when present, else CPU."""

    def __init__(self, method: str, weights_path: str, device: str = "auto"):
        import torch  # only the RAFT methods need torch
        from torchvision.models.optical_flow import raft_large, raft_small

        if method not in RAFT_METHODS:
            raise ValueError(f"not a RAFT method: {method!r} (one of {', '.join(RAFT_METHODS)})")
        self.method, self._torch = method, torch
        self.device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
        model = (raft_small if method == "raft-small" else raft_large)(weights=None)
        model.load_state_dict(load_raft_state(weights_path, method, model.state_dict()))
        self._model = model.eval().to(self.device)

    def flows(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [n, H, W, 3] RGB (n >= 2) -> float32 [n - 1, H, W, 2]."""
        torch = self._torch
        height, width = frames.shape[1:3]
        # RAFT needs sides divisible by 8 and at least RAFT_MIN_SIDE: edge-padded, cropped after.
        pad_h, pad_w = (max(RAFT_MIN_SIDE, side + -side % 8) - side for side in (height, width))
        images = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()  # (n, 3, H, W)
        images = images.div(127.5).sub(1.0)  # [-1, 1], as torchvision's Raft weights' transforms
        if pad_h or pad_w:
            images = torch.nn.functional.pad(images, (0, pad_w, 0, pad_h), mode="replicate")
        out = []
        with torch.inference_mode():
            for start in range(0, len(frames) - 1, RAFT_BATCH):
                stop = min(start + RAFT_BATCH, len(frames) - 1)
                first = images[start:stop].to(self.device, non_blocking=True)
                second = images[start + 1:stop + 1].to(self.device, non_blocking=True)
                flow = self._model(first, second, num_flow_updates=RAFT_ITERATIONS)[-1]  # (b, 2, H', W')
                out.append(flow[:, :, :height, :width].permute(0, 2, 3, 1).float().cpu().numpy())
        return np.concatenate(out)


def load_raft_state(weights_path: str, method: str, expected: dict = None) -> dict:
    """The state dict of a RAFT weights file (torchvision's release of raft_small / raft_large, e.g.
    raft_small_C_T_V2-01064c6d.pth), read with weights_only=True; ValueError naming the file when it
    is missing, not a state dict, or for the other RAFT model. expected: the model's own state dict
    (built here when not given)."""
    from torchvision.models.optical_flow import raft_large, raft_small

    from actionrec.models.weights_file import read_weights

    if not weights_path:
        raise ValueError(f"--method {method} needs --raft-weights FILE (torchvision's {method.replace('-', '_')} "
                         f"weights, downloaded once where there is network: nothing is downloaded here)")
    if not os.path.isfile(weights_path):
        raise ValueError(f"--raft-weights {weights_path} is not a file")
    state = read_weights(weights_path, f"torchvision's {method.replace('-', '_')} state dict")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if expected is None:
        expected = (raft_small if method == "raft-small" else raft_large)(weights=None).state_dict()
    if not isinstance(state, dict) or set(state) != set(expected) or any(
            getattr(state[k], "shape", None) != expected[k].shape for k in expected):
        raise ValueError(f"--raft-weights {weights_path} does not hold {method.replace('-', '_')}'s weights "
                         f"(torchvision's state dict for that model)")
    return state


def create_estimator(method: str, raft_weights: str = None, device: str = "auto"):
    """A new estimator for `method` (see METHODS): OpenCVFlow or RaftFlow."""
    if method in RAFT_METHODS:
        return RaftFlow(method, raft_weights, device)
    return OpenCVFlow(method)


@functools.lru_cache(maxsize=2)
def cached_estimator(method: str, raft_weights: str = None):
    """This process's estimator for `method`: built on the first call, reused after (a pool worker
    builds its TV-L1 or RAFT once, not once per video)."""
    return create_estimator(method, raft_weights)
