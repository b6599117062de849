"""Training batches assembled in the workers and handed over in shared memory, in a resumable seeded order."""

import inspect
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, Optional

import numpy as np

from actionrec.data import feature_files, loader_pool, motion, sampling, video_files

log = logging.getLogger("ucf101")


SAMPLE_LOADERS = {
    "frame": sampling._frame_raw,
    "clip": sampling._clip_raw,
    "segments": sampling._segments_raw,
    "features": feature_files._features_raw,
    "flow": motion._flow_segments_raw,
    "rgbdiff": motion._rgbdiff_segments_raw,
}


class SharedSlots:
    """A ring of files in /dev/shm through which pool workers hand arrays to the parent.

    Pickling an array through the pool's pipe runs at ~200 MB/s and costs more CPU than loading it
    (a 77 MB clip batch: ~12 ms per clip against ~1.5 ms to load); a worker writes its array into a
    slot with pwrite instead and returns its shape and dtype, and the parent reads it back once.
    Plain file I/O, not memory maps: neither side's resident memory grows with what passed through,
    and a full tmpfs is an OSError (the worker then falls back to the pipe), not a SIGBUS. The ring
    holds one slot per task in flight plus the one being read. Without /dev/shm, `enabled` is False.
    """

    def __init__(self, pool: loader_pool.LoaderPool | None, count: int) -> None:
        self.count, self.dir = count, None
        if pool is None or not os.path.isdir("/dev/shm"):
            return
        self.dir = tempfile.mkdtemp(prefix="ucf101-slots-", dir="/dev/shm")

    @property
    def enabled(self) -> bool:
        return self.dir is not None

    def slot(self, number: int) -> str | None:
        """The file a worker writes the `number`-th task's array to, or None."""
        return os.path.join(self.dir, f"slot{number % self.count}") if self.enabled else None

    @staticmethod
    def read(slot: str, shape: tuple[int, ...], dtype: str) -> np.ndarray:
        """The array of `shape` and `dtype` written to `slot`, as a new array."""
        return np.fromfile(slot, dtype=dtype, count=int(np.prod(shape))).reshape(shape)

    def close(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


def _write_rows(slot, rows, offset=0):
    """Worker side of SharedSlots: write the bytes of `rows` ([n, ...] or a list of arrays) to the
    file `slot`, from byte `offset` on."""
    fd = os.open(slot, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for row in rows:
            view = memoryview(np.ascontiguousarray(row)).cast("B")
            while view:  # pwrite may write less than asked
                written = os.pwrite(fd, view, offset)
                view, offset = view[written:], offset + written
    finally:
        os.close(fd)


def _pad_sequences(samples):
    """Variable-length [L_i, ...] samples -> zero-padded [n, max L, ...] and int64 lengths [n]."""
    lengths = np.asarray([len(x) for x in samples], dtype=np.int64)
    out = np.zeros((len(samples), int(lengths.max())) + samples[0].shape[1:], dtype=samples[0].dtype)
    for i, x in enumerate(samples):
        out[i, :len(x)] = x
    return out, lengths


def _load_batch(task):
    """Worker side of BatchLoader: (kind, kwargs, items, slot) -> (data, indices, failures, lengths).

    `data` is the stacked array, or (shape, dtype) when it went to the shared-memory file `slot`.
    Feature sequences ("features") have different lengths: they are zero-padded to the batch's
    longest and `lengths` says how long each is (None for the other kinds).
    """
    kind, kwargs, items, slot = task
    loader = SAMPLE_LOADERS[kind]
    samples, indices, failures = [], [], []
    for index, path, augment, seed in items:
        try:
            samples.append(loader(path, augment, np.random.default_rng(seed), **kwargs))
            indices.append(index)
        except video_files.READ_ERRORS as e:
            failures.append((index, path, f"{type(e).__name__}: {e}"))
    indices = np.asarray(indices, dtype=np.int64)
    if not samples:
        return None, indices, failures, None
    data, lengths = _pad_sequences(samples) if kind == "features" else (np.stack(samples), None)
    if slot is not None:
        try:
            _write_rows(slot, [data])
            return (data.shape, data.dtype.str), indices, failures, lengths
        except OSError as e:  # /dev/shm full: hand the batch over through the pipe
            log.info("shared memory unavailable (%s): using the pipe", e)
    return data, indices, failures, lengths


class Batch(NamedTuple):
    data: np.ndarray     # uint8 [n, size, size, 3] frames, [n, T, size, size, 3] clips or segments,
    #                      [n, K, size, size, C] motion snippets (C = 2L flow, 3(L + 1) RGB frames),
    #                      float16 [n, L, dims] feature sequences (zero-padded)
    labels: np.ndarray   # int64 [n]
    indices: np.ndarray  # int64 [n], positions in the loader's path list
    global_size: int     # samples in this step summed over all ranks (before failures)
    lengths: Optional[np.ndarray] = None  # int64 [n]: valid steps of each feature sequence


def sample_seed(seed: int, epoch: int | None, index: int) -> int:
    """A per-sample seed: the same sample gets the same augmentation for the same (seed, epoch);
    epoch None gives one seed per sample for all epochs (evaluation on a fixed frame)."""
    key = [seed, 0 if epoch is None else epoch + 1, index]  # (SeedSequence ignores trailing zeros)
    return int(np.random.SeedSequence(key).generate_state(1)[0])


class BatchLoader:
    """Prefetching batches on a process pool: frames, clips, TSN segments or feature sequences, for
    training and evaluation.

    Each epoch (`set_epoch`) draws one permutation from (seed, epoch), identical on every rank. A step
    takes the next `batch_size * world_size` samples and deals them round-robin to the ranks, so every
    sample is used exactly once per epoch across ranks and the tail is kept. Every rank gets the same
    number of steps (DDP needs lockstep). A file that fails to load is dropped from its batch (never
    the whole batch), logged and counted in `failed`.
    `fixed=True` (evaluation) draws the frame/clip position from (seed, index) only, so every epoch
    sees the same frame of each video. `min_share`: a tail step that would give a rank fewer samples
    joins the step before (training uses 2: BatchNorm cannot train on a batch of one sample whose
    maps are 1x1, e.g. a ResNet's layer4 at small image sizes).
    """

    def __init__(
        self,
        paths: Sequence[str] | np.ndarray,
        labels: Sequence[int] | np.ndarray,
        batch_size: int,
        kind: str = "frame",
        *,
        augment: bool = False,
        shuffle: bool = False,
        seed: int = 0,
        pool: loader_pool.LoaderPool | None = None,
        rank: int = 0,
        world_size: int = 1,
        prefetch: int | None = None,
        fixed: bool = False,
        min_share: int = 1,
        **loader_kwargs: Any,
    ) -> None:
        if kind not in SAMPLE_LOADERS:
            raise ValueError(f"kind must be one of {sorted(SAMPLE_LOADERS)}")
        if len(paths) < world_size:
            raise ValueError(f"{len(paths)} samples cannot be shared by {world_size} ranks")
        self.paths, self.labels = np.asarray(paths), np.asarray(labels, dtype=np.int64)
        self.batch_size, self.kind, self.augment, self.shuffle = batch_size, kind, augment, shuffle
        self.seed, self.pool, self.rank, self.world_size, self.fixed = seed, pool, rank, world_size, fixed
        self.min_share = min_share
        self.prefetch = prefetch or 2 * (loader_pool.pool_size(pool) or 1)
        if len(self.labels) != len(self.paths):
            raise ValueError(f"{len(self.paths)} paths but {len(self.labels)} labels")
        inspect.signature(SAMPLE_LOADERS[kind]).bind(
            None, None, None, **loader_kwargs
        )  # TypeError now, not in a worker
        self.loader_kwargs = loader_kwargs
        self.epoch_failed = 0
        self.epoch, self.start_step = 0, 0
        self.failed = {}  # path -> reason, over the loader's life
        self.wait_seconds = 0.0
        self._empty = None  # an empty batch's data, shaped like the others

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Select the epoch's permutation; `start_step` skips steps already done (mid-epoch resume)."""
        self.epoch, self.start_step = epoch, start_step

    def _steps(self):
        """Global index slices, one per step; a tail that gives a rank fewer than min_share samples (none,
        by default) joins the step before."""
        n = len(self.paths)
        order = (np.random.default_rng([self.seed, self.epoch]).permutation(n) if self.shuffle
                 else np.arange(n))
        step = self.batch_size * self.world_size
        bounds = list(range(0, n, step)) + [n]
        if len(bounds) > 2 and n - bounds[-2] < self.min_share * self.world_size:
            del bounds[-2]
        return [order[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    def __len__(self) -> int:
        return len(self._steps())

    def _tasks(self, steps, slots):
        for number, step in enumerate(steps):
            mine = step[self.rank::self.world_size]
            items = [(int(i), str(self.paths[i]), self.augment,
                      sample_seed(self.seed, None if self.fixed else self.epoch, int(i))) for i in mine]
            yield self.kind, self.loader_kwargs, items, slots.slot(number)

    def _empty_data(self):
        if self._empty is not None:
            return self._empty
        size = self.loader_kwargs.get("size", sampling.IMAGE_SIZE)
        if self.kind in motion.MOTION_KINDS:
            segments = self.loader_kwargs.get("segments", 3)
            channels = motion.shipped_channels(self.kind, self.loader_kwargs.get("new_length", 5))
            return np.zeros((0,) + ((segments,) if segments > 1 else ()) + (size, size, channels), dtype=np.uint8)
        views = {"frame": (), "clip": (self.loader_kwargs.get("clip_len", sampling.CLIP_LEN),),
                 "segments": (self.loader_kwargs.get("segments", 3),)}.get(self.kind)
        return np.zeros((0,) + views + (size, size, 3), dtype=np.uint8) if views is not None else \
            np.zeros((0, 1, 1), dtype=np.float16)

    def __iter__(self) -> Iterator[Batch]:
        steps = self._steps()[self.start_step:]
        slots = SharedSlots(self.pool, self.prefetch + 1)
        prefetcher = loader_pool.Prefetcher(self.pool, _load_batch, self._tasks(steps, slots), self.prefetch)
        self.epoch_failed = 0
        read_seconds = 0.0  # reading a batch back from /dev/shm also keeps the step waiting
        try:
            for number, (step, (data, indices, failures, lengths)) in enumerate(zip(steps, prefetcher)):
                for _index, path, reason in failures:
                    if path not in self.failed:  # named once, not every epoch
                        log.warning("skipping %s: %s", path, reason)
                    self.failed[path] = reason
                self.epoch_failed += len(failures)
                if len(indices) == 0:  # every sample of this rank's share failed
                    data, lengths = self._empty_data(), (None if self.kind != "features" else np.zeros(0, np.int64))
                else:
                    if isinstance(data, tuple):  # (shape, dtype) of what the worker wrote to its slot
                        started = time.perf_counter()
                        data = slots.read(slots.slot(number), *data)
                        read_seconds += time.perf_counter() - started
                    # Kept for a later step whose share all failed: an empty batch of the same layout.
                    self._empty = np.zeros((0, 1) + data.shape[2:] if self.kind == "features"
                                           else (0,) + data.shape[1:], dtype=data.dtype)
                yield Batch(data, self.labels[indices], indices, len(step), lengths)
        finally:
            self.wait_seconds = prefetcher.wait_seconds + read_seconds
            slots.close()

