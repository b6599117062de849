"""What the 2D and 3D scripts share: flags, devices, DDP, the training and evaluation loops, the
per-video test loop, checkpoints, resume and scheduler signals.

The scripts differ only in how they build the model and which loader kind they use ("frame" or
"clip"); everything here serves both.
"""
import argparse
import ctypes
import datetime
import json
import math
import os
import signal
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

import helperFunctions as hf
import metrics

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped by a scheduler signal after saving; run again to continue
COMPLETE_MARKER = "COMPLETE"
CHECKPOINT_NAME = "checkpoint.pth"
LOG_NAME = "log.jsonl"


class UserError(Exception):
    """A mistake the user can fix (bad path, bad value): reported as one line, no traceback."""


def run_main(main, parser):
    """Parse the command line and run `main(args)`; a UserError becomes one line and exit status 2,
    a dead loader worker one line and exit status 1 (the last checkpoint is kept: run again to resume)."""
    args = parser.parse_args()
    try:
        return main(args)
    except UserError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except hf.LoaderWorkerDied as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        sys.exit(1)
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


# ----------------------------------------------------------------------------------------------
# Flags

def positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def common_parser():
    """Flags shared by every training and test script (parts 1 and 2)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("data and devices")
    g.add_argument("--data-dir", default=None,
                   help="folder holding ucfTrainTestlist/ and UCF-101-hdf5/ (default: data; test scripts: the training run's)")
    g.add_argument("--split", type=int, choices=(1, 2, 3), default=None,
                   help="official split (default: 1; test scripts: the training run's)")
    g.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                   help="auto: CUDA when present, else CPU with a warning (default: auto)")
    g.add_argument("--workers", type=int, default=8, help="loader processes; 0 loads in the main process (default: 8)")
    g.add_argument("--image-size", type=positive_int, default=None,
                   help="frame size fed to the model (default: 224; test scripts: the training run's)")
    g.add_argument("--seed", type=int, default=0, help="seed for shuffling, augmentation and evaluation frames (default: 0)")
    g.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="mixed precision: bf16 where supported, else fp16 with a loss scaler "
                        "(default: on for CUDA, off on CPU)")
    return p


def train_parser(defaults):
    """Training flags; `defaults` sets the model-specific defaults (batch size, trainable layers)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("training")
    g.add_argument("--output-dir", default=defaults["output_dir"],
                   help=f"checkpoint.pth and log.jsonl go here (default: {defaults['output_dir']})")
    g.add_argument("--batch-size", type=positive_int, default=defaults["batch_size"],
                   help=f"samples per step on each GPU/process (default: {defaults['batch_size']})")
    g.add_argument("--epochs", type=positive_int, default=10, help="total epochs (default: 10)")
    g.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default: 1e-4)")
    g.add_argument("--trainable", default=defaults["trainable"],
                   help="comma-separated parameter-name prefixes to train, or 'all' (default: "
                        f"{defaults['trainable'] or 'layer4.2,fc: the last block of layer4 and the classifier'})")
    g.add_argument("--bn-drift", action="store_true",
                   help="let frozen layers' BatchNorm statistics update as the assignment's code does "
                        "(default: frozen BatchNorm stays in eval mode)")
    g.add_argument("--eval-every", type=positive_int, default=1,
                   help="test accuracy every N epochs and after the last (default: 1)")
    g.add_argument("--eval-batch-size", type=positive_int, default=None,
                   help="batch size for the per-epoch test accuracy (default: --batch-size)")
    g.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue from OUTPUT_DIR/checkpoint.pth when present (default: on)")
    g.add_argument("--max-steps", type=int, default=0,
                   help="stop each epoch after N steps, for smoke tests (default: 0 = whole epoch)")
    return p


def test_parser(defaults):
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("testing")
    g.add_argument("--checkpoint", required=True, help="checkpoint.pth written by the training script")
    g.add_argument("--predictions-dir", required=True,
                   help="per-video prediction files go here: <Class>/<video>.hdf5, dataset 'predictions'")
    g.add_argument("--output-dir", required=True, help="results.json and confusion_matrix.npy go here")
    g.add_argument("--batch-size", type=positive_int, default=defaults["batch_size"],
                   help=f"{defaults['unit']} per forward pass (default: {defaults['batch_size']})")
    g.add_argument("--chunk-frames", type=positive_int, default=defaults["chunk_frames"],
                   help="frames loaded at a time, so memory does not grow with video length; up to "
                   "max(3, workers + 1) chunks wait in /dev/shm, resized (default: "
                   f"{defaults['chunk_frames']})")
    g.add_argument("--limit", type=int, default=0, help="test only the first N videos of the split (default: all)")
    return p


def fill_defaults(args, trained_args=None):
    """Defaults that test scripts take from the training run; training uses the assignment's."""
    base = {"data_dir": "data", "split": 1, "image_size": hf.IMAGE_SIZE}
    for key, value in base.items():
        if getattr(args, key) is None:
            setattr(args, key, (trained_args or {}).get(key, value))
    return args


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


def resolve_device(name, ranks):
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
        if name == "cpu" and ranks.main:
            print("warning: no CUDA device found: running on the CPU, which is slow for real data",
                  file=sys.stderr, flush=True)
    if name == "cuda":
        torch.cuda.set_device(ranks.local_rank)
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest kernels
        return torch.device("cuda", ranks.local_rank)
    return torch.device("cpu")


def amp_settings(args, device):
    """(enabled, dtype): bf16 where the GPU supports it, else fp16 (which needs the loss scaler)."""
    enabled = device.type == "cuda" if args.amp is None else args.amp
    if not enabled:
        return False, torch.float32
    if device.type == "cuda":
        return True, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return True, torch.bfloat16


def autocast(device, amp):
    enabled, dtype = amp
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=enabled)


class Normalize(nn.Module):
    """uint8 channels-last batches -> normalised float (N, 3, H, W) or (N, 3, T, H, W) on the device.

    Loaders ship uint8 (4x fewer bytes than float32, no float work on the CPU); this does the rest.
    """

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("scale", 1.0 / (255.0 * torch.tensor(std)), persistent=False)
        self.register_buffer("shift", torch.tensor(mean) / torch.tensor(std), persistent=False)

    def forward(self, x):
        x = x.movedim(-1, 1)  # (N, H, W, 3) -> (N, 3, H, W); (N, T, H, W, 3) -> (N, 3, T, H, W)
        shape = (1, 3) + (1,) * (x.dim() - 2)
        x = x.float() * self.scale.view(shape) - self.shift.view(shape)
        # The moved view is already channels-last in memory; keep that on CUDA, plain layout on the CPU.
        if x.is_cuda:
            return x.contiguous(memory_format=torch.channels_last if x.dim() == 4 else torch.channels_last_3d)
        return x.contiguous()


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


def set_train_mode(model, bn_drift):
    model.train()
    if not bn_drift:
        for m in frozen_batchnorms(model):
            m.eval()


# ----------------------------------------------------------------------------------------------
# Checkpoints and logs

def save_checkpoint(path, state):
    """Atomic: a killed job leaves the previous checkpoint or the new one, never half a file."""
    tmp = f"{path}.tmp-{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"checkpoint {path} not found")
    except (RuntimeError, OSError, EOFError) as e:  # torch reports a damaged zip file as RuntimeError
        raise UserError(f"{path} is not a readable checkpoint ({e})")


def args_for_checkpoint(args):
    return {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool, type(None)))}


def read_log(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write_log(path, entries):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        for entry in entries:
            f.write(json.dumps(entry) + "\n")
    os.replace(tmp, path)


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


def train_one_epoch(model, loader, optimizer, scaler, normalize, device, amp, ranks, stop, *,
                    start_step=0, partial=None, max_steps=0, on_step=None):
    """One epoch (or its rest, after a mid-epoch resume). Returns a stats dict, with 'stopped' set
    when a signal stopped it early (the stats then cover the steps done and can be continued)."""
    totals = dict(partial or {"loss_sum": 0.0, "correct": 0.0, "samples": 0.0, "seconds": 0.0, "wait": 0.0})
    step = start_step
    start = time.perf_counter()
    batches = progress(loader, ranks, total=len(loader) - start_step, desc="train", leave=False)
    stopped = False
    loss_sum = correct = count = 0.0
    for batch in batches:
        x = normalize(to_device(batch.data, device))
        y = to_device(batch.labels, device)
        with autocast(device, amp):
            logits = model(x)
        losses = F.cross_entropy(logits.float(), y, reduction="none")
        step += 1
        if on_step is not None:  # a test hook: "a signal arrives during this step"
            on_step(step)
        batch_loss = losses.detach().sum().item()
        # One small reduction per step keeps the ranks in agreement on stopping (signal or NaN);
        # it comes before the update, so a non-finite loss never reaches the weights.
        flags = ranks.all_reduce([0.0 if math.isfinite(batch_loss) else 1.0, 1.0 if stop.received else 0.0], device)
        if flags[0]:
            raise NonFiniteLoss(f"the loss became non-finite at step {step}: stopping before it reaches the "
                                f"weights (try a lower --lr or --no-amp)")
        # DDP averages gradients over ranks; scaling by world/global size makes the result the mean
        # over the whole global batch even when ranks hold unequal shares (the tail step).
        loss = losses.sum() * ranks.world_size / max(batch.global_size, 1)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        loss_sum += batch_loss
        correct += (logits.argmax(1) == y).sum().item()
        count += len(y)
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


@torch.no_grad()
def evaluate(model, loader, normalize, device, amp, ranks):
    """Accuracy of single samples (one fixed frame or clip per video), reduced over ranks."""
    model.eval()
    correct = count = 0.0
    for batch in progress(loader, ranks, desc="eval", leave=False):
        with autocast(device, amp):
            logits = model(normalize(to_device(batch.data, device)))
        correct += (logits.argmax(1).cpu().numpy() == batch.labels).sum()
        count += len(batch.labels)
    correct, count = ranks.all_reduce([correct, count], device)
    return {"test_acc": correct / max(count, 1), "test_samples": int(count)}


def build_loaders(args, kind, split_data, pool, ranks, loader_kwargs):
    (train_paths, train_labels), (test_paths, test_labels) = split_data
    train = hf.BatchLoader(train_paths, train_labels, args.batch_size, kind, augment=True, shuffle=True,
                           seed=args.seed, pool=pool, rank=ranks.rank, world_size=ranks.world_size,
                           size=args.image_size, **loader_kwargs)
    test = hf.BatchLoader(test_paths, test_labels, args.eval_batch_size or args.batch_size, kind, augment=False,
                          shuffle=False, seed=args.seed, pool=pool, rank=ranks.rank,
                          world_size=ranks.world_size, fixed=True, size=args.image_size, **loader_kwargs)
    return train, test


def load_split(args, ranks):
    try:
        class_list, train, test = hf.getUCF101(args.data_dir, args.split)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e))
    if ranks.world_size > min(len(train[0]), len(test[0])):
        raise UserError(f"{ranks.world_size} processes but only {len(test[0])} test videos")
    return [str(c) for c in class_list], train, test


def train(args, build_model, kind, norm, loader_kwargs=None, after_trainable=None):
    """The training driver of both train scripts.

    build_model(args, num_classes, ranks) -> nn.Module with pretrained weights loaded (CPU).
    kind: "frame" or "clip"; norm: (mean, std) on [0, 1].
    Writes OUTPUT_DIR/checkpoint.pth every epoch (and on a stop signal), log.jsonl, COMPLETE at the end.
    Returns the last log entry.
    """
    ranks = Dist()
    pool = hf.make_pool(args.workers, shield_signals=True)  # before CUDA and the model: workers are forked
    stop = StopSignals().__enter__()  # from the start: a signal during set-up must not kill the job unsaved
    try:
        device = resolve_device(args.device, ranks)
        ranks.init(device)
        torch.manual_seed(args.seed)
        class_list, train_data, test_data = load_split(args, ranks)
        if ranks.main:
            print_args(args)
            os.makedirs(args.output_dir, exist_ok=True)
        ckpt_path = os.path.join(args.output_dir, CHECKPOINT_NAME)
        log_path = os.path.join(args.output_dir, LOG_NAME)
        marker = os.path.join(args.output_dir, COMPLETE_MARKER)

        checkpoint = None
        if args.resume and os.path.exists(ckpt_path):
            checkpoint = load_checkpoint(ckpt_path)
            if checkpoint.get("class_list") != class_list:
                raise UserError(f"{ckpt_path} was trained on other classes; use another --output-dir or --no-resume")

        model = build_model(args, len(class_list), ranks, pretrained=checkpoint is None)
        trainable = set_trainable(model, args.trainable)
        if after_trainable is not None:
            after_trainable(model)
            trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        if checkpoint is not None:
            model.load_state_dict(checkpoint["model"])
        model = prepare_model(model, device)
        raw_model = model
        if ranks.enabled:
            model = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)
        params = [p for p in raw_model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=args.lr)
        amp = amp_settings(args, device)
        # fp16 needs loss scaling; with bf16 or fp32 the scaler is a no-op passthrough.
        scaler = torch.amp.GradScaler(device.type, enabled=amp[0] and amp[1] == torch.float16)
        normalize = Normalize(*norm).to(device)

        start_epoch, start_step, partial = 0, 0, None
        if checkpoint is not None:
            optimizer.load_state_dict(checkpoint["optimizer"])
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
        log_entries = [e for e in read_log(log_path) if e["epoch"] <= start_epoch] if checkpoint else []
        if ranks.main:
            write_log(log_path, log_entries)  # drops lines of epochs the checkpoint does not hold
            if start_epoch < args.epochs and os.path.exists(marker):
                os.remove(marker)
            print(f"{sum(p.numel() for p in params):,} trainable parameters of "
                  f"{sum(p.numel() for p in raw_model.parameters()):,} in {len(trainable)} tensors; "
                  f"device {device}, amp {amp[1] if amp[0] else 'off'}, {ranks.world_size} process(es)", flush=True)

        train_loader, test_loader = build_loaders(args, kind, (train_data, test_data), pool, ranks,
                                                  loader_kwargs or {})

        def state(epoch, step=0, partial_totals=None):
            return {"model": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(), "epoch": epoch, "step": step, "partial": partial_totals,
                    "args": args_for_checkpoint(args), "class_list": class_list, "kind": kind,
                    "global_batch": args.batch_size * ranks.world_size}

        entry = log_entries[-1] if log_entries else None
        for epoch in range(start_epoch, args.epochs):
            set_train_mode(model, args.bn_drift)
            train_loader.set_epoch(epoch, start_step)
            result = train_one_epoch(model, train_loader, optimizer, scaler, normalize, device, amp, ranks,
                                     stop, start_step=start_step, partial=partial, max_steps=args.max_steps)
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
                test_loader.set_epoch(0)
                entry.update(evaluate(model, test_loader, normalize, device, amp, ranks))
            if ranks.main:
                log_entries.append(entry)
                write_log(log_path, log_entries)
                save_checkpoint(ckpt_path, state(epoch + 1))
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
        return entry
    except NonFiniteLoss as e:
        raise UserError(str(e))
    finally:
        stop.__exit__()
        hf.close_pool(pool)


def format_entry(entry, epochs):
    text = (f"epoch {entry['epoch']}/{epochs}: loss {entry['train_loss']:.4f} train acc {entry['train_acc']:.4f}")
    if "test_acc" in entry:
        text += f" test acc {entry['test_acc']:.4f}"
    return text + (f" | {entry['samples']} samples, {entry['samples_per_s']:.1f}/s, "
                   f"waited on data {100 * entry['data_wait_fraction']:.0f}%")


# ----------------------------------------------------------------------------------------------
# Testing whole videos

def load_trained(args, ranks, expected_kind):
    """Checkpoint of a training script: (checkpoint dict, its training args)."""
    checkpoint = load_checkpoint(args.checkpoint)
    if not isinstance(checkpoint, dict) or "model" not in checkpoint or "class_list" not in checkpoint:
        raise UserError(f"{args.checkpoint} is not a checkpoint written by the training scripts")
    if checkpoint.get("kind", expected_kind) != expected_kind:
        raise UserError(f"{args.checkpoint} holds a {checkpoint['kind']} model; use the other test script")
    return checkpoint, checkpoint.get("args", {})


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


def test_videos(args, model, normalize, plan, max_chunk, rows_fn, class_list, row_name, checkpoint_path):
    """The test driver of both test scripts.

    plan(path) -> [(start, stop)] frame ranges to load, each at most max_chunk frames;
    rows_fn(model, frames, normalize) -> logits rows for one uint8 chunk (F, H, W, 3) on the device,
    normalised batch by batch so memory follows the batch size, not the chunk. A video's rows are written to PREDICTIONS_DIR/<Class>/<video>.hdf5 once all
    its chunks are done; videos with a complete file are skipped (resume). Rank 0 then computes
    results.json and confusion_matrix.npy from the prediction files.
    """
    return_freed_memory()
    ranks = Dist()
    pool = hf.make_pool(args.workers, shield_signals=True)
    stop = StopSignals().__enter__()
    try:
        device = resolve_device(args.device, ranks)
        ranks.init(device)
        try:
            _, _, (paths, labels) = hf.getUCF101(args.data_dir, args.split)
        except (FileNotFoundError, ValueError) as e:
            raise UserError(str(e))
        if args.limit:
            paths, labels = paths[:args.limit], labels[:args.limit]
        if ranks.main:
            print_args(args)
        model = prepare_model(model, device).eval()
        normalize = normalize.to(device)
        amp = amp_settings(args, device)
        num_classes = len(class_list)

        mine = list(range(ranks.rank, len(paths), ranks.world_size))
        todo = [i for i in mine if not metrics.predictions_complete(
            metrics.prediction_path(args.predictions_dir, paths[i]), num_classes)]
        if ranks.main and len(todo) < len(mine):
            print(f"{len(mine) - len(todo)} videos already have predictions: skipping them", flush=True)
        loader = hf.VideoChunkLoader([paths[i] for i in todo], plan, pool=pool, size=args.image_size,
                                     depth=max(2, args.workers), max_chunk=max_chunk)
        failed, rows, computed, written = {}, [], 0, 0
        start = time.perf_counter()
        with torch.no_grad():
            for video_index, number, count, chunk in progress(loader, ranks, desc="test", unit="chunk"):
                path = paths[todo[video_index]]
                if isinstance(chunk, str):
                    failed[str(path)] = chunk
                    hf.log.warning("cannot test %s: %s", path, chunk)
                    rows = []
                    continue
                with autocast(device, amp):
                    logits = rows_fn(model, to_device(chunk, device), normalize)
                rows.append(logits.float().cpu().numpy())
                computed += len(chunk)
                if number + 1 == count:  # the video's last chunk: its file is complete
                    metrics.write_predictions(metrics.prediction_path(args.predictions_dir, path),
                                              np.concatenate(rows))
                    rows, written = [], written + 1
                    if stop.received:
                        break
        seconds = time.perf_counter() - start
        failed = gather(failed, ranks)
        written_per_rank = gather(written, ranks)
        if ranks.all_reduce([1.0 if stop.received else 0.0], device)[0]:  # any rank stopped: all stop
            if ranks.main:
                print(f"{stop.received or 'signal'}: stopped; finished videos are saved, "
                      f"run the same command again to continue", flush=True)
            sys.exit(EXIT_PREEMPTED)
        ranks.barrier()
        if ranks.main:
            print(f"wrote predictions for {sum(written_per_rank)} videos (per rank: "
                  f"{', '.join(map(str, written_per_rank))}); {computed} frames in {seconds:.1f} s "
                  f"({computed / max(seconds, 1e-9):.1f} frames/s), loader wait {loader.wait_seconds:.1f} s",
                  flush=True)
            return summarize_predictions(args, paths, labels, class_list, row_name, checkpoint_path, failed)
        return None
    finally:
        stop.__exit__()
        hf.close_pool(pool)


def gather(value, ranks):
    """Every rank's `value`: a dict is merged, anything else listed by rank."""
    gathered = [value]
    if ranks.enabled:
        gathered = [None] * ranks.world_size
        dist.all_gather_object(gathered, value)
    if isinstance(value, dict):
        return {k: v for part in gathered for k, v in part.items()}
    return gathered


def summarize_predictions(args, paths, labels, class_list, row_name, checkpoint_path, failed):
    """results.json and confusion_matrix.npy, recomputed from the prediction files alone."""
    num_classes = len(class_list)
    scored = [i for i, p in enumerate(paths)
              if metrics.predictions_complete(metrics.prediction_path(args.predictions_dir, p), num_classes)]
    if not scored:
        raise UserError(f"no video could be tested; see the warnings above ({len(failed)} unreadable)")
    scores, row_correct, row_count = [], 0, 0
    for i in scored:
        logits = metrics.read_predictions(metrics.prediction_path(args.predictions_dir, paths[i]))
        scores.append(metrics.video_score(logits))
        row_correct += int((logits.argmax(1) == labels[i]).sum())
        row_count += len(logits)
    summary, cm = metrics.summarize(np.stack(scores), labels[scored], class_list)
    results = {"top1": summary["top1"], "top5": summary["top5"], "top10": summary["top10"],
               "mean_class_accuracy": summary["mean_class_accuracy"],
               f"{row_name}_accuracy": row_correct / max(row_count, 1), "videos": len(scored),
               "failed_videos": sorted(failed), "failed": len(failed), "split": args.split,
               "checkpoint": os.path.abspath(checkpoint_path), "predictions_dir": os.path.abspath(args.predictions_dir),
               **{k: v for k, v in summary.items() if k not in ("top1", "top5", "top10", "mean_class_accuracy", "videos")}}
    os.makedirs(args.output_dir, exist_ok=True)
    metrics.write_json(os.path.join(args.output_dir, "results.json"), results)
    np.save(os.path.join(args.output_dir, "confusion_matrix.npy"), cm)
    print(metrics.format_class_table(summary["per_class_accuracy"]))
    print(f"videos {len(scored)} (unreadable {len(failed)}), {row_name} accuracy {results[f'{row_name}_accuracy']:.4f}")
    print(f"top1 {results['top1']:.4f}  top5 {results['top5']:.4f}  top10 {results['top10']:.4f}  "
          f"mean class {results['mean_class_accuracy']:.4f}")
    print(f"wrote {os.path.join(args.output_dir, 'results.json')}")
    return results


def batched(x, batch_size):
    """Split a tensor along dim 0 into pieces of at most batch_size."""
    return [x[i:i + batch_size] for i in range(0, len(x), batch_size)]
