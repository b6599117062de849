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
"""
import argparse
import datetime
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import cv2
import h5py
import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import helperFunctions as hf  # noqa: E402  (replaced by --helpers)
from bench import assignment_reference as ref

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


def main(args):
    global hf
    cv2.setNumThreads(1)
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
    return parser


if __name__ == "__main__":
    args = get_args_parser().parse_args()
    results = main(args)
    sys.exit(1 if args.strict and not all(c["pass"] for c in results) else 0)
