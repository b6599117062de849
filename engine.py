"""What every model's scripts share: flags, devices, DDP, the training and evaluation loops, the
optimizers and learning-rate schedules, TensorBoard, the per-video test and feature-extraction loop,
checkpoints, resume and scheduler signals.

The scripts differ only in how they build the model and which loader kind they use ("frame",
"clip", "segments" for TSN, "features" for the RNN); everything here serves all of them.
"""
import argparse
import contextlib
import ctypes
import datetime
import errno
import hashlib
import json
import math
import os
import pickle
import re
import shutil
import signal
import sys
import time
from typing import NamedTuple

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

import helperFunctions as hf
from actionrec import runlog
from actionrec.evaluation import accuracy, jsonfile
from actionrec.evaluation import predictions as prediction_files
from actionrec.evaluation import scores as video_scores
from actionrec.reporting import console
from guards import PROVENANCE_NAME, UserError, check_output_paths, dataset_inputs, script_inputs  # noqa: F401

DEFAULT_WORKERS = 8  # loader processes per GPU: the loader benchmark shows 8 keep a GPU fed
# On the CPU the forward pass takes 20-80 ms of CPU per frame against 0.1-0.2 ms to load it: loader
# processes only take cores from the model (bench/README.md, test-script benchmark), so none by default.
DEFAULT_WORKERS_CPU = 0
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped by a scheduler signal after saving; run again to continue
COMPLETE_MARKER = "COMPLETE"
CHECKPOINT_NAME = "checkpoint.pth"
LOG_NAME = "log.jsonl"


# Errors of a path itself (not of a bug), with what to do: a file where a folder is expected, permissions,
# a full disk.
PATH_ERRNOS = {
    errno.EEXIST: "a file is where a folder is expected",
    errno.ENOTDIR: "a file is where a folder is expected",
    errno.EISDIR: "a folder is where a file is expected",
    errno.EACCES: "choose a folder you can write to",
    errno.EPERM: "choose a folder you can write to",
    errno.EROFS: "choose a folder you can write to",
    errno.ENOSPC: "free some space and run again",
    errno.EDQUOT: "free some space and run again",
}


def run_main(main, parser, argv=None):
    """Parse the command line and run `main(args)`; a UserError, or an OSError of a path itself
    (PATH_ERRNOS), becomes one line and exit status 2, a dead loader worker one line and exit status 1
    (the last checkpoint is kept: run again to resume)."""
    args = parser.parse_args(argv)
    try:
        return main(args)
    except UserError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:
        # A path the user chose that cannot be used (a file where a folder goes, no permission, a
        # full or read-only disk): one line naming it. Other OS errors are bugs and keep their traceback.
        full = e.errno in (errno.ENOSPC, errno.EDQUOT)  # a write to an open file names no file
        if e.errno not in PATH_ERRNOS or (e.filename is None and not full):
            raise
        where = f"cannot use {e.filename}" if e.filename is not None else "cannot write"
        print(f"{parser.prog}: error: {where}: {write_failure(e, e.filename or '.')}", file=sys.stderr)
        sys.exit(2)
    except hf.LoaderWorkerDied as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        sys.exit(1)
    except (MemoryError, RuntimeError) as e:
        # An allocation the machine cannot give (numpy's MemoryError, torch's OutOfMemoryError on CUDA,
        # its RuntimeError "DefaultCPUAllocator: can't allocate memory"): one line with the flags that
        # size it. Other RuntimeErrors are bugs and keep their traceback.
        if not out_of_memory(e):
            raise
        flags = [f for f in MEMORY_FLAGS if f in parser._option_string_actions]
        print(f"{parser.prog}: error: out of memory ({memory_error_text(e)}): use a smaller "
              f"{' or '.join(flags) or 'input'}; the last checkpoint and finished files are kept", file=sys.stderr)
        sys.exit(2)
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


MEMORY_FLAGS = ("--batch-size", "--image-size", "--chunk-frames", "--max-frames")  # what sizes an allocation


def out_of_memory(error):
    """Whether an exception says an allocation failed (host or GPU memory), not a bug."""
    return isinstance(error, (MemoryError, torch.OutOfMemoryError)) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error))


def memory_error_text(error):
    """The useful part of an allocation failure: numpy's and CUDA's first line, torch's CPU message
    without its "[enforce fail at alloc_cpu.cpp:127] err == 0." prefix."""
    text = one_line(error)
    return text[text.find("DefaultCPUAllocator"):] if "DefaultCPUAllocator" in text else text


# ----------------------------------------------------------------------------------------------
# Flags

def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, not {text}")
    return value


MAX_SEED = 2 ** 64 - 1  # torch.manual_seed's limit; numpy takes any integer >= 0


def seed_int(text):
    """A seed: numpy refuses negative seeds, torch those of more than 64 bits."""
    value = non_negative_int(text)
    if value > MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer in 0..{MAX_SEED}, not {text}")
    return value


# UCF-101's frames are 320x240: a larger size only upscales them, and far larger ones cannot be
# allocated (a batch of 100 frames of 100000x100000 is 3 TB); the limit stops them at the flag.
MAX_IMAGE_SIZE = 1024


def image_size(text):
    value = positive_int(text)
    if value > MAX_IMAGE_SIZE:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_IMAGE_SIZE} (UCF-101's frames are 320x240), "
                                         f"not {text}")
    return value


def non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, not {text}")
    return value


def positive_float(text):
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def lr_steps(text):
    """'30,60' (epochs at which the lr is multiplied by --lr-gamma) or 'every:10'."""
    text = text.strip()
    if text.startswith("every:"):
        return ("every", positive_int(text[len("every:"):]))
    try:
        steps = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        steps = ()
    if not steps or min(steps) <= 0 or list(steps) != sorted(set(steps)):
        raise argparse.ArgumentTypeError(f"must be increasing epochs like 30,60 or every:10, not {text!r}")
    return steps


def common_parser():
    """Flags shared by every training and test script."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("data and devices")
    g.add_argument("--data-dir", default=None,
                   help="folder holding ucfTrainTestlist/ and the videos: UCF-101-hdf5/ (the course's HDF5 files) "
                        "and/or UCF-101/ (the original .avi release); for HMDB-51 testTrainMulti_7030_splits/ and "
                        "hmdb51-hdf5/ and/or hmdb51/ (default: data; test scripts: the training run's)")
    g.add_argument("--dataset", choices=hf.DATASETS, default="auto", help=hf.DATASET_HELP)
    g.add_argument("--storage", choices=hf.STORAGES, default="auto",
                   help="which videos to read: auto = the HDF5 file where it exists, else the original video; "
                        "hdf5 or video = only those (default: auto)")
    g.add_argument("--split", type=int, choices=(1, 2, 3), default=None,
                   help="official split (default: 1; test scripts: the training run's)")
    g.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                   help="auto: CUDA when present, else CPU with a warning (default: auto)")
    g.add_argument("--workers", type=non_negative_int, default=None,
                   help=f"loader processes; 0 loads in the main process (default: {DEFAULT_WORKERS} on CUDA, "
                        f"{DEFAULT_WORKERS_CPU} on the CPU)")
    g.add_argument("--image-size", type=image_size, default=None,
                   help=f"frame size fed to the model, at most {MAX_IMAGE_SIZE} (default: 224; C3D: 112; test scripts: "
                        f"the training run's)")
    g.add_argument("--seed", type=seed_int, default=0,
                   help="seed for shuffling, augmentation and evaluation frames, >= 0 (default: 0)")
    g.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="mixed precision: bf16 where supported, else fp16 with a loss scaler "
                        "(default: on for CUDA, off on CPU)")
    return p


def train_parser(defaults):
    """Training flags; `defaults` sets the model-specific defaults (batch size, trainable layers, and
    optionally lr, epochs, optimizer, weight_decay, clip_grad_norm)."""
    d = {"lr": 1e-4, "epochs": 10, "optimizer": "adam", "weight_decay": 0.0, "clip_grad_norm": None,
         "lr_schedule": "constant", **defaults}
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("training")
    g.add_argument("--output-dir", default=d["output_dir"],
                   help=f"checkpoint.pth, log.jsonl and tensorboard/ go here (default: {d['output_dir']})")
    g.add_argument("--batch-size", type=positive_int, default=d["batch_size"],
                   help=f"samples per step on each GPU/process (default: {d['batch_size']})")
    g.add_argument("--epochs", type=positive_int, default=d["epochs"], help=f"total epochs (default: {d['epochs']})")
    g.add_argument("--trainable", default=d["trainable"],
                   help="comma-separated parameter-name prefixes to train, or 'all' (default: "
                        f"{d.get('trainable_help') or d['trainable']})")
    g.add_argument("--bn-drift", action="store_true",
                   help="let frozen layers' BatchNorm statistics update as the assignment's code does "
                        "(default: frozen BatchNorm stays in eval mode)")
    g.add_argument("--partial-bn", action="store_true",
                   help="TSN's partial BN: every BatchNorm but the first stays in eval mode with frozen affine "
                        "parameters, for runs that train all layers on little data (default: off)")
    g.add_argument("--eval-every", type=positive_int, default=1,
                   help="test (or validation) accuracy every N epochs and after the last (default: 1)")
    g.add_argument("--eval-batch-size", type=positive_int, default=None,
                   help="batch size for the per-epoch test accuracy (default: --batch-size)")
    g.add_argument("--val-groups", default=None,
                   help="hold these groups (1-25) of the training list out of training, e.g. 8-10 or 1,3,5-7: the "
                        "per-epoch accuracy is then measured on them (val_acc) instead of on the test videos, so "
                        "no choice (epochs, fusion weights) is made on the test set. " + hf.GROUPS_HELP.replace(
                            "%", "%%") + " (default: none)")
    g.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue from OUTPUT_DIR/checkpoint.pth when present (default: on)")
    g.add_argument("--max-steps", type=non_negative_int, default=0,
                   help="stop each epoch after N steps, for smoke tests (default: 0 = whole epoch)")
    g.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=True,
                   help="write TensorBoard event files to OUTPUT_DIR/tensorboard/ (default: on; "
                        "look with: tensorboard --logdir runs/)")
    g.add_argument("--tensorboard-every", type=positive_int, default=10,
                   help="steps between points of the per-step training loss curve (default: 10)")
    o = p.add_argument_group("optimizer and learning-rate schedule")
    o.add_argument("--optimizer", choices=("adam", "sgd"), default=d["optimizer"],
                   help=f"adam (the assignment's) or sgd with --momentum (default: {d['optimizer']})")
    o.add_argument("--lr", type=positive_float, default=d["lr"], help=f"learning rate (default: {d['lr']:g})")
    o.add_argument("--momentum", type=non_negative_float, default=0.9, help="SGD momentum (default: 0.9)")
    o.add_argument("--weight-decay", type=non_negative_float, default=d["weight_decay"],
                   help=f"L2 weight decay (default: {d['weight_decay']:g})")
    o.add_argument("--lr-schedule", choices=("constant", "step", "cosine"), default=d["lr_schedule"],
                   help="constant; step: times --lr-gamma at each of --lr-steps; cosine: down to 0 at the last "
                        f"epoch (default: {d['lr_schedule']})")
    o.add_argument("--lr-steps", type=lr_steps, default=None,
                   help="epochs at which the step schedule multiplies the lr by --lr-gamma: 30,60 or every:10 "
                        "(required with --lr-schedule step)")
    o.add_argument("--lr-gamma", type=positive_float, default=0.1, help="step schedule factor (default: 0.1)")
    o.add_argument("--warmup-epochs", type=non_negative_float, default=0.0,
                   help="linear warm-up from 0 to --lr over this many epochs, step by step (default: 0)")
    o.add_argument("--clip-grad-norm", type=positive_float, default=d["clip_grad_norm"],
                   help="clip the global gradient norm to this value "
                        f"(default: {d['clip_grad_norm'] if d['clip_grad_norm'] else 'off'})")
    o.add_argument("--head-lr-mult", type=positive_float, default=1.0,
                   help="learning-rate factor of the new classifier (C3D's recipe: 10) (default: 1)")
    return p


def test_parser(defaults):
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("testing")
    g.add_argument("--checkpoint", required=True, help="checkpoint.pth written by the training script")
    g.add_argument("--predictions-dir", required=True,
                   help="per-video prediction files go here: <Class>/<video>.hdf5, dataset 'predictions', "
                        "and model.json (what was tested, how, and how fast)")
    g.add_argument("--output-dir", required=True, help="results.json and confusion_matrix.npy go here")
    g.add_argument("--subset", choices=("test", "val", "train"), default="test",
                   help="videos to test: the split's test list; val = the groups the training run held out "
                        "(--val-groups); train = the training videos, to see how far a model over-fits "
                        "(default: test)")
    cpu_batch = defaults.get("batch_size_cpu")
    g.add_argument("--batch-size", type=positive_int, default=None if cpu_batch else defaults["batch_size"],
                   help=f"{defaults['unit']} per forward pass (default: {defaults['batch_size']}"
                        + (f" on CUDA, {cpu_batch} on the CPU)" if cpu_batch else ")"))
    if defaults.get("chunk_frames"):
        g.add_argument("--chunk-frames", type=positive_int, default=defaults["chunk_frames"],
                       help="frames loaded at a time, so memory does not grow with video length; up to "
                       "max(3, workers + 1) chunks wait in /dev/shm, resized (default: "
                       f"{defaults['chunk_frames']})")
    if defaults.get("crops", True):
        g.add_argument("--crops", type=int, choices=hf.CROPS, default=1,
                       help="views per frame, logits averaged: 1 = the whole frame resized (as in training); "
                            "3 = left/centre/right squares of the frame resized to short side --image-size; "
                            "10 = 4 corners + centre of the frame resized to short side --image-size*256/224, "
                            "each also mirrored (TSN's test) (default: 1)")
    g.add_argument(
        "--limit", type=non_negative_int, default=0, help="test only the first N videos of the subset (default: all)"
    )
    g.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="skip the videos PREDICTIONS_DIR already holds from the same run (same checkpoint, "
                        "mode and views; a folder of another run is refused); --no-resume redoes every video "
                        "(default: on)")
    return p


def fill_defaults(args, trained_args=None):
    """Defaults that test scripts take from the training run; training uses the assignment's."""
    base = {"data_dir": "data", "split": 1, "image_size": hf.IMAGE_SIZE}
    for key, value in base.items():
        if getattr(args, key, None) is None:
            setattr(args, key, (trained_args or {}).get(key, value))
    resolve_dataset(args)
    if getattr(args, "workers", 0) is None:
        args.workers = DEFAULT_WORKERS if uses_cuda(args) else DEFAULT_WORKERS_CPU
    return args


def resolve_dataset(args):
    """args.dataset ("auto" or absent: detected from --data-dir) -> "ucf101" or "hmdb51", printed once
    (rank 0) when detected; the resolved name is what the checkpoint and results record."""
    dataset = getattr(args, "dataset", "auto") or "auto"
    try:
        args.dataset = hf.resolve_dataset(args.data_dir, dataset)
    except ValueError as e:
        raise UserError(str(e)) from None
    if dataset == "auto" and Dist().main:
        print(f"dataset: {args.dataset} (detected from the contents of --data-dir {args.data_dir}; "
              f"--dataset chooses)", flush=True)
    return args.dataset


def uses_cuda(args):
    """Whether --device (auto, cuda or cpu) will run on CUDA (resolve_device checks that it exists)."""
    device = getattr(args, "device", "auto")
    return device == "cuda" or (device == "auto" and torch.cuda.is_available())


def print_args(args):
    print("arguments: " + " ".join(f"{k}={v}" for k, v in sorted(vars(args).items())), flush=True)


# ----------------------------------------------------------------------------------------------
# Devices, DDP, precision

class Dist:
    """Rank information; world_size 1 without torchrun."""

    def __init__(self):
        self.rank = int(os.environ.get("RANK", 0))
        self.world_size = int(os.environ.get("WORLD_SIZE", 1))
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        self.enabled = self.world_size > 1

    @property
    def main(self):
        return self.rank == 0

    def init(self, device):
        if self.enabled and not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            # Test videos are shared unevenly in time; a long barrier must not time out.
            dist.init_process_group(backend, timeout=datetime.timedelta(hours=2),
                                    device_id=device if device.type == "cuda" else None)

    def all_reduce(self, values, device, op=None):
        """Sum (or `op`) a list of numbers over ranks; returns floats."""
        if not self.enabled:
            return [float(v) for v in values]
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t, op=op or dist.ReduceOp.SUM)
        return t.tolist()

    def barrier(self):
        if self.enabled:
            dist.barrier()


def resolve_device(name, ranks, fixed_shapes=True):
    """The torch.device for --device; on CUDA, cuDNN's benchmark mode only for fixed input shapes.

    Benchmark mode times every candidate kernel the first time it sees a shape, then reuses the
    fastest: a win when every step has the same shape (training, single frames, sliding windows), a
    loss when every input is new (test_3d.py --mode full: one pass per video, and videos differ in
    length, so it would autotune again for nearly every video). bench/bench_gpu.py measures both
    settings over videos of many lengths; the same predictions come out either way.
    """
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
        if name == "cpu" and ranks.main:
            print("warning: no CUDA device found: running on the CPU, which is slow for real data",
                  file=sys.stderr, flush=True)
    if name == "cuda":
        torch.cuda.set_device(ranks.local_rank)
        torch.backends.cudnn.benchmark = fixed_shapes
        return torch.device("cuda", ranks.local_rank)
    return torch.device("cpu")


# oneDNN's bf16 3D-convolution backward (torch 2.14.1's oneDNN, jit:avx512_core / avx512_core_bf16 kernels,
# i.e. x86 CPUs with AVX-512 but without AMX) writes past its buffers for some shapes and aborts the
# process with a heap corruption (bench/README.md has the minimal script); bf16 without oneDNN is ~75x
# slower than float32. So on the CPU a model with 3D convolutions runs in float32 even under --amp.
CPU_3D_AMP_NOTE = ("note: --amp is off for 3D convolutions on the CPU (oneDNN's bf16 3D-convolution backward "
                   "corrupts memory on some CPUs; see bench/README.md): float32 instead")


def amp_settings(args, device, model=None, ranks=None):
    """(enabled, dtype): bf16 where the GPU supports it, else fp16 (which needs the loss scaler); on the
    CPU bf16, except for a model with 3D convolutions (model_amp). With `ranks`, rank 0 says why when
    --amp was asked for and the model cannot have it."""
    enabled = device.type == "cuda" if args.amp is None else args.amp
    if not enabled:
        return False, torch.float32
    if device.type == "cuda":
        # bf16 in hardware only (Ampere and later): torch's default also says yes where it is emulated
        # (V100, T4), which is slower than fp16 with the loss scaler.
        return True, torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    amp = model_amp((True, torch.bfloat16), device, model)
    if not amp[0] and ranks is not None and ranks.main:
        print(CPU_3D_AMP_NOTE, file=sys.stderr, flush=True)
    return amp


def model_amp(amp, device, model):
    """The precision `model` runs in on `device` when `amp` is asked for: float32 for 3D convolutions
    on the CPU (CPU_3D_AMP_NOTE), `amp` otherwise."""
    if amp[0] and device.type == "cpu" and model is not None and any(
            isinstance(m, nn.Conv3d) for m in model.modules()):
        return False, torch.float32
    return amp


def grad_scaler(device, amp):
    """fp16 needs loss scaling; with bf16 or fp32 the scaler is a no-op passthrough."""
    return torch.amp.GradScaler(device.type, enabled=amp[0] and amp[1] == torch.float16)


def autocast(device, amp):
    enabled, dtype = amp
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=enabled)


class Normalize(nn.Module):
    """uint8 channels-last batches -> normalised float (N, 3, H, W) or (N, 3, T, H, W) on the device.

    Loaders ship uint8 RGB (4x fewer bytes than float32, no float work on the CPU); this does the rest:
    (x / 255 - mean) / std per channel, with mean and std on [0, 1] in the order the model expects.
    `bgr=True` flips the channels first (C3D's weights were trained on OpenCV's BGR frames).
    """

    def __init__(self, mean, std, bgr=False):
        super().__init__()
        self.bgr = bgr
        self.register_buffer("scale", 1.0 / (255.0 * torch.tensor(std)), persistent=False)
        self.register_buffer("shift", torch.tensor(mean) / torch.tensor(std), persistent=False)

    def forward(self, x):
        if self.bgr:
            x = x.flip(-1)
        x = x.movedim(-1, 1)  # (N, H, W, 3) -> (N, 3, H, W); (N, T, H, W, 3) -> (N, 3, T, H, W)
        shape = (1, 3) + (1,) * (x.dim() - 2)
        x = x.float() * self.scale.view(shape) - self.shift.view(shape)
        # The moved view is already channels-last in memory; keep that on CUDA, plain layout on the CPU.
        if x.is_cuda:
            return x.contiguous(memory_format=torch.channels_last if x.dim() == 4 else torch.channels_last_3d)
        return x.contiguous()


class FeatureInput(nn.Module):
    """float16 feature sequences (N, L, dims) -> float32 on the device (the RNN's "normalisation")."""

    def forward(self, x):
        return x.float()


class Forward:
    """How a batch becomes logits, for every model: normalise on the device, then the model.

    - frames (N, H, W, 3) and clips (N, T, H, W, 3): `model(normalize(x))`;
    - TSN segments (N, K, H, W, 3) with segments=K > 1: the backbone on all N*K frames, and the K logit
      vectors of a video averaged (segmental consensus, before the softmax and the loss);
    - feature sequences (N, L, dims) with lengths: `model(x, lengths)`; with frame_loss, training also
      adds the mean cross-entropy over each video's valid steps to its loss.
    Returns (logits (N, classes), extra per-sample loss (N,) or None).
    """

    def __init__(self, normalize, segments=1, frame_loss=False):
        self.normalize, self.segments, self.frame_loss = normalize, segments, frame_loss

    def __call__(self, model, batch, device, labels=None):
        x = to_device(batch.data, device)
        if batch.lengths is not None:
            lengths = torch.from_numpy(batch.lengths)  # on the CPU: pack_padded_sequence wants them there
            if self.frame_loss and labels is not None:
                logits, step_logits, mask = model(self.normalize(x), lengths, return_steps=True)
                steps = F.cross_entropy(step_logits.float().transpose(1, 2), labels[:, None].expand(mask.shape),
                                        reduction="none")  # (N, L)
                extra = (steps * mask).sum(1) / mask.sum(1).clamp(min=1)
                return logits, extra
            return model(self.normalize(x), lengths), None
        if self.segments > 1:
            n, k = x.shape[:2]
            logits = model(self.normalize(x.reshape((n * k,) + x.shape[2:])))  # (N*K, classes)
            return logits.view(n, k, -1).mean(1), None
        return model(self.normalize(x)), None


def to_device(array, device):
    tensor = torch.from_numpy(array)
    if device.type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def prepare_model(model, device):
    if device.type == "cuda":
        fmt = torch.channels_last if any(m.weight.dim() == 4 for m in model.modules() if isinstance(m, nn.Conv2d)) \
            else torch.channels_last_3d
        model = model.to(device, memory_format=fmt)
    return model.to(device)


# ----------------------------------------------------------------------------------------------
# Trainable layers

def set_trainable(model, spec):
    """Freeze every parameter except those whose name starts with a prefix in `spec` ('all' = all).

    Returns the trainable parameter names; a prefix that matches nothing is a user error.
    """
    names = [n for n, _ in model.named_parameters()]
    if spec.strip() == "all":
        prefixes = [""]
    else:
        prefixes = [p.strip() for p in spec.split(",") if p.strip()]
        for prefix in prefixes:
            if not any(n == prefix or n.startswith(prefix + ".") for n in names):
                raise UserError(f"--trainable {prefix!r} matches no parameter (e.g. {names[0]}, layer4.2, fc)")
    trainable = []
    for name, param in model.named_parameters():
        param.requires_grad = any(p == "" or name == p or name.startswith(p + ".") for p in prefixes)
        if param.requires_grad:
            trainable.append(name)
    return trainable


def frozen_batchnorms(model):
    """BatchNorm layers whose parameters are all frozen: kept in eval mode so statistics do not drift."""
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters())]


def batchnorms(model):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def apply_partial_bn(model):
    """TSN's partial BN: freeze the affine parameters of every BatchNorm but the first; being frozen,
    they then stay in eval mode (set_train_mode), so their statistics do not change either."""
    norms = batchnorms(model)
    if not norms:
        raise UserError("--partial-bn: this model has no BatchNorm layer")
    for m in norms[1:]:
        for p in m.parameters():
            p.requires_grad = False


def trains_batchnorm(model, bn_drift):
    """Whether set_train_mode leaves a BatchNorm layer in training mode (one that needs two values per channel)."""
    return len(batchnorms(model)) > (0 if bn_drift else len(frozen_batchnorms(model)))


def set_train_mode(model, bn_drift):
    model.train()
    if not bn_drift:
        for m in frozen_batchnorms(model):
            m.eval()


def head_parameters(model, head):
    """(body, head) trainable parameters; `head` is the new classifier's name prefix (e.g. fc, fc8)."""
    body, head_params = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (head_params if name == head or name.startswith(head + ".") else body).append(param)
    return body, head_params


def build_optimizer(args, model, head):
    """Adam or SGD over the trainable parameters; the classifier in a group of its own with lr x
    --head-lr-mult. Each group records its base lr ("initial_lr"), which the schedule scales."""
    body, head_params = head_parameters(model, head)
    groups = [{"params": ps, "lr": args.lr * mult, "initial_lr": args.lr * mult}
              for ps, mult in ((body, 1.0), (head_params, args.head_lr_mult)) if ps]
    if args.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    return torch.optim.Adam(groups, lr=args.lr, weight_decay=args.weight_decay)


def lr_factor(args, epoch, step, steps_per_epoch):
    """The schedule's factor for `step` (0-based) of `epoch` (0-based): a pure function of the position
    in training, so a resumed run sees exactly the lr of an uninterrupted one.

    step: --lr-gamma ** (milestones passed); cosine: half a cosine from 1 at the end of the warm-up to
    0 at the last epoch; warm-up: linear, reaching 1 at --warmup-epochs.
    """
    done = epoch + step / max(steps_per_epoch, 1)  # epochs completed before this step
    factor = 1.0
    if args.lr_schedule == "step":
        if args.lr_steps[:1] == ("every",):
            passed = int(done // args.lr_steps[1])
        else:
            passed = sum(done >= m for m in args.lr_steps)
        factor = args.lr_gamma ** passed
    elif args.lr_schedule == "cosine":
        span = max(args.epochs - args.warmup_epochs, 1e-9)
        t = min(max(done - args.warmup_epochs, 0.0) / span, 1.0)
        factor = 0.5 * (1.0 + math.cos(math.pi * t))
    if args.warmup_epochs and done < args.warmup_epochs:
        factor *= min(1.0, (done + 1 / max(steps_per_epoch, 1)) / args.warmup_epochs)
    return factor


def set_lr(optimizer, factor):
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor


def check_schedule_args(args):
    if args.lr_schedule == "step" and not args.lr_steps:
        raise UserError("--lr-schedule step needs --lr-steps (e.g. 30,60 or every:10)")
    if args.warmup_epochs and args.warmup_epochs >= args.epochs:
        raise UserError(f"--warmup-epochs {args.warmup_epochs:g} must be below --epochs {args.epochs}")


# ----------------------------------------------------------------------------------------------
# Checkpoints and logs

def save_checkpoint(path, state):
    """Atomic: a killed job leaves the previous checkpoint or the new one, never half a file. A write
    that fails (disk full, permissions) keeps the previous checkpoint, removes the temporary file and
    becomes one line."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch's zip writer reports a full disk as RuntimeError
        with contextlib.suppress(OSError):
            os.remove(tmp)
        kept = "the previous checkpoint is kept" if os.path.exists(path) else "no checkpoint was written"
        raise UserError(f"cannot write checkpoint {path}: {write_failure(e, path)}; {kept}") from None


def write_failure(error, path):
    """Why writing `path` failed, on one line, with what to do: h5py's message of a full disk is several
    lines and torch's ("[enforce fail at inline_container.cc] . unexpected pos") names no cause, so the
    errno's own words are used, and for torch the free space is given."""
    if isinstance(error, OSError) and error.errno:
        return f"{os.strerror(error.errno)} ({PATH_ERRNOS.get(error.errno, 'check the disk and run again')})"
    try:
        free = f"{shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free / 1e6:.0f} MB free there"
    except OSError:
        free = "free space unknown"
    return f"{one_line(error)} (a full disk is the usual cause: {free})"


def one_line(error):
    """The first line of an exception's message (its type when it has none), at most 200 characters."""
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


# What torch's weights-only unpickler raises on a file that is not a checkpoint depends on the bytes:
# random bytes, text and JSON reach the unpickler ("Unsupported operand", IndexError, ...), a truncated
# zip fails in the zip reader (RuntimeError), an empty file with EOFError.
UNPICKLE_ERRORS = (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, IndexError, KeyError,
                   TypeError, AttributeError, UnicodeDecodeError, OverflowError, MemoryError)


def load_checkpoint(path, what="checkpoint"):
    """torch.load(path, weights_only=True) on the CPU, or one line (UserError) that names the file and
    says what was expected. weights_only refuses anything but tensors and plain containers, so a file
    crafted to run code when unpickled is refused without running it."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise UserError(f"{what} {path} is a directory, not a .pth file")
    if not os.path.exists(path):
        raise UserError(f"{what} {path} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError as e:
        raise UserError(f"{what} {path} cannot be read ({e.strerror or e})") from None
    except UNPICKLE_ERRORS as e:
        raise UserError(f"{what} {path} {_why_not_a_checkpoint(path, e)}") from None


def _why_not_a_checkpoint(path, error):
    """What is wrong with a file torch.load refused, in words (torch's own message advises
    weights_only=False, which is exactly what must not be done with a file one does not trust)."""
    refused = re.search(r"GLOBAL (\S+) was not an allowed global", str(error))
    if refused:
        return (f"holds pickled Python objects, not only tensors and plain values (it would call "
                f"{refused.group(1)}): refused without running them; expected a .pth file of weights "
                f"(torch.save of a state_dict or of a dict of them)")
    expected = "expected a .pth file written by torch.save"
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        head = b""
    if not head:
        return f"is empty; {expected}"
    if head.startswith(b"PK\x03\x04") or isinstance(error, (RuntimeError, EOFError)):
        return f"is truncated or damaged ({one_line(error).split('. ')[0][:120]}); {expected}"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text:
        kind = "a JSON file" if text.lstrip()[:1] in ("{", "[") else "a text file"
        return f"is {kind}, not a PyTorch checkpoint; {expected}"
    return f"is not a PyTorch checkpoint (its bytes are not a torch.save file); {expected}"


def args_for_checkpoint(args):
    """The run's flags as plain values (what a test script needs to rebuild the model)."""
    plain = (int, float, str, bool, type(None))
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()
            if isinstance(v, plain) or (isinstance(v, tuple) and all(isinstance(x, plain) for x in v))}


def write_log(path, entries):
    """Atomic, as the checkpoint: a failed write (a full disk) keeps the previous log, and no temporary."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for entry in entries:
                f.write(json.dumps(entry) + "\n")
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise UserError(f"cannot write {path}: {write_failure(e, path)}; the previous log is kept") from None


class StopSignals:
    """Turns SIGTERM/SIGUSR1 (what Slurm and PBS send before a kill or requeue) into a flag.

    The training loop checks the flag after each step, saves and exits with EXIT_PREEMPTED.
    """

    SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGUSR1", None)) if s)

    def __init__(self):
        self.received = None
        self._previous = {}

    def __enter__(self):
        for s in self.SIGNALS:
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)


# ----------------------------------------------------------------------------------------------
# Training and evaluation loops

def progress(iterable, ranks, **kwargs):
    return tqdm(iterable, disable=not (ranks.main and sys.stderr.isatty()), dynamic_ncols=True, **kwargs)


class NonFiniteLoss(RuntimeError):
    pass


def train_one_epoch(model, loader, optimizer, scaler, forward, device, amp, ranks, stop, *,  # noqa: C901 (split up in the restructure, issue 21)
                    start_step=0, partial=None, max_steps=0, on_step=None, schedule=None, clip_grad_norm=None,
                    log_step=None, step_seed=None):
    """One epoch (or its rest, after a mid-epoch resume). Returns a stats dict, with 'stopped' set
    when a signal stopped it early (the stats then cover the steps done and can be continued).

    schedule(step) -> lr factor for that 0-based step of the epoch; log_step(step, mean loss of the
    step over all ranks) is called after every step (TensorBoard); step_seed(step) -> the seed of
    torch's generator for that step, so dropout draws the same masks after a resume.
    """
    totals = dict(partial or {"loss_sum": 0.0, "correct": 0.0, "samples": 0.0, "seconds": 0.0, "wait": 0.0})
    step = start_step
    start = time.perf_counter()
    batches = progress(loader, ranks, total=len(loader) - start_step, desc="train", leave=False)
    stopped = False
    loss_sum = correct = count = 0.0
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for batch in batches:
        if schedule is not None:
            set_lr(optimizer, schedule(step))
        if step_seed is not None:
            torch.manual_seed(step_seed(step))
        y = to_device(batch.labels, device)
        single = None  # BatchNorm's refusal of this rank's batch of one sample, if it refuses
        try:
            with autocast(device, amp):
                logits, extra = forward(model, batch, device, labels=y)
        except ValueError as e:
            if not is_single_sample_batchnorm(e):
                raise
            single = e
        if single is None:
            losses = F.cross_entropy(logits.float(), y, reduction="none")
            if extra is not None:
                losses = losses + extra.float()
            batch_loss = losses.detach().sum().item()
        else:
            batch_loss = 0.0
        step += 1
        if on_step is not None:  # a test hook: "a signal arrives during this step"
            on_step(step)
        # One small reduction per step keeps the ranks in agreement on stopping (signal or NaN) and on
        # skipping; it comes before the update, so a non-finite loss never reaches the weights.
        flags = ranks.all_reduce([0.0 if math.isfinite(batch_loss) else 1.0, 1.0 if stop.received else 0.0,
                                  batch_loss if math.isfinite(batch_loss) else 0.0,
                                  float(len(y)) if single is None else 0.0, 0.0 if single is None else 1.0], device)
        if flags[0]:
            raise NonFiniteLoss(f"the loss became non-finite at step {step}: stopping before it reaches the "
                                f"weights (try a lower --lr or --no-amp)")
        if flags[4]:
            skip_single_sample_step(loader, ranks, step, single)
        else:
            # DDP averages gradients over ranks; scaling by world/global size makes the result the mean
            # over the whole global batch even when ranks hold unequal shares (the tail step).
            loss = losses.sum() * ranks.world_size / max(batch.global_size, 1)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if clip_grad_norm:
                scaler.unscale_(optimizer)  # clip the true gradients, not the fp16-scaled ones
                torch.nn.utils.clip_grad_norm_(params, clip_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            loss_sum += batch_loss
            correct += (logits.argmax(1) == y).sum().item()
            count += len(y)
            if log_step is not None:
                log_step(step, flags[2] / max(flags[3], 1))
        if ranks.main and step % 10 == 0:
            batches.set_postfix(loss=f"{loss_sum / max(count, 1):.3f}", acc=f"{correct / max(count, 1):.3f}")
        if flags[1]:
            stopped = True
            break
        if max_steps and step >= max_steps:
            break
    batches.close()
    elapsed = time.perf_counter() - start
    loss_sum, correct, count = ranks.all_reduce([loss_sum, correct, count], device)
    wait = ranks.all_reduce([loader.wait_seconds], device, op=dist.ReduceOp.MAX if ranks.enabled else None)[0]
    totals = {"loss_sum": totals["loss_sum"] + loss_sum, "correct": totals["correct"] + correct,
              "samples": totals["samples"] + count, "seconds": totals["seconds"] + elapsed,
              "wait": totals["wait"] + wait}
    return {"step": step, "stopped": stopped, "totals": totals}


def is_single_sample_batchnorm(error):
    """Whether a ValueError of a training forward pass is BatchNorm's refusal of a batch that gives it one
    value per channel (one sample whose maps are 1x1): it cannot compute a variance from one value."""
    return "Expected more than 1 value per channel when training" in str(error)


def skip_single_sample_step(loader, ranks, step, error):
    """A step in which some rank's batch was one sample that BatchNorm refused (`error` on this rank, or
    None): every rank skips it. With --batch-size 1, or too few training videos for two per rank, every
    step would be skipped: one line saying what to change."""
    shape = re.search(r"input size torch\.Size\((\[[^]]*\])\)", str(error or ""))
    seen = f" (its input there is {shape.group(1)})" if shape else ""
    if loader.batch_size == 1:
        raise UserError(f"--batch-size 1: the model's BatchNorm sees a single value per channel{seen}, from which "
                        f"it cannot train: use --batch-size 2 or more, or a larger --image-size")
    if len(loader.paths) < 2 * ranks.world_size:
        raise UserError(f"{len(loader.paths)} training video(s) for {ranks.world_size} process(es): BatchNorm cannot "
                        f"train on a batch of one sample; it needs two or more per process")
    if ranks.main:
        print(f"note: step {step} skipped: unreadable videos left a batch of one sample, from which the model's "
              f"BatchNorm cannot train{seen}", file=sys.stderr, flush=True)


@torch.no_grad()
def evaluate(model, loader, forward, device, amp, ranks, name="test"):
    """Accuracy of single samples (one fixed frame, clip, set of segment centres or feature window
    per video), reduced over ranks: {name}_acc, {name}_samples."""
    model.eval()
    correct = count = 0.0
    for batch in progress(loader, ranks, desc="eval", leave=False):
        with autocast(device, amp):
            logits, _ = forward(model, batch, device)
        correct += (logits.argmax(1).cpu().numpy() == batch.labels).sum()
        count += len(batch.labels)
    correct, count = ranks.all_reduce([correct, count], device)
    return {f"{name}_acc": correct / max(count, 1), f"{name}_samples": int(count)}


def build_loaders(args, kind, split_data, pool, ranks, loader_kwargs, eval_kwargs=None, batchnorm=False):
    """(training loader, evaluation loader). batchnorm=True (the model trains BatchNorm layers): the last
    step of an epoch never leaves a rank one sample, which BatchNorm cannot train on at small image sizes
    (train_one_epoch skips such a step when unreadable videos make one)."""
    (train_paths, train_labels), (test_paths, test_labels) = split_data
    if kind != "features":  # feature sequences have no frame size
        loader_kwargs = {"size": args.image_size, **loader_kwargs}
    train = hf.BatchLoader(train_paths, train_labels, args.batch_size, kind, augment=True, shuffle=True,
                           seed=args.seed, pool=pool, rank=ranks.rank, world_size=ranks.world_size,
                           min_share=2 if batchnorm else 1, **loader_kwargs)
    test = hf.BatchLoader(test_paths, test_labels, args.eval_batch_size or args.batch_size, kind, augment=False,
                          shuffle=False, seed=args.seed, pool=pool, rank=ranks.rank,
                          world_size=ranks.world_size, fixed=True, **{**loader_kwargs, **(eval_kwargs or {})})
    return train, test


def load_split(args, ranks, paths_of=None):
    """(class_list, train, held_out, held_out_name): the training videos and those the per-epoch
    accuracy is measured on, the split's test videos or, with --val-groups, the held-out groups.
    `paths_of(paths)` maps video paths to what the loader reads (the RNN's feature files)."""
    try:
        class_list, train, test = hf.get_split(args.data_dir, args.split, getattr(args, "storage", "auto"),
                                               resolve_dataset(args))
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    held_out, name = test, "test"
    if getattr(args, "val_groups", None):
        try:
            groups = hf.parse_groups(args.val_groups)
            train, held_out = hf.split_by_groups(train[0], train[1], groups, args.dataset)
        except ValueError as e:
            raise UserError(f"--val-groups {args.val_groups}: {e}") from None
        name = "val"
        if ranks.main:
            print(f"validation: groups {', '.join(f'g{g:02d}' for g in groups)} held out of training "
                  f"({len(held_out[0])} videos; {len(train[0])} left for training)", flush=True)
    if paths_of is not None:
        train, held_out = (paths_of(train[0]), train[1]), (paths_of(held_out[0]), held_out[1])
    if ranks.world_size > min(len(train[0]), len(held_out[0])):
        raise UserError(f"{ranks.world_size} processes but only {min(len(train[0]), len(held_out[0]))} "
                        f"videos to share")
    return [str(c) for c in class_list], train, held_out, name


class TensorBoard:
    """TensorBoard scalars of a training run in OUTPUT_DIR/tensorboard/ (rank 0 only; a no-op when off).

    Every point is at the global step (optimizer steps since the start of training), per-epoch tags
    included, so that a resumed run can purge what a killed run wrote after its last checkpoint:
    `purge_step` makes TensorBoard's reader drop those points, and the curves continue without
    duplicated steps.
    """

    def __init__(self, args, ranks, purge_step):
        self.writer = None
        if not (getattr(args, "tensorboard", False) and ranks.main):
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise UserError(f"TensorBoard logging needs the tensorboard package ({e}): pip install tensorboard, "
                            f"or pass --no-tensorboard") from None
        self.every = args.tensorboard_every
        self.writer = SummaryWriter(os.path.join(args.output_dir, "tensorboard"), purge_step=purge_step or None)

    def step(self, global_step, loss):
        if self.writer is not None and global_step % self.every == 0:
            self.writer.add_scalar("train/loss_step", loss, global_step)

    def epoch(self, global_step, entry):
        if self.writer is None:
            return
        for key, tag in (("train_loss", "train/loss"), ("train_acc", "train/acc"), ("test_acc", "test/acc"),
                         ("val_acc", "val/acc"), ("lr", "lr"), ("samples_per_s", "samples_per_s"),
                         ("data_wait_fraction", "data_wait_fraction")):
            if key in entry:
                self.writer.add_scalar(tag, entry[key], global_step)
        self.writer.flush()

    def close(self):
        if self.writer is not None:
            self.writer.close()


def train(args, build_model, kind, normalize, *, loader_kwargs=None, eval_kwargs=None, after_trainable=None,  # noqa: C901 (split up in the restructure, issue 21)
          head="fc", forward=None, paths_of=None):
    """The training driver of every train script.

    build_model(args, num_classes, ranks, pretrained) -> nn.Module with pretrained weights loaded (CPU).
    kind: the loader's sample kind ("frame", "clip", "segments", "features"); normalize: the module
    that turns a uint8 batch into the model's input on the device; forward: a Forward (default: one
    built from `normalize`); head: the new classifier's parameter prefix (for --head-lr-mult).
    Writes OUTPUT_DIR/checkpoint.pth every epoch (and on a stop signal), log.jsonl, tensorboard/,
    COMPLETE at the end. Returns the last log entry.
    """
    check_output_paths({"--output-dir": args.output_dir}, script_inputs(args))
    ranks = Dist()
    pool = hf.make_pool(args.workers, shield_signals=True)  # before CUDA and the model: workers are forked
    stop = StopSignals().__enter__()  # from the start: a signal during set-up must not kill the job unsaved
    board = None
    try:
        check_schedule_args(args)
        device = resolve_device(args.device, ranks)
        ranks.init(device)
        torch.manual_seed(args.seed)
        class_list, train_data, eval_data, eval_name = load_split(args, ranks, paths_of)
        if ranks.main:
            print_args(args)
            os.makedirs(args.output_dir, exist_ok=True)
        ckpt_path = os.path.join(args.output_dir, CHECKPOINT_NAME)
        log_path = os.path.join(args.output_dir, LOG_NAME)
        marker = os.path.join(args.output_dir, COMPLETE_MARKER)

        checkpoint = None
        if args.resume and os.path.exists(ckpt_path):
            checkpoint = load_checkpoint(ckpt_path, what="the checkpoint to resume from (or use --no-resume)")
            if not isinstance(checkpoint, dict) or "model" not in checkpoint:
                raise UserError(f"{ckpt_path} is not a checkpoint of the training scripts; use another --output-dir "
                                f"or --no-resume")
            if checkpoint.get("class_list") != class_list:
                raise UserError(f"{ckpt_path} was trained on other classes; use another --output-dir or --no-resume")
            if checkpoint.get("kind", kind) != kind:
                raise UserError(f"{ckpt_path} holds a {checkpoint['kind']} model, not a {kind} model; use another "
                                f"--output-dir or --no-resume")

        model = build_model(args, len(class_list), ranks, pretrained=checkpoint is None)
        trainable = set_trainable(model, args.trainable)
        if after_trainable is not None:
            after_trainable(model)
        if args.partial_bn:
            apply_partial_bn(model)
        trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        if checkpoint is not None:
            try:
                model.load_state_dict(checkpoint["model"])
            except RuntimeError as e:
                raise UserError(f"{ckpt_path} does not fit this model ({one_line(e)}); use the same model flags, "
                                f"another --output-dir or --no-resume") from None
        model = prepare_model(model, device)
        raw_model = model
        if ranks.enabled:
            model = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)
        optimizer = build_optimizer(args, raw_model, head)
        amp = amp_settings(args, device, raw_model, ranks)
        scaler = grad_scaler(device, amp)
        forward = forward or Forward(normalize)
        forward.normalize = forward.normalize.to(device)

        start_epoch, start_step, partial = 0, 0, None
        if checkpoint is not None:
            try:
                optimizer.load_state_dict(checkpoint["optimizer"])
            except (ValueError, KeyError) as e:
                raise UserError(
                    f"{ckpt_path}: its optimizer state does not fit --optimizer {args.optimizer} / "
                    f"--trainable / --head-lr-mult ({one_line(e)}); use the same flags or --no-resume"
                ) from None
            for group, mult in zip(optimizer.param_groups, (1.0, args.head_lr_mult)):
                group["initial_lr"] = args.lr * mult  # the flags of this run decide the base lr
            scaler.load_state_dict(checkpoint["scaler"])
            start_epoch, start_step = checkpoint["epoch"], checkpoint.get("step", 0)
            partial = checkpoint.get("partial")
            if start_step and checkpoint.get("global_batch") != args.batch_size * ranks.world_size:
                # Steps of another global batch size do not line up with ours: redo the epoch.
                if ranks.main:
                    print("the global batch size changed since the checkpoint: restarting its epoch", flush=True)
                start_step, partial = 0, None
            if ranks.main:
                where = f"epoch {start_epoch + 1}, step {start_step}" if start_step else f"epoch {start_epoch + 1}"
                print(f"resuming from {ckpt_path} at {where}", flush=True)
        log_entries = [e for e in runlog.read_log(log_path) if e["epoch"] <= start_epoch] if checkpoint else []
        if ranks.main:
            write_log(log_path, log_entries)  # drops lines of epochs the checkpoint does not hold
            if start_epoch < args.epochs and os.path.exists(marker):
                os.remove(marker)
            params = [p for p in raw_model.parameters() if p.requires_grad]
            print(f"{sum(p.numel() for p in params):,} trainable parameters of "
                  f"{sum(p.numel() for p in raw_model.parameters()):,} in {len(trainable)} tensors; "
                  f"device {device}, amp {amp[1] if amp[0] else 'off'}, {ranks.world_size} process(es)", flush=True)

        train_loader, eval_loader = build_loaders(args, kind, (train_data, eval_data), pool, ranks,
                                                  loader_kwargs or {}, eval_kwargs,
                                                  batchnorm=trains_batchnorm(raw_model, args.bn_drift))
        steps_per_epoch = min(len(train_loader), args.max_steps) if args.max_steps else len(train_loader)
        board = TensorBoard(args, ranks, start_epoch * steps_per_epoch + start_step + 1 if checkpoint else 0)

        def state(epoch, step=0, partial_totals=None):
            return {"model": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(), "epoch": epoch, "step": step, "partial": partial_totals,
                    "args": args_for_checkpoint(args), "class_list": class_list, "kind": kind,
                    "global_batch": args.batch_size * ranks.world_size,
                    "val_groups": list(hf.parse_groups(args.val_groups)) if args.val_groups else [],
                    "lr_schedule": {"schedule": args.lr_schedule, "steps_per_epoch": steps_per_epoch,
                                    "factor": lr_factor(args, epoch, step, steps_per_epoch)}}

        entry = log_entries[-1] if log_entries else None
        for epoch in range(start_epoch, args.epochs):
            set_train_mode(model, args.bn_drift)
            train_loader.set_epoch(epoch, start_step)
            result = train_one_epoch(
                model, train_loader, optimizer, scaler, forward, device, amp, ranks, stop, start_step=start_step,
                partial=partial, max_steps=args.max_steps, clip_grad_norm=args.clip_grad_norm,
                schedule=lambda step, e=epoch: lr_factor(args, e, step, steps_per_epoch),
                log_step=lambda step, loss, e=epoch: board.step(e * steps_per_epoch + step, loss),
                step_seed=lambda step, e=epoch: hf.sample_seed(args.seed, e, step * ranks.world_size + ranks.rank))
            start_step, partial = 0, None
            if result["stopped"]:
                if ranks.main:
                    save_checkpoint(ckpt_path, state(epoch, result["step"], result["totals"]))
                    print(f"{stop.received}: saved {ckpt_path} at epoch {epoch + 1}, step {result['step']}; "
                          f"run the same command again to continue", flush=True)
                ranks.barrier()
                return_code = EXIT_PREEMPTED
                break
            totals = result["totals"]
            entry = {"epoch": epoch + 1,
                     "train_loss": totals["loss_sum"] / max(totals["samples"], 1),
                     "train_acc": totals["correct"] / max(totals["samples"], 1),
                     "samples": int(totals["samples"]), "seconds": round(totals["seconds"], 3),
                     "samples_per_s": totals["samples"] / max(totals["seconds"], 1e-9),
                     "data_wait_fraction": min(totals["wait"] / max(totals["seconds"], 1e-9), 1.0),
                     "failed_samples": len(train_loader.failed),
                     "lr": optimizer.param_groups[0]["lr"]}
            if (epoch + 1) % args.eval_every == 0 or epoch + 1 == args.epochs:
                eval_loader.set_epoch(0)
                entry.update(evaluate(model, eval_loader, forward, device, amp, ranks, eval_name))
            if ranks.main:
                log_entries.append(entry)
                save_checkpoint(ckpt_path, state(epoch + 1))
                write_log(log_path, log_entries)
                board.epoch((epoch + 1) * steps_per_epoch, entry)
                print(format_entry(entry, args.epochs), flush=True)
            ranks.barrier()
            if ranks.all_reduce([1.0 if stop.received else 0.0], device)[0] and epoch + 1 < args.epochs:
                if ranks.main:
                    print(f"{stop.received}: saved {ckpt_path} after epoch {epoch + 1}; "
                          f"run the same command again to continue", flush=True)
                return_code = EXIT_PREEMPTED
                break
        else:
            return_code = 0
            if ranks.main:
                with open(marker, "w") as f:
                    f.write(f"{args.epochs} epochs\n")
                print(f"done: {ckpt_path}", flush=True)
        if return_code:
            sys.exit(return_code)
        exit_if_unreadable(gather({**train_loader.failed, **eval_loader.failed}, ranks),
                           "left out of training and evaluation")
        return entry
    except NonFiniteLoss as e:
        raise UserError(str(e)) from None
    finally:
        if board is not None:
            board.close()
        stop.__exit__()
        hf.close_pool(pool)


EXIT_UNREADABLE = 1


def exit_if_unreadable(failed, what):
    """The README's contract for videos that cannot be read ({path: reason}): every other video was
    done; these are named at the end and the exit status is 1."""
    if not failed:
        return
    if Dist().main:
        print(f"{len(failed)} video{'s' if len(failed) > 1 else ''} could not be read ({what}; exit status 1):",
              flush=True)
        for path, reason in sorted(failed.items()):
            print(f"  {path}: {reason}", flush=True)
    sys.exit(EXIT_UNREADABLE)


def format_entry(entry, epochs):
    text = (f"epoch {entry['epoch']}/{epochs}: loss {entry['train_loss']:.4f} train acc {entry['train_acc']:.4f}")
    for name in ("test", "val"):
        if f"{name}_acc" in entry:
            text += f" {name} acc {entry[f'{name}_acc']:.4f}"
    return text + (f" | {entry['samples']} samples, {entry['samples_per_s']:.1f}/s, "
                   f"waited on data {100 * entry['data_wait_fraction']:.0f}%, lr {entry['lr']:.3g}")


# ----------------------------------------------------------------------------------------------
# Testing whole videos

TEST_SCRIPTS = {"frame": "test_single_frame.py", "clip": "test_3d.py", "features": "test_rnn.py"}


def check_trained(checkpoint, path, expected_kind=None):
    """(checkpoint, training args, kind) of a loaded training-script checkpoint, kind being "frame" (single
    frame and TSN: a TSN model is a frame model at test time), "clip" or "features"; the optimizer state
    is dropped (as large as the model, or twice for Adam). A file of another model kind than
    `expected_kind` (a 3D checkpoint given to the single-frame test, say) is one line naming the right
    script."""
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict) \
            or not isinstance(checkpoint.get("class_list"), (list, tuple)) \
            or not isinstance(checkpoint.get("args") or {}, dict) or not isinstance(checkpoint.get("kind") or "", str):
        raise UserError(f"{path} is not a checkpoint written by the training scripts "
                        f"(expected their checkpoint.pth: a dict with 'model', 'class_list', 'args')")
    checkpoint.pop("optimizer", None)
    trained = checkpoint.get("args") or {}
    kind = checkpoint.get("kind")
    if kind is None:  # written before checkpoints recorded their kind
        kind = "features" if "features" in trained else "clip" if "clip_len" in trained else (expected_kind or "frame")
    kind = "frame" if kind == "segments" else kind
    if kind not in TEST_SCRIPTS:
        raise UserError(f"{path} holds a {kind!r} model, which no test script knows")
    if expected_kind is not None and kind != expected_kind:
        raise UserError(f"{path} holds a {kind} model; test it with {TEST_SCRIPTS[kind]}")
    check_trained_args(trained, common_parser(), path, ("data_dir", "split", "image_size"))
    return checkpoint, trained, kind


def check_trained_args(trained, parser, path, keys):
    """Check the training args `keys` of a checkpoint as `parser` (the training script's) checks its
    flags: the flag's type (positive_int, image_size, ...) and choices. A damaged value (an unknown
    arch, a size that is no integer) is one UserError line naming the checkpoint, the flag and the value."""
    actions = {a.dest: a for a in parser._actions if a.option_strings}
    for key in keys:
        if key not in trained or key not in actions:
            continue  # not recorded (an older checkpoint): the script's default
        action, value = actions[key], trained[key]
        problem = flag_value_problem(action, value)
        if problem:
            raise UserError(f"{path}: its training args are damaged: {key}={value!r} is not a value of "
                            f"{action.option_strings[-1]} ({problem})")


def flag_value_problem(action, value):
    """Why `value` is not what `action`'s flag would have stored ('' when it is)."""
    if action.nargs == 0:  # store_true / --flag/--no-flag
        return "" if isinstance(value, bool) or (value is None and action.default is None) else "expected true or false"
    if value is None:
        return "" if action.default is None else "expected a value"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return f"a {type(value).__name__}"
    if action.type is not None:
        try:
            parsed = action.type(str(value))
        except (argparse.ArgumentTypeError, ValueError, TypeError) as e:
            return str(e)
        if type(parsed) is not type(value) and not (type(parsed) is float and type(value) is int):
            return f"expected {'an integer' if type(parsed) is int else 'a number'}, not a {type(value).__name__}"
        value = parsed
    elif not isinstance(value, str):
        return f"expected text, not a {type(value).__name__}"
    if action.choices is not None and value not in action.choices:
        return f"choose from {', '.join(map(str, action.choices))}"
    return ""


def rebuild_model(build, model_args, num_classes, ranks, path):
    """build(model_args, num_classes, ranks, pretrained=False) for a checkpoint's model, or one line naming
    the checkpoint when its args describe no model this code builds (a depth without that many layer4
    blocks, a dropout of 5)."""
    try:
        return build(model_args, num_classes, ranks, pretrained=False)
    except (UserError, ValueError) as e:
        raise UserError(f"{path}: its training args describe no model that can be built ({one_line(e)})") from None


def load_trained(args, ranks, expected_kind):
    """Checkpoint of a training script (--checkpoint): (checkpoint dict, its training args)."""
    checkpoint, trained, _ = check_trained(load_checkpoint(args.checkpoint, what="--checkpoint"), args.checkpoint,
                                           expected_kind)
    return checkpoint, trained


def load_model_state(model, state, path):
    """model.load_state_dict(state), or one line when the checkpoint's weights do not fit the model."""
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"{path}: its weights do not fit the model its arguments describe "
                        f"({state_dict_misfit(model, state) or one_line(e)})") from None


def state_dict_misfit(model, state, shown=3):
    """How a state_dict differs from the model's, on one line ('' when the keys and shapes agree):
    torch's own message is many lines, of which the first says nothing."""
    if not isinstance(state, dict):
        return f"a {type(state).__name__}, not a state_dict"
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [str(k) for k in state if k not in own]
    shapes = [f"{k} {tuple(getattr(v, 'shape', ()))} vs {tuple(own[k].shape)}" for k, v in state.items()
              if k in own and getattr(v, "shape", None) != own[k].shape]

    def few(names):
        return ", ".join(names[:shown]) + (f", ... (+{len(names) - shown})" if len(names) > shown else "")
    parts = ([f"{len(missing)} of the model's {len(own)} keys missing ({few(missing)})"] if missing else []) \
        + ([f"{len(unexpected)} unexpected ({few(unexpected)})"] if unexpected else []) \
        + ([f"shapes file vs model: {few(shapes)}"] if shapes else [])
    return "; ".join(parts)


def return_freed_memory():
    """Make glibc hand large freed blocks back to the OS.

    By default glibc raises its mmap threshold each time a large block is freed, after which chunk
    and batch buffers land in its heaps and stay there, fragmented: a long test's peak memory then
    creeps up with video length (+119 MB from 100 to 1,800 frames in bench/bench_test.py). A fixed
    threshold (what MALLOC_MMAP_THRESHOLD_=131072 sets) keeps it flat. No-op without glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    libc.mallopt(m_mmap_threshold, 128 * 1024)
    libc.mallopt(m_trim_threshold, 128 * 1024)


def device_name(device):
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"


def file_sha256(path, block=1 << 20):
    """The SHA-256 of a file's bytes: a checkpoint's identity wherever it was copied or moved."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


class Provenance(NamedTuple):
    """What made an output folder. `identity`: what must be equal for a resume (checkpoint hash, test
    mode and views, architecture, class list, ...); `about`: recorded, not compared (paths). `legacy`:
    (file name, {key: value}) of what a folder written before provenance.json existed says of its run
    (model.json, features.json), compared where it says it."""
    folder: str
    flag: str          # the option that named the folder, for the messages
    identity: dict
    about: dict
    legacy: tuple = ("", {})


def claim_folder(provenance, resume):
    """Check that `provenance.folder` holds nothing of another run (UserError naming what differs,
    unless `resume` is False: then this run starts over and every video is redone). Read-only: every
    rank may call it; record_provenance writes."""
    if not resume:  # the record, damaged or not, is replaced
        return
    path = os.path.join(provenance.folder, PROVENANCE_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            recorded = json.load(f)["identity"]
        if not isinstance(recorded, dict):
            raise ValueError(f"its identity is {type(recorded).__name__}, not a dict")
    except FileNotFoundError:
        recorded = None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: not a provenance record ({one_line(e)}): use another {provenance.flag}, "
                        f"or --no-resume to redo every video") from None
    if recorded == jsonfile.to_jsonable(provenance.identity):
        return
    if recorded is None:
        _claim_older_folder(provenance)
        return
    new = jsonfile.to_jsonable(provenance.identity)
    differs = [k for k in sorted(set(recorded) | set(new)) if recorded.get(k) != new.get(k)]
    shown = "; ".join(f"{k}: {_short(recorded.get(k))} there, {_short(new.get(k))} now" for k in differs[:3])
    raise UserError(f"{provenance.flag} {provenance.folder} holds the results of another run ({shown}): use "
                    f"another folder, or --no-resume to redo every video")


def _claim_older_folder(provenance):
    """A folder without provenance.json: new, or written by an older version. What its model.json or
    features.json says of its run must agree; results that say nothing are taken with a warning."""
    if not any(name.endswith(".hdf5") for _, _, names in os.walk(provenance.folder) for name in names):
        return  # a new (or empty) folder
    name, expected = provenance.legacy
    try:
        with open(os.path.join(provenance.folder, name), encoding="utf-8") as f:
            said = json.load(f)
    except (OSError, ValueError):
        said = None
    if not isinstance(said, dict):
        if Dist().main:
            print(f"warning: {provenance.flag} {provenance.folder} holds results that do not say what made them "
                  f"(an older version's, or copied by hand): they are taken as this run's; --no-resume redoes "
                  f"them", file=sys.stderr, flush=True)
        return
    expected = jsonfile.to_jsonable(expected)
    differs = [k for k in expected if k in said and said[k] != expected[k]]
    if differs:
        shown = "; ".join(f"{k}: {_short(said[k])} there, {_short(expected[k])} now" for k in differs[:3])
        raise UserError(f"{provenance.flag} {provenance.folder} holds the results of another run ({shown}): use "
                        f"another folder, or --no-resume to redo every video")


def _short(value, limit=60):
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit - 3] + "..."


def record_provenance(provenance):
    os.makedirs(provenance.folder, exist_ok=True)
    jsonfile.write_json(os.path.join(provenance.folder, PROVENANCE_NAME),
                       {"identity": provenance.identity, "about": provenance.about})


class VideoPass(NamedTuple):
    """What stream_videos did on this rank (and, gathered, on all): see stream_videos."""
    ranks: Dist
    device: torch.device
    failed: dict      # path -> reason, all ranks
    written: list     # videos written per rank
    timing: dict      # totals over all ranks
    amp: tuple        # (enabled, dtype) the model ran in


def stream_videos(args, model, paths, *, plan, max_chunk, rows_fn, output_path, write, complete, crops=1,  # noqa: C901 (split up in the restructure, issue 21)
                  desc="test", unit="frames", noun="predictions", features=False, fixed_shapes=True,
                  provenance=None, video_start=None, video_end=None):
    """The per-video driver of the test scripts and of feature extraction.

    Every video of `paths` whose output is not complete yet (`complete(output_path(path))`; resume) is
    loaded chunk by chunk on the loader pool as `plan(frames)` says, each uint8 chunk (F, size, size, 3)
    (or (F, crops, size, size, 3)) goes through `rows_fn(model, chunk_on_device)`, and once its last
    chunk is done the video's rows are checked (all finite) and written with
    `write(output_path(path), rows, {"frames": length, "crops": crops})`, atomically. Videos are split
    over torchrun ranks. SIGTERM/SIGUSR1: the video in progress is finished, then exit 75. Returns a
    VideoPass; the caller's rank 0 then summarises. fixed_shapes=False: the chunks' shapes vary (whole
    pieces of videos), see resolve_device. provenance: what makes the output folder; a folder of another
    run is refused (claim_folder), and with --no-resume (args.resume False) every video is redone.
    video_start(), video_end(model) -> rows: for a rows_fn that keeps state over a video's chunks (test_3d's
    exact full mode): called before a video's first chunk, and after its last one for its last rows.
    """
    return_freed_memory()
    ranks = Dist()
    pool = hf.make_pool(args.workers, shield_signals=True)
    stop = StopSignals().__enter__()
    try:
        device = resolve_device(args.device, ranks, fixed_shapes)
        ranks.init(device)
        model = prepare_model(model, device).eval()
        amp = amp_settings(args, device, model, ranks)
        resume = getattr(args, "resume", True)
        if provenance is not None:
            claim_folder(provenance, resume)
            ranks.barrier()  # every rank has read the old record before rank 0 replaces it
            if ranks.main:
                record_provenance(provenance)
            ranks.barrier()
        mine = list(range(ranks.rank, len(paths), ranks.world_size))
        todo = [i for i in mine if not (resume and complete(output_path(paths[i])))]
        if ranks.main and len(todo) < len(mine):
            print(f"{len(mine) - len(todo)} videos already done: skipping them", flush=True)
        loader = hf.VideoChunkLoader([paths[i] for i in todo], plan, pool=pool, size=args.image_size,
                                     depth=max(2, args.workers), max_chunk=max_chunk, crops=crops, features=features)
        failed, rows, written, rows_written, computed, model_seconds = {}, [], 0, 0, 0, 0.0
        start = time.perf_counter()
        with torch.no_grad():
            for video_index, number, count, chunk in progress(loader, ranks, desc=desc, unit="chunk"):
                path = paths[todo[video_index]]
                if isinstance(chunk, str):
                    if hf.NON_FINITE in chunk:  # a damaged feature file: refuse it rather than skip it
                        raise UserError(f"{path} holds {hf.NON_FINITE}: extract its features again "
                                        f"(delete the file and rerun extract_features.py)")
                    failed[str(path)] = chunk
                    hf.log.warning("cannot read %s: %s", path, chunk)
                    rows = []
                    continue
                started = time.perf_counter()
                if number == 0 and video_start is not None:
                    video_start()
                with autocast(device, amp):
                    out = rows_fn(model, to_device(chunk, device))
                    if number + 1 == count and video_end is not None:
                        out = torch.cat([out, video_end(model)])
                rows.append(out.float().cpu().numpy())  # .cpu() waits for the GPU: the time below is its work
                model_seconds += time.perf_counter() - started
                computed += len(chunk)
                if number + 1 < count:
                    continue
                video_rows, rows = np.concatenate(rows), []  # the video's last chunk: its file is complete
                if not np.isfinite(video_rows).all():
                    bad = int((~np.isfinite(video_rows)).sum())
                    raise UserError(f"the model's outputs for {path} are not finite ({bad} of {video_rows.size} "
                                    f"values; nothing written for it, finished videos are kept): rerun with "
                                    f"--no-amp (fp16 overflow is the usual cause) or check the checkpoint")
                target = output_path(path)
                try:
                    write(target, video_rows, {"frames": loader.frames[video_index], "crops": crops})
                except OSError as e:
                    raise UserError(f"cannot write {target}: {write_failure(e, target)}; finished videos are "
                                    f"kept: run again to continue") from None
                written += 1
                rows_written += len(video_rows)
                if stop.received:
                    break
        seconds = time.perf_counter() - start
        loaded = [loader.load_seconds.get(i, 0.0) for i in range(len(todo))]
        timing = {"videos": written, "frames": computed, "rows": rows_written, "wall_seconds": seconds,
                  "model_seconds": model_seconds, "load_seconds": float(sum(loaded))}
        failed = gather(failed, ranks)
        written_per_rank = gather(written, ranks)
        totals = gather(timing, ranks, merge=False)
        timing = {k: sum(t[k] for t in totals) for k in timing}
        timing["wall_seconds"] = max(t["wall_seconds"] for t in totals)
        if ranks.all_reduce([1.0 if stop.received else 0.0], device)[0]:  # any rank stopped: all stop
            if ranks.main:
                print(f"{stop.received or 'signal'}: stopped; finished videos are saved, "
                      f"run the same command again to continue", flush=True)
            sys.exit(EXIT_PREEMPTED)
        ranks.barrier()
        if ranks.main:
            print(
                f"wrote {noun} for {sum(written_per_rank)} videos (per rank: {', '.join(map(str, written_per_rank))}); "
                f"{computed} {unit} in {seconds:.1f} s ({computed / max(seconds, 1e-9):.1f} {unit}/s), "
                f"loader wait {loader.wait_seconds:.1f} s",
                flush=True,
            )
        return VideoPass(ranks, device, failed, written_per_rank, timing, amp)
    finally:
        stop.__exit__()
        hf.close_pool(pool)


def gather(value, ranks, merge=True):
    """Every rank's `value`: a dict is merged (unless merge=False), anything else listed by rank."""
    gathered = [value]
    if ranks.enabled:
        gathered = [None] * ranks.world_size
        dist.all_gather_object(gathered, value)
    if isinstance(value, dict) and merge:
        return {k: v for part in gathered for k, v in part.items()}
    return gathered


def test_subset(args, trained):
    """(class_list, paths, labels) of the subset to test: the split's test list, the groups the training
    run held out (val), or its training videos (train)."""
    val_groups = trained.get("val_groups") or ()
    if isinstance(val_groups, str):
        val_groups = hf.parse_groups(val_groups)
    try:
        class_list, paths, labels = hf.subset_videos(args.data_dir, args.split, args.subset, val_groups,
                                                     getattr(args, "storage", "auto"), resolve_dataset(args))
    except (FileNotFoundError, ValueError) as e:
        raise UserError(f"--subset {args.subset}: {e}" if args.subset == "val" else str(e)) from None
    if args.limit:
        paths, labels = paths[:args.limit], labels[:args.limit]
    return [str(c) for c in class_list], paths, labels, list(val_groups)


def test_videos(args, checkpoint, model, normalize, plan, max_chunk, rows_fn, info, paths_of=None, fixed_shapes=True,
                video_start=None, video_end=None):
    """The test driver of every test script: predictions of every video of --subset, then (rank 0)
    results.json, confusion_matrix.npy and PREDICTIONS_DIR/model.json.

    rows_fn(model, frames, normalize) -> logits rows of one uint8 chunk on the device (normalised batch
    by batch, so memory follows the batch size, not the chunk); info: what the model is and how it is
    tested (name, title, kind, temporal, arch, rows: "frames" | "windows" | "pieces" | "video", test: {...});
    paths_of(video paths) -> what the loader reads instead (the RNN's feature files, same <Class>/<video>);
    video_start, video_end: see stream_videos. The prediction files say how they were computed (attribute
    test: info["test"]["description"]).
    """
    check_output_paths({"--predictions-dir": args.predictions_dir, "--output-dir": args.output_dir},
                       script_inputs(args))
    trained = checkpoint.get("args", {})
    class_list, paths, labels, val_groups = test_subset(args, {**trained, "val_groups": checkpoint.get(
        "val_groups") or trained.get("val_groups")})
    if [str(c) for c in checkpoint["class_list"]] != class_list:
        raise UserError(f"{args.checkpoint} was trained on {len(checkpoint['class_list'])} classes, but "
                        f"the {args.dataset} split lists of {args.data_dir} give {len(class_list)} (or other names): "
                        f"use the --data-dir it was trained on")
    if Dist().main:
        print_args(args)
    normalize_on = [None]

    def rows(model, frames):
        if normalize_on[0] is None:
            normalize_on[0] = normalize.to(frames.device)
        return rows_fn(model, frames, normalize_on[0])

    num_classes = len(class_list)
    crops = getattr(args, "crops", 1)
    if paths_of is not None:
        paths = paths_of(paths)
    provenance = Provenance(args.predictions_dir, "--predictions-dir", {
        "checkpoint_sha256": file_sha256(args.checkpoint), "class_list": class_list, "split": args.split,
        "subset": args.subset, "val_groups": val_groups, "image_size": args.image_size, "crops": crops,
        "model": {k: info.get(k) for k in ("name", "kind", "arch", "rows")},
        "test": {k: v for k, v in info.get("test", {}).items() if k != "description"}},
        {"checkpoint": os.path.abspath(args.checkpoint), "data_dir": os.path.abspath(args.data_dir)},
        ("model.json", {"checkpoint": os.path.abspath(args.checkpoint), "test": info.get("test"),
                        "rows": info["rows"], "subset": args.subset, "split": args.split}))
    result = stream_videos(
        args, model, paths, plan=plan, max_chunk=max_chunk, rows_fn=rows,
        output_path=lambda p: prediction_files.prediction_path(args.predictions_dir, p),
        write=lambda target, logits, attrs: prediction_files.write_predictions(
            target, logits, {**attrs, "rows": info["rows"], "test": info.get("test", {}).get("description")}),
        complete=lambda target: prediction_files.predictions_complete(target, num_classes), crops=crops,
        features=info["kind"] == "features", unit="feature rows" if info["kind"] == "features" else "frames",
        fixed_shapes=fixed_shapes, provenance=provenance, video_start=video_start, video_end=video_end)
    if not result.ranks.main:
        exit_if_unreadable(result.failed, "not tested")
        return None
    t = result.timing
    timing = {"device": device_name(result.device), "batch_size": args.batch_size,
              "amp": str(result.amp[1]).replace("torch.", "") if result.amp[0] else "off",
              "workers": args.workers, "processes": result.ranks.world_size, "crops": crops,
              "videos": t["videos"], "frames": t["frames"],
              # rows (frames, windows, pieces, video) x crops
              "views_per_video": t["rows"] * crops / max(t["videos"], 1),
              "load_seconds_per_video": t["load_seconds"] / max(t["videos"], 1),
              "model_seconds_per_video": t["model_seconds"] / max(t["videos"], 1),
              "wall_seconds": t["wall_seconds"],
              "fps_end_to_end": t["frames"] / max(t["wall_seconds"], 1e-9),
              "fps_model": t["frames"] / max(t["model_seconds"], 1e-9)}
    log_path = os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), LOG_NAME)
    model_info = {**{k: v for k, v in info.items() if k != "rows"}, "rows": info["rows"], "subset": args.subset,
                  "split": args.split, "val_groups": val_groups, "class_list": class_list,
                  "checkpoint": os.path.abspath(args.checkpoint),
                  "log": log_path if os.path.isfile(log_path) else None, "timing": timing if t["videos"] else None}
    results = summarize_predictions(args, paths, labels, class_list, "frame" if info["rows"] == "frames" else "clip",
                                    args.checkpoint, result.failed, model_info)
    jsonfile.write_json(os.path.join(args.predictions_dir, "model.json"), model_info)
    exit_if_unreadable(result.failed, "not tested")
    return results


def summarize_predictions(args, paths, labels, class_list, row_name, checkpoint_path, failed, model_info=None):
    """results.json and confusion_matrix.npy, recomputed from the prediction files alone."""
    num_classes = len(class_list)
    scored = [
        i
        for i, p in enumerate(paths)
        if prediction_files.predictions_complete(prediction_files.prediction_path(args.predictions_dir, p), num_classes)
    ]
    if not scored:
        raise UserError(f"no video could be tested; see the warnings above ({len(failed)} unreadable)")
    scores, row_correct, row_count = [], 0, 0
    for i in scored:
        logits = prediction_files.read_predictions(prediction_files.prediction_path(args.predictions_dir, paths[i]))
        scores.append(video_scores.video_score(logits))
        row_correct += int((logits.argmax(1) == labels[i]).sum())
        row_count += len(logits)
    summary, cm = accuracy.summarize(np.stack(scores), labels[scored], class_list)
    results = {
        "top1": summary["top1"],
        "top5": summary["top5"],
        "top10": summary["top10"],
        "mean_class_accuracy": summary["mean_class_accuracy"],
        f"{row_name}_accuracy": row_correct / max(row_count, 1),
        "videos": len(scored),
        "failed_videos": sorted(failed),
        "failed": len(failed),
        "split": args.split,
        "subset": getattr(args, "subset", "test"),
        "checkpoint": os.path.abspath(checkpoint_path),
        "predictions_dir": os.path.abspath(args.predictions_dir),
        **{k: v for k, v in summary.items() if k not in ("top1", "top5", "top10", "mean_class_accuracy", "videos")},
    }
    if model_info is not None:
        results["model"] = model_info
    os.makedirs(args.output_dir, exist_ok=True)
    jsonfile.write_json(os.path.join(args.output_dir, "results.json"), results)
    np.save(os.path.join(args.output_dir, "confusion_matrix.npy"), cm)
    print(console.format_class_table(summary["per_class_accuracy"]))
    print(f"videos {len(scored)} (unreadable {len(failed)}), {row_name} accuracy {results[f'{row_name}_accuracy']:.4f}")
    print(f"top1 {results['top1']:.4f}  top5 {results['top5']:.4f}  top10 {results['top10']:.4f}  "
          f"mean class {results['mean_class_accuracy']:.4f}")
    print(f"wrote {os.path.join(args.output_dir, 'results.json')}")
    return results


def batched(x, batch_size):
    """Split a tensor along dim 0 into pieces of at most batch_size."""
    return [x[i:i + batch_size] for i in range(0, len(x), batch_size)]


def crop_mean(logits, crops):
    """Logits of rows x crops views (rows*crops, C) -> the mean over each row's views (rows, C)."""
    return logits if crops == 1 else logits.view(-1, crops, logits.shape[-1]).mean(1)
