"""GPU benchmark: what a GPU run of this project costs, measured in one go on synthetic inputs.

    python bench/bench_gpu.py [--quick] [--compile] [--scale F] [--sections 1,2,3,5] [--json PATH]
    python bench/bench_gpu.py --dry-run     # no GPU: every configuration built and stepped once on the CPU

Everything runs through the project's own code, so the numbers are those of what users run: the
training scripts' parsers (the recipe defaults: batch sizes, trainable layers, optimizers), the zoo's
builders, devices.prepare_model (channels_last / channels_last_3d on CUDA), model_io.Normalize,
optim.build_optimizer, the engine's GradScaler rule and loop.train_one_epoch itself (with its
per-step synchronisations and pinned host-to-device copies), batching.BatchLoader through
training.build_loaders on HDF5 videos written here, and the test views' chunk plans and rows functions
fed chunk by chunk as video_stream.stream_videos feeds them. Inputs are random tensors and synthetic videos
(bench_loaders.synthetic_video) in a temporary folder; weights are random (speed does not depend on them).

1. train: samples/s, ms per step, peak GPU memory (torch.cuda.max_memory_allocated, reset per row) and
   the host-to-device copy of one batch, for the single-frame ResNet-50 (layer4.2,fc and all layers),
   the 3D ResNet-50 (layer4_blocks 1 training layer4.0,fc; layer4_blocks 3 training all) and C3D (all,
   16x112x112), each in fp32, AMP bf16 and AMP fp16 (GradScaler); then the largest batch that fits for
   the 3D ResNet with all of layer4 (a doubling search). A batch that runs out of memory is halved (at
   most 3 times) and the row says at which batches it ran out; `--scale` scales every batch first.
   The optimizer runs with lr 0: it does all of its work, but the random weights stay as they are, so
   no row diverges (a random C3D on its 0-255 inputs has a loss in the hundreds).
2. loader: the recipe-precision training steps of single frame, 3D ResNet (layer4_blocks 1) and C3D
   fed by BatchLoader from raw and JPEG HDF5 videos (240x320) at 4, 8 and 16 workers (at most
   os.cpu_count()): samples/s and the data wait = time the loop waited for the next batch (the pool's
   prefetch and the read of the batch from shared memory) / step time. Goal: under 5% (PASS/FAIL).
3. test: frames/s of the single-frame test, the 3D test in full and sliding mode and C3D sliding, on
   videos of 184 frames (the mean UCF-101 test length), in the recipe's AMP precision (bf16 where the
   GPU has it natively, else fp16).
4. --compile: rows of 1-3 also with torch.compile; compile time (first call minus a steady call) apart.
5. cudnn.benchmark on vs off when testing videos of many lengths (40 lengths in 30..500, random order,
   each once), for the 3D test in full mode (a new input shape per length), sliding mode (shapes
   repeat) and the single-frame test (the last chunk of each video has its own size). Each setting
   runs in a fresh process, as a test run does: cuDNN's plan cache is shared by both settings inside a
   process (a plan picked by the heuristics is reused with benchmark on and vice versa), so measuring
   both in one process would not measure either. Prints a recommendation per mode.

Timing: warm-up steps first (cuDNN's autotuner runs on the first shapes), then timed steps until about
`--target-s` seconds; every step end is taken after torch.cuda.synchronize(). Sections print their
elapsed time. The whole run keeps within `--budget-s` (default 450 s; `--quick`: 150 s): rows that no
longer fit are reported as skipped (about 150 s is kept for section 5). bf16 is "unsupported" on GPUs
without native bf16 (V100, T4). The report (JSON and Markdown) is rewritten after every section; a
section that fails is marked, the others still run, and the exit status is 1.

--dry-run (for machines without a GPU, and the tests): every configuration built and stepped once on
the CPU at tiny sizes (16x16 frames, 4-frame clips for the 3D ResNet; C3D at width 0.125 with
adaptive_pool=True, which the dry run alone uses so that 16x16x16 clips fit its fc6), AMP as CPU
autocast (fp16 on one configuration only: the CPU's fp16 convolutions take seconds a step; the
others say "cuda only"), 2 loader workers on a few tiny videos, compile with dynamo's eager backend.
Batches above --dry-run-memory-batch (2) raise a simulated out-of-memory error, so the halving and
the largest-batch search run too. Dry-run numbers are CPU timings of toy sizes: the table prints
"dry-run" instead of them.
"""
import argparse
import datetime
import gc
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from typing import NamedTuple

import numpy as np
import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)



import test_3d
import test_single_frame
import train_3d
import train_single_frame
from actionrec import guards
from actionrec.data import batching, loader_pool, normalization, video_files
from actionrec.engine import arg_types, cli_flags, devices, loop, model_io, optim, runner, training
from actionrec.evaluation import jsonfile
from actionrec.inference import clip_views, frame_views
from actionrec.zoo import clip_nets, frame_nets
from bench.bench_loaders import synthetic_video

NUM_CLASSES = 101
GOAL_WAIT_FRACTION = 0.05
RECIPE_WORKERS = cli_flags.DEFAULT_WORKERS
TEST_VIDEO_FRAMES = 184     # mean length of the UCF-101 split 1 test videos
DRY_RUN_TEST_FRAMES = 24
CUDNN_LENGTHS = (30, 500)   # test video lengths of section 5 (UCF-101's shortest is 30)
MAX_HALVINGS = 3
MAX_SEARCH_BATCH = 4096
PRECISIONS = {"fp32": (False, torch.float32), "bf16": (True, torch.bfloat16), "fp16": (True, torch.float16)}
# Seconds a row needs at least before it is started, against the run's budget.
ROW_COST_S = {"train": 15, "loader": 12, "test": 10, "cudnn": 30, "compile": 90}
CUDNN_RESERVE_S = 150  # kept for section 5 while sections 1-3 run

C3D_RECIPE = ["--arch", "c3d", "--optimizer", "sgd", "--lr", "1e-3", "--momentum", "0.9", "--weight-decay", "5e-4",
              "--head-lr-mult", "10", "--batch-size", "20"]  # train_3d.py's docstring recipe
# name -> (training script, its flags); the rest are the script's defaults (the assignment's recipe).
TRAIN_CONFIGS = {
    "single_frame/layer4.2,fc": (train_single_frame, ["--trainable", "layer4.2,fc"]),
    "single_frame/all": (train_single_frame, ["--trainable", "all"]),
    "3d_resnet50/layer4_blocks=1": (train_3d, []),
    "3d_resnet50/layer4_blocks=3": (train_3d, ["--layer4-blocks", "3", "--trainable", "all"]),
    "c3d": (train_3d, C3D_RECIPE),
}
DRY_RUN_FP16 = "single_frame/layer4.2,fc"  # the one configuration the dry run steps in fp16
QUICK_TRAIN = ("single_frame/layer4.2,fc", "3d_resnet50/layer4_blocks=1", "c3d")
LOADER_CONFIGS = ("single_frame/layer4.2,fc", "3d_resnet50/layer4_blocks=1", "c3d")
QUICK_LOADER = ("single_frame/layer4.2,fc", "3d_resnet50/layer4_blocks=1")
MAX_BATCH_CONFIG = "3d_resnet50/layer4_blocks=3"
# Dry run: tiny inputs the same models accept; C3D needs T, H, W >= 16 and adaptive_pool for fc6.
DRY_RUN_FLAGS = {"single_frame": ["--image-size", "16", "--batch-size", "2"],
                 "3d_resnet50": ["--image-size", "16", "--clip-len", "4", "--batch-size", "2"],
                 "c3d": ["--image-size", "16", "--c3d-width", "0.125", "--c3d-adaptive-pool", "--batch-size", "8"]}
# test name -> (training config whose model is tested, test script, mode)
TEST_CONFIGS = {
    "single_frame": ("single_frame/layer4.2,fc", test_single_frame, "frames"),
    "3d_full": ("3d_resnet50/layer4_blocks=1", test_3d, "full"),
    "3d_sliding": ("3d_resnet50/layer4_blocks=1", test_3d, "sliding"),
    "c3d_sliding": ("c3d", test_3d, "sliding"),
}
CUDNN_MODES = {"full": "3d_full", "sliding": "3d_sliding", "single_frame": "single_frame"}
TEST_REQUIRED = ["--checkpoint", "-", "--predictions-dir", "-", "--output-dir", "-"]

OOM = object()         # what attempt() returns when the GPU ran out of memory
NON_FINITE = object()  # ... when the loss was not finite, also with fresh weights
NON_FINITE_STATUS = "failed: non-finite loss (twice, the second time with fresh random weights)"


# ----------------------------------------------------------------------------------------------
# Configurations, from the scripts' own parsers

class TrainSpec(NamedTuple):
    name: str
    args: argparse.Namespace  # the training script's arguments
    script: object
    kind: str                 # the loader's sample kind: "frame" or "clip"
    loader_kwargs: dict
    model_key: str            # configurations with the same key share one model
    head: str

    def input_shape(self):
        """Per-sample model input (T, H, W) or (H, W)."""
        size = self.args.image_size
        return (self.args.clip_len, size, size) if self.kind == "clip" else (size, size)

    def normalize(self):
        if self.script is train_3d:
            return clip_nets.normalizer(self.args.norm)
        return model_io.Normalize(normalization.FRAME_MEAN, normalization.FRAME_STD)


def train_spec(name, dry_run=False, scale=1.0):
    """The arguments a training script would run `name` with (its recipe), tiny for a dry run."""
    script, flags = TRAIN_CONFIGS[name]
    flags = list(flags)
    if dry_run:
        flags += DRY_RUN_FLAGS[name.split("/")[0]]
    args = script.get_args_parser().parse_args(flags)
    if script is train_3d:
        clip_nets.resolve_arch_defaults(args)
    cli_flags.fill_defaults(args)
    args.batch_size = max(1, round(args.batch_size * scale))
    if script is train_single_frame:
        return TrainSpec(name, args, script, "frame", {}, args.arch, "fc")
    if args.arch == "c3d":
        return TrainSpec(name, args, script, "clip", {"clip_len": args.clip_len}, "c3d", "fc8")
    return TrainSpec(name, args, script, "clip", {"clip_len": args.clip_len},
                     f"resnet3d-{args.depth}/layer4_blocks={args.layer4_blocks}", "fc")


class TestSpec(NamedTuple):
    name: str
    train: TrainSpec
    mode: str        # "frames", "full" or "sliding"
    batch_size: int
    plan: object     # frames -> chunks, the test script's plan
    rows: object     # (model, uint8 chunk on the device, normalize) -> logits rows
    rows_name: str   # what a row of logits is: frames, pieces, windows, video
    video_start: object = None  # test_3d's exact full mode keeps state over a video's chunks:
    video_end: object = None    # engine.stream_videos' hooks


def test_spec(name, dry_run=False):
    """The test script's defaults for `name`: its plan (chunks) and rows function."""
    train_name, script, mode = TEST_CONFIGS[name]
    spec = train_spec(train_name, dry_run)
    if script is test_single_frame:
        t = test_single_frame.get_args_parser().parse_args(TEST_REQUIRED)
        return TestSpec(name, spec, mode, t.batch_size, frame_views.frame_plan(t.frames, t.chunk_frames),
                        frame_views.frame_logits(t.batch_size, t.crops), "frames")
    t = test_3d.get_args_parser().parse_args(TEST_REQUIRED + ["--mode", mode])
    clip_len = spec.args.clip_len
    batch_size = t.batch_size or clip_views.BATCH_CUDA
    if mode == "full":  # exact, in tiles
        tiled = clip_views.TiledFull(t.tile_frames, t.crops)
        return TestSpec(name, spec, mode, batch_size, clip_views.stream_plan(clip_len, t.chunk_frames), tiled.rows,
                        "video", tiled.start, tiled.end)
    return TestSpec(name, spec, mode, batch_size, clip_views.sliding_plan(clip_len, t.stride, t.chunk_frames),
                    clip_views.clip_logits(mode, clip_len, t.stride, batch_size, t.crops), "windows")


def native_bf16(device):
    """bf16 in hardware (Ampere and later). torch.cuda.is_bf16_supported() alone also says yes where
    bf16 is only emulated (V100, T4), which is slow."""
    if device.type != "cuda":
        return True
    return torch.cuda.is_bf16_supported(including_emulation=False)


def cpu_fp16_autocast_works():
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            torch.nn.functional.conv2d(torch.ones(1, 1, 3, 3), torch.ones(1, 1, 1, 1))
        return True
    except RuntimeError:
        return False


def precision_unavailable(precision, device, config=None, kind=None):
    """Why a precision cannot run here, or None. On the CPU (dry run) fp16 convolutions are slow
    reference kernels (seconds per step): fp16 and its GradScaler run on one configuration only; 3D
    models run in float32 on the CPU (engine.CPU_3D_AMP_NOTE: oneDNN's bf16 3D backward corrupts memory)."""
    if precision != "fp32" and device.type == "cpu" and kind == "clip":
        return "cpu: fp32 only (3D)"
    if precision == "bf16" and not native_bf16(device):
        return "unsupported"
    if precision == "fp16" and device.type == "cpu" and (config != DRY_RUN_FP16 or not cpu_fp16_autocast_works()):
        return "cuda only"
    return None


def recipe_precision(device, kind=None):
    """The AMP precision of a recipe run: bf16 where the GPU has it natively, else fp16; on the CPU
    (dry run) fp32 for 3D models (precision_unavailable)."""
    if precision_unavailable("bf16", device, kind=kind):
        return "fp32"
    return "bf16" if native_bf16(device) else "fp16"


# ----------------------------------------------------------------------------------------------
# Shared state, time budget, memory

class Budget:
    def __init__(self, seconds):
        self.start, self.seconds = time.perf_counter(), seconds

    def elapsed(self):
        return time.perf_counter() - self.start

    def left(self):
        return math.inf if not self.seconds else self.seconds - self.elapsed()

    def allows(self, cost):
        return self.left() >= cost


class Context:
    """The device, the models (built once per model key), pools and videos."""

    def __init__(self, args, device):
        self.args, self.device = args, device
        self.dry_run = args.dry_run
        self.budget = Budget(args.budget_s)
        self.models, self.compiled_models, self.on_device = {}, {}, None
        self.pools, self.videos = {}, {}
        self.frames, self.batches = {}, {}
        self.gpu_step = {}  # (config, precision) -> (batch, seconds per step) from section 1
        self.oom_above = args.dry_run_memory_batch if args.dry_run else 0
        self.reserve_s = 0  # seconds kept for later sections

    def log(self, text):
        print(f"[{self.budget.elapsed():6.1f} s] {text}", flush=True)

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def park(self):
        """Move the model on the device to host memory (its compiled graphs go: they are per device)."""
        if self.on_device is not None and self.device.type == "cuda":
            self.models[self.on_device].zero_grad(set_to_none=True)
            self.models[self.on_device].to("cpu")
            self.compiled_models.pop(self.on_device, None)
        self.on_device = None
        self.free_memory(collect=False)

    def evict(self):
        """Forget the model on the device (non-finite weights): its next use builds a fresh one."""
        self.models.pop(self.on_device, None)
        self.compiled_models.pop(self.on_device, None)
        self.on_device = None
        self.free_memory(collect=self.device.type == "cuda")

    def model(self, spec):
        """The model of `spec` on the device, built once; the only model there, so that peak memory
        is its own (the others wait in host memory)."""
        key = spec.model_key
        if key != self.on_device:
            self.park()
            if key not in self.models:
                build = clip_nets.build_model if spec.script is train_3d else frame_nets.build_model
                self.models[key] = build(spec.args, NUM_CLASSES, devices.Dist(), pretrained=False)
            self.models[key] = devices.prepare_model(self.models[key], self.device)
            self.on_device = key
        return self.models[key]

    def compiled(self, spec):
        """torch.compile of the model, one per model (its graphs are reused by later rows)."""
        if spec.model_key not in self.compiled_models:
            # The dry run traces with dynamo only: inductor's code generation takes minutes on a CPU.
            backend = "eager" if self.dry_run else "inductor"
            self.compiled_models[spec.model_key] = torch.compile(self.model(spec), backend=backend)
        return self.compiled_models[spec.model_key]

    def video_frames(self, frames, size):
        """uint8 (frames, size, size, 3) of noise; slices of one array per size."""
        have = self.frames.get(size)
        if have is None or len(have) < frames:
            self.frames[size] = np.random.default_rng(0).integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
        return self.frames[size][:frames]

    def peak_reset(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_gib(self):
        if self.device.type != "cuda":
            return None, None
        return (torch.cuda.max_memory_allocated(self.device) / 2 ** 30,
                torch.cuda.max_memory_reserved(self.device) / 2 ** 30)

    def free_memory(self, collect=True):
        """Drop gradients and cached blocks; `collect` also frees what only reference cycles hold (a
        failed step's frames), at ~0.3 s a call."""
        for model in self.models.values():
            model.zero_grad(set_to_none=True)
        if collect:
            gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def attempt(ctx, fn):
    """fn(); OOM when the GPU ran out of memory (its memory freed for the next try); NON_FINITE when
    the loss was not finite twice, the second time with fresh weights (lr 0 keeps the weights, but
    a non-finite gradient times 0 is still NaN)."""
    for _ in range(2):
        out_of_memory = False
        try:
            return fn()
        except torch.cuda.OutOfMemoryError:
            out_of_memory = True  # leave the except block first: its traceback holds the step's tensors
        except loop.NonFiniteLoss:
            pass
        ctx.free_memory()
        if out_of_memory:
            return OOM
        ctx.evict()
    return NON_FINITE


class NoStop:
    """engine.StopSignals' interface without the signal handlers: never stops."""
    received = None


class StepClock:
    """engine.train_one_epoch's log_step hook: the time at which each step's work has finished."""

    def __init__(self, ctx):
        self.ctx = ctx
        ctx.sync()
        self.ends = [time.perf_counter()]

    def __call__(self, step, loss):
        self.ctx.sync()
        self.ends.append(time.perf_counter())

    def since(self, step):
        return self.ends[-1] - self.ends[step] if len(self.ends) > step else 0.0

    def steps(self):
        return len(self.ends) - 1


class SyntheticLoader:
    """A loader for engine.train_one_epoch: the same uint8 batch every step (what the real loader
    ships), `warmup` steps and then timed ones until `target_s` seconds have passed (within
    [min_timed, max_timed] steps)."""

    wait_seconds = 0.0

    def __init__(self, data, labels, clock, warmup, min_timed, max_timed, target_s, oom_above=0):
        self.data, self.labels, self.clock = data, labels, clock
        self.warmup, self.min_timed, self.max_timed, self.target_s = warmup, min_timed, max_timed, target_s
        self.oom_above = oom_above

    def __len__(self):
        return self.warmup + self.max_timed

    def __iter__(self):
        if self.oom_above and len(self.labels) > self.oom_above:
            raise torch.cuda.OutOfMemoryError(f"simulated (dry run): batch {len(self.labels)} > {self.oom_above}")
        indices = np.arange(len(self.labels))
        for step in range(len(self)):
            if step >= self.warmup + self.min_timed and self.clock.since(self.warmup) >= self.target_s:
                return
            yield batching.Batch(self.data, self.labels, indices, len(self.labels))


class TimedLoader:
    """Wraps a BatchLoader: the time each step spent waiting for its batch."""

    def __init__(self, loader):
        self.loader, self.waits, self.samples = loader, [], []

    def __len__(self):
        return len(self.loader)

    @property
    def wait_seconds(self):
        return self.loader.wait_seconds

    def __iter__(self):
        batches = iter(self.loader)
        while True:
            start = time.perf_counter()
            batch = next(batches, None)
            if batch is None:
                return
            self.waits.append(time.perf_counter() - start)
            self.samples.append(len(batch.labels))
            yield batch


def step_plan(ctx, quick_steps, full_steps):
    """(warm-up, min timed, max timed) steps."""
    if ctx.dry_run:
        return 0, 1, 1
    return quick_steps if ctx.args.quick else full_steps


# ----------------------------------------------------------------------------------------------
# 1. Training steps

def synthetic_batch(ctx, spec, batch_size):
    """uint8 (N, [T,] H, W, 3) noise and int64 labels, shaped as the loader ships them; the first N of
    one array per sample shape (the largest-batch search would otherwise draw gigabytes anew)."""
    shape = spec.input_shape() + (3,)
    have = ctx.batches.get(shape)
    if have is None or len(have[0]) < batch_size:
        rng = np.random.default_rng(0)
        have = ctx.batches[shape] = (rng.integers(0, 256, (batch_size,) + shape, dtype=np.uint8),
                                     rng.integers(0, NUM_CLASSES, batch_size).astype(np.int64))
    return have[0][:batch_size], have[1][:batch_size]


def prepare_training(ctx, spec):
    """The model set up as engine.train sets it up: trainable layers, unused blocks and frozen BN."""
    model = ctx.model(spec)
    optim.set_trainable(model, spec.args.trainable)
    clip_nets.freeze_unused_blocks(model)
    optim.set_train_mode(model, bn_drift=False)
    return model


def run_training(ctx, spec, precision, compiled, loader, clock):
    """engine.train_one_epoch over `loader` with the recipe's optimizer and the engine's scaler rule."""
    model = prepare_training(ctx, spec)
    net = ctx.compiled(spec) if compiled else model
    if compiled:
        optim.set_train_mode(net, bn_drift=False)
    # lr 0: the optimizer does all of its work, but the random weights stay as they are, so that no
    # row diverges (C3D's 0-255 inputs give random weights a loss in the hundreds).
    optimizer = optim.build_optimizer(argparse.Namespace(**{**vars(spec.args), "lr": 0.0}), model, spec.head)
    amp = devices.model_amp(PRECISIONS[precision], ctx.device, model)
    # fp16 needs loss scaling, bf16 and fp32 do not: as engine.train builds it.
    scaler = devices.grad_scaler(ctx.device, amp)
    forward = model_io.Forward(spec.normalize().to(ctx.device))
    loop.train_one_epoch(net, loader, optimizer, scaler, forward, ctx.device, amp, devices.Dist(), NoStop(),
                           log_step=clock)
    # Each step whose gradients overflowed halved the scale and skipped its update (2**16 at the start).
    return round(math.log2(2 ** 16 / scaler.get_scale())) if scaler.is_enabled() else 0


def copy_ms(ctx, data):
    """Median ms of engine.to_device (pinned copy + transfer) of one batch."""
    times = []
    for _ in range(1 if ctx.dry_run else 3):
        ctx.sync()
        start = time.perf_counter()
        devices.to_device(data, ctx.device)
        ctx.sync()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def train_once(ctx, spec, precision, compiled, batch_size, plan):
    """One measurement at one batch size (raises OutOfMemoryError)."""
    warmup, min_timed, max_timed = plan
    data, labels = synthetic_batch(ctx, spec, batch_size)
    ctx.model(spec)
    ctx.free_memory(collect=False)
    ctx.peak_reset()
    clock = StepClock(ctx)
    loader = SyntheticLoader(data, labels, clock, warmup, min_timed, max_timed, ctx.args.target_s,
                             oom_above=ctx.oom_above)
    skipped = run_training(ctx, spec, precision, compiled, loader, clock)
    timed_steps = clock.steps() - warmup
    seconds = clock.since(warmup)
    step_times = np.diff(clock.ends)
    allocated, reserved = ctx.peak_gib()
    row = {"batch_size": batch_size, "warmup_steps": warmup, "timed_steps": timed_steps,
           "samples_per_s": batch_size * timed_steps / max(seconds, 1e-9),
           "step_ms": 1000 * seconds / max(timed_steps, 1),
           "peak_allocated_gib": allocated, "peak_reserved_gib": reserved,
           "h2d_ms": copy_ms(ctx, data), "fp16_skipped_updates": skipped}
    if compiled and len(step_times) > 1:
        row["compile_s"] = max(float(step_times[0] - np.median(step_times[1:])), 0.0)
    ctx.free_memory(collect=False)
    return row


def train_row(ctx, spec, precision, compiled):
    """A row of section 1: the recipe batch (after --scale), halved on out-of-memory."""
    row = {"id": f"train/{spec.name}/{precision}/{'compiled' if compiled else 'eager'}", "config": spec.name,
           "trainable": spec.args.trainable, "input": list(spec.input_shape()), "precision": precision,
           "compile": compiled, "requested_batch_size": spec.args.batch_size, "oom_at": []}
    why = precision_unavailable(precision, ctx.device, spec.name, spec.kind)
    if why:
        return {**row, "status": why}
    if not ctx.budget.allows(ROW_COST_S["compile" if compiled else "train"] + ctx.reserve_s):
        return {**row, "status": "skipped (time budget)"}
    batch_size = spec.args.batch_size
    while True:
        result = attempt(ctx, lambda: train_once(ctx, spec, precision, compiled, batch_size,  # noqa: B023 (at once)
                                                 step_plan(ctx, (2, 3, 10), (3, 5, 50))))
        if result is NON_FINITE:
            return {**row, "status": NON_FINITE_STATUS}
        if result is not OOM:
            return {**row, **result, "status": "ok"}
        row["oom_at"].append(batch_size)
        if batch_size == 1 or len(row["oom_at"]) > MAX_HALVINGS:
            return {**row, "status": "oom"}
        batch_size = max(1, batch_size // 2)


def max_batch_search(ctx, spec, precision):
    """The largest batch that trains: doubling from the recipe batch (halving when that does not fit)."""
    result = {"id": f"max_batch/{spec.name}/{precision}", "config": spec.name, "precision": precision,
              "trainable": spec.args.trainable, "input": list(spec.input_shape()), "trials": [],
              "max_batch_size": None, "first_oom_batch_size": None}
    batch_size = spec.args.batch_size
    while batch_size <= MAX_SEARCH_BATCH:
        if not ctx.budget.allows(ROW_COST_S["train"] + ctx.reserve_s):
            result["status"] = "skipped (time budget)"
            break
        r = attempt(ctx, lambda: train_once(ctx, spec, precision, False, batch_size,  # noqa: B023 (at once)
                                            step_plan(ctx, (1, 1, 1), (1, 2, 2))))
        if r is NON_FINITE:
            result["status"] = NON_FINITE_STATUS
            break
        ctx.log(f"  largest batch, {spec.name} {precision}: batch {batch_size} "
                f"{'out of memory' if r is OOM else 'fits'}")
        if r is OOM:
            result["trials"].append({"batch_size": batch_size, "status": "oom"})
            result["first_oom_batch_size"] = batch_size
            if result["max_batch_size"] is not None or batch_size == 1:
                break
            batch_size //= 2
        else:
            result["trials"].append({"status": "ok", **{k: r[k] for k in (
                "batch_size", "samples_per_s", "step_ms", "peak_allocated_gib", "peak_reserved_gib")}})
            result["max_batch_size"], result["at_max"] = batch_size, result["trials"][-1]
            if result["first_oom_batch_size"] is not None:
                break
            batch_size *= 2
    result.setdefault("status", "ok" if result["max_batch_size"] is not None else "oom")
    return result


def section_train(ctx):
    names = QUICK_TRAIN if ctx.args.quick and not ctx.dry_run else tuple(TRAIN_CONFIGS)
    rows, searches = [], []
    for name in names + ((MAX_BATCH_CONFIG,) if MAX_BATCH_CONFIG not in names else ()):
        spec = train_spec(name, ctx.dry_run, ctx.args.scale)
        if name in names:
            for precision in PRECISIONS:
                rows.append(logged(ctx, train_row(ctx, spec, precision, False)))
        if name == MAX_BATCH_CONFIG:  # while its model is on the device
            searches.append(max_batch_search(ctx, spec, recipe_precision(ctx.device, spec.kind)))
    return {"rows": rows, "max_batch": searches}


def logged(ctx, row):
    """Print a row's one-line summary; section 1 rows also record their step time for section 2."""
    if row["id"].startswith("train/"):
        if row["status"] == "ok" and not row["compile"]:
            ctx.gpu_step[(row["config"], row["precision"])] = (row["batch_size"], row["step_ms"] / 1000)
        text = describe_row(row, "samples_per_s", "samples/s")
    elif row["id"].startswith("loader/"):
        text = describe_row(row, "samples_per_s", "samples/s")
        if row["status"] == "ok":
            text += f", data wait {100 * row['wait_fraction']:.1f}% ({row['goal']})"
    else:
        text = describe_row(row, "frames_per_s", "frames/s")
    if row.get("compile_s") is not None:
        text += f", compile {row['compile_s']:.1f} s"
    ctx.log(f"{row['id']}: {text}")
    return row


def describe_row(row, key, unit):
    if row["status"] != "ok":
        return row["status"]
    text = f"{row[key]:.1f} {unit}"
    if row.get("peak_allocated_gib") is not None:
        text += f", peak {row['peak_allocated_gib']:.1f} GiB"
    if row.get("oom_at"):
        text += f" (out of memory at batch {', '.join(map(str, row['oom_at']))})"
    return text


# ----------------------------------------------------------------------------------------------
# 2. Training fed by the BatchLoader

def write_videos(ctx, directory):
    """Raw and JPEG HDF5 videos of 240x320 (dry run: 64x80): a few distinct ones, copied."""
    count, frames = ctx.args.videos, ctx.args.video_frames
    height, width = (64, 80) if ctx.dry_run else (240, 320)
    distinct = min(count, 4)
    rng = np.random.default_rng(0)
    paths = {"raw": [], "jpeg": []}
    for i in range(distinct):
        video = synthetic_video(rng, frames, height, width)
        for storage in paths:
            path = os.path.join(directory, storage, f"v_{i:03d}.hdf5")
            video_files.write_video_hdf5(path, video, storage=storage)
            paths[storage].append(path)
    for storage, written in paths.items():
        for i in range(distinct, count):
            path = os.path.join(directory, storage, f"v_{i:03d}.hdf5")
            shutil.copyfile(written[i % distinct], path)
            written.append(path)
    return paths, {"videos": count, "distinct": distinct, "frames": frames, "height": height, "width": width}


def loader_steps(ctx, name, precision):
    """(warm-up, timed) steps: about --target-s seconds of GPU work by section 1's step time."""
    if ctx.dry_run:
        return 0, 1
    warmup, low, high = (3, 5, 20) if ctx.args.quick else (4, 8, 40)
    step = ctx.gpu_step.get((name, precision))
    if step is None:
        return warmup, low
    return warmup, int(min(max(round(ctx.args.target_s / max(step[1], 1e-6)), low), high))


def loader_once(ctx, spec, precision, compiled, storage, workers, batch_size):
    warmup, timed = loader_steps(ctx, spec.name, precision)
    videos = ctx.videos[storage]
    count = batch_size * (warmup + timed)
    paths = [videos[i % len(videos)] for i in range(count)]
    labels = np.random.default_rng(1).integers(0, NUM_CLASSES, count)
    args = argparse.Namespace(**{**vars(spec.args), "batch_size": batch_size})
    train_loader, _ = training.build_loaders(args, spec.kind, ((paths, labels), (paths[:1], labels[:1])),
                                           ctx.pools[workers], devices.Dist(), spec.loader_kwargs)
    train_loader.set_epoch(0)
    loader = TimedLoader(train_loader)
    ctx.model(spec)
    clock = StepClock(ctx)
    skipped = run_training(ctx, spec, precision, compiled, loader, clock)
    seconds = clock.since(warmup)
    wait = sum(loader.waits[warmup:warmup + timed])
    samples = sum(loader.samples[warmup:warmup + timed])
    row = {"batch_size": batch_size, "warmup_steps": warmup, "timed_steps": clock.steps() - warmup,
           "samples_per_s": samples / max(seconds, 1e-9), "step_ms": 1000 * seconds / max(timed, 1),
           "wait_fraction": min(wait / max(seconds, 1e-9), 1.0),
           "engine_wait_fraction": min(train_loader.wait_seconds / max(clock.since(0), 1e-9), 1.0),
           "failed_samples": len(train_loader.failed), "fp16_skipped_updates": skipped}
    ctx.free_memory(collect=False)
    return row


def loader_row(ctx, spec, precision, compiled, storage, workers):
    row = {"id": f"loader/{spec.name}/{storage}/{workers}/{precision}/{'compiled' if compiled else 'eager'}",
           "config": spec.name, "storage": storage, "workers": workers, "precision": precision, "compile": compiled}
    if not ctx.budget.allows(ROW_COST_S["compile" if compiled else "loader"] + ctx.reserve_s):
        return {**row, "status": "skipped (time budget)"}
    batch_size, gpu_step_s = ctx.gpu_step.get((spec.name, precision), (spec.args.batch_size, None))
    r = attempt(ctx, lambda: loader_once(ctx, spec, precision, compiled, storage, workers, batch_size))
    if r is OOM or r is NON_FINITE:
        return {**row, "status": "oom" if r is OOM else NON_FINITE_STATUS, "batch_size": batch_size}
    row.update(r, status="ok")
    if gpu_step_s:  # what the same steps reach on an in-memory batch (section 1)
        row["synthetic_samples_per_s"] = batch_size / gpu_step_s
    row["goal"] = "PASS" if row["wait_fraction"] < GOAL_WAIT_FRACTION else "FAIL"
    return row


def section_loader(ctx):
    names = QUICK_LOADER if ctx.args.quick and not ctx.dry_run else LOADER_CONFIGS
    # The recipe's worker count first, so that a run cut short by its budget still has the PASS/FAIL rows.
    recipe = min(ctx.pools, key=lambda w: (abs(w - RECIPE_WORKERS), w))
    workers_list = [recipe] + ([] if ctx.args.quick and not ctx.dry_run else sorted(set(ctx.pools) - {recipe}))
    rows = []
    for workers in workers_list:
        for name in names:
            spec = train_spec(name, ctx.dry_run, ctx.args.scale)
            precision = recipe_precision(ctx.device, spec.kind)
            for storage in ("raw", "jpeg"):
                rows.append(logged(ctx, loader_row(ctx, spec, precision, False, storage, workers)))
    return rows


# ----------------------------------------------------------------------------------------------
# 3. Test throughput (and the passes of section 5)

def run_video(ctx, model, tspec, normalize, frames, amp):
    """One video through the test path, chunk by chunk as engine.stream_videos does; returns its rows."""
    rows = 0
    amp = devices.model_amp(amp, ctx.device, model)
    if tspec.video_start is not None:
        tspec.video_start()
        model = getattr(model, "_orig_mod", model)  # the tiled pass calls the stages, eager even when compiled
    chunks = tspec.plan(len(frames))
    for number, chunk in enumerate(chunks):
        start, stop = chunk if isinstance(chunk, tuple) else (chunk[0], chunk[-1] + 1)
        with devices.autocast(ctx.device, amp):
            out = tspec.rows(model, devices.to_device(frames[start:stop], ctx.device), normalize)
            if number + 1 == len(chunks) and tspec.video_end is not None:
                out = torch.cat([out, tspec.video_end(model)])
        rows += len(out.float().cpu().numpy())  # .cpu() waits for the GPU, as in stream_videos
    return rows


def test_model(ctx, tspec, compiled):
    model = ctx.model(tspec.train).eval()
    if compiled:
        model = ctx.compiled(tspec.train).eval()
    return model, tspec.train.normalize().to(ctx.device)


def test_once(ctx, tspec, precision, compiled, frames_per_video):
    model, normalize = test_model(ctx, tspec, compiled)
    amp = PRECISIONS[precision]
    frames = ctx.video_frames(frames_per_video, tspec.train.args.image_size)
    warmup, min_timed, max_timed = step_plan(ctx, (1, 2, 10), (2, 3, 100))
    ctx.peak_reset()
    times, rows = [], 0
    with torch.no_grad():
        for i in range(warmup + max_timed):
            if i >= warmup + min_timed and sum(times[warmup:]) >= ctx.args.target_s:
                break
            start = time.perf_counter()
            n = run_video(ctx, model, tspec, normalize, frames, amp)
            times.append(time.perf_counter() - start)
            if i >= warmup:
                rows += n
    timed = times[warmup:]
    seconds = sum(timed)
    allocated, reserved = ctx.peak_gib()
    row = {"video_frames": frames_per_video, "batch_size": tspec.batch_size, "videos_timed": len(timed),
           "frames_per_s": frames_per_video * len(timed) / max(seconds, 1e-9),
           "rows_per_s": rows / max(seconds, 1e-9), "rows": tspec.rows_name,
           "peak_allocated_gib": allocated, "peak_reserved_gib": reserved}
    if compiled and len(times) > 1:
        row["compile_s"] = max(times[0] - statistics.median(times[1:]), 0.0)
    return row


def test_row(ctx, name, precision, compiled):
    tspec = test_spec(name, ctx.dry_run)
    row = {"id": f"test/{name}/{precision}/{'compiled' if compiled else 'eager'}", "test": name,
           "mode": tspec.mode, "config": tspec.train.name, "input_size": tspec.train.args.image_size,
           "precision": precision, "compile": compiled}
    if not ctx.budget.allows(ROW_COST_S["compile" if compiled else "test"] + ctx.reserve_s):
        return {**row, "status": "skipped (time budget)"}
    frames = DRY_RUN_TEST_FRAMES if ctx.dry_run else TEST_VIDEO_FRAMES
    r = attempt(ctx, lambda: test_once(ctx, tspec, precision, compiled, frames))
    return {**row, **({"status": "oom"} if r is OOM else {**r, "status": "ok"})}


def section_test(ctx):
    # C3D first: its model is still on the device after section 1.
    names = ["c3d_sliding"] + [n for n in TEST_CONFIGS if n != "c3d_sliding"]
    return [logged(ctx, test_row(ctx, name, test_precision(ctx.device, name), False)) for name in names]


def test_precision(device, name):
    return recipe_precision(device, test_spec(name, dry_run=device.type == "cpu").train.kind)


# ----------------------------------------------------------------------------------------------
# 4. torch.compile

# In order of interest, grouped by model (a model's compiled graphs serve its later rows).
COMPILE_ROWS = (("train", "3d_resnet50/layer4_blocks=1"), ("test", "3d_sliding"), ("test", "3d_full"),
                ("train", "single_frame/layer4.2,fc"), ("test", "single_frame"), ("train", "c3d"),
                ("test", "c3d_sliding"), ("loader", "3d_resnet50/layer4_blocks=1"),
                ("loader", "single_frame/layer4.2,fc"), ("loader", "c3d"), ("train", "single_frame/all"),
                ("train", "3d_resnet50/layer4_blocks=3"))
QUICK_COMPILE_ROWS = COMPILE_ROWS[:2]


def compiled_row(ctx, section, name, precision):
    """One row of sections 1-3 with torch.compile; a compiler that fails is a result, not a crash."""
    import torch._dynamo  # noqa: F401  (only compile runs pay for importing it)
    try:
        if section == "train":
            return train_row(ctx, train_spec(name, ctx.dry_run, ctx.args.scale), precision, True)
        if section == "test":
            return test_row(ctx, name, precision, True)
        workers = min(ctx.pools, key=lambda w: (abs(w - RECIPE_WORKERS), w))
        return loader_row(ctx, train_spec(name, ctx.dry_run, ctx.args.scale), precision, True, "raw", workers)
    except (torch._dynamo.exc.TorchDynamoException, RuntimeError, ImportError, OSError) as e:
        ctx.free_memory()
        prefix = {"train": "train", "test": "test", "loader": "loader"}[section]
        return {"id": f"{prefix}/{name}/{precision}/compiled", "config": name, "precision": precision,
                "compile": True, "status": f"failed: {runner.one_line(e)}"}


def section_compile(ctx, sections):
    todo = QUICK_COMPILE_ROWS if ctx.args.quick and not ctx.dry_run else COMPILE_ROWS
    rows = []
    for section, name in todo:
        if section in sections:
            precision = (test_precision(ctx.device, name) if section == "test" else
                         recipe_precision(ctx.device, train_spec(name, ctx.dry_run).kind))
            rows.append(logged(ctx, compiled_row(ctx, section, name, precision)))
    return rows


# ----------------------------------------------------------------------------------------------
# 5. cuDNN benchmark mode on vs off, each in a fresh process

def cudnn_lengths(args):
    """Distinct video lengths in random order (section 5)."""
    count = 2 if args.dry_run else (12 if args.quick else 40)
    low, high = (18, 30) if args.dry_run else CUDNN_LENGTHS
    return [int(x) for x in np.random.default_rng(0).choice(np.arange(low, high + 1), count, replace=False)]


def cudnn_passes(args):
    """Child process of section 5: every mode over the lengths with cudnn.benchmark set as asked;
    returns {mode: {"cold": [s per video], "warm": [...], ...}}."""
    ctx = Context(args, devices.resolve_device("cpu" if args.dry_run else "cuda", devices.Dist()))
    torch.backends.cudnn.benchmark = args.cudnn_setting == "on"
    lengths = cudnn_lengths(args)
    cap = args.pass_cap_s or math.inf
    # Start-up has used part of the budget already; the modes share what is left.
    deadline = time.perf_counter() + max(args.budget_s - 15, 5) if args.budget_s else math.inf
    result = {"setting": args.cudnn_setting, "lengths": lengths, "modes": {}}
    for number, (mode, name) in enumerate(CUDNN_MODES.items()):
        precision = test_precision(ctx.device, name)
        amp = PRECISIONS[precision]
        tspec = test_spec(name, args.dry_run)
        model, normalize = test_model(ctx, tspec, False)
        size = tspec.train.args.image_size
        frames = ctx.video_frames(max(lengths), size)
        mode_end = time.perf_counter() + (deadline - time.perf_counter()) / (len(CUDNN_MODES) - number)
        passes = {}
        with torch.no_grad():
            # Initialise cuDNN and cuBLAS and load kernels on an input of another size, whose plans
            # are of no use to the measured shapes.
            warm_size = size // 2
            run_video(ctx, model, tspec, normalize, ctx.video_frames(lengths[0], warm_size)[:lengths[0]], amp)
            for which in ("cold", "warm"):  # new lengths; then the same lengths again
                times = []
                todo = lengths if which == "cold" else lengths[:len(passes["cold"])]
                start_pass = time.perf_counter()
                # The first pass may take most of the mode's time; the second is the fast one.
                end = min(start_pass + cap, start_pass + 0.75 * (mode_end - start_pass) if which == "cold"
                          else mode_end)
                for length in todo:
                    ctx.sync()
                    start = time.perf_counter()
                    run_video(ctx, model, tspec, normalize, frames[:length], amp)
                    times.append(time.perf_counter() - start)
                    if time.perf_counter() > end:
                        break
                passes[which] = times
        result["modes"][mode] = {**passes, "frames": sum(lengths[:len(passes["cold"])]), "test": name,
                                 "precision": precision}
    return result


def run_cudnn_child(ctx, setting, work, share):
    """One child process; it gets `share` of the time left (it stops its passes in time)."""
    out = os.path.join(work, f"cudnn_{setting}.json")
    cmd = [sys.executable, os.path.abspath(__file__), "--cudnn-setting", setting, "--cudnn-out", out,
           "--pass-cap-s", str(ctx.args.pass_cap_s)]
    cmd += ["--dry-run"] * ctx.dry_run + ["--quick"] * ctx.args.quick
    timeout = None
    if not math.isinf(ctx.budget.left()):
        child_budget = max(share * ctx.budget.left(), 20)
        cmd += ["--budget-s", f"{child_budget:.0f}"]
        timeout = child_budget + 60  # start-up, model builds and the video in progress
    try:
        done = subprocess.run(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "skipped (time budget: killed)"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return {"status": f"failed: {last[:300]}"}
    with open(out) as f:
        return {**json.load(f), "status": "ok"}


def recommend(mode, off, on):
    """{setting, text, ...} from the two processes' per-video times over the videos both finished."""
    n = min(len(off["cold"]), len(on["cold"]))
    if n == 0:
        return {"setting": None, "text": f"--mode {mode}: no measurement"}
    cold_off, cold_on = sum(off["cold"][:n]), sum(on["cold"][:n])
    warm_n = min(len(off["warm"]), len(on["warm"]), n)
    warm_off, warm_on = sum(off["warm"][:warm_n]), sum(on["warm"][:warm_n])
    ratio = cold_on / max(cold_off, 1e-9)
    setting = "off" if ratio > 1.05 else "on" if ratio < 1 / 1.05 else "either"
    what = {"full": "test_3d.py --mode full", "sliding": "test_3d.py --mode sliding",
            "single_frame": "test_single_frame.py"}[mode]
    verdict = {"off": "turn cudnn.benchmark OFF", "on": "keep cudnn.benchmark ON",
               "either": "no clear difference (within 5%): either setting"}[setting]
    text = (f"recommendation for {what}: {verdict} -- {n} videos of {n} lengths, each once: "
            f"on {cold_on:.2f} s, off {cold_off:.2f} s (on/off {ratio:.2f})")
    result = {"setting": setting, "videos": n, "on_s": cold_on, "off_s": cold_off, "on_over_off": ratio,
              "on_seen_s": warm_on, "off_seen_s": warm_off}
    # When lengths recur, the tuning is paid once per length and its gain on every video of that length.
    gain, cost = (warm_off - warm_on) / max(warm_n, 1), (cold_on - cold_off) / n
    if warm_n and cost > 0:
        if gain > 0:
            result["break_even_repeats"] = 1 + cost / gain
            text += (f"; once tuned, on is {warm_off / max(warm_on, 1e-9):.2f}x as fast, so it pays off when "
                     f"each length recurs {result['break_even_repeats']:.1f}+ times")
        else:
            text += "; on is not faster even once tuned"
    result["text"] = text
    return result


def section_cudnn(ctx, work):
    lengths = cudnn_lengths(ctx.args)
    processes = {}
    # Off first: its passes are the short ones, so it gets a third of the time left and on the rest.
    for setting, share in (("off", 1 / 3), ("on", 1.0)):
        if not ctx.budget.allows(ROW_COST_S["cudnn"]):
            processes[setting] = {"status": "skipped (time budget)"}
        else:
            processes[setting] = run_cudnn_child(ctx, setting, work, share)
        ctx.log(f"cudnn.benchmark {setting}: {processes[setting]['status']}")
    rows = []
    for mode, name in CUDNN_MODES.items():
        row = {"id": f"cudnn/{mode}", "mode": mode, "test": name}
        if any(processes[s]["status"] != "ok" for s in processes):
            row["status"] = "; ".join(f"{s}: {p['status']}" for s, p in processes.items() if p["status"] != "ok")
        else:
            off, on = processes["off"]["modes"][mode], processes["on"]["modes"][mode]
            row.update(status="ok", off_per_video_s=off["cold"], on_per_video_s=on["cold"],
                       on_seen_per_video_s=on["warm"], off_seen_per_video_s=off["warm"],
                       **recommend(mode, off, on))
            row["frames"] = sum(lengths[:row["videos"]])
        rows.append(row)
        if row["status"] == "ok":
            ctx.log(row["text"])
    precisions = {m: processes.get("on", {}).get("modes", {}).get(m, {}).get("precision") for m in CUDNN_MODES}
    return {"lengths": lengths, "precision": precisions, "rows": rows}


# ----------------------------------------------------------------------------------------------
# Report

def environment(device):
    env = {"device": devices.device_name(device), "torch": torch.__version__, "cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
           "python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
           "gpu": None, "recipe_precision": recipe_precision(device)}
    try:  # the loaders hand batches over through /dev/shm; a small one sends them through pipes
        env["dev_shm_free_gib"] = shutil.disk_usage("/dev/shm").free / 2 ** 30
    except OSError:
        env["dev_shm_free_gib"] = None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, gpu_memory_gib=props.total_memory / 2 ** 30,
                   capability=f"{props.major}.{props.minor}", bf16_native=native_bf16(device),
                   bf16_is_bf16_supported=torch.cuda.is_bf16_supported(),
                   engine_amp=str(devices.amp_settings(argparse.Namespace(amp=None), device)[1]).replace("torch.", ""),
                   cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                   matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32)
    return env


def cell(ctx, value, digits=1, percent=False):
    if value is None:
        return ""
    if ctx.dry_run:
        return "dry-run"
    return f"{100 * value:.{digits}f}%" if percent else f"{value:,.{digits}f}"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def shape_text(shape):
    return "x".join(map(str, shape[:-2])) + ("x" if len(shape) > 2 else "") + f"{shape[-2]}²"


def status_text(row):
    if row["status"] == "ok" and row.get("oom_at"):
        return f"ok at {row['batch_size']} (OOM at {', '.join(map(str, row['oom_at']))})"
    return "OOM" if row["status"] == "oom" else row["status"]


def max_batch_line(ctx, m):
    at_max = m.get("at_max") or {}
    text = (f"Largest batch that trains, {m['config']} ({m['trainable']}, {shape_text(m['input'])}, "
            f"{m['precision']}): {m['max_batch_size']}")
    if m["first_oom_batch_size"]:
        text += f" (first out of memory: {m['first_oom_batch_size']}{', simulated' if ctx.dry_run else ''})"
    if at_max:
        text += f", {cell(ctx, at_max['samples_per_s'])} samples/s"
        if at_max.get("peak_allocated_gib") is not None:
            text += f", peak {cell(ctx, at_max['peak_allocated_gib'], 2)} GiB"
    trials = ", ".join(f"{t['batch_size']}{'' if t['status'] == 'ok' else ' OOM'}" for t in m["trials"])
    return text + f"; trials {trials}" + ("" if m["status"] == "ok" else f"; {m['status']}")


def yes_no(flag):
    return "yes" if flag else "no"


def markdown(ctx, report):
    """The report as Markdown: one table per section, numbers shown as 'dry-run' in a dry run."""
    env, s = report["environment"], report["sections"]
    head = (f"{report['date']}; {env['device']}; torch {env['torch']}, CUDA {env['cuda']}, cuDNN {env['cudnn']}"
            + ("; --quick" if report["quick"] else "")
            + (f"; --scale {report['scale']:g}" if report["scale"] != 1 else "")
            + f"; {report.get('elapsed_s', 0):.0f} s in all")
    out = [f"# GPU benchmark ({'dry run on the CPU, tiny sizes' if ctx.dry_run else env['gpu']})", "", head, ""]
    titles = {"train": "1. Training", "loader": "2. Training fed by BatchLoader", "test": "3. Test throughput",
              "compile": "4. torch.compile", "cudnn": "5. cudnn.benchmark on vs off"}
    s = dict(s)
    for name in list(s):
        if "status" in s[name]:  # a section that failed: its heading and why
            out += [f"## {titles[name]} ({s[name]['elapsed_s']:.0f} s)", "", s[name]["status"], ""]
            del s[name]
    if "train" in s:
        rows = [[r["config"], r.get("trainable", ""), shape_text(r["input"]) if r.get("input") else "",
                 r["precision"], yes_no(r["compile"]), r.get("batch_size", r.get("requested_batch_size", "")),
                 cell(ctx, r.get("samples_per_s")), cell(ctx, r.get("step_ms")),
                 cell(ctx, r.get("peak_allocated_gib"), 2), cell(ctx, r.get("h2d_ms")), status_text(r)]
                for r in s["train"]["rows"]]
        out += [f"## 1. Training ({s['train']['elapsed_s']:.0f} s)", "",
                table(["config", "trainable", "input", "precision", "compile", "batch", "samples/s", "ms/step",
                       "peak GiB", "H2D ms", "status"], rows), ""]
        out += [max_batch_line(ctx, m) for m in s["train"].get("max_batch", [])] + [""]
    if "loader" in s:
        v = s["loader"]["videos"]
        rows = [[r["config"], r.get("storage", ""), r.get("workers", ""), r["precision"], yes_no(r["compile"]),
                 r.get("batch_size", ""), cell(ctx, r.get("samples_per_s")),
                 cell(ctx, r.get("synthetic_samples_per_s")),
                 cell(ctx, r.get("wait_fraction"), 1, True), cell(ctx, r.get("engine_wait_fraction"), 1, True),
                 ("dry-run" if ctx.dry_run else r["goal"]) if r["status"] == "ok" else status_text(r)]
                for r in s["loader"]["rows"]]
        out += [f"## 2. Training fed by BatchLoader ({s['loader']['elapsed_s']:.0f} s)", "",
                f"{v['videos']} videos of {v['frames']} frames, {v['height']}x{v['width']}, raw and JPEG storage; "
                f"data wait = time the loop waited for its next batch / step time, goal < "
                f"{100 * GOAL_WAIT_FRACTION:.0f}% (the recipe runs {RECIPE_WORKERS} workers); 'in memory' = the "
                f"same steps on a batch already in memory (section 1); 'engine wait' = what log.jsonl reports "
                f"(the pool's prefetch only, warm-up included).", "",
                table(["config", "storage", "workers", "precision", "compile", "batch", "samples/s",
                       "in memory samples/s", "data wait", "engine wait", "goal"], rows), ""]
    if "test" in s:
        rows = [[r.get("test", r["config"]), r["config"], r.get("mode", ""),
                 f"{r['input_size']}²" if r.get("input_size") else "", r["precision"], yes_no(r["compile"]),
                 r.get("batch_size", ""), cell(ctx, r.get("frames_per_s")),
                 f"{cell(ctx, r['rows_per_s'])} {r['rows']}" if r.get("rows") else "",
                 cell(ctx, r.get("peak_allocated_gib"), 2), status_text(r)] for r in s["test"]["rows"]]
        out += [f"## 3. Test throughput ({s['test']['elapsed_s']:.0f} s)", "",
                f"Videos of {DRY_RUN_TEST_FRAMES if ctx.dry_run else TEST_VIDEO_FRAMES} frames, chunk by chunk as "
                f"the test scripts feed them (host-to-device copies included).", "",
                table(["test", "model", "mode", "input", "precision", "compile", "batch", "frames/s", "rows/s",
                       "peak GiB", "status"], rows), ""]
    if "compile" in s:
        rows = [[r["id"], cell(ctx, r.get("compile_s")), cell(ctx, r.get("eager")), cell(ctx, r.get("compiled")),
                 cell(ctx, r.get("speedup"), 2), r["status"]] for r in s["compile"]["rows"]]
        out += [f"## 4. torch.compile ({s['compile']['elapsed_s']:.0f} s)", "",
                "compile s = the first call minus a steady one; eager and compiled in samples/s (training) or "
                "frames/s (test).", "",
                table(["row", "compile s", "eager", "compiled", "compiled/eager", "status"], rows), ""]
    if "cudnn" in s:
        c = s["cudnn"]
        rows = [[r["mode"], r.get("videos", ""), r.get("frames", ""), cell(ctx, r.get("off_s"), 2),
                 cell(ctx, r.get("on_s"), 2), cell(ctx, r.get("off_seen_s"), 2), cell(ctx, r.get("on_seen_s"), 2),
                 ("dry-run" if ctx.dry_run else r["setting"]) if r["status"] == "ok" else r["status"]]
                for r in c["rows"]]
        out += [f"## 5. cudnn.benchmark on vs off ({c['elapsed_s']:.0f} s)", "",
                f"{len(c['lengths'])} videos of distinct lengths {min(c['lengths'])}-{max(c['lengths'])}, random "
                f"order, each once, with the setting's own fresh process; 'seen' = the same videos again in that "
                f"process.", "",
                table(["mode", "videos", "frames", "off s", "on s", "off s (seen)", "on s (seen)", "recommended"],
                      rows), ""]
        prefix = "(dry run: CPU timings of toy sizes, not a recommendation) " if ctx.dry_run else ""
        out += [prefix + r["text"] for r in c["rows"] if r["status"] == "ok"] + [""]
    return "\n".join(out)


def compile_summary(sections):
    """Section 4: each compiled row beside its eager twin."""
    metric = {"train": "samples_per_s", "loader": "samples_per_s", "test": "frames_per_s"}
    rows = []
    for name, key in metric.items():
        section_rows = sections.get(name, {}).get("rows", [])
        eager = {r["id"].rsplit("/", 1)[0]: r for r in section_rows if not r.get("compile")}
        for r in section_rows:
            if not r.get("compile"):
                continue
            twin = eager.get(r["id"].rsplit("/", 1)[0], {})
            row = {"id": r["id"], "status": r["status"], "metric": key, "compile_s": r.get("compile_s"),
                   "eager": twin.get(key), "compiled": r.get(key)}
            if row["eager"] and row["compiled"]:
                row["speedup"] = row["compiled"] / row["eager"]
            rows.append(row)
    return rows


def write_report(ctx, report, json_path, markdown_path):
    jsonfile.write_json(json_path, report)
    with open(markdown_path, "w", encoding="utf-8") as f:
        f.write(markdown(ctx, report) + "\n")


def main(args):  # noqa: C901 (split up in the restructure, issue 21)
    if args.dry_run:
        # Toy tensors gain nothing from a second thread, and on a busy machine two OpenMP threads
        # waiting on each other cost several times the work.
        torch.set_num_threads(1)
    if args.cudnn_setting:  # section 5's child process
        jsonfile.write_json(args.cudnn_out, cudnn_passes(args))
        return 0
    if not args.dry_run and not torch.cuda.is_available():
        raise guards.UserError("no CUDA device found: this benchmark needs a GPU (--dry-run checks it on the CPU)")
    sections = set(args.sections)
    args.target_s = args.target_s if args.target_s is not None else (0.6 if args.quick else 1.5)
    args.budget_s = args.budget_s if args.budget_s is not None else (0 if args.dry_run else 150 if args.quick else 450)
    args.pass_cap_s = args.pass_cap_s if args.pass_cap_s is not None else (15 if args.quick else 45)
    args.videos = args.videos or (4 if args.dry_run else 64)
    args.video_frames = args.video_frames or (20 if args.dry_run else 60)
    json_path = args.json or os.path.join(REPO_ROOT, "bench", "gpu_results_dry_run.json" if args.dry_run
                                          else "gpu_results.json")
    markdown_path = args.markdown or os.path.splitext(json_path)[0] + ".md"
    workers_counts = sorted({min(w, os.cpu_count() or 1) for w in args.workers_list})
    if args.dry_run:
        workers_counts = [min(2, os.cpu_count() or 1)]

    # Loader pools first, as engine.train makes them: forked before CUDA and the models exist.
    pools = {w: loader_pool.make_pool(w) for w in workers_counts} if 2 in sections else {}
    work = tempfile.mkdtemp(prefix="bench_gpu-", dir=args.work_dir)
    try:
        device = devices.resolve_device("cpu" if args.dry_run else "cuda", devices.Dist())  # cudnn.benchmark on
        ctx = Context(args, device)
        ctx.pools = pools
        ctx.reserve_s = (CUDNN_RESERVE_S / 3 if args.quick else CUDNN_RESERVE_S) if 5 in sections else 0
        report = {"benchmark": "bench/bench_gpu.py", "date": datetime.datetime.now().isoformat(timespec="seconds"),
                  "dry_run": args.dry_run, "quick": args.quick, "compile": args.compile, "scale": args.scale,
                  "budget_s": args.budget_s, "target_s": args.target_s, "environment": environment(device),
                  "sections": {}}
        s = report["sections"]
        ctx.log(f"{report['environment']['device']}, torch {torch.__version__}, CUDA {torch.version.cuda}; "
                f"sections {','.join(map(str, sorted(sections)))}{', compile' if args.compile else ''}; "
                f"budget {args.budget_s or 'none'} s")
        timed_sections = []
        if 1 in sections:
            timed_sections.append(("train", lambda: section_train(ctx)))
        if 3 in sections:
            timed_sections.append(("test", lambda: {"rows": section_test(ctx)}))
        if 2 in sections:
            def loader_section():
                paths, info = write_videos(ctx, os.path.join(work, "videos"))
                ctx.videos = paths
                ctx.log(f"wrote {info['videos']} raw and {info['videos']} JPEG videos of {info['frames']} frames")
                rows = section_loader(ctx)
                if not args.compile:  # idle workers until the end are memory (and CPU noise) for nothing
                    for pool in pools.values():
                        loader_pool.close_pool(pool)
                    pools.clear()
                return {"videos": info, "goal_wait_fraction": GOAL_WAIT_FRACTION,
                        "recipe_workers": RECIPE_WORKERS, "rows": rows}
            timed_sections.append(("loader", loader_section))
        if 5 in sections:
            timed_sections.append(("cudnn", lambda: section_cudnn(ctx, work)))

        def compile_section():
            for row in section_compile(ctx, s):
                s[row["id"].split("/")[0]]["rows"].append(row)
            return {"rows": compile_summary(s)}

        if args.compile:
            timed_sections.append(("compile", compile_section))
        failed = []
        for name, run in timed_sections:
            start = time.perf_counter()
            ctx.log(f"section {name}")
            try:
                s[name] = run()
            # GPU time comes in one short session: a fault in one section must not cost the others
            # their numbers. The traceback is printed, the section marked, the exit status 1.
            except Exception as e:  # noqa: BLE001
                traceback.print_exc()
                failed.append(name)
                s[name] = {"status": f"failed: {type(e).__name__}: {runner.one_line(e)}", "rows": []}
                ctx.free_memory()
            s[name]["elapsed_s"] = time.perf_counter() - start
            ctx.log(f"section {name}: {s[name]['elapsed_s']:.1f} s")
            if name == "cudnn":
                ctx.reserve_s = 0
            report["elapsed_s"] = ctx.budget.elapsed()
            write_report(ctx, report, json_path, markdown_path)  # after every section: a crash keeps them
        print("\n" + markdown(ctx, report))
        print(f"wrote {json_path} and {markdown_path}")
        if failed:
            print(f"bench_gpu.py: sections that failed: {', '.join(failed)} (tracebacks above)", file=sys.stderr)
        return 1 if failed else 0
    finally:
        for pool in pools.values():
            loader_pool.close_pool(pool)
        shutil.rmtree(work, ignore_errors=True)


def sections_list(text):
    try:
        values = {int(x) for x in text.split(",") if x.strip()}
    except ValueError:
        values = set()
    if not values or not values <= {1, 2, 3, 5}:
        raise argparse.ArgumentTypeError(f"must be a comma-separated subset of 1,2,3,5, not {text!r} "
                                         f"(4, torch.compile, is --compile)")
    return values


def workers_list(text):
    try:
        values = [arg_types.positive_int(x) for x in text.split(",") if x.strip()]
    except argparse.ArgumentTypeError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"must be worker counts like 4,8,16, not {text!r}")
    return values


def get_args_parser():
    p = argparse.ArgumentParser(
        prog="bench_gpu.py",
        description="GPU benchmark of training, loading, testing, torch.compile and cudnn.benchmark on synthetic "
                    "inputs, through the project's own code; --dry-run checks it on the CPU.")
    p.add_argument("--dry-run", action="store_true",
                   help="no GPU needed: every configuration built and stepped once on the CPU at tiny sizes "
                        "(default: off; without it a machine without CUDA exits with status 2)")
    p.add_argument("--quick", action="store_true",
                   help="a ~2-minute subset: the recipe configurations, 8 workers, 12 lengths (default: off)")
    p.add_argument("--compile", action="store_true",
                   help="also run sections 1-3 with torch.compile, in the recipe's AMP precision (default: off)")
    p.add_argument("--sections", type=sections_list, default={1, 2, 3, 5},
                   help="sections to run: 1 train, 2 loader, 3 test, 5 cudnn.benchmark (default: 1,2,3,5)")
    p.add_argument("--scale", type=arg_types.positive_float, default=1.0,
                   help="multiply every training batch size, e.g. 0.25 on a 16 GB GPU (default: 1)")
    p.add_argument("--workers-list", type=workers_list, default=[4, 8, 16],
                   help="loader worker counts of section 2, each at most os.cpu_count() (default: 4,8,16)")
    p.add_argument("--videos", type=arg_types.positive_int, default=None,
                   help="HDF5 videos written for section 2, per storage (default: 64; dry run: 4)")
    p.add_argument("--video-frames", type=arg_types.positive_int, default=None,
                   help="frames per video of section 2 (default: 60; dry run: 20)")
    p.add_argument("--target-s", type=arg_types.positive_float, default=None,
                   help="seconds of timed steps per row, after the warm-up (default: 1.5; quick: 0.6)")
    p.add_argument("--budget-s", type=arg_types.non_negative_float, default=None,
                   help="stop starting rows when this many seconds have passed; 0 = no limit "
                        "(default: 450; quick: 150; dry run: 0)")
    p.add_argument("--pass-cap-s", type=arg_types.non_negative_float, default=None,
                   help="section 5: stop a pass over the videos after this many seconds and compare the videos "
                        "both settings finished; 0 = no cap (default: 45; quick: 15)")
    p.add_argument("--dry-run-memory-batch", type=arg_types.positive_int, default=2,
                   help="dry run: batches above this raise a simulated out-of-memory error (default: 2)")
    p.add_argument("--json", default=None,
                   help="results as JSON (default: bench/gpu_results.json; dry run: bench/gpu_results_dry_run.json)")
    p.add_argument("--markdown", default=None, help="the printed tables (default: the JSON path with .md)")
    p.add_argument("--work-dir", default=None, help="where the temporary videos go (default: the system's temp dir)")
    p.add_argument("--cudnn-setting", choices=("on", "off"), default=None, help=argparse.SUPPRESS)
    p.add_argument("--cudnn-out", default=None, help=argparse.SUPPRESS)
    return p


if __name__ == "__main__":
    sys.exit(runner.run_main(main, get_args_parser()))
