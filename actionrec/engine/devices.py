"""Devices and processes: CUDA or CPU, DDP ranks under torchrun, mixed precision, memory handed back."""

import argparse
import ctypes
import datetime
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from actionrec.guards import UserError


def uses_cuda(args: argparse.Namespace) -> bool:
    """Whether --device (auto, cuda or cpu) will run on CUDA (resolve_device checks that it exists)."""
    device = getattr(args, "device", "auto")
    return device == "cuda" or (device == "auto" and torch.cuda.is_available())


class Dist:
    """Rank information; world_size 1 without torchrun."""

    def __init__(self):
        self.rank = int(os.environ.get("RANK", 0))
        self.world_size = int(os.environ.get("WORLD_SIZE", 1))
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        self.enabled = self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def init(self, device: torch.device) -> None:
        if self.enabled and not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            # Test videos are shared unevenly in time; a long barrier must not time out.
            dist.init_process_group(backend, timeout=datetime.timedelta(hours=2),
                                    device_id=device if device.type == "cuda" else None)

    def all_reduce(self, values: Sequence[float], device: torch.device, op: Any = None) -> list[float]:
        """Sum (or `op`) a list of numbers over ranks; returns floats."""
        if not self.enabled:
            return [float(v) for v in values]
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t, op=op or dist.ReduceOp.SUM)
        return t.tolist()

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def resolve_device(name: str, ranks: Dist, fixed_shapes: bool = True) -> torch.device:
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
Amp = tuple[bool, torch.dtype]  # (autocast enabled, its dtype): what amp_settings decides

CPU_3D_AMP_NOTE = ("note: --amp is off for 3D convolutions on the CPU (oneDNN's bf16 3D-convolution backward "
                   "corrupts memory on some CPUs; see bench/README.md): float32 instead")


def amp_settings(
    args: argparse.Namespace, device: torch.device, model: nn.Module | None = None, ranks: Dist | None = None
) -> Amp:
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


def model_amp(amp: Amp, device: torch.device, model: nn.Module | None) -> Amp:
    """The precision `model` runs in on `device` when `amp` is asked for: float32 for 3D convolutions
    on the CPU (CPU_3D_AMP_NOTE), `amp` otherwise."""
    if amp[0] and device.type == "cpu" and model is not None and any(
            isinstance(m, nn.Conv3d) for m in model.modules()):
        return False, torch.float32
    return amp


def grad_scaler(device: torch.device, amp: Amp) -> torch.amp.GradScaler:
    """fp16 needs loss scaling; with bf16 or fp32 the scaler is a no-op passthrough."""
    return torch.amp.GradScaler(device.type, enabled=amp[0] and amp[1] == torch.float16)


def autocast(device: torch.device, amp: Amp) -> torch.autocast:
    enabled, dtype = amp
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=enabled)


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    tensor = torch.from_numpy(array)
    if device.type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    if device.type == "cuda":
        fmt = torch.channels_last if any(m.weight.dim() == 4 for m in model.modules() if isinstance(m, nn.Conv2d)) \
            else torch.channels_last_3d
        model = model.to(device, memory_format=fmt)
    return model.to(device)


def return_freed_memory() -> None:
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


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"


def gather(value: Any, ranks: Dist, merge: bool = True) -> Any:
    """Every rank's `value`: a dict is merged (unless merge=False), anything else listed by rank."""
    gathered = [value]
    if ranks.enabled:
        gathered = [None] * ranks.world_size
        dist.all_gather_object(gathered, value)
    if isinstance(value, dict) and merge:
        return {k: v for part in gathered for k, v in part.items()}
    return gathered
