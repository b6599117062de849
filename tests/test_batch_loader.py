"""BatchLoader, Prefetcher, VideoChunkLoader, iter_video_chunks and the two HDF5 storages.

Synthetic videos: frame t of video v has red = 20 + 8 v and green = 10 + 5 t everywhere (constant
planes survive any resize exactly) and a blue gradient (so crops and flips change the bytes). Without
augmentation every returned frame says which video and which frame it came from.
"""
import logging
import os
import signal
import time

import h5py
import numpy as np
import pytest

import helperFunctions
from actionrec.data import video_chunks, video_files
from actionrec.data.batching import BatchLoader
from actionrec.data.loader_pool import LoaderWorkerDied, Prefetcher, close_pool, make_pool, pool_size
from actionrec.data.sampling import loadFrameRaw, loadSequenceRaw
from actionrec.data.video_chunks import VideoChunkLoader, iter_video_chunks, load_chunk, video_chunk_plan
from actionrec.data.video_files import read_frames, video_info, write_video_hdf5

HEIGHT, WIDTH, SIZE = 24, 32, 16
NUM_LOADER_VIDEOS = 24
SHORT, LONG45, SHORTER_THAN_CHUNK, MEDIUM25 = 24, 25, 26, 27  # extra video ids
FRAMES = {v: 12 + (5 * v) % 19 for v in range(NUM_LOADER_VIDEOS)}  # 12..30 frames
FRAMES.update({SHORT: 10, LONG45: 45, SHORTER_THAN_CHUNK: 7, MEDIUM25: 25})


def encode(video, num_frames, height=HEIGHT, width=WIDTH):
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    frames[..., 0] = 20 + 8 * video
    frames[..., 1] = (10 + 5 * np.arange(num_frames))[:, None, None]
    frames[..., 2] = 4 * np.arange(width)[None, :] + 2 * np.arange(height)[:, None]
    return frames


def decode(frame):
    """(video, frame index) of one uint8 [S, S, 3] output frame made by `encode` (no augmentation)."""
    red, green = frame[..., 0], frame[..., 1]
    assert (red == red.flat[0]).all() and (green == green.flat[0]).all()
    video, rest_v = divmod(int(red.flat[0]) - 20, 8)
    index, rest_t = divmod(int(green.flat[0]) - 10, 5)
    assert rest_v == 0 and rest_t == 0
    return video, index


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """video id -> path of a raw HDF5 video made by `encode`."""
    folder = tmp_path_factory.mktemp("videos")
    paths = {}
    for video, num_frames in FRAMES.items():
        paths[video] = str(folder / f"v_{video:02d}.hdf5")
        write_video_hdf5(paths[video], encode(video, num_frames))
    return paths


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    files = {"missing": str(folder / "missing.hdf5"), "missing2": str(folder / "missing2.hdf5"),
             "novideo": str(folder / "novideo.hdf5"), "wrongdtype": str(folder / "wrongdtype.hdf5"),
             "garbage": str(folder / "garbage.hdf5"), "garbage2": str(folder / "garbage2.hdf5")}
    with h5py.File(files["novideo"], "w") as f:
        f.create_dataset("frames", data=encode(0, 3))
    with h5py.File(files["wrongdtype"], "w") as f:
        f.create_dataset("video", data=encode(0, 3).astype(np.float32))
    rng = np.random.default_rng(0)
    for name in ("garbage", "garbage2"):
        with open(files[name], "wb") as f:
            f.write(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    return files


@pytest.fixture(scope="module")
def pool():
    worker_pool = make_pool(2)
    yield worker_pool
    close_pool(worker_pool)


def loader_inputs(videos, n):
    paths = [videos[v] for v in range(n)]
    labels = [100 + v for v in range(n)]  # a label tells its index apart from position
    return paths, labels


def batches_equal(a, b):
    assert len(a) == len(b) and len(a) > 0
    for x, y in zip(a, b):
        assert x.data.dtype == y.data.dtype == np.uint8
        assert x.data.shape == y.data.shape and x.data.tobytes() == y.data.tobytes()
        assert np.array_equal(x.labels, y.labels) and np.array_equal(x.indices, y.indices)
        assert x.global_size == y.global_size


# ----------------------------------------------------------------------------------------------
# BatchLoader: every sample once per epoch over all ranks

def run_ranks(paths, labels, batch_size, world_size, epoch, seed=3, **kwargs):
    """[(len(loader), [batches])] for every rank."""
    out = []
    for rank in range(world_size):
        loader = BatchLoader(paths, labels, batch_size, kind="frame", rank=rank, world_size=world_size,
                             shuffle=True, seed=seed, size=SIZE, **kwargs)
        loader.set_epoch(epoch)
        out.append((len(loader), list(loader)))
    return out


def global_order(per_rank, world_size):
    """The epoch's sample order rebuilt from the ranks' round-robin shares of each step."""
    lengths = {length for length, _ in per_rank}
    assert len(lengths) == 1, "ranks disagree on len()"
    steps = lengths.pop()
    order = []
    for step in range(steps):
        shares = [batches[step] for _, batches in per_rank]
        total = sum(len(b.indices) for b in shares)
        assert {b.global_size for b in shares} == {total}
        merged = np.empty(total, dtype=np.int64)
        for rank, share in enumerate(shares):
            assert len(share.indices) == len(range(rank, total, world_size)) >= 1
            merged[rank::world_size] = share.indices
        order.extend(merged.tolist())
    return order


# (N, batch_size, world_size): tails of every kind, incl. tails smaller than world_size (1 with 3 ranks,
# 2 with 3 ranks, 1 with 2 ranks), a single short step, and an exact multiple.
PARTITION_CASES = [(5, 2, 1), (23, 4, 1), (5, 2, 2), (23, 4, 2), (12, 3, 2), (7, 2, 3), (13, 4, 3),
                   (14, 2, 3), (4, 1, 3), (3, 4, 3), (12, 2, 3), (23, 3, 3)]


@pytest.mark.parametrize("n, batch_size, world_size", PARTITION_CASES)
def test_every_sample_exactly_once_across_ranks(videos, n, batch_size, world_size):
    paths, labels = loader_inputs(videos, n)
    orders = []
    for epoch in (0, 1):
        per_rank = run_ranks(paths, labels, batch_size, world_size, epoch)
        for length, batches in per_rank:
            assert len(batches) == length  # the same number of steps on every rank (DDP lockstep)
            for batch in batches:
                assert batch.data.shape == (len(batch.indices), SIZE, SIZE, 3)
                assert batch.labels.tolist() == [100 + i for i in batch.indices.tolist()]
                # the data really is the sample the index names
                assert [decode(frame)[0] for frame in batch.data] == batch.indices.tolist()
                for frame, index in zip(batch.data, batch.indices):
                    assert 0 <= decode(frame)[1] < FRAMES[int(index)]
        order = global_order(per_rank, world_size)
        assert sorted(order) == list(range(n))  # union over ranks: each sample exactly once, tail kept
        assert sum(b.global_size for b in per_rank[0][1]) == n
        full, tail = divmod(n, batch_size * world_size)
        merged_tail = 0 < tail < world_size and full > 0  # joins the step before
        assert per_rank[0][0] == full + (tail > 0) - merged_tail
        orders.append(order)
    assert orders[0] != list(range(n))  # shuffled
    assert orders[0] != orders[1]  # a new permutation each epoch


def test_same_seed_and_epoch_give_same_batches(videos):
    paths, labels = loader_inputs(videos, 11)

    def epoch_batches(seed, epoch):
        loader = BatchLoader(paths, labels, 4, kind="frame", shuffle=True, augment=True, seed=seed,
                             size=SIZE, rank=1, world_size=2)
        loader.set_epoch(epoch)
        return list(loader)

    first, again = epoch_batches(7, 2), epoch_batches(7, 2)
    batches_equal(first, again)  # same order and same augmentation, byte for byte
    other_epoch, other_seed = epoch_batches(7, 3), epoch_batches(8, 2)
    for other in (other_epoch, other_seed):
        assert [b.indices.tolist() for b in other] != [b.indices.tolist() for b in first]
    # the same sample in another epoch is augmented differently
    by_index = {int(i): d.tobytes() for b in first for i, d in zip(b.indices, b.data)}
    by_index_other = {int(i): d.tobytes() for b in other_epoch for i, d in zip(b.indices, b.data)}
    common = by_index.keys() & by_index_other.keys()
    assert common and any(by_index[i] != by_index_other[i] for i in common)


def test_no_shuffle_keeps_list_order(videos):
    paths, labels = loader_inputs(videos, 7)
    batches = list(BatchLoader(paths, labels, 3, kind="frame", size=SIZE))
    assert [b.indices.tolist() for b in batches] == [[0, 1, 2], [3, 4, 5], [6]]


def test_fewer_samples_than_ranks_is_refused(videos):
    paths, labels = loader_inputs(videos, 2)
    with pytest.raises(ValueError, match="3 ranks"):
        BatchLoader(paths, labels, 4, world_size=3, rank=0)


# ----------------------------------------------------------------------------------------------
# BatchLoader with a worker pool

@pytest.mark.parametrize("kind, augment", [("frame", False), ("frame", True), ("clip", True)])
def test_pool_gives_same_batches_as_in_process(videos, pool, kind, augment):
    paths, labels = loader_inputs(videos, 10)
    kwargs = dict(kind=kind, augment=augment, shuffle=True, seed=5, size=SIZE, rank=1, world_size=2)
    if kind == "clip":
        kwargs["clip_len"] = 4
    results = []
    for worker_pool in (None, pool):
        loader = BatchLoader(paths, labels, 3, pool=worker_pool, **kwargs)
        loader.set_epoch(4)
        results.append(list(loader))
    batches_equal(*results)
    assert sum(len(b.indices) for b in results[1]) == 5  # rank 1's half of 10


def test_pool_handles_a_merged_tail_step(videos, pool):
    # 7 samples, batch 2, 3 ranks: the 1-sample tail joins the step before, so rank 0 gets 3
    # samples in one batch, more than batch_size: the shared-memory slots must hold them.
    paths, labels = loader_inputs(videos, 7)
    got = []
    for worker_pool in (None, pool):
        loader = BatchLoader(paths, labels, 2, kind="frame", shuffle=True, seed=2, size=SIZE, rank=0,
                             world_size=3, pool=worker_pool)
        got.append(list(loader))
    batches_equal(*got)
    assert max(len(b.indices) for b in got[1]) == 3


# ----------------------------------------------------------------------------------------------
# BatchLoader: bad files are dropped one by one

@pytest.mark.parametrize("use_pool", [False, True])
@pytest.mark.parametrize("kind", ["frame", "clip"])
def test_bad_files_dropped_from_their_batch_only(videos, bad_files, pool, caplog, use_pool, kind):
    paths = [videos[0], bad_files["missing"], videos[1],
             bad_files["novideo"], videos[2], bad_files["garbage"],
             videos[3], videos[4], videos[5],
             bad_files["missing2"], bad_files["wrongdtype"], bad_files["garbage2"]]
    labels = list(range(50, 50 + len(paths)))
    bad = [p for p in paths if p in bad_files.values()]
    clip_len = 4
    loader = BatchLoader(paths, labels, 3, kind=kind, size=SIZE, pool=pool if use_pool else None,
                         **({"clip_len": clip_len} if kind == "clip" else {}))
    sample_shape = (SIZE, SIZE, 3) if kind == "frame" else (clip_len, SIZE, SIZE, 3)
    for epoch in (0, 1):
        loader.set_epoch(epoch)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="ucf101"):
            batches = list(loader)
        assert [b.indices.tolist() for b in batches] == [[0, 2], [4], [6, 7, 8], []]
        assert [b.global_size for b in batches] == [3, 3, 3, 3]
        for batch in batches:
            assert batch.data.dtype == np.uint8 and batch.data.shape == (len(batch.indices),) + sample_shape
            assert batch.labels.tolist() == [50 + i for i in batch.indices.tolist()]
            frames = batch.data if kind == "frame" else batch.data[:, 0]
            assert [decode(f)[0] for f in frames] == [int(paths[i][-7:-5]) for i in batch.indices]
        assert loader.epoch_failed == len(bad) == 6
        assert sorted(loader.failed) == sorted(bad)
        warnings = [r for r in caplog.records if r.name == "ucf101" and r.levelno == logging.WARNING]
        named = bad if epoch == 0 else []  # a file that fails is named once, not again every epoch
        for path in named:
            assert any(path in r.getMessage() for r in warnings), path
        assert len(warnings) == len(named)
    reasons = loader.failed
    assert reasons[bad_files["missing"]].startswith("FileNotFoundError")
    assert "'video'" in reasons[bad_files["novideo"]]
    assert "float32" in reasons[bad_files["wrongdtype"]]
    assert reasons[bad_files["garbage"]].startswith("OSError")


# ----------------------------------------------------------------------------------------------
# Clips, fixed positions, augmentation across epochs

def test_clip_of_short_video_is_looped(videos):
    paths = [videos[SHORT], videos[LONG45]]
    loader = BatchLoader(paths, [0, 1], 2, kind="clip", clip_len=16, size=SIZE, shuffle=True, seed=1)
    for epoch in range(3):
        loader.set_epoch(epoch)
        (batch,) = list(loader)
        assert batch.data.shape == (2, 16, SIZE, SIZE, 3)
        for clip, index in zip(batch.data, batch.indices):
            decoded = [decode(frame) for frame in clip]
            video = SHORT if index == 0 else LONG45
            assert {v for v, _ in decoded} == {video}
            frame_numbers = [t for _, t in decoded]
            if video == SHORT:
                assert frame_numbers == list(range(10)) + list(range(6))
            else:
                start = frame_numbers[0]
                assert frame_numbers == list(range(start, start + 16)) and start + 16 <= 45


def test_frame_and_clip_positions_cover_the_whole_video(videos):
    """Every frame can be drawn, the last included; a 17-frame video gives 16-frame clips from 0 and 1."""
    assert FRAMES[1] == 17
    frames_seen = {decode(loadFrameRaw((videos[SHORT], False, seed), size=SIZE))[1] for seed in range(200)}
    assert frames_seen == set(range(FRAMES[SHORT]))
    starts = {decode(loadSequenceRaw((videos[1], False, seed), size=SIZE, clip_len=16)[0])[1]
              for seed in range(60)}
    assert starts == {0, 1}


def clip_kwargs(kind):
    return {"clip_len": 4} if kind == "clip" else {}


def epoch_samples(loader, epochs):
    """[{index: (frame index(es), bytes)}] per epoch."""
    out = []
    for epoch in epochs:
        loader.set_epoch(epoch)
        samples = {}
        for batch in loader:
            for index, data in zip(batch.indices.tolist(), batch.data):
                frames = data if data.ndim == 4 else data[None]
                samples[index] = (tuple(decode(f)[1] for f in frames) if not loader.augment else None,
                                  data.tobytes())
        out.append(samples)
    return out


@pytest.mark.parametrize("kind", ["frame", "clip"])
def test_fixed_gives_the_same_sample_every_epoch(videos, kind):
    paths, labels = loader_inputs(videos, 8)
    loader = BatchLoader(paths, labels, 3, kind=kind, size=SIZE, shuffle=True, seed=2, fixed=True,
                         **clip_kwargs(kind))
    per_epoch = epoch_samples(loader, range(4))
    assert len(per_epoch[0]) == 8
    assert all(samples == per_epoch[0] for samples in per_epoch[1:])


@pytest.mark.parametrize("kind", ["frame", "clip"])
def test_not_fixed_varies_across_epochs(videos, kind):
    paths, labels = loader_inputs(videos, 8)
    plain = BatchLoader(paths, labels, 3, kind=kind, size=SIZE, shuffle=True, seed=2, **clip_kwargs(kind))
    per_epoch = epoch_samples(plain, range(4))
    assert all(len(samples) == 8 for samples in per_epoch)
    # frame positions move between epochs for most videos
    moved = [i for i in range(8) if len({samples[i][0] for samples in per_epoch}) > 1]
    assert len(moved) >= 6
    augmented = BatchLoader(paths, labels, 3, kind=kind, size=SIZE, shuffle=True, seed=2, augment=True,
                            **clip_kwargs(kind))
    per_epoch = epoch_samples(augmented, range(4))
    assert all(len({samples[i][1] for samples in per_epoch}) > 1 for i in range(8))


# ----------------------------------------------------------------------------------------------
# Prefetcher (functions at module level so a pool can pickle them)

def _square_slowly(x):
    time.sleep(0.002 * ((7 * x) % 5))  # later tasks often finish first
    return x * x


def _sleep_and_record(task):
    record_path, index, seconds = task
    start = time.monotonic()
    time.sleep(seconds)
    with open(record_path, "a") as f:
        f.write(f"{index} {start} {time.monotonic()}\n")
    return index


@pytest.mark.parametrize("use_pool", [False, True])
@pytest.mark.parametrize("depth", [1, 3])
def test_prefetcher_keeps_task_order(pool, use_pool, depth):
    results = list(Prefetcher(pool if use_pool else None, _square_slowly, range(20), depth))
    assert results == [x * x for x in range(20)]


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_prefetcher_never_more_than_depth_in_flight(pool, depth):
    pulled = []

    def tasks():
        for x in range(12):
            pulled.append(x)
            yield x

    in_flight = []
    for consumed, result in enumerate(Prefetcher(pool, _square_slowly, tasks(), depth), start=1):
        assert result == (consumed - 1) ** 2
        in_flight.append(len(pulled) - consumed)  # submitted, result not yet handed over
        time.sleep(0.005)  # a consumer slower than the workers: they would run ahead if allowed
    assert max(in_flight) == depth  # bounded, and the bound is actually reached
    assert len(pulled) == 12


def _intervals(record_path):
    with open(record_path) as f:
        return sorted(tuple(map(float, line.split()[1:])) for line in f)


def test_prefetcher_depth_limits_concurrency_on_the_pool(pool, tmp_path):
    """depth=1 runs one task at a time even with 2 workers; depth=2 lets them overlap."""
    overlaps = {}
    for depth in (1, 2):
        record = str(tmp_path / f"depth{depth}.txt")
        tasks = [(record, i, 0.05) for i in range(6)]
        assert list(Prefetcher(pool, _sleep_and_record, tasks, depth)) == list(range(6))
        intervals = _intervals(record)
        assert len(intervals) == 6
        overlaps[depth] = sum(b_start < a_end for (_, a_end), (b_start, _) in zip(intervals, intervals[1:]))
    assert overlaps[1] == 0
    assert overlaps[2] > 0


@pytest.mark.parametrize("use_pool", [False, True])
def test_prefetcher_wait_seconds_grows_with_a_slow_producer(pool, tmp_path, use_pool):
    worker_pool = pool if use_pool else None
    waits = {}
    for seconds in (0.0, 0.06):
        tasks = [(str(tmp_path / f"{seconds}.txt"), i, seconds) for i in range(6)]
        prefetcher = Prefetcher(worker_pool, _sleep_and_record, tasks, 2)
        assert prefetcher.wait_seconds == 0.0
        assert list(prefetcher) == list(range(6))
        waits[seconds] = prefetcher.wait_seconds
    # in process: the consumer waits for every task; two workers: for at least half of them
    minimum = 0.06 * (6 if worker_pool is None else 3)
    assert waits[0.06] >= 0.9 * minimum
    assert waits[0.0] < waits[0.06] / 2


def _die_on_three(x):
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # what the out-of-memory killer does
    time.sleep(0.01)
    return x


def _own_pid(_):
    time.sleep(0.05)  # keeps a worker busy: the calls spread over both
    return os.getpid()


def test_the_pool_knows_its_workers_and_close_pool_ends_them():
    worker_pool = make_pool(2, shield_signals=True)
    try:
        assert pool_size(worker_pool) == 2 and pool_size(None) == 0
        pids = {process.pid for process in worker_pool.processes}
        assert len(pids) == 2 and all(process.is_alive() for process in worker_pool.processes)
        assert set(worker_pool.map(_own_pid, range(8))) <= pids  # the workers, not other children
    finally:
        close_pool(worker_pool)
    assert not any(process.is_alive() for process in worker_pool.processes)
    assert all(process.exitcode == 0 for process in worker_pool.processes)


@pytest.mark.parametrize("shield_signals", [False, True])
def test_a_dead_worker_is_an_error_not_a_hang(shield_signals):
    worker_pool = make_pool(2, shield_signals=shield_signals)
    start = time.monotonic()
    results = []
    try:
        with pytest.raises(LoaderWorkerDied, match="loader worker process died"):
            for result in Prefetcher(worker_pool, _die_on_three, range(10), 2):
                results.append(result)
    finally:
        close_pool(worker_pool)  # returns, though a shielded survivor ignores the executor's SIGTERM
    assert results in ([0, 1], [0, 1, 2])  # task 2, in flight with 3, may be failed with it
    assert time.monotonic() - start < 30


# ----------------------------------------------------------------------------------------------
# VideoChunkLoader and iter_video_chunks

@pytest.fixture(scope="module")
def chunk_videos(videos, bad_files, tmp_path_factory):
    """[paths], {position: video id} of readable ones, and a jpeg video whose 26th frame is broken."""
    broken = str(tmp_path_factory.mktemp("chunks") / "broken_jpeg.hdf5")
    write_video_hdf5(broken, encode(3, 45), storage="jpeg", quality=95)
    with h5py.File(broken, "a") as f:
        f["video"][25] = np.frombuffer(b"not a jpeg at all", dtype=np.uint8)
    paths = [videos[LONG45], videos[SHORTER_THAN_CHUNK], bad_files["garbage"], videos[MEDIUM25],
             bad_files["missing"], broken, videos[SHORT]]
    readable = {0: LONG45, 1: SHORTER_THAN_CHUNK, 3: MEDIUM25, 6: SHORT}
    return paths, readable, broken


@pytest.mark.parametrize("slab_frames", [32, 3])
@pytest.mark.parametrize("use_pool, max_chunk", [(False, None), (True, None), (True, 20), (True, 10)])
def test_video_chunk_loader(chunk_videos, monkeypatch, use_pool, max_chunk, slab_frames):
    # max_chunk 20: every chunk through shared memory; 10: the larger ones fall back to the pipe.
    # slab_frames 3: chunks are read and written to shared memory 3 frames at a time.
    monkeypatch.setattr(video_chunks, "SLAB_FRAMES", slab_frames)
    paths, readable, _ = chunk_videos
    chunk = 20
    worker_pool = make_pool(2) if use_pool else None  # forked after the patch
    try:
        loader = VideoChunkLoader(paths, lambda frames: video_chunk_plan(frames, chunk), pool=worker_pool,
                                  size=SIZE, depth=2, max_chunk=max_chunk)
        items = list(loader)
    finally:
        close_pool(worker_pool)
    assert [(v, c, n) for v, c, n, _ in items] == [
        (0, 0, 3), (0, 1, 3), (0, 2, 3),  # 45 frames: 20 + 20 + 5
        (1, 0, 1),                        # 7 frames: one short chunk
        (2, 0, 1),                        # garbage: one error
        (3, 0, 2), (3, 1, 2),             # 25 frames: 20 + 5
        (4, 0, 1),                        # missing: one error
        (5, 0, 3), (5, 1, 3),             # frame 25 broken: first chunk, then one error, no more
        (6, 0, 1)]
    errors = {v: r for v, _, _, r in items if isinstance(r, str)}
    assert sorted(errors) == [2, 4, 5]
    assert errors[2].startswith("OSError") and errors[4].startswith("FileNotFoundError")
    assert "JPEG" in errors[5]
    assert isinstance(items[8][3], np.ndarray) and items[8][3].shape == (chunk, SIZE, SIZE, 3)
    for position, video in readable.items():
        chunks = [r for v, _, _, r in items if v == position]
        assert all(c.dtype == np.uint8 and c.shape[1:] == (SIZE, SIZE, 3) and len(c) <= chunk for c in chunks)
        frames = np.concatenate(chunks)
        assert [decode(f) for f in frames] == [(video, t) for t in range(FRAMES[video])]


@pytest.mark.parametrize("slab_frames", [32, 3])
def test_video_chunk_loader_custom_plan_loops_past_the_end(videos, monkeypatch, slab_frames):
    """A plan may ask for frames past the end (looped): a 10-frame video as two 8-frame chunks."""
    monkeypatch.setattr(video_chunks, "SLAB_FRAMES", slab_frames)  # 3: a slab wraps around (9, 0, 1)
    loader = VideoChunkLoader([videos[SHORT]], lambda frames: [(0, 8), (8, 16)], size=SIZE)
    items = list(loader)
    assert [(v, c, n) for v, c, n, _ in items] == [(0, 0, 2), (0, 1, 2)]
    frames = np.concatenate([r for *_, r in items])
    assert [decode(f)[1] for f in frames] == list(range(10)) + list(range(6))


def test_iter_video_chunks(videos):
    path = videos[LONG45]
    chunks = list(iter_video_chunks(path, chunk_frames=20, size=SIZE))
    assert [len(c) for c in chunks] == [20, 20, 5]
    everything = np.concatenate(chunks)
    assert everything.tobytes() == load_chunk(path, 0, 45, SIZE).tobytes()
    assert [decode(f) for f in everything] == [(LONG45, t) for t in range(45)]


# ----------------------------------------------------------------------------------------------
# Storages: raw and jpeg

def smooth_frames(num_frames=6, height=48, width=64):
    y, x = np.mgrid[0:height, 0:width]
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        frames[t, ..., 0] = 40 + 2 * x + 20 * t
        frames[t, ..., 1] = 60 + 2 * y
        frames[t, ..., 2] = 200 - x - y - 10 * t
    return frames


@pytest.fixture(scope="module")
def storages(tmp_path_factory):
    folder = tmp_path_factory.mktemp("storage")
    frames = smooth_frames()
    paths = {storage: str(folder / f"{storage}.hdf5") for storage in ("raw", "jpeg")}
    write_video_hdf5(paths["raw"], frames, storage="raw")
    write_video_hdf5(paths["jpeg"], frames, storage="jpeg", quality=95)
    return frames, paths


def mean_abs_diff(a, b):
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_video_info_for_both_storages(storages):
    _, paths = storages
    assert video_info(paths["raw"]) == (6, 48, 64, "raw")
    assert video_info(paths["jpeg"]) == (6, 48, 64, "jpeg")
    with h5py.File(paths["jpeg"]) as f:
        assert f["video"].shape == (6,)  # really stored as encoded frames
    assert os.path.getsize(paths["jpeg"]) < os.path.getsize(paths["raw"])


def test_read_frames_both_storages(storages):
    frames, paths = storages
    indices = [0, 5, 7, 3]  # 7 wraps to 1
    raw, jpeg = read_frames(paths["raw"], indices), read_frames(paths["jpeg"], indices)
    assert raw.dtype == jpeg.dtype == np.uint8 and raw.shape == jpeg.shape == (4, 48, 64, 3)
    assert np.array_equal(raw, frames[[0, 5, 1, 3]])
    assert mean_abs_diff(jpeg, raw) < 3
    for i in range(4):  # each jpeg frame is closest to its own raw frame (RGB order kept)
        assert int(np.argmin([mean_abs_diff(jpeg[i], f) for f in frames])) == [0, 5, 1, 3][i]


@pytest.mark.parametrize("augment", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_raw_loaders_both_storages(storages, augment, seed):
    frames, paths = storages
    frame = {s: loadFrameRaw((paths[s], augment, seed), size=SIZE) for s in paths}
    clip = {s: loadSequenceRaw((paths[s], augment, seed), size=SIZE, clip_len=4) for s in paths}
    assert frame["raw"].shape == frame["jpeg"].shape == (SIZE, SIZE, 3)
    assert clip["raw"].shape == clip["jpeg"].shape == (4, SIZE, SIZE, 3)
    assert frame["raw"].dtype == clip["jpeg"].dtype == np.uint8
    # same seed -> same frame position and augmentation in both storages
    assert mean_abs_diff(frame["raw"], frame["jpeg"]) < 3
    assert mean_abs_diff(clip["raw"], clip["jpeg"]) < 3
    if not augment:
        import cv2
        resized = [cv2.resize(f, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR) for f in frames]
        matches = [t for t, r in enumerate(resized) if np.array_equal(r, frame["raw"])]
        assert len(matches) == 1
        start = [t for t, r in enumerate(resized) if np.array_equal(r, clip["raw"][0])]
        assert len(start) == 1 and start[0] + 4 <= 6
        assert np.array_equal(clip["raw"], np.stack(resized[start[0]:start[0] + 4]))


def test_raw_loaders_return_empty_for_a_bad_file(bad_files, caplog):
    with caplog.at_level(logging.WARNING, logger="ucf101"):
        assert loadFrameRaw((bad_files["garbage"], False, 0), size=SIZE).size == 0
        assert loadSequenceRaw((bad_files["novideo"], False, 0), size=SIZE).size == 0
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert bad_files["garbage"] in messages and bad_files["novideo"] in messages


# ----------------------------------------------------------------------------------------------
# The assignment-style calls `loader((path, augment))` on a pool: every worker its own generator

@pytest.fixture(scope="module")
def long_noise_video(tmp_path_factory):
    """2,000 frames of seeded noise: two calls that drew differently give different bytes."""
    path = str(tmp_path_factory.mktemp("noise") / "noise.hdf5")
    write_video_hdf5(path, np.random.default_rng(0).integers(0, 256, (2000, 8, 8, 3), dtype=np.uint8))
    return path


def _assignment_style_call(task):
    """Worker side: one `loader((path, augment))` call, the form the assignment's code uses (no seed).
    The pause keeps a worker busy, so that the calls are spread over every worker of the pool."""
    name, path = task
    out = getattr(helperFunctions, name)((path, True), size=SIZE)
    time.sleep(0.05)
    return os.getpid(), out.tobytes()


@pytest.mark.parametrize("name", ["loadFrame", "loadSequence", "loadFrameRaw", "loadSequenceRaw"])
def test_assignment_style_calls_on_a_pool_draw_distinct_augmentations(long_noise_video, name):
    # Forked workers inherit the parent's generator: unless each is reseeded after the fork, the k-th
    # call on one worker repeats the k-th call on the other (8 calls on 2 workers gave 4 outputs).
    worker_pool = make_pool(2)
    try:
        results = list(worker_pool.map(_assignment_style_call, [(name, long_noise_video)] * 8))
    finally:
        close_pool(worker_pool)
    assert len({pid for pid, _ in results}) == 2  # both workers drew
    assert len({out for _, out in results}) == 8


# ----------------------------------------------------------------------------------------------
# Only a bad file is a skipped sample: an unexpected error (a bug) propagates, in process and from a pool

def _buggy_reader(error):
    def read(ds, storage, indices, path):
        raise error(f"a bug in the reader, not a bad file ({path})")
    return read


@pytest.mark.parametrize("error", [RuntimeError, TypeError])
@pytest.mark.parametrize("workers", [0, 2])
def test_an_unexpected_reader_error_propagates_instead_of_skipping_the_sample(videos, monkeypatch, caplog, error,
                                                                               workers):
    monkeypatch.setattr(video_files, "_read_indices", _buggy_reader(error))  # before the workers fork
    paths, labels = loader_inputs(videos, 6)
    worker_pool = make_pool(workers)
    try:
        for kind in ("frame", "clip"):
            loader = BatchLoader(paths, labels, 4, kind, pool=worker_pool, size=SIZE, **(
                {"clip_len": 4} if kind == "clip" else {}))
            with pytest.raises(error, match="a bug in the reader"):
                list(loader)
            assert loader.failed == {}
        chunks = VideoChunkLoader(paths[:2], lambda frames: video_chunk_plan(frames, 8), pool=worker_pool, size=SIZE,
                                  max_chunk=8)
        with pytest.raises(error, match="a bug in the reader"):
            list(chunks)
    finally:
        close_pool(worker_pool)
    with pytest.raises(error, match="a bug in the reader"):  # the assignment's loaders: no empty array either
        loadFrameRaw((paths[0], True, 0), size=SIZE)
    assert "skipping" not in caplog.text
