"""One video through one predictor (predictor.Predictor), as its test script runs it: the video checked,
decoded chunk by chunk in this process (a single video is not worth forked loader workers), and the
model's rows of logits [rows, classes]; the RNN's through the features its CNN makes of the video, a
flow model's through the flow computed from the video as extract_flow.py computes it."""
import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator

import numpy as np
import torch

from actionrec.data import motion, split_lists, video_chunks, video_files
from actionrec.engine import devices, runlog, runner
from actionrec.flow import extract
from actionrec.inference import predictor

Amp = tuple[bool, torch.dtype]  # devices.amp_settings: (enabled, dtype)


class VideoFailed(Exception):
    """A video that cannot be predicted: the message is its one line."""


def check_video(path: str) -> tuple[int, int, int]:
    """(frames, height, width) of a readable video, or VideoFailed with its one line."""
    if not os.path.exists(path):
        raise VideoFailed(f"{path}: no such file")
    if os.path.isdir(path):
        raise VideoFailed(f"{path}: is a directory, not a video file")
    try:
        frames, height, width, _ = video_files.video_info(path)
    except video_files.READ_ERRORS as e:
        raise VideoFailed(read_error(path, e)) from None
    return frames, height, width


def read_error(path: str, error: Exception) -> str:
    """The one line of a video that cannot be read: '<path>: <why>'."""
    text = runner.one_line(error)
    text = text[len(path) + 2:] if text.startswith(f"{path}: ") else text
    if isinstance(error, OSError) and not video_files.is_video_path(path):
        text = (f"neither an HDF5 video file nor a video ({', '.join(split_lists.VIDEO_SUFFIXES)}) ({text})")
    return f"{path}: {text}"


def chunk_rows(model: torch.nn.Module, plan: Callable[[int], list], rows_fn: Callable[..., torch.Tensor],
               normalize: Callable[[torch.Tensor], torch.Tensor], size: int | None, path: str,
               device: torch.device, amp: Amp, desc: str, crops: int = 1,
               reader: motion.SnippetReader | None = None) -> np.ndarray:
    """rows_fn over the chunks plan(frames) says, read in this process: float32 numpy [rows, ...]; `crops`
    views of each frame, and a `reader`'s snippets instead of frames (the motion stream)."""
    loader = video_chunks.VideoChunkLoader([path], plan, pool=None, size=size, crops=crops, reader=reader)
    amp = devices.model_amp(amp, device, model)  # 3D convolutions stay float32 on the CPU
    out = []
    with torch.no_grad():
        for *_, chunk in runlog.progress(loader, devices.Dist(), desc=desc, unit="chunk", leave=False):
            if isinstance(chunk, str):  # "VideoDecodeError: path: frame 40 does not decode ..."
                reason = chunk.partition(": ")[2] or chunk
                raise VideoFailed(reason if reason.startswith(path) else f"{path}: {reason}")
            with devices.autocast(device, amp):
                out.append(rows_fn(model, devices.to_device(chunk, device), normalize).float().cpu().numpy())
    return np.concatenate(out)


def video_features(p: predictor.Predictor, path: str, device: torch.device, amp: Amp) -> np.ndarray:
    """The RNN's input for a video: float16 features of its CNN at the features' frame stride, every
    rnn_stride-th row, as extract_features.py stores them and test_rnn.py reads them: [steps, dims]."""
    features = chunk_rows(p.cnn, p.cnn_plan, p.cnn_rows, p.cnn_normalize, p.cnn_size, path, device, amp,
                          f"{p.name} features")
    return features.astype(np.float16)[::p.rnn_stride]


@contextlib.contextmanager
def model_input(p: predictor.Predictor, path: str) -> Iterator[str]:
    """The file p's loader reads for the video `path`: the video itself, or for a flow model its flow,
    computed by extract_flow.py's own code (extract.write_flow) with the settings p was trained on into a
    temporary folder, removed when done; VideoFailed with the video's one line when it cannot be made."""
    if p.flow is None:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="predict-flow-") as folder:
        flow_path = os.path.join(folder, "flow.hdf5")
        try:
            extract.write_flow(flow_path, path, p.flow)
        except extract.FlowError as e:
            raise VideoFailed(f"{path}: {e}") from None
        except video_files.READ_ERRORS as e:
            raise VideoFailed(read_error(path, e)) from None
        yield flow_path


def video_logits(p: predictor.Predictor, path: str, device: torch.device, amp: Amp) -> np.ndarray:
    """Rows of logits [rows, classes] of one video, as p's test script computes them. An RNN predictor
    keeps the video's features as p.last_features = (path, features) for its explanation."""
    if p.kind != "features":
        with model_input(p, path) as source:
            logits = chunk_rows(p.model, p.plan, p.rows, p.normalize, p.image_size, source, device, amp, p.name,
                                p.crops, p.reader)
    else:
        features = video_features(p, path, device, amp)
        p.last_features = (path, features)  # for --explain
        with torch.no_grad(), devices.autocast(device, amp):
            logits = p.rows(p.model, torch.from_numpy(features).to(device), p.normalize).float().cpu().numpy()
    if not np.isfinite(logits).all():
        raise VideoFailed(f"{path}: {p.name}'s outputs are not finite"
                          + (" (rerun with --no-amp: fp16 overflow is the usual cause)" if amp[0] else ""))
    return logits
