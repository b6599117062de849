"""What trains and how fast: trainable parts, partial BatchNorm, the optimizer and the learning-rate schedule."""

import argparse
import math

import torch
import torch.nn as nn

from actionrec.guards import UserError


def set_trainable(model: nn.Module, spec: str) -> list[str]:
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


def frozen_batchnorms(model: nn.Module) -> list[nn.Module]:
    """BatchNorm layers whose parameters are all frozen: kept in eval mode so statistics do not drift."""
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters())]


def batchnorms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def apply_partial_bn(model: nn.Module) -> None:
    """TSN's partial BN: freeze the affine parameters of every BatchNorm but the first; being frozen,
    they then stay in eval mode (set_train_mode), so their statistics do not change either."""
    norms = batchnorms(model)
    if not norms:
        raise UserError("--partial-bn: this model has no BatchNorm layer")
    for m in norms[1:]:
        for p in m.parameters():
            p.requires_grad = False


def trains_batchnorm(model: nn.Module, bn_drift: bool) -> bool:
    """Whether set_train_mode leaves a BatchNorm layer in training mode (one that needs two values per channel)."""
    return len(batchnorms(model)) > (0 if bn_drift else len(frozen_batchnorms(model)))


def set_train_mode(model: nn.Module, bn_drift: bool) -> None:
    model.train()
    if not bn_drift:
        for m in frozen_batchnorms(model):
            m.eval()


def head_parameters(model: nn.Module, head: str) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(body, head) trainable parameters; `head` is the new classifier's name prefix (e.g. fc, fc8)."""
    body, head_params = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (head_params if name == head or name.startswith(head + ".") else body).append(param)
    return body, head_params


def build_optimizer(args: argparse.Namespace, model: nn.Module, head: str) -> torch.optim.Optimizer:
    """Adam or SGD over the trainable parameters; the classifier in a group of its own with lr x
    --head-lr-mult. Each group records its base lr ("initial_lr"), which the schedule scales."""
    body, head_params = head_parameters(model, head)
    groups = [{"params": ps, "lr": args.lr * mult, "initial_lr": args.lr * mult}
              for ps, mult in ((body, 1.0), (head_params, args.head_lr_mult)) if ps]
    if args.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    return torch.optim.Adam(groups, lr=args.lr, weight_decay=args.weight_decay)


def lr_factor(args: argparse.Namespace, epoch: int, step: int, steps_per_epoch: int) -> float:
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


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor


def check_schedule_args(args: argparse.Namespace) -> None:
    if args.lr_schedule == "step" and not args.lr_steps:
        raise UserError("--lr-schedule step needs --lr-steps (e.g. 30,60 or every:10)")
    if args.warmup_epochs and args.warmup_epochs >= args.epochs:
        raise UserError(f"--warmup-epochs {args.warmup_epochs:g} must be below --epochs {args.epochs}")
