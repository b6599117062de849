"""Converting one video file to the per-video HDF5 file(s) the loaders read (prepare_ucf101.py runs it
over a dataset): every decoded frame, or pieces of --segment-seconds, written atomically.

A video that cannot be opened, or decodes fewer than video_decode.MIN_DECODED_FRACTION of the frames its
header declares (a truncated download), gets no output: its task returns "failed" with the reason. A video
whose output exists and opens is "skipped" (a resumed job). With pieces, a video's pieces are written
under temporary names and renamed together once the whole video has decoded, so a kill leaves no piece
of it (only temporaries, which the next run removes).
"""
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Optional, Union

import cv2
import h5py
import numpy as np

from actionrec import atomic
from actionrec.data import video_decode, video_files

PathLike = Union[str, os.PathLike]
PIECE_ATTRS = ("source", "fps", "segment_seconds", "segment_frames", "first_frame", "segment_index",
               "segment_count")

class DecodeError(ValueError):
    """A video that cannot be converted (unreadable, truncated, inconsistent frames)."""


def decode_video(video_path: PathLike) -> np.ndarray:
    """All frames of a video as uint8 [T, H, W, 3] RGB; DecodeError if unreadable or truncated."""
    capture = cv2.VideoCapture(str(video_path))
    try:
        if not capture.isOpened():
            raise DecodeError("cannot be opened as a video")
        declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        frames, count = None, 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if frames is None:
                # Preallocated from the header's count: no list + stack copy (a long video is ~400 MB).
                frames = np.empty((max(declared, 1),) + frame.shape, dtype=np.uint8)
            elif frame.shape != frames.shape[1:]:
                raise DecodeError(f"frame {count} is {frame.shape}, the first was {frames.shape[1:]}")
            if count == len(frames):  # the header declared fewer frames than there are
                frames = np.concatenate([frames, np.empty_like(frames)])
            cv2.cvtColor(frame, cv2.COLOR_BGR2RGB, dst=frames[count])
            count += 1
    finally:
        capture.release()
    check_decoded(count, frames, declared)
    return frames[:count]


def check_decoded(count: int, frames: Optional[np.ndarray], declared: int) -> None:
    """DecodeError unless `count` frames (held in `frames`, [n, H, W, 3]) are a whole video: at least one,
    RGB, and at least MIN_DECODED_FRACTION of the `declared` frames (a truncated file decodes fewer)."""
    if count == 0:
        raise DecodeError("no frame could be decoded")
    if frames.ndim != 4 or frames.shape[3] != 3:
        raise DecodeError(f"frames are {frames.shape[1:]}, expected [H, W, 3]")
    if declared > 0 and count < video_decode.MIN_DECODED_FRACTION * declared:
        raise DecodeError(f"decoded {count} of the {declared} frames its header declares (truncated file?)")


def is_converted(hdf5_path: Path) -> bool:
    """True if `hdf5_path` exists and opens as a video file (a finished conversion)."""
    if not hdf5_path.is_file():
        return False
    try:
        video_files.video_info(hdf5_path)
    except video_files.READ_ERRORS:
        return False
    return True


def container_fps(capture: cv2.VideoCapture) -> Optional[float]:
    """Frames per second the container declares, or None when it declares none (OpenCV gives 0)."""
    fps = capture.get(cv2.CAP_PROP_FPS)
    return fps if math.isfinite(fps) and fps > 0 else None


def decode_pieces(capture: cv2.VideoCapture, piece_frames: int, declared: int
                  ) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first_frame, uint8 [n, H, W, 3] RGB) pieces of `piece_frames` frames from an open capture.

    A last piece shorter than piece_frames / 2 joins the piece before it; a video shorter than one
    piece is one piece. DecodeError (before the last piece is yielded) for inconsistent frame sizes,
    no frame at all, or fewer than video_decode.MIN_DECODED_FRACTION of the `declared` frames.
    """
    done, current, count = None, None, 0  # done: a full piece held back until the next one is known
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if current is None:
            current = np.empty((piece_frames,) + frame.shape, dtype=np.uint8)
        elif frame.shape != current.shape[1:]:
            raise DecodeError(f"frame {count} is {frame.shape}, the first was {current.shape[1:]}")
        cv2.cvtColor(frame, cv2.COLOR_BGR2RGB, dst=current[count % piece_frames])
        count += 1
        if count % piece_frames == 0:
            if done is not None:
                yield count - 2 * piece_frames, done
            done, current = current, np.empty_like(current)
    check_decoded(count, current, declared)
    rest = count % piece_frames
    if done is None:
        yield 0, current[:rest]
    elif rest == 0:
        yield count - piece_frames, done
    elif rest < piece_frames / 2:
        yield count - piece_frames - rest, np.concatenate([done, current[:rest]])
    else:
        yield count - piece_frames - rest, done
        yield count - rest, current[:rest]


def piece_path(hdf5_path: Path, index: int) -> Path:
    """`<dir>/<stem>-segNNN.hdf5`, the index-th piece of the video whose whole output is hdf5_path."""
    return hdf5_path.with_name(f"{hdf5_path.stem}-seg{index:03d}.hdf5")


def piece_attrs(path: Path) -> Optional[dict]:
    """The piece attributes (PIECE_ATTRS) of a finished piece file, or None if it is not one."""
    if not is_converted(path):
        return None
    try:
        with h5py.File(path, "r") as f:
            return {key: f.attrs[key] for key in PIECE_ATTRS}
    except video_files.READ_ERRORS:
        return None


def pieces_done(hdf5_path: Path, segment_seconds: float) -> Optional[int]:
    """Number of pieces if all pieces of a video were written for this segment length, else None."""
    first = piece_attrs(piece_path(hdf5_path, 0))
    if first is None or float(first["segment_seconds"]) != segment_seconds:
        return None
    count = int(first["segment_count"])
    for index in range(1, count):
        attrs = piece_attrs(piece_path(hdf5_path, index))
        if (attrs is None or int(attrs["segment_index"]) != index or int(attrs["segment_count"]) != count
                or float(attrs["segment_seconds"]) != segment_seconds):
            return None
    return count


def remove_pieces_from(hdf5_path: Path, count: int) -> None:
    """Delete pieces of this video numbered `count` and above (left by a run with shorter pieces)."""
    piece = re.compile(re.escape(hdf5_path.stem) + r"-seg(\d{3,})\.hdf5")
    for path in hdf5_path.parent.iterdir():
        match = piece.fullmatch(path.name)
        if match and int(match.group(1)) >= count:
            path.unlink()


def convert_video_pieces(name: str, video_path: Path, hdf5_path: Path, storage: str, quality: int,
                         segment_seconds: float) -> tuple:
    """--segment-seconds: (name, status, detail, bytes) as convert_video, detail = pieces when done.

    The pieces go to temporary files and are renamed together once the whole video has decoded: a
    failure or a kill leaves no piece of it (a kill may leave temporaries: removed at the next start).
    """
    done = pieces_done(hdf5_path, segment_seconds)
    if done is not None:
        return name, "skipped", done, 0
    if not video_path.is_file():
        return name, "failed", "not found under --videos", 0
    temporaries = []  # (temporary path, first frame, frames)
    try:
        capture = cv2.VideoCapture(str(video_path))
        try:
            if not capture.isOpened():
                raise DecodeError("cannot be opened as a video")
            fps = container_fps(capture)
            if fps is None:
                raise DecodeError("the container declares no frame rate, so it cannot be cut into "
                                  "seconds (convert it without --segment-seconds, or re-mux it with a frame rate)")
            piece_frames = max(1, round(segment_seconds * fps))
            declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            for index, (first_frame, frames) in enumerate(decode_pieces(capture, piece_frames, declared)):
                tmp_path = atomic.temporary_path(piece_path(hdf5_path, index))
                temporaries.append((tmp_path, first_frame, len(frames)))
                video_files.write_video_hdf5(tmp_path, frames, storage=storage, quality=quality)
        finally:
            capture.release()
        size = 0
        for index, (tmp_path, first_frame, _) in enumerate(temporaries):
            with h5py.File(tmp_path, "r+") as f:
                f.attrs.update(dict(source=name, fps=fps, segment_seconds=segment_seconds,
                                    segment_frames=piece_frames, first_frame=first_frame,
                                    segment_index=index, segment_count=len(temporaries)))
            size += os.path.getsize(tmp_path)
        for index, (tmp_path, _, _) in enumerate(temporaries):
            os.replace(tmp_path, piece_path(hdf5_path, index))
        remove_pieces_from(hdf5_path, len(temporaries))
        return name, "converted", len(temporaries), size
    except (DecodeError, OSError, ValueError, cv2.error) as e:
        reason = str(e) if isinstance(e, DecodeError) else f"{type(e).__name__}: {e}"
        return name, "failed", reason, 0
    finally:
        for tmp_path, _, _ in temporaries:
            if os.path.exists(tmp_path):
                os.remove(tmp_path)


def convert_video(task: tuple) -> tuple:
    """Worker: (name, video_path, hdf5_path, storage, quality, segment_seconds) -> (name, status,
    detail, bytes).

    status is "skipped", "converted" (detail = frames, or pieces with segment_seconds) or "failed"
    (detail = the reason); a skipped video's detail is its number of pieces with segment_seconds.
    """
    name, video_path, hdf5_path, storage, quality, segment_seconds = task
    if segment_seconds:
        return convert_video_pieces(name, video_path, hdf5_path, storage, quality, segment_seconds)
    if is_converted(hdf5_path):
        return name, "skipped", None, 0
    if not video_path.is_file():
        return name, "failed", "not found under --videos", 0
    try:
        frames = decode_video(video_path)
        video_files.write_video_hdf5(str(hdf5_path), frames, storage=storage, quality=quality)
        return name, "converted", len(frames), hdf5_path.stat().st_size
    except (DecodeError, OSError, ValueError, cv2.error) as e:
        reason = str(e) if isinstance(e, DecodeError) else f"{type(e).__name__}: {e}"
        return name, "failed", reason, 0
