"""Frame-accurate reading of video files (the original UCF-101 .avi release), decoded with OpenCV.

OpenCV (its bundled FFmpeg) was chosen over PyAV, TorchCodec and decord by measurement, see
`bench/bench_decode.py` and bench/README.md: same decoder, identical frames, and OpenCV spends less
CPU per frame on the RGB conversion; it is already a dependency.

    with VideoReader("v_Archery_g01_c01.avi") as reader:
        clip = reader.read(range(40, 56))               # uint8 [16, 240, 320, 3] RGB
        for frame in reader.iter_frames(0, reader.frames):
            ...                                         # uint8 [240, 320, 3] RGB, front to back

A reader holds FFmpeg state: open one inside the process that uses it (opening costs ~0.2 ms, so one
per sample in a loader worker is fine) and never pass it to another process or across a fork.
Decoding runs on one thread per reader: loaders get their parallelism from processes.

Frame counts: a container header's count (what `VideoReader.frames` uses) can exceed what decodes
(a truncated download still opens and decodes its first frames); `probe` counts the video packets
that carry a frame, without decoding them, which equals the number of frames that decode. A packet
of at most SKIP_PACKET_BYTES is a dropped-frame placeholder that decodes to nothing: every HMDB-51
clip (DivX) has one, so its header counts one frame more than decodes.

One rule for every reader: fewer decoded frames than the header declares is the header being off
when at least MIN_DECODED_FRACTION of them decode (the readers use the frames that decode), and a
truncated or damaged file below it.
"""
from __future__ import annotations

import bisect
import os
from collections.abc import Iterator, Sequence

import cv2
import numpy as np

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v")

# A forward jump of at most this many frames is decoded through (grab) rather than sought: OpenCV's
# seek lands on the keyframe before (target - 16) and decodes forward from there, never less work.
MIN_SEEK_GAP = 16
SEEK_COST_FRAMES = 2  # a seek's own cost (demuxer seek, decoder flush), in decoded frames
# Containers whose header stores the frame count; for the others (Matroska, WebM, MPEG-PS) OpenCV
# estimates it from duration x fps, so a reader counts packets instead.
COUNTED_SUFFIXES = (".avi", ".mp4", ".mov", ".m4v")
# FFmpeg's MPEG-4 Part 2 decoder outputs no frame for a 1-byte packet of DivX/XviD ("frame skip",
# libavcodec/mpeg4videodec.c): AVI files keep such packets as placeholders for dropped frames.
SKIP_PACKET_BYTES = 1
MIN_DECODED_FRACTION = 0.95  # of the header's count: below it a video is a truncated download


class VideoDecodeError(ValueError):
    """A file that is not a readable video, or a frame that does not decode."""


def _open_capture(path, raw=False, threads=1):
    """An opened cv2.VideoCapture on the FFmpeg backend; raw=True demuxes packets without decoding."""
    if not os.path.exists(path):
        raise FileNotFoundError(2, "No such file or directory", path)
    if os.path.isdir(path):
        raise IsADirectoryError(21, "Is a directory, not a video file", path)
    params = [cv2.CAP_PROP_FORMAT, -1] if raw else [cv2.CAP_PROP_N_THREADS, int(threads)]
    # CAP_FFMPEG explicitly: the default backend list would read a name like "frame_%03d.avi" as an
    # image sequence.
    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG, params)
    if not capture.isOpened():
        capture.release()
        raise VideoDecodeError(f"{path}: not a readable video (FFmpeg cannot open it or it has no video stream)")
    return capture


def _header(capture, path):
    """(declared frames, height, width, fps) from the container; declared may be 0 (unknown)."""
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    if height <= 0 or width <= 0:
        raise VideoDecodeError(f"{path}: no video stream with a frame size")
    return max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0), height, width, float(capture.get(cv2.CAP_PROP_FPS))


def _packet_index(path):
    """(number of video packets that carry a frame, their indices of the keyframes), demuxed without
    decoding; dropped-frame placeholders (SKIP_PACKET_BYTES or less) are not counted."""
    capture = _open_capture(path, raw=True)
    try:
        count, keyframes = 0, []
        while capture.grab():
            ok, packet = capture.retrieve()  # the packet's bytes (raw mode), ~1 us
            if not ok or packet is None or packet.size <= SKIP_PACKET_BYTES:
                continue
            if capture.get(cv2.CAP_PROP_LRF_HAS_KEY_FRAME):
                keyframes.append(count)
            count += 1
    finally:
        capture.release()
    return count, keyframes


def probe(
    path: str | os.PathLike[str], declared: bool = False
) -> tuple[int, int, int, float] | tuple[int, int, int, float, int]:
    """(frames, height, width, fps) of a video file, frames being the number that really decode
    (with declared=True a fifth value: the header's count, 0 when the container has none).

    Counts the video packets that carry a frame without decoding them (~0.2-1.4 ms for a UCF-101 or
    HMDB-51 clip; an HMDB-51 clip's dropped-frame placeholder is not counted) and decodes the
    first frame only, to make sure the stream decodes at all. A truncated file reports its real,
    smaller count (its last, partial packet still decodes, partly grey). Raises FileNotFoundError
    for a missing path, IsADirectoryError for a directory, VideoDecodeError for anything else that
    is not a video with at least one decodable frame.
    """
    path = os.fspath(path)
    capture = _open_capture(path)
    try:
        header_frames, height, width, fps = _header(capture, path)
        if not capture.grab():
            raise VideoDecodeError(f"{path}: no frame decodes")
    finally:
        capture.release()
    frames, _ = _packet_index(path)
    if frames == 0:
        raise VideoDecodeError(f"{path}: no video packets")
    return (frames, height, width, fps, header_frames) if declared else (frames, height, width, fps)


class VideoReader:
    """Random and sequential frame-accurate access to one video file, as uint8 RGB frames.

    Attributes: path, frames, height, width, fps. frames is `frames` if given (e.g. a cached
    `probe` count), else the header's count for .avi/.mp4/.mov/.m4v, else counted by demuxing.
    threads: FFmpeg decoding threads of this reader (default 1: loader workers are processes).
    read(indices) returns frames equal to those of a decode from the start; reads continue from
    where the last one stopped (consecutive chunks never seek back). A frame at or past the end of
    what really decodes raises: when at least MIN_DECODED_FRACTION of `frames` decode the count was
    off (e.g. a header that counts dropped-frame packets): `frames` is corrected to the count that
    decodes (counted once, without decoding) and the read raises IndexError, so that the next plan
    uses the true count; below it (a truncated file) VideoDecodeError.
    """

    def __init__(self, path: str | os.PathLike[str], frames: int | None = None, threads: int = 1) -> None:
        self.path = os.fspath(path)
        self._capture = _open_capture(self.path, threads=threads)
        self._next = 0  # the frame the next grab() decodes; -1: unknown (after a failed decode)
        self._index = None  # (packets, keyframe packet indices), demuxed on first need
        self._corrected = False  # frames already checked against the packets after a failed tail read
        try:
            declared, self.height, self.width, self.fps = _header(self._capture, self.path)
            self._declared = declared  # OpenCV clamps a seek target to this count
            if frames is not None:
                self.frames = int(frames)
            elif declared > 0 and self.path.lower().endswith(COUNTED_SUFFIXES):
                self.frames = declared
            else:
                self.frames = self._keyframes()[0]
            if self.frames <= 0:
                raise VideoDecodeError(f"{self.path}: no video packets")
        except BaseException:
            self.close()
            raise
        self._bgr = np.empty((self.height, self.width, 3), dtype=np.uint8)

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def __repr__(self) -> str:
        return (f"VideoReader({self.path!r}, frames={self.frames}, size={self.height}x{self.width}, "
                f"fps={self.fps:g})")

    def _keyframes(self):
        if self._index is None:
            self._index = _packet_index(self.path)
        return self._index

    def _should_seek(self, index):
        """True if seeking to `index` costs less decoding than decoding forward from self._next."""
        gap = index - self._next
        if self._next < 0 or gap < 0:
            return True
        if gap <= MIN_SEEK_GAP:
            return False
        if self._next == 0:
            return True  # from the start a seek never decodes more than reading forward would
        # OpenCV seeks to the keyframe at or before (index - 16). Keyframe positions are packet
        # (decode-order) indices: off by a frame or two from display order when there are B-frames.
        keyframes = self._keyframes()[1]
        k = bisect.bisect_right(keyframes, max(index - MIN_SEEK_GAP, 0)) - 1
        landing = keyframes[k] if k >= 0 else 0
        return index - landing + SEEK_COST_FRAMES < gap

    def _grab_error(self, index):
        """The error for frame `index` not decoding: IndexError with `frames` corrected when the count
        was off (see the class docstring), else VideoDecodeError."""
        if not self._corrected and index >= MIN_DECODED_FRACTION * self.frames:
            self._corrected = True
            decodable = self._keyframes()[0]
            if index >= decodable:  # the count was off, not the file damaged: use what decodes
                declared, self.frames = self.frames, decodable
                return IndexError(f"{self.path}: frame {index} is outside 0..{decodable - 1} ({declared} frames "
                                  f"were expected, {decodable} decode; the reader now uses {decodable})")
        return self._decode_error(index, "does not decode")

    def _decode_error(self, index, what):
        return VideoDecodeError(f"{self.path}: frame {index} {what} (the header declares {self.frames} "
                                f"frames; a truncated or damaged file?)")

    def _goto(self, index):
        """Position the decoder so that the next grab() decodes frame `index`."""
        if self._capture is None:
            raise ValueError(f"{self.path}: the reader is closed")
        if index == self._next:
            return
        if self._should_seek(index):
            # Past the count OpenCV believes in (an estimate for Matroska, or a header that
            # undercounts) its seek would silently stop short: seek to its last frame, decode on.
            target = min(index, self._declared - 1) if self._declared > 0 else index
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, target)
            self._next = target
        while self._next < index:
            if not self._capture.grab():
                failed, self._next = self._next, -1  # position unknown: the next read seeks
                raise self._grab_error(failed)
            self._next += 1

    def _decode_into(self, index, out):
        """Decode frame `index` (the decoder positioned on it) into out, uint8 [H, W, 3] RGB."""
        if not self._capture.grab():
            self._next = -1
            raise self._grab_error(index)
        ok, bgr = self._capture.retrieve(self._bgr)
        if not ok or bgr.shape != out.shape:
            self._next = -1
            raise self._decode_error(index, f"decodes to {None if bgr is None else bgr.shape}, "
                                            f"expected {out.shape}")
        cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=out)
        self._next = index + 1

    def _check(self, indices):
        indices = np.asarray(indices)
        if indices.dtype.kind not in "iu" and indices.size:
            raise TypeError(f"frame indices must be integers, got {indices.dtype}")
        indices = indices.astype(np.int64).ravel()
        if indices.size and (indices.min() < 0 or indices.max() >= self.frames):
            bad = indices[(indices < 0) | (indices >= self.frames)][0]
            raise IndexError(f"{self.path}: frame {bad} is outside 0..{self.frames - 1}")
        return indices

    def read(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames `indices` (any order, repeats allowed, 0 <= i < frames) as uint8 [n, H, W, 3] RGB.

        Each distinct frame is decoded once, in increasing order, decoding only as far as the
        largest index.
        """
        indices = self._check(indices)
        unique, inverse = np.unique(indices, return_inverse=True)
        out = np.empty((len(unique), self.height, self.width, 3), dtype=np.uint8)
        for j, index in enumerate(unique.tolist()):
            self._goto(index)
            self._decode_into(index, out[j])
        if len(unique) == len(indices) and np.array_equal(unique, indices):
            return out
        return out[inverse.ravel()]

    def iter_frames(self, start: int = 0, stop: int | None = None, step: int = 1) -> Iterator[np.ndarray]:
        """Yield frames start, start + step, ... < stop (default: all) as uint8 [H, W, 3] RGB arrays."""
        stop = self.frames if stop is None else stop
        if step < 1:
            raise ValueError(f"step must be >= 1, got {step}")
        for index in self._check(np.arange(start, stop, step)).tolist():
            self._goto(index)
            frame = np.empty((self.height, self.width, 3), dtype=np.uint8)
            self._decode_into(index, frame)
            yield frame
