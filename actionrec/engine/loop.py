"""The training loop: one epoch of steps, and the evaluation of a held-out loader."""

import math
import re
import sys
import time
from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from actionrec.data.batching import Batch, BatchLoader
from actionrec.engine import devices, optim, runlog
from actionrec.engine.devices import Amp, Dist
from actionrec.engine.model_io import Forward
from actionrec.engine.signals import StopSignals
from actionrec.guards import UserError


class NonFiniteLoss(RuntimeError):
    pass


def sample_losses(forward: Forward, logits: torch.Tensor, y: torch.Tensor, reduction: str = "none") -> torch.Tensor:
    """Per-sample loss (N,) (reduction "sum": their sum): the cross-entropy, or with label heads
    (forward.heads) the weighted sum of theirs."""
    heads = getattr(forward, "heads", None)
    if heads is None:
        return F.cross_entropy(logits.float(), y, reduction=reduction)
    losses = heads.loss(logits.float(), y)
    return losses.sum() if reduction == "sum" else losses


def sample_hits(forward: Forward, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """bool (N,): the top-1 class is the label (with label heads: every head's is)."""
    heads = getattr(forward, "heads", None)
    return logits.argmax(1) == y if heads is None else heads.hits(logits, y)


def step_losses(
    model: nn.Module, batch: Batch, forward: Forward, device: torch.device, amp: Amp, y: torch.Tensor
) -> tuple[torch.Tensor | None, torch.Tensor | None, float, ValueError | None]:
    """(logits, per-sample losses, their sum as a float, None) for one batch; when BatchNorm refuses
    this rank's batch of one sample: (None, None, 0.0, the refusal)."""
    try:
        with devices.autocast(device, amp):
            logits, extra = forward(model, batch, device, labels=y)
    except ValueError as e:
        if not is_single_sample_batchnorm(e):
            raise
        return None, None, 0.0, e
    losses = sample_losses(forward, logits, y)
    if extra is not None:
        losses = losses + extra.float()
    return logits, losses, losses.detach().sum().item(), None


def update_weights(
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    losses: torch.Tensor,
    batch: Batch,
    ranks: Dist,
    params: list[torch.Tensor],
    clip_grad_norm: float | None,
) -> None:
    """One optimizer step on this rank's per-sample losses."""
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


def epoch_totals(
    totals: dict, counts: list[float], seconds: float, loader: BatchLoader, ranks: Dist, device: torch.device
) -> dict:
    """The running totals of an epoch (those of a resumed part first) plus this part's, summed over ranks."""
    loss_sum, correct, count = ranks.all_reduce(counts, device)
    wait = ranks.all_reduce([loader.wait_seconds], device, op=dist.ReduceOp.MAX if ranks.enabled else None)[0]
    return {"loss_sum": totals["loss_sum"] + loss_sum, "correct": totals["correct"] + correct,
            "samples": totals["samples"] + count, "seconds": totals["seconds"] + seconds,
            "wait": totals["wait"] + wait}


def train_one_epoch(
    model: nn.Module,
    loader: BatchLoader,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    forward: Forward,
    device: torch.device,
    amp: Amp,
    ranks: Dist,
    stop: StopSignals,
    *,
    start_step: int = 0,
    partial: dict | None = None,
    max_steps: int = 0,
    on_step: Callable[[int], None] | None = None,
    schedule: Callable[[int], float] | None = None,
    clip_grad_norm: float | None = None,
    log_step: Callable[[int, float], None] | None = None,
    step_seed: Callable[[int], int] | None = None,
) -> dict:
    """One epoch (or its rest, after a mid-epoch resume). Returns a stats dict, with 'stopped' set
    when a signal stopped it early (the stats then cover the steps done and can be continued).

    schedule(step) -> lr factor for that 0-based step of the epoch; log_step(step, mean loss of the
    step over all ranks) is called after every step (TensorBoard); step_seed(step) -> the seed of
    torch's generator for that step, so dropout draws the same masks after a resume.
    """
    totals = dict(partial or {"loss_sum": 0.0, "correct": 0.0, "samples": 0.0, "seconds": 0.0, "wait": 0.0})
    step = start_step
    start = time.perf_counter()
    batches = runlog.progress(loader, ranks, total=len(loader) - start_step, desc="train", leave=False)
    stopped = False
    loss_sum = correct = count = 0.0
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for batch in batches:
        if schedule is not None:
            optim.set_lr(optimizer, schedule(step))
        if step_seed is not None:
            torch.manual_seed(step_seed(step))
        y = devices.to_device(batch.labels, device)
        logits, losses, batch_loss, single = step_losses(model, batch, forward, device, amp, y)
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
            update_weights(optimizer, scaler, losses, batch, ranks, params, clip_grad_norm)
            loss_sum += batch_loss
            correct += sample_hits(forward, logits, y).sum().item()
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
    totals = epoch_totals(totals, [loss_sum, correct, count], time.perf_counter() - start, loader, ranks, device)
    return {"step": step, "stopped": stopped, "totals": totals}


def is_single_sample_batchnorm(error: Exception) -> bool:
    """Whether a ValueError of a training forward pass is BatchNorm's refusal of a batch that gives it one
    value per channel (one sample whose maps are 1x1): it cannot compute a variance from one value."""
    return "Expected more than 1 value per channel when training" in str(error)


def skip_single_sample_step(loader: BatchLoader, ranks: Dist, step: int, error: Exception | None) -> None:
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
def evaluate(
    model: nn.Module,
    loader: BatchLoader,
    forward: Forward,
    device: torch.device,
    amp: Amp,
    ranks: Dist,
    name: str = "test",
) -> dict:
    """Accuracy and loss of single samples (one fixed frame, clip, set of segment centres or feature window
    per video), reduced over ranks so each sample counts once: {name}_acc, {name}_loss (the mean
    cross-entropy, as training's loss without its extra terms; with heads, the sum of their weighted
    cross-entropies, {name}_acc counting a sample right when every head is), {name}_samples, and with
    heads {name}_{head}_acc of each head."""
    model.eval()
    correct = count = loss_sum = 0.0
    heads = getattr(forward, "heads", None)
    head_names = heads.names if heads is not None else []
    head_correct = [0.0] * len(head_names)
    for batch in runlog.progress(loader, ranks, desc="eval", leave=False):
        y = devices.to_device(batch.labels, device)
        with devices.autocast(device, amp):
            logits, _ = forward(model, batch, device)
        loss_sum += sample_losses(forward, logits, y, reduction="sum").item()
        correct += sample_hits(forward, logits, y).sum().item()
        count += len(batch.labels)
        if head_names:
            hits = heads.head_hits(logits, y)
            head_correct = [c + hits[h].sum().item() for c, h in zip(head_correct, head_names)]
    correct, count, loss_sum, *head_correct = ranks.all_reduce([correct, count, loss_sum, *head_correct], device)
    per_head = {f"{name}_{head}_acc": c / max(count, 1) for head, c in zip(head_names, head_correct)}
    return {f"{name}_acc": correct / max(count, 1), f"{name}_loss": loss_sum / max(count, 1),
            f"{name}_samples": int(count), **per_head}
