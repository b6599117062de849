"""Loader benchmark: the assignment's loaders, ours, the I/O + resize floor, and the BatchLoader.

    python bench/bench_loaders.py [--frames 150] [--videos 8] [--repeats 5] [--workers-list 1,2]
                                  [--out DIR] [--json PATH] [--helpers PATH] [--strict]

Writes UCF-101-shaped videos (240x320, uint8 RGB, raw and JPEG storage) with
helperFunctions.write_video_hdf5, then times every loader in this one process with OpenCV on one
thread: CPU ms per sample (one core), the median over `--repeats` repeats of many samples each.
The repeats are interleaved (repeat r runs every loader once, each after a short untimed warm-up)
so a neighbour's burst of load spreads over all rows instead of landing on one; CPU time rather
than wall time makes the numbers hold on a shared machine (wall time is reported beside it).
Then the BatchLoader's throughput with 1..N workers, wall clock and CPU.
The files are small and stay in the page cache: these are CPU costs, not disk costs.
`--helpers` benchmarks another helperFunctions.py (e.g. a patched copy) against the same baseline.
`--strict`: exit status 1 if a target fails.
`--vs-dataloader`: instead, our pool + shared-memory batching against torch's DataLoader over the same
per-sample loaders, order and draws: samples/s, whole-tree CPU per sample and peak tree memory, each
configuration in a fresh process (interleaved repeats), then resume, worker SIGKILL, SIGTERM to the
process group and parent SIGKILL for each (bench/README.md: "Our pool against torch's DataLoader").
"""
import argparse
import datetime
import functools
import hashlib
import importlib.util
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import cv2
import h5py
import numpy as np
import torch
import torch.utils.data

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import helperFunctions as hf  # noqa: E402  (replaced by --helpers)
from actionrec.data import batching, loader_pool, video_files  # noqa: E402
from bench import assignment_reference as ref  # noqa: E402

SIZE = hf.IMAGE_SIZE
CLIP_LEN = hf.CLIP_LEN

# Targets: (row, baseline row or "floor", minimum speed-up or maximum ratio to the floor).
TARGETS = [
    ("ours raw clip, aug (raw storage)", "assignment loadSequence, aug", "speedup", 6.0),
    ("ours raw clip, aug (raw storage)", "floor clip (raw storage)", "floor_ratio", 1.15),
    ("ours float clip, aug (raw storage)", "assignment loadSequence, aug", "speedup", 2.0),
    ("ours raw frame, aug (raw storage)", "assignment loadFrame, aug", "speedup", 2.2),
]


# ----------------------------------------------------------------------------------------------
# Synthetic videos

def synthetic_video(rng, frames, height=240, width=320):
    """uint8 [frames, height, width, 3]: a drifting smooth background, moving blocks, mild noise.

    Smooth regions and edges like real footage, so JPEG sizes and decode times are realistic, and
    every frame differs from the next.
    """
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.random(3) * 2 * np.pi
    base = np.stack([np.sin(x / (40 + 20 * c) + y / (60 + 15 * c) + phase[c]) for c in range(3)], -1)
    video = np.empty((frames, height, width, 3), dtype=np.uint8)
    blocks = [(rng.integers(0, height - 40), rng.integers(0, width - 40), rng.integers(20, 60),
               rng.integers(20, 60), rng.integers(-3, 4), rng.integers(-3, 4), rng.integers(0, 256, 3))
              for _ in range(5)]
    for t in range(frames):
        frame = 110 + 80 * np.roll(base, t, axis=1)
        for by, bx, bh, bw, vy, vx, color in blocks:
            top, left = (by + vy * t) % (height - bh), (bx + vx * t) % (width - bw)
            frame[top:top + bh, left:left + bw] = color
        frame += rng.normal(0, 4, frame.shape).astype(np.float32)
        video[t] = np.clip(frame, 0, 255)
    return video


def make_videos(directory, videos, frames, seed=0):
    """Write `videos` raw and JPEG copies; returns (raw_paths, jpeg_paths)."""
    rng = np.random.default_rng(seed)
    raw_paths, jpeg_paths = [], []
    for i in range(videos):
        video = synthetic_video(rng, frames)
        raw_paths.append(os.path.join(directory, "raw", f"v_{i:02d}.hdf5"))
        jpeg_paths.append(os.path.join(directory, "jpeg", f"v_{i:02d}.hdf5"))
        hf.write_video_hdf5(raw_paths[-1], video, storage="raw")
        hf.write_video_hdf5(jpeg_paths[-1], video, storage="jpeg")
    return raw_paths, jpeg_paths


# ----------------------------------------------------------------------------------------------
# The floor: read and resize, nothing else

def _floor_read(path, count):
    """`count` consecutive frames from a random start: open, read, close (JPEG storage: + decode)."""
    with h5py.File(path, "r") as f:
        ds = f["video"]
        start = np.random.randint(len(ds) - count + 1)
        if ds.dtype == np.uint8:
            return ds[start:start + count]
        return np.stack([cv2.cvtColor(cv2.imdecode(ds[i], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                         for i in range(start, start + count)])


def floor_frame(path):
    """HDF5 open, read one frame, close, uint8 resize to SIZE x SIZE."""
    return cv2.resize(_floor_read(path, 1)[0], (SIZE, SIZE))


def floor_clip(path):
    """HDF5 open, read 16 consecutive frames, close, uint8 resize of each."""
    clip = _floor_read(path, CLIP_LEN)
    out = np.empty((len(clip), SIZE, SIZE, 3), dtype=np.uint8)
    for i in range(len(clip)):
        cv2.resize(clip[i], (SIZE, SIZE), dst=out[i])
    return out


# ----------------------------------------------------------------------------------------------
# Timing

def loader_rows(raw_paths, jpeg_paths):
    """(name, kind, baseline row, floor row, fn(path), paths) for every single-process measurement."""
    rows = []
    for augment in (True, False):
        tag = "aug" if augment else "no aug"
        rows.append((f"assignment loadFrame, {tag}", "frame", None, "floor frame (raw storage)",
                     lambda p, a=augment: ref.loadFrame((p, a), rewrite_paths=False), raw_paths))
        rows.append((f"assignment loadSequence, {tag}", "clip", None, "floor clip (raw storage)",
                     lambda p, a=augment: ref.loadSequence((p, a), rewrite_paths=False), raw_paths))
    for storage, paths in (("raw", raw_paths), ("jpeg", jpeg_paths)):
        floor_f, floor_c = f"floor frame ({storage} storage)", f"floor clip ({storage} storage)"
        for augment in (True, False):
            tag = "aug" if augment else "no aug"
            base_f, base_c = f"assignment loadFrame, {tag}", f"assignment loadSequence, {tag}"
            rows += [
                (f"ours float frame, {tag} ({storage} storage)", "frame", base_f, floor_f,
                 lambda p, a=augment: hf.loadFrame((p, a)), paths),
                (f"ours raw frame, {tag} ({storage} storage)", "frame", base_f, floor_f,
                 lambda p, a=augment: hf.loadFrameRaw((p, a)), paths),
                (f"ours float clip, {tag} ({storage} storage)", "clip", base_c, floor_c,
                 lambda p, a=augment: hf.loadSequence((p, a)), paths),
                (f"ours raw clip, {tag} ({storage} storage)", "clip", base_c, floor_c,
                 lambda p, a=augment: hf.loadSequenceRaw((p, a)), paths),
            ]
        # The floor does no augmentation: its speed-up is against the assignment without it.
        rows.append((floor_f, "frame", "assignment loadFrame, no aug", None, floor_frame, paths))
        rows.append((floor_c, "clip", "assignment loadSequence, no aug", None, floor_clip, paths))
    return rows


def run_once(fn, paths, samples):
    """(CPU ms, wall ms) per sample over `samples` calls cycling through `paths`."""
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(samples):
        out = fn(paths[i % len(paths)])
        if out.size == 0:
            raise RuntimeError(f"a loader failed on {paths[i % len(paths)]}")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu * 1000.0 / samples, wall * 1000.0 / samples


def measure_loaders(rows, repeats, frame_samples, clip_samples, log=print):
    """{name: [(CPU ms, wall ms) per sample, one per repeat]}, repeats interleaved across rows.

    CPU time (user + system of this process; OpenCV on one thread, so one core) is the per-core
    cost and barely moves when other processes compete for the cores; wall time is kept beside it.
    """
    np.random.seed(0)
    times = {row[0]: [] for row in rows}
    for r in range(repeats):
        t0 = time.perf_counter()
        for name, kind, _, _, fn, paths in rows:
            samples = frame_samples if kind == "frame" else clip_samples
            # Untimed warm-up before every timed repeat: the first calls after another loader ran
            # pay for that loader's leftovers (allocator state, page faults on fresh buffers, caches).
            run_once(fn, paths, max(4, samples // 10))
            times[name].append(run_once(fn, paths, samples))
        log(f"  repeat {r + 1}/{repeats}: {time.perf_counter() - t0:.1f} s")
    return times


def _workers_cpu(pool):
    """CPU seconds (user + system) used so far by the pool's worker processes; None off Linux."""
    if pool is None:
        return 0.0
    total = 0.0
    try:
        for process in pool.processes:
            with open(f"/proc/{process.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    return total


def measure_batch_loader(paths, kind, workers, samples, batch_size, epochs):
    """BatchLoader over `samples` items (cycling `paths`), one dict per timed epoch.

    samples/s is wall clock (it drops when other processes take the cores); cpu_ms_per_sample adds
    the workers' and this process's CPU time, which contention barely changes.
    """
    items = [paths[i % len(paths)] for i in range(samples)]
    labels = [i % 101 for i in range(samples)]
    pool = hf.make_pool(workers)
    try:
        loader = hf.BatchLoader(items, labels, batch_size, kind=kind, augment=True, shuffle=True, pool=pool)
        results = []
        for epoch in range(epochs + 1):  # epoch 0 warms the workers up and is not counted
            loader.set_epoch(epoch)
            workers_cpu, main_cpu = _workers_cpu(pool), time.process_time()
            start = time.perf_counter()
            count = sum(len(batch.data) for batch in loader)
            elapsed = time.perf_counter() - start
            main_cpu = time.process_time() - main_cpu
            workers_after = _workers_cpu(pool)
            if count != samples:
                raise RuntimeError(f"BatchLoader gave {count} samples, expected {samples}")
            if epoch:
                cpu = None if workers_cpu is None or workers_after is None else \
                    (workers_after - workers_cpu + main_cpu) * 1000.0 / samples
                results.append({"samples_per_s": samples / elapsed, "wait_s": loader.wait_seconds,
                                "epoch_s": elapsed, "cpu_ms_per_sample": cpu,
                                "main_cpu_ms_per_sample": main_cpu * 1000.0 / samples})
    finally:
        hf.close_pool(pool)
    return results


# ----------------------------------------------------------------------------------------------
# Our pool against torch's DataLoader (issue 21, item 3): the same per-sample loaders, order and draws

KIND_KWARGS = {"frame": {}, "clip": {"clip_len": CLIP_LEN}, "segments": {"segments": 3}}
SEPARATE_OPTIONS = ("augment", "shuffle", "seed", "fixed", "min_share", "rank", "world_size")


class SampleDataset(torch.utils.data.Dataset):
    """BatchLoader's per-sample uint8 loaders as a map-style Dataset. An item is (index, seed, augment):
    the seed (batching.sample_seed of (seed, epoch, index)) travels with the index, so every sample gets
    the draws it gets from BatchLoader, whichever worker loads it. Returns (uint8 tensor, label, index),
    or None for a file that fails to load."""

    def __init__(self, paths, labels, kind, **loader_kwargs):
        self.paths, self.labels, self.kind, self.loader_kwargs = list(paths), list(labels), kind, loader_kwargs

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, item):
        index, seed, augment = item
        try:
            sample = batching.SAMPLE_LOADERS[self.kind](self.paths[index], augment, np.random.default_rng(seed),
                                                        **self.loader_kwargs)
        except video_files.READ_ERRORS:
            return None
        return torch.from_numpy(sample), self.labels[index], index


class StepSampler(torch.utils.data.Sampler):
    """A batch sampler with BatchLoader's steps: the permutation of (seed, epoch), this rank's share of
    each step, min_share, and set_epoch(epoch, start_step) to resume mid-epoch; items are (index, seed,
    augment). It runs in the training process, so a new epoch reaches persistent workers (an epoch
    stored in the Dataset in the parent would not)."""

    def __init__(self, order):
        self.order = order  # a BatchLoader without a pool, used only for its steps and seeds

    def set_epoch(self, epoch, start_step=0):
        self.order.set_epoch(epoch, start_step)

    def __len__(self):
        return len(self.order) - self.order.start_step

    def __iter__(self):
        o = self.order
        for step in o._steps()[o.start_step:]:
            yield [(int(i), batching.sample_seed(o.seed, None if o.fixed else o.epoch, int(i)), o.augment)
                   for i in step[o.rank::o.world_size]]


def collate_samples(items):
    """(uint8 [n, ...], int64 labels [n], int64 indices [n]) tensors; failed samples (None) dropped. In a
    worker default_collate stacks straight into shared memory: no pickled copy of the batch."""
    samples, labels, indices = zip(*[item for item in items if item is not None])
    return torch.utils.data.default_collate(list(samples)), torch.tensor(labels), torch.tensor(indices)


def _torch_worker_init(shield_signals, _worker_id):
    cv2.setNumThreads(1)  # as in our workers: one process per core already
    if shield_signals:  # as make_pool(shield_signals=True): the training process saves first
        for name in ("SIGTERM", "SIGUSR1", "SIGINT"):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


def torch_loader(paths, labels, batch_size, kind, workers, prefetch_factor, shield_signals=False, **options):
    """(DataLoader, StepSampler) giving the batches of BatchLoader(paths, labels, batch_size, kind,
    **options). pin_memory stays off: on the CPU there is nothing to pin for; on CUDA it adds a thread in
    the training process that copies every batch into page-locked memory (one more copy per batch, in
    exchange for asynchronous host-to-device copies)."""
    order = batching.BatchLoader(paths, labels, batch_size, kind, **options)
    sampler = StepSampler(order)
    loader = torch.utils.data.DataLoader(
        SampleDataset(paths, labels, kind, **order.loader_kwargs), batch_sampler=sampler, num_workers=workers,
        collate_fn=collate_samples, pin_memory=False, persistent_workers=workers > 0,
        prefetch_factor=prefetch_factor if workers else None,
        worker_init_fn=functools.partial(_torch_worker_init, shield_signals))
    return loader, sampler


def _ours_batches(loader):
    for batch in loader:
        yield torch.from_numpy(batch.data), torch.from_numpy(batch.labels), torch.from_numpy(batch.indices)


class Loader:
    """One implementation behind one interface: set_epoch(epoch, start_step), batches() -> iterator of
    (uint8 data, labels, indices) tensors, worker_pids(), close()."""

    def __init__(self, impl, paths, labels, batch_size, kind, workers, shield=True, **options):
        self.impl, self.pool = impl, None
        if impl == "ours":
            self.pool = loader_pool.make_pool(workers, shield_signals=shield)
            self.loader = batching.BatchLoader(paths, labels, batch_size, kind, pool=self.pool, **options)
            self.set_epoch = self.loader.set_epoch
        else:  # "torch-pf2", "torch-pf4": DataLoader with that prefetch_factor; "-shielded": workers ignore
            # SIGTERM, SIGUSR1 and SIGINT, as ours do in training
            prefetch, _, shielded = impl.split("pf", 1)[1].partition("-")
            self.loader, sampler = torch_loader(paths, labels, batch_size, kind, workers, int(prefetch),
                                                shield_signals=bool(shielded), **options)
            self.set_epoch = sampler.set_epoch

    def batches(self):
        return _ours_batches(self.loader) if self.pool is not None else iter(self.loader)

    def worker_pids(self):
        if self.pool is not None:
            return [p.pid for p in self.pool.processes]
        return [pid for pid in tree_pids(os.getpid())[1:] if "resource_tracker" not in _cmdline(pid)]

    def close(self):
        loader_pool.close_pool(self.pool)


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def tree_pids(root):
    """`root` and its descendants (from /proc/PID/task/*/children), root first."""
    pids, todo = [], [root]
    while todo:
        pid = todo.pop(0)
        pids.append(pid)
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return pids


def tree_cpu_seconds(root):
    """User + system CPU seconds of `root` and its live descendants, from /proc/PID/stat (getrusage's
    RUSAGE_CHILDREN sees only reaped children, not live persistent workers)."""
    total = 0
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def _rollup_kb(pid, key):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return next((int(line.split()[1]) for line in f if line.startswith(key + ":")), 0)
    except (OSError, ValueError):
        return 0


def _tagged_slot_dirs():
    """Make this process's SharedSlots folders carry its pid, so the measuring parent can add them."""
    class Tagged:
        @staticmethod
        def mkdtemp(prefix, dir):
            return tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=dir)
    batching.tempfile = Tagged


def _shm_bytes(pid):
    total = 0
    for entry in os.scandir("/dev/shm") if os.path.isdir("/dev/shm") else ():
        if entry.name.startswith(f"ucf101-slots-{pid}-"):
            total += sum(os.stat(os.path.join(entry.path, f)).st_blocks * 512 for f in os.listdir(entry.path)
                         if os.path.exists(os.path.join(entry.path, f)))
    return total


def run_epochs(spec):
    """In this process: one configuration, a warm-up epoch and spec["epochs"] timed ones. Returns
    {wall_s, cpu_s, samples} summed over the timed epochs (CPU of the whole tree: this process and
    its workers)."""
    cv2.setNumThreads(1)
    _tagged_slot_dirs()
    paths = [spec["paths"][i % len(spec["paths"])] for i in range(spec["samples"])]
    labels = [i % 101 for i in range(spec["samples"])]
    loader = Loader(spec["impl"], paths, labels, spec["batch_size"], spec["kind"], spec["workers"],
                    augment=True, shuffle=True, min_share=2, size=SIZE, **KIND_KWARGS[spec["kind"]])
    wall = cpu = count = 0
    try:
        for epoch in range(spec["epochs"] + 1):  # epoch 0 starts the workers and is not counted
            loader.set_epoch(epoch)
            cpu_start, start, n = tree_cpu_seconds(os.getpid()), time.perf_counter(), 0
            for data, _labels, _indices in loader.batches():
                n += len(data)
                int(data.reshape(-1)[::4096].sum())  # touch every page, as the step's normalisation would
            if epoch:
                wall += time.perf_counter() - start
                cpu += tree_cpu_seconds(os.getpid()) - cpu_start
                count += n
    finally:
        loader.close()
    return {"wall_s": wall, "cpu_s": cpu, "samples": count}


def _unmapped_shm_bytes(pids):
    """Bytes of shared-memory objects that processes of `pids` hold open but none maps: DataLoader's
    batches in flight (a worker keeps a duplicate of each batch's /dev/shm/torch_* descriptor until the
    training process takes it), which no PSS shows. Our slot files are counted by _shm_bytes."""
    held, mapped = {}, set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps") as f:
                mapped.update(int(line.split()[4]) for line in f if "/dev/shm/" in line)
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("/dev/shm/") and not target.startswith("/dev/shm/ucf101-slots-"):
                    st = os.stat(f"/proc/{pid}/fd/{fd}")
                    held[st.st_ino] = st.st_blocks * 512
        except (OSError, ValueError, IndexError):
            pass
    return sum(size for inode, size in held.items() if inode not in mapped)


def measure_tree(cmd, poll=0.2):
    """Run `cmd`; returns (its JSON result line, peak memory of its process tree in MB: summed PSS + our
    /dev/shm slot files + shared memory held open but not mapped, the same with RSS in MB). Polled every
    `poll` s from this process, outside the measured tree."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    peak_pss = peak_rss = 0
    while proc.poll() is None:
        pids = tree_pids(proc.pid)
        shm = _shm_bytes(proc.pid) + _unmapped_shm_bytes(pids)
        peak_pss = max(peak_pss, sum(_rollup_kb(p, "Pss") for p in pids) * 1024 + shm)
        peak_rss = max(peak_rss, sum(_rollup_kb(p, "Rss") for p in pids) * 1024 + shm)
        time.sleep(poll)
    out, _ = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[-2:])} failed with status {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1]), peak_pss / 2**20, peak_rss / 2**20


def vs_dataloader(args, paths):
    """Every (kind, workers, implementation), args.repeats times, interleaved: repeat r runs every
    configuration once, starting r configurations later. Returns one dict per configuration."""
    configs = [(kind, workers, impl) for kind in args.vs_kinds for workers in args.workers_list
               for impl in ["ours"] + [i for i in args.vs_impls if i != "ours"]]
    runs = {c: [] for c in configs}
    for r in range(args.repeats):
        for kind, workers, impl in configs[r:] + configs[:r]:
            spec = {"impl": impl, "kind": kind, "workers": workers, "paths": paths, "epochs": args.epochs,
                    "batch_size": args.vs_batch[kind], "samples": args.vs_samples[kind]}
            load = os.getloadavg()[0]
            result, pss, rss = measure_tree([sys.executable, os.path.abspath(__file__), "--run-epochs",
                                             json.dumps(spec)])
            runs[kind, workers, impl].append({**result, "peak_pss_mb": pss, "peak_rss_mb": rss, "load": load,
                                              "samples_per_s": result["samples"] / result["wall_s"],
                                              "cpu_ms_per_sample": result["cpu_s"] * 1000 / result["samples"]})
            print(f"  repeat {r + 1}: {kind} x{workers} {impl}: {runs[kind, workers, impl][-1]['samples_per_s']:.0f}"
                  f" samples/s, {runs[kind, workers, impl][-1]['cpu_ms_per_sample']:.2f} CPU ms/sample, "
                  f"PSS {pss:.0f} MB, load {load:.1f}", flush=True)
    rows = []
    for kind, workers, impl in configs:
        mine, ours = runs[kind, workers, impl], runs[kind, workers, "ours"]
        med = lambda key, rs=mine: statistics.median(r[key] for r in rs)  # noqa: E731
        ratios = [m["samples_per_s"] / o["samples_per_s"] for m, o in zip(mine, ours)]
        rows.append({"kind": kind, "workers": workers, "impl": impl, "runs": mine,
                     **{k: med(k) for k in ("samples_per_s", "cpu_ms_per_sample", "peak_pss_mb", "peak_rss_mb")},
                     "speed_spread": (min(r["samples_per_s"] for r in mine), max(r["samples_per_s"] for r in mine)),
                     "speed_vs_ours": statistics.median(ratios), "ratio_spread": (min(ratios), max(ratios)),
                     "pss_vs_ours_mb": med("peak_pss_mb") - med("peak_pss_mb", ours),
                     "load": (min(r["load"] for r in mine), max(r["load"] for r in mine))})
    return rows


def markdown_vs(rows, args):
    lines = [
        f"Median of {args.repeats} interleaved repeats, each a fresh process: a warm-up epoch, then {args.epochs} "
        f"timed epochs (augment, shuffle, 224x224 from 240x320 raw HDF5 in the page cache; the consumer only "
        f"touches every page of each batch). samples/s: wall clock; CPU ms/sample: user + system of the whole "
        f"tree (parent + workers, /proc/PID/stat); peak PSS: the tree's summed PSS + our /dev/shm slot files + "
        f"shared memory held open but mapped by none (DataLoader's batches in flight), "
        f"polled every 0.2 s from outside. vs ours: per repeat, against the run of ours in the same repeat, "
        f"median (min-max).",
        "",
        "| kind (batch, samples/epoch) | workers | loader | samples/s (min-max) | vs ours (min-max) | "
        "CPU ms/sample | peak PSS MB (vs ours) | peak RSS MB | load (1 min) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        impl = {"ours": "ours (pool + /dev/shm)", "torch-pf2": "DataLoader, prefetch 2",
                "torch-pf4": "DataLoader, prefetch 4"}[row["impl"]]
        lo, hi = row["speed_spread"]
        rlo, rhi = row["ratio_spread"]
        lines.append(
            f"| {row['kind']} ({args.vs_batch[row['kind']]}, {args.vs_samples[row['kind']]}) | {row['workers']} | "
            f"{impl} | {row['samples_per_s']:.0f} ({lo:.0f}-{hi:.0f}) | "
            f"{row['speed_vs_ours']:.2f} ({rlo:.2f}-{rhi:.2f}) | {row['cpu_ms_per_sample']:.2f} | "
            f"{row['peak_pss_mb']:.0f} ({row['pss_vs_ours_mb']:+.0f}) | {row['peak_rss_mb']:.0f} | "
            f"{row['load'][0]:.1f}-{row['load'][1]:.1f} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Behaviour checks of both implementations (each configuration in a process of its own)

BEHAVIOUR_IMPLS = {"ours": "ours", "torch-pf2": "DataLoader",
                   "torch-pf2-shielded": "DataLoader, workers ignoring SIGTERM/SIGUSR1/SIGINT"}


def _small_loader(impl, paths, workers=2, samples=48, batch_size=8):
    items = [paths[i % len(paths)] for i in range(samples)]
    return Loader(impl, items, [i % 101 for i in range(samples)], batch_size, "clip", workers, augment=True,
                  shuffle=True, size=SIZE, clip_len=8)


def _epoch_digest(loader, epoch, start_step=0):
    """[(indices, sha1 of the batch's bytes)] of one epoch from `start_step` on."""
    loader.set_epoch(epoch, start_step)
    return [(indices.tolist(), hashlib.sha1(data.numpy().tobytes()).hexdigest())
            for data, _labels, indices in loader.batches()]


def check_resume(spec):
    """Epoch 1 whole, then resumed at step spec["step"]: the remaining batches (order and augmentation
    draws, compared as bytes) must be the whole epoch's tail."""
    loader = _small_loader(spec["impl"], spec["paths"])
    try:
        whole = _epoch_digest(loader, 1)
        resumed = _epoch_digest(loader, 1, spec["step"])
        other_epoch = _epoch_digest(loader, 2)
    finally:
        loader.close()
    return {"steps": len(whole), "resumed_equal": resumed == whole[spec["step"]:], "whole": whole,
            "epoch_2_differs": other_epoch != whole}


def check_worker_kill(spec):
    """SIGKILL one worker after the second batch, as the out-of-memory killer would: what the loop sees."""
    loader = _small_loader(spec["impl"], spec["paths"], samples=400)
    got, killed_at, outcome = 0, None, {"raised": None}
    try:
        loader.set_epoch(0)
        for _ in loader.batches():
            got += 1
            if got == 2:
                victim = loader.worker_pids()[0]
                os.kill(victim, signal.SIGKILL)
                killed_at = time.perf_counter()
            time.sleep(0.05)  # a training step
    except Exception as e:  # noqa: BLE001 (what each implementation raises is the measurement)
        outcome = {"raised": type(e).__name__, "message": str(e).splitlines()[0][:200]}
    close_start = time.perf_counter()
    loader.close()
    return {**outcome, "batches_after_kill": got - 2,
            "seconds_to_error": None if killed_at is None else round(close_start - killed_at, 2),
            "close_s": round(time.perf_counter() - close_start, 2)}


def check_sigterm(spec):
    """Started in a session of its own; the measuring process sends SIGTERM to the whole group (as Slurm,
    PBS and Ctrl-C do) after "ready". Like the training scripts, the parent only notes the signal, then
    finishes its step and 'saves' (1 s); reported: whether the save finished, the workers alive during
    it, and whether one more batch still comes."""
    stop = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
    loader = _small_loader(spec["impl"], spec["paths"], samples=400)
    result = {"saved": False, "raised": None}
    try:
        loader.set_epoch(0)
        batches = loader.batches()
        pids = loader.worker_pids()
        for number, _ in enumerate(batches):
            if number == 1:
                print(json.dumps({"ready": True}), flush=True)
            time.sleep(0.1)  # a training step
            if stop:
                break
        time.sleep(0.3)
        result["workers_alive_while_saving"] = sum(os.path.exists(f"/proc/{p}") and _state(p) != "Z" for p in pids)
        time.sleep(0.7)  # saving the checkpoint
        result["saved"] = True
        next(batches)
        result["next_batch"] = "delivered"
    except Exception as e:  # noqa: BLE001
        result.update(raised=type(e).__name__, message=str(e).splitlines()[0][:200])
    finally:
        loader.close()
    return result


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def check_parent_kill(spec):
    """Prints the worker pids mid-epoch, then waits to be killed with SIGKILL by the measuring process."""
    loader = _small_loader(spec["impl"], spec["paths"], samples=400)
    loader.set_epoch(0)
    batches = loader.batches()
    next(batches)
    print(json.dumps({"pids": loader.worker_pids()}), flush=True)
    time.sleep(120)
    return {}


CHECKS = {"resume": check_resume, "worker-kill": check_worker_kill, "sigterm": check_sigterm,
          "parent-kill": check_parent_kill}


def _run_check(name, impl, paths, step=3, timeout=120):
    """Run CHECKS[name] for `impl` in a child process; returns its JSON result."""
    spec = json.dumps({"check": name, "impl": impl, "paths": paths, "step": step})
    cmd = [sys.executable, os.path.abspath(__file__), "--run-check", spec]
    if name == "resume" or name == "worker-kill":
        out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=timeout)
        return json.loads(out.stdout.strip().splitlines()[-1])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True)
    first = json.loads(proc.stdout.readline())
    if name == "sigterm":
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=timeout)
        lines = out.strip().splitlines()
        return {**(json.loads(lines[-1]) if lines else {"saved": False, "raised": "the process died"}),
                "status": proc.returncode}
    pids = first["pids"]
    os.kill(proc.pid, signal.SIGKILL)
    killed = time.perf_counter()
    proc.wait()
    while any(_state(p) not in ("gone", "Z") for p in pids) and time.perf_counter() - killed < 60:
        time.sleep(0.02)
    left = [p for p in pids if _state(p) not in ("gone", "Z")]
    for p in left:
        os.kill(p, signal.SIGKILL)
    return {"workers_gone_after_s": round(time.perf_counter() - killed, 2), "still_alive_after_60_s": left}


def behaviour_checks(paths):
    """Markdown lines: each check for ours and DataLoader."""
    results = {impl: {name: _run_check(name, impl, paths) for name in CHECKS} for impl in BEHAVIOUR_IMPLS}
    same = results["ours"]["resume"]["whole"] == results["torch-pf2"]["resume"]["whole"]
    lines = [f"- Ours and DataLoader give identical batches (indices and bytes) for the same (seed, epoch): {same}"]
    for impl in BEHAVIOUR_IMPLS:
        r = results[impl]
        name = BEHAVIOUR_IMPLS[impl]
        lines += [
            f"- {name}, resume at step 3 of {r['resume']['steps']}: remaining batches identical to the "
            f"uninterrupted epoch: {r['resume']['resumed_equal']} (epoch 2 differs: {r['resume']['epoch_2_differs']})",
            f"- {name}, a worker killed with SIGKILL: {r['worker-kill']['raised']}: "
            f"\"{r['worker-kill'].get('message', '')}\" after {r['worker-kill']['batches_after_kill']} more "
            f"batches, {r['worker-kill']['seconds_to_error']} s; close {r['worker-kill']['close_s']} s",
            f"- {name}, SIGTERM to the process group mid-epoch: saved {r['sigterm']['saved']}, workers alive "
            f"while saving {r['sigterm'].get('workers_alive_while_saving')}, next batch "
            f"{r['sigterm'].get('next_batch') or r['sigterm']['raised'] + ': ' + r['sigterm'].get('message', '')}"
            f", exit status {r['sigterm']['status']}",
            f"- {name}, parent killed with SIGKILL mid-epoch: workers gone after "
            f"{r['parent-kill']['workers_gone_after_s']} s (left after 60 s: "
            f"{r['parent-kill']['still_alive_after_60_s']})",
        ]
    return lines, results


# ----------------------------------------------------------------------------------------------
# Report

def summarize(rows, times):
    medians = {name: statistics.median(cpu for cpu, _ in values) for name, values in times.items()}
    table = []
    for name, kind, base, floor, _, _ in rows:
        ms = medians[name]
        table.append({
            "name": name, "kind": kind, "ms_per_sample": ms,
            "wall_ms_per_sample": statistics.median(wall for _, wall in times[name]),
            "repeats_cpu_ms": [cpu for cpu, _ in times[name]],
            "repeats_wall_ms": [wall for _, wall in times[name]],
            "baseline": base, "speedup": medians[base] / ms if base else None,
            "floor": floor, "floor_ratio": ms / medians[floor] if floor else None,
        })
    return table


def check_targets(table):
    """PASS/FAIL per target on CPU time; the same ratio on wall time is reported beside it."""
    by_name = {row["name"]: row for row in table}
    checks = []
    for name, other, what, bound in TARGETS:
        row, base = by_name[name], by_name[other]
        if what == "speedup":
            value = base["ms_per_sample"] / row["ms_per_sample"]
            wall = base["wall_ms_per_sample"] / row["wall_ms_per_sample"]
            ok, text = value >= bound, f"{name}: speed-up {value:.2f}x over {other} (target >= {bound}x)"
        else:
            value = row["ms_per_sample"] / base["ms_per_sample"]
            wall = row["wall_ms_per_sample"] / base["wall_ms_per_sample"]
            ok, text = value <= bound, f"{name}: {value:.3f}x the time of {other} (target <= {bound}x)"
        checks.append({"target": f"{text}; on wall time {wall:.2f}", "value": value, "wall_value": wall,
                       "pass": bool(ok)})
    return checks


def markdown_loaders(table, args):
    fmt = lambda v, spec: "" if v is None else format(v, spec)  # noqa: E731
    lines = [
        f"Single process, OpenCV on 1 thread. ms/sample: CPU time per sample (one core), median of "
        f"{args.repeats} interleaved repeats of {args.frame_samples} frames / {args.clip_samples} clips, "
        f"each after an untimed warm-up; wall: the median wall time of the same repeats (inflated when other "
        f"processes share the 2 cores). {args.videos} videos of {args.frames} frames at 240x320, small "
        f"enough to stay in the page cache: CPU cost, no disk reads. Speed-up: against the "
        f"assignment's loader with the same augmentation (aug vs aug, no aug vs no aug; the floor "
        f"against no aug), on CPU time. Floor: HDF5 open + read + close + uint8 resize to 224x224 "
        f"(+ JPEG decode for jpeg storage), no augmentation, no normalisation.",
        "",
        "| loader | ms/sample (CPU) | CPU min-max | wall ms/sample | speed-up vs assignment | ratio to floor |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in table:
        lines.append(f"| {row['name']} | {row['ms_per_sample']:.3f} | {min(row['repeats_cpu_ms']):.3f}-"
                     f"{max(row['repeats_cpu_ms']):.3f} | {row['wall_ms_per_sample']:.3f} | "
                     f"{fmt(row['speedup'], '.2f')}{'x' if row['speedup'] else ''} | "
                     f"{fmt(row['floor_ratio'], '.3f')} |")
    return "\n".join(lines)


def markdown_batches(batch_results, args):
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
    lines = [
        f"BatchLoader (raw storage, augment=True, shuffle=True, batch {args.batch_size}), one epoch of "
        f"{args.batch_samples} samples; the epoch with the median throughput of {args.epochs} (after a "
        f"warm-up epoch). samples/s and wait (time the consumer was blocked) are wall clock: the calling "
        f"process only iterates, so wait is nearly the whole epoch. CPU ms/sample: the workers' plus "
        f"the calling process's CPU time per sample (one core = 1000 ms/s), main: the calling "
        f"process's share (receiving the batches).",
        "",
        "| kind | workers | samples/s (wall) | wait s / epoch s | CPU ms/sample | main CPU ms/sample |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in batch_results:
        lines.append(f"| {row['kind']} | {row['workers']} | {row['samples_per_s']:.1f} | "
                     f"{row['wait_s']:.2f} / {row['epoch_s']:.2f} | {fmt(row['cpu_ms_per_sample'])} | "
                     f"{fmt(row['main_cpu_ms_per_sample'])} |")
    return "\n".join(lines)


def machine_line():
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{datetime.date.today().isoformat()}, {os.cpu_count()} cores ({cpu}), Python "
            f"{platform.python_version()}, numpy {np.__version__}, h5py {h5py.__version__} "
            f"(HDF5 {h5py.version.hdf5_version}), OpenCV {cv2.__version__}; load average at start "
            f"{', '.join(format(v, '.2f') if isinstance(v, float) else v for v in load)}")


def load_helpers(path):
    """Import helperFunctions from `path` (e.g. a patched copy) under its usual module name."""
    spec = importlib.util.spec_from_file_location("helperFunctions", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["helperFunctions"] = module  # pool workers resolve pickled functions by this name
    spec.loader.exec_module(module)
    return module


def vs_dataloader_main(args):
    """--vs-dataloader: our pool + shared-memory batching against torch's DataLoader; returns the rows."""
    print(args)
    machine = machine_line()
    print(machine)
    with tempfile.TemporaryDirectory(prefix="bench_loaders_") as tmp:
        raw_paths, _ = make_videos(args.out or tmp, args.videos, args.frames)
        rows, lines = [], []
        if not args.skip_speed:
            rows = vs_dataloader(args, raw_paths)
        if not args.skip_behaviour:
            lines, _ = behaviour_checks(raw_paths)
    load_end = os.getloadavg()
    report = [f"Machine: {machine}; load average at the end {', '.join(f'{v:.2f}' for v in load_end)}", ""]
    if rows:
        report += [markdown_vs(rows, args), ""]
    report += ["Behaviour (2 workers, clips of 8 frames, batch 8; each check in a process of its own):"] + lines
    print()
    print("\n".join(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "args": vars(args), "rows": rows, "behaviour": lines}, f, indent=1)
    return rows


def main(args):
    global hf
    cv2.setNumThreads(1)
    if args.run_epochs or args.run_check:  # a child of --vs-dataloader: one result line
        spec = json.loads(args.run_epochs or args.run_check)
        print(json.dumps(run_epochs(spec) if args.run_epochs else CHECKS[spec["check"]](spec)), flush=True)
        return []
    if args.vs_dataloader:
        vs_dataloader_main(args)
        return []
    print(args)
    if args.helpers:
        hf = load_helpers(args.helpers)
    print(f"helperFunctions: {os.path.abspath(hf.__file__)}")
    machine = machine_line()
    print(machine)
    with tempfile.TemporaryDirectory(prefix="bench_loaders_") as tmp:
        directory = args.out or tmp
        t0 = time.perf_counter()
        raw_paths, jpeg_paths = make_videos(directory, args.videos, args.frames)
        sizes = {s: sum(os.path.getsize(p) for p in ps) / len(ps) / 2**20
                 for s, ps in (("raw", raw_paths), ("jpeg", jpeg_paths))}
        print(f"wrote {args.videos} x 2 videos in {time.perf_counter() - t0:.1f} s to {directory} "
              f"(MiB per video: raw {sizes['raw']:.1f}, jpeg {sizes['jpeg']:.2f})")

        rows = loader_rows(raw_paths, jpeg_paths)
        times = measure_loaders(rows, args.repeats, args.frame_samples, args.clip_samples)
        table = summarize(rows, times)

        batch_results = []
        for kind in ("frame", "clip"):
            for workers in args.workers_list:
                runs = measure_batch_loader(raw_paths, kind, workers, args.batch_samples, args.batch_size,
                                            args.epochs)
                median = sorted(runs, key=lambda r: r["samples_per_s"])[len(runs) // 2]
                batch_results.append({"kind": kind, "workers": workers, **median,
                                      "samples_per_s_all": [r["samples_per_s"] for r in runs]})
                print(f"  BatchLoader {kind} x{workers}: {median['samples_per_s']:.1f} samples/s")

    checks = check_targets(table)
    report = "\n".join([f"Machine: {machine}", f"helperFunctions: {os.path.abspath(hf.__file__)}", "",
                        markdown_loaders(table, args), "", markdown_batches(batch_results, args), "",
                        "Targets (augmented vs augmented, CPU time):"]
                       + [f"- {'PASS' if c['pass'] else 'FAIL'}: {c['target']}" for c in checks])
    print()
    print(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "args": vars(args), "file_mib": sizes, "loaders": table,
                       "batch_loader": batch_results, "targets": checks}, f, indent=1)
    return checks


def get_args_parser():
    parser = argparse.ArgumentParser(description="Benchmark the assignment's loaders against ours.")
    parser.add_argument("--frames", type=int, default=150, help="frames per synthetic video (default 150)")
    parser.add_argument("--videos", type=int, default=8, help="synthetic videos per storage (default 8)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per loader (default 5)")
    parser.add_argument("--frame-samples", type=int, default=300,
                        help="frames loaded per timed repeat (default 300)")
    parser.add_argument("--clip-samples", type=int, default=60,
                        help="clips loaded per timed repeat (default 60)")
    parser.add_argument("--workers-list", type=lambda s: [int(v) for v in s.split(",")], default=[1, 2],
                        help="BatchLoader worker counts, comma-separated (default 1,2)")
    parser.add_argument("--batch-size", type=int, default=32, help="BatchLoader batch size (default 32)")
    parser.add_argument("--batch-samples", type=int, default=256,
                        help="samples per BatchLoader epoch (default 256)")
    parser.add_argument("--epochs", type=int, default=3, help="timed BatchLoader epochs (default 3)")
    parser.add_argument("--out", default=None, help="keep the videos in this directory (default: a temp dir)")
    parser.add_argument("--helpers", default=None,
                        help="benchmark this helperFunctions.py instead of the repository's (default none)")
    parser.add_argument("--strict", action="store_true",
                        help="exit with status 1 when a target fails (default: report only, exit 0)")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file (default none)")
    parser.add_argument("--vs-dataloader", action="store_true",
                        help="instead: our pool + shared-memory batching against torch's DataLoader with the same "
                             "per-sample loaders, order and draws (speed, CPU, tree memory, behaviours; default off)")
    parser.add_argument("--vs-kinds", type=lambda s: s.split(","), default=["frame", "clip", "segments"],
                        help="--vs-dataloader: sample kinds (default frame,clip,segments)")
    parser.add_argument("--vs-batch", type=_kind_ints, default={"frame": 64, "clip": 16, "segments": 32},
                        help="--vs-dataloader: batch size per kind (default frame=64,clip=16,segments=32)")
    parser.add_argument("--vs-samples", type=_kind_ints, default={"frame": 2048, "clip": 256, "segments": 768},
                        help="--vs-dataloader: samples per epoch per kind (default frame=2048,clip=256,segments=768)")
    parser.add_argument("--vs-impls", type=lambda s: s.split(","), default=["torch-pf2", "torch-pf4"],
                        help="--vs-dataloader: DataLoader variants measured beside ours: torch-pfN "
                             "(prefetch_factor N), torch-pfN-shielded (workers ignore SIGTERM/SIGUSR1/SIGINT) "
                             "(default torch-pf2,torch-pf4)")
    parser.add_argument("--skip-speed", action="store_true", help="--vs-dataloader: behaviour checks only")
    parser.add_argument("--skip-behaviour", action="store_true", help="--vs-dataloader: speed and memory only")
    parser.add_argument("--run-epochs", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--run-check", default=None, help=argparse.SUPPRESS)
    return parser


def _kind_ints(text):
    """"frame=64,clip=16" -> {"frame": 64, "clip": 16}."""
    return {k: int(v) for k, v in (part.split("=") for part in text.split(","))}


if __name__ == "__main__":
    args = get_args_parser().parse_args()
    results = main(args)
    sys.exit(1 if args.strict and not all(c["pass"] for c in results) else 0)
