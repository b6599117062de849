"""Test views of a whole video: crops (1, 3 or TSN's 10) and bounded chunks of frames, streamed by the loader pool."""

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np

from actionrec.data import batching, feature_files, loader_pool, motion, sampling, video_files

log = logging.getLogger("ucf101")


SLAB_FRAMES = 32  # raw frames read at a time when loading a test chunk: bounds a loader's memory


CROPS = (1, 3, 10)


TEN_CROP_SCALE = 256 / 224  # TSN's 10-crop test: short side 256 for 224 crops


def crop_boxes(height: int, width: int, size: int, crops: int) -> tuple[tuple[int, int], list[tuple[int, int, bool]]]:
    """How a frame becomes `crops` views of size x size: (resize_hw, [(y, x, flip), ...]).

    1: the whole frame resized to size x size (aspect not kept; what training sees);
    3: short side resized to `size`, then the left, centre and right squares (top/centre/bottom for
       a portrait frame);
    10: short side resized to size * 256/224, then the 4 corners and the centre, each also mirrored.
    """
    if crops == 1:
        return (size, size), [(0, 0, False)]
    short = size if crops == 3 else int(round(size * TEN_CROP_SCALE))
    scale = short / min(height, width)
    resized = (max(short, int(round(height * scale))), max(short, int(round(width * scale))))
    h, w = resized
    if crops == 3:
        if w >= h:
            boxes = [(0, x, False) for x in (0, (w - size) // 2, w - size)]
        else:
            boxes = [(y, 0, False) for y in (0, (h - size) // 2, h - size)]
        return resized, boxes
    if crops != 10:
        raise ValueError(f"crops must be one of {CROPS}, not {crops!r}")
    corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size), ((h - size) // 2, (w - size) // 2)]
    return resized, [(y, x, flip) for flip in (False, True) for y, x in corners]


def _crop_views(frames, size, crops, out, negate_x=False):
    """uint8 [n, H, W, C] -> the `crops` views of each frame in `out` [n, crops, size, size, C];
    negate_x (flow stacks): a mirrored view also maps the x channels (even ones) to 255 - x."""
    resized_hw, boxes = crop_boxes(frames.shape[1], frames.shape[2], size, crops)
    resized = np.empty(resized_hw + frames.shape[3:], dtype=np.uint8)
    for i, frame in enumerate(frames):
        cv2.resize(frame, resized_hw[::-1], dst=resized, interpolation=cv2.INTER_LINEAR)
        for c, (y, x, flip) in enumerate(boxes):
            view = resized[y:y + size, x:x + size]
            if flip:
                cv2.flip(view, 1, dst=out[i, c])
                if negate_x:
                    out[i, c, ..., 0::2] = 255 - out[i, c, ..., 0::2]
            else:
                out[i, c] = view
    return out


def _as_indices(frame_range):
    """A chunk of a plan, (start, stop) or an index array, as an int64 index array."""
    if isinstance(frame_range, tuple):
        return np.arange(frame_range[0], frame_range[1], dtype=np.int64)
    return np.asarray(frame_range, dtype=np.int64)


def iter_video_chunks(path: str, chunk_frames: int = 200, size: int = sampling.IMAGE_SIZE) -> Iterator[np.ndarray]:
    """Stream a whole video as uint8 [<=chunk_frames, size, size, 3] chunks (no augmentation)."""
    frames = video_files.video_info(path)[0]
    for start in range(0, frames, chunk_frames):
        yield load_chunk(path, start, min(start + chunk_frames, frames), size)


def _view_shape(size, crops, channels=3):
    return (size, size, channels) if crops == 1 else (crops, size, size, channels)


def _chunk_slabs(path, indices, size, out=None, crops=1, reader=None):
    """Frames `indices` (looping past the end) resized to size x size (or cut into `crops` views:
    crop_boxes), as uint8 slabs of at most SLAB_FRAMES frames, [n, size, size, 3] or [n, crops, size,
    size, 3] (views of `out`, shaped for all of `indices`, when given): only one slab of raw frames
    is in memory at a time, whatever the chunk's length. With a `reader` (motion.SnippetReader) the
    "frames" are its snippets: C-channel stacks starting at `indices`."""
    indices = np.asarray(indices, dtype=np.int64)
    view_shape = _view_shape(size, crops, reader.channels if reader is not None else 3)
    negate_x = reader is not None and reader.negate_x
    with (reader.open(path) if reader is not None else video_files.open_video(path)) as video:
        for first in range(0, len(indices), SLAB_FRAMES):
            last = min(first + SLAB_FRAMES, len(indices))
            raw = video.read(indices[first:last] % video.frames)
            slab = (np.empty((last - first,) + view_shape, dtype=np.uint8) if out is None else out[first:last])
            if crops == 1:
                yield sampling._transform(raw, False, None, size, slab)
            else:
                yield _crop_views(raw, size, crops, slab, negate_x)


def load_chunk(
    path: str,
    start: int | Sequence[int] | np.ndarray,
    stop: int | None = None,
    size: int = sampling.IMAGE_SIZE,
    crops: int = 1,
    reader: motion.SnippetReader | None = None,
) -> np.ndarray:
    """Frames start..stop-1 (or the index array `start`) resized to size x size (uint8), or cut into
    `crops` views each ([n, crops, size, size, 3]); indices past the end loop around. With a `reader`:
    its snippets at those starts ([..., C])."""
    indices = _as_indices((start, stop) if stop is not None else start)
    view_shape = _view_shape(size, crops, reader.channels if reader is not None else 3)
    out = np.empty((len(indices),) + view_shape, dtype=np.uint8)
    for _ in _chunk_slabs(path, indices, size, out, crops, reader):
        pass
    return out


def _load_chunk_task(task):
    """Worker side of VideoChunkLoader -> (video_index, result, seconds): result is the array, or
    (shape, dtype) when it went to the shared-memory slot, or the reason a video cannot be read;
    seconds is the time spent reading and resizing it."""
    video_index, path, indices, size, crops, slot, capacity, reader = task
    start = time.perf_counter()
    if isinstance(indices, str):  # the video's header already failed in the parent: pass it on
        return video_index, indices, 0.0
    if size is None:  # feature files: rows of features, no frames
        try:
            features = feature_files.read_features(path, indices)
        except video_files.READ_ERRORS as e:
            return video_index, f"{type(e).__name__}: {e}", time.perf_counter() - start
        if slot is not None and len(indices) <= capacity:
            with contextlib.suppress(OSError):
                batching._write_rows(slot, [features])
                return video_index, (features.shape, features.dtype.str), time.perf_counter() - start
        return video_index, features, time.perf_counter() - start
    shape = (len(indices),) + _view_shape(size, crops, reader.channels if reader is not None else 3)
    try:
        if slot is not None and len(indices) <= capacity:
            # Slab by slab into the slot: the worker never holds the whole chunk.
            offset = 0
            with contextlib.closing(_chunk_slabs(path, indices, size, crops=crops, reader=reader)) as slabs:
                for slab in slabs:
                    try:
                        batching._write_rows(slot, [slab], offset)
                    except OSError as e:
                        log.info("shared memory unavailable (%s): using the pipe", e)
                        break
                    offset += slab.nbytes
                else:
                    return video_index, (shape, np.dtype(np.uint8).str), time.perf_counter() - start
        chunk = load_chunk(path, indices, size=size, crops=crops, reader=reader)
        return video_index, chunk, time.perf_counter() - start
    except video_files.READ_ERRORS as e:
        return video_index, f"{type(e).__name__}: {e}", time.perf_counter() - start


def video_chunk_plan(frames: int, chunk_frames: int) -> list[tuple[int, int]]:
    """Default plan: consecutive chunks of at most chunk_frames frames covering the video once."""
    return [(start, min(start + chunk_frames, frames)) for start in range(0, frames, chunk_frames)]


class VideoChunkLoader:
    """Streams whole test videos chunk by chunk while the model works on the previous chunk.

    `plan(frames)` returns, for a video of `frames` frames, the chunks to load: (start, stop) ranges or
    arrays of frame indices (indices past the end loop). Yields `(video_index, chunk_number,
    num_chunks, uint8 array)`, the array [n, size, size, 3], or [n, crops, size, size, 3] for
    crops > 1 (crop_boxes), replaced by an error string for an unreadable video (its remaining chunks
    are skipped). At most `depth` chunks are in flight; chunks of up to `max_chunk` frames travel
    through shared memory, so the parent holds only the chunk it is working on, whatever the video
    length. `frames[video_index]` is each video's length once its header was read, `load_seconds`
    the worker time spent loading it.
    """

    def __init__(
        self,
        paths: Iterable[str],
        plan: Callable[[int], Sequence[tuple[int, int] | np.ndarray]],
        pool: loader_pool.LoaderPool | None = None,
        size: int = sampling.IMAGE_SIZE,
        depth: int = 2,
        max_chunk: int | None = None,
        crops: int = 1,
        features: bool = False,
        reader: motion.SnippetReader | None = None,
    ) -> None:
        if crops not in CROPS:
            raise ValueError(f"crops must be one of {CROPS}, not {crops!r}")
        # features=True: the paths are feature files (extract_features.py) and chunks are float16
        # [n, dims] rows of features instead of frames.
        self.features = features
        self.paths, self.plan, self.pool, self.depth = list(paths), plan, pool, depth
        self.size = None if features else size
        self.max_chunk, self.crops = max_chunk, crops
        # reader (motion.SnippetReader): the chunks are stacks of flow fields or frames, C channels, and
        # `frames` counts a video's snippet positions (what the plan picks from).
        self.reader = reader
        self.wait_seconds = 0.0
        self.frames, self.load_seconds = {}, {}
        self._chunks = {}

    def _tasks(self, slots):
        number = 0
        for video_index, path in enumerate(self.paths):
            try:
                if self.reader is not None:
                    self.frames[video_index] = self.reader.length(path)
                else:
                    self.frames[video_index] = (
                        feature_files.feature_info if self.features else video_files.video_info)(path)[0]
                chunks = [_as_indices(c) for c in self.plan(self.frames[video_index])]
                if not chunks or any(len(c) == 0 for c in chunks):
                    raise RuntimeError(f"the chunk plan for {path} is empty or has an empty chunk")
            except video_files.READ_ERRORS as e:
                chunks = [f"{type(e).__name__}: {e}"]
            self._chunks[video_index] = len(chunks)
            for indices in chunks:
                yield (video_index, path, indices, self.size, self.crops, slots.slot(number), self.max_chunk or 0,
                       self.reader)
                number += 1

    def __iter__(self) -> Iterator[tuple[int, int, int, np.ndarray | str]]:
        counts, broken = {}, set()
        slots = batching.SharedSlots(self.pool if self.max_chunk else None, self.depth + 1)
        prefetcher = loader_pool.Prefetcher(self.pool, _load_chunk_task, self._tasks(slots), self.depth)
        try:
            for number, (video_index, result, seconds) in enumerate(prefetcher):
                self.load_seconds[video_index] = self.load_seconds.get(video_index, 0.0) + seconds
                if isinstance(result, tuple):
                    result = slots.read(slots.slot(number), *result)
                if video_index in broken:
                    continue
                chunk_number = counts.get(video_index, 0)
                counts[video_index] = chunk_number + 1
                if isinstance(result, str):
                    broken.add(video_index)
                yield video_index, chunk_number, self._chunks[video_index], result
        finally:
            self.wait_seconds = prefetcher.wait_seconds
            slots.close()
