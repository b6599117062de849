"""Training a model from a script: the split, the loaders, resume, epochs, checkpoints and the log."""

import argparse
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from actionrec.data import batching, datasets, loader_pool, video_groups
from actionrec.data.batching import BatchLoader
from actionrec.engine import (
    best_checkpoint,
    checkpoints,
    cli_flags,
    devices,
    label_heads,
    loop,
    model_io,
    optim,
    runlog,
    runner,
    signals,
    video_stream,
)
from actionrec.engine.devices import Dist
from actionrec.engine.model_io import Forward
from actionrec.engine.signals import StopSignals
from actionrec.guards import UserError, check_output_paths, script_inputs


def build_loaders(
    args: argparse.Namespace,
    kind: str,
    split_data: tuple,
    pool: Any,
    ranks: Dist,
    loader_kwargs: dict,
    eval_kwargs: dict | None = None,
    batchnorm: bool = False,
) -> tuple[BatchLoader, BatchLoader]:
    """(training loader, evaluation loader). batchnorm=True (the model trains BatchNorm layers): the last
    step of an epoch never leaves a rank one sample, which BatchNorm cannot train on at small image sizes
    (train_one_epoch skips such a step when unreadable videos make one)."""
    (train_paths, train_labels), (test_paths, test_labels) = split_data
    if kind != "features":  # feature sequences have no frame size
        loader_kwargs = {"size": args.image_size, **loader_kwargs}
    train = batching.BatchLoader(train_paths, train_labels, args.batch_size, kind, augment=True, shuffle=True,
                           seed=args.seed, pool=pool, rank=ranks.rank, world_size=ranks.world_size,
                           min_share=2 if batchnorm else 1, **loader_kwargs)
    test = batching.BatchLoader(test_paths, test_labels, args.eval_batch_size or args.batch_size, kind, augment=False,
                          shuffle=False, seed=args.seed, pool=pool, rank=ranks.rank,
                          world_size=ranks.world_size, fixed=True, **{**loader_kwargs, **(eval_kwargs or {})})
    return train, test


def load_split(args: argparse.Namespace, ranks: Dist) -> tuple[list[str], tuple, tuple, str]:
    """(class_list, train, held_out, held_out_name): the training videos and those the per-epoch
    accuracy is measured on, the split's test videos or, with --val-groups, the held-out groups."""
    try:
        class_list, train, test = datasets.get_split(args.data_dir, args.split, getattr(args, "storage", "auto"),
                                               cli_flags.resolve_dataset(args))
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    held_out, name = test, "test"
    if getattr(args, "val_groups", None):
        try:
            groups = video_groups.parse_groups(args.val_groups)
            train, held_out = video_groups.split_by_groups(train[0], train[1], groups, args.dataset)
        except ValueError as e:
            raise UserError(f"--val-groups {args.val_groups}: {e}") from None
        name = "val"
        if ranks.main:
            print(f"validation: groups {', '.join(f'g{g:02d}' for g in groups)} held out of training "
                  f"({len(held_out[0])} videos; {len(train[0])} left for training)", flush=True)
    return [str(c) for c in class_list], train, held_out, name


def training_data(args: argparse.Namespace, ranks: Dist, paths_of: Callable[[list], list] | None = None) -> tuple:
    """(class_list, train, held_out, held_out_name, heads): load_split's, or with --annotations the CSV's
    subsets and label heads (label_heads.training_split; else heads is None); `paths_of(paths)` maps the
    video paths to what the loader reads (the RNN's feature files, flow files)."""
    heads = None
    if getattr(args, "annotations", None):
        heads, train, held_out, name = label_heads.training_split(args, ranks.main)
        class_list = heads.class_list
    else:
        class_list, train, held_out, name = load_split(args, ranks)
    if paths_of is not None:
        train, held_out = (paths_of(train[0]), train[1]), (paths_of(held_out[0]), held_out[1])
    if ranks.world_size > min(len(train[0]), len(held_out[0])):
        raise UserError(f"{ranks.world_size} processes but only {min(len(train[0]), len(held_out[0]))} "
                        f"videos to share")
    return class_list, train, held_out, name, heads


def read_resume_checkpoint(args: argparse.Namespace, ckpt_path: str, class_list: list[str], kind: str) -> dict | None:
    """The checkpoint to resume from (None: start afresh), checked to be one of this run's kind and classes."""
    if not (args.resume and os.path.exists(ckpt_path)):
        return None
    checkpoint = checkpoints.load_checkpoint(ckpt_path, what="the checkpoint to resume from (or use --no-resume)")
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise UserError(f"{ckpt_path} is not a checkpoint of the training scripts; use another --output-dir "
                        f"or --no-resume")
    if checkpoint.get("class_list") != class_list:
        raise UserError(f"{ckpt_path} was trained on other classes; use another --output-dir or --no-resume")
    if checkpoint.get("kind", kind) != kind:
        raise UserError(f"{ckpt_path} holds a {checkpoint['kind']} model, not a {kind} model; use another "
                        f"--output-dir or --no-resume")
    return checkpoint


def build_trained_part(
    args: argparse.Namespace,
    build_model: Callable[..., nn.Module],
    num_classes: int,
    ranks: Dist,
    checkpoint: dict | None,
    ckpt_path: str,
    after_trainable: Callable[[nn.Module], None] | None,
) -> tuple[nn.Module, list[str]]:
    """(the model on the CPU with its trainable parameters chosen and the checkpoint's weights loaded,
    the names of its trainable tensors)."""
    model = build_model(args, num_classes, ranks, pretrained=checkpoint is None)
    optim.set_trainable(model, args.trainable)
    if after_trainable is not None:
        after_trainable(model)
    if args.partial_bn:
        optim.apply_partial_bn(model)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    if checkpoint is not None:
        try:
            model.load_state_dict(checkpoint["model"])
        except RuntimeError as e:
            raise UserError(f"{ckpt_path} does not fit this model ({runner.one_line(e)}); use the same model flags, "
                            f"another --output-dir or --no-resume") from None
    return model, trainable


def restore_optimizer(
    args: argparse.Namespace,
    checkpoint: dict,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    ckpt_path: str,
    ranks: Dist,
) -> tuple[int, int, dict | None]:
    """Load the optimizer and scaler state of `checkpoint`; returns (start epoch, start step, partial
    totals of an epoch stopped part-way)."""
    try:
        optimizer.load_state_dict(checkpoint["optimizer"])
    except (ValueError, KeyError) as e:
        raise UserError(f"{ckpt_path}: its optimizer state does not fit --optimizer {args.optimizer} / "
                        f"--trainable / --head-lr-mult ({runner.one_line(e)}); use the same flags or --no-resume"
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
    return start_epoch, start_step, partial


def epoch_entry(epoch: int, totals: dict, train_loader: BatchLoader, optimizer: torch.optim.Optimizer) -> dict:
    """The log line of a finished training epoch (evaluation results are added to it)."""
    return {"epoch": epoch + 1,
            "train_loss": totals["loss_sum"] / max(totals["samples"], 1),
            "train_acc": totals["correct"] / max(totals["samples"], 1),
            "samples": int(totals["samples"]), "seconds": round(totals["seconds"], 3),
            "samples_per_s": totals["samples"] / max(totals["seconds"], 1e-9),
            "data_wait_fraction": min(totals["wait"] / max(totals["seconds"], 1e-9), 1.0),
            "failed_samples": len(train_loader.failed),
            "lr": optimizer.param_groups[0]["lr"]}


class TrainingRun:
    """One training run after set-up: the model (and its DDP wrapper), optimizer, loaders and paths; runs
    the epochs from where the checkpoint left off and writes the checkpoint, the log and TensorBoard."""

    def __init__(self, args, kind, class_list, ranks, device, stop, model, raw_model, optimizer, scaler, forward,
                 amp, loaders, eval_name):
        self.args, self.kind, self.class_list, self.ranks, self.device, self.stop = (
            args, kind, class_list, ranks, device, stop)
        self.model, self.raw_model, self.optimizer, self.scaler, self.forward, self.amp = (
            model, raw_model, optimizer, scaler, forward, amp)
        self.train_loader, self.eval_loader = loaders
        self.eval_name = eval_name
        self.ckpt_path = os.path.join(args.output_dir, checkpoints.CHECKPOINT_NAME)
        self.log_path = os.path.join(args.output_dir, runlog.LOG_NAME)
        self.marker = os.path.join(args.output_dir, checkpoints.COMPLETE_MARKER)
        self.steps_per_epoch = min(len(self.train_loader), args.max_steps) if args.max_steps else len(self.train_loader)
        self.board = None
        self.best = best_checkpoint.BestKeeper("none", eval_name)
        self.heads = None  # label_heads.Heads of a run on an annotation CSV

    def state(self, epoch: int, step: int = 0, partial_totals: dict | None = None) -> dict:
        """The checkpoint's contents after `step` steps of `epoch` (0 and None: the epoch is complete)."""
        args = self.args
        return {"model": self.raw_model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "epoch": epoch, "step": step, "partial": partial_totals,
                "args": checkpoints.args_for_checkpoint(args), "class_list": self.class_list, "kind": self.kind,
                "global_batch": args.batch_size * self.ranks.world_size, "best": self.best.record,
                "val_groups": list(video_groups.parse_groups(args.val_groups)) if args.val_groups else [],
                "lr_schedule": {"schedule": args.lr_schedule, "steps_per_epoch": self.steps_per_epoch,
                                "factor": optim.lr_factor(args, epoch, step, self.steps_per_epoch)},
                **({"heads": self.heads.record()} if self.heads is not None else {})}

    def one_epoch(self, epoch: int, start_step: int, partial: dict | None) -> dict:
        args, ranks = self.args, self.ranks
        optim.set_train_mode(self.model, args.bn_drift)
        self.train_loader.set_epoch(epoch, start_step)
        return loop.train_one_epoch(
            self.model, self.train_loader, self.optimizer, self.scaler, self.forward, self.device, self.amp, ranks,
            self.stop, start_step=start_step, partial=partial, max_steps=args.max_steps,
            clip_grad_norm=args.clip_grad_norm,
            schedule=lambda step: optim.lr_factor(args, epoch, step, self.steps_per_epoch),
            log_step=lambda step, loss: self.board.step(epoch * self.steps_per_epoch + step, loss),
            step_seed=lambda step: batching.sample_seed(args.seed, epoch, step * ranks.world_size + ranks.rank))

    def finish_epoch(self, epoch: int, result: dict, log_entries: list[dict]) -> dict:
        """Evaluate when due, then log and save the finished epoch; returns its log entry."""
        args = self.args
        entry = epoch_entry(epoch, result["totals"], self.train_loader, self.optimizer)
        if (epoch + 1) % args.eval_every == 0 or epoch + 1 == args.epochs:
            self.eval_loader.set_epoch(0)
            entry.update(loop.evaluate(self.model, self.eval_loader, self.forward, self.device, self.amp, self.ranks,
                                       self.eval_name))
        better = self.best.update(entry)
        if self.ranks.main:
            log_entries.append(entry)
            if better:  # before checkpoint.pth, which then records it (best_checkpoint.resumed_record)
                checkpoints.save_checkpoint(best_checkpoint.best_path(args.output_dir), self.state(epoch + 1))
            checkpoints.save_checkpoint(self.ckpt_path, self.state(epoch + 1))
            runlog.write_log(self.log_path, log_entries)
            self.board.epoch((epoch + 1) * self.steps_per_epoch, entry)
            print(runlog.format_entry(entry, args.epochs), flush=True)
        self.ranks.barrier()
        return entry

    def run(self, start_epoch: int, start_step: int, partial: dict | None, log_entries: list[dict]) -> dict | None:
        """Train epochs start_epoch.. (the first from start_step); raises signals.Preempted when a stop
        signal came, after saving. Returns the last log entry."""
        args, ranks = self.args, self.ranks
        entry = log_entries[-1] if log_entries else None
        for epoch in range(start_epoch, args.epochs):
            result = self.one_epoch(epoch, start_step, partial)
            start_step, partial = 0, None
            if result["stopped"]:
                if ranks.main:
                    checkpoints.save_checkpoint(self.ckpt_path, self.state(epoch, result["step"], result["totals"]))
                    print(f"{self.stop.received}: saved {self.ckpt_path} at epoch {epoch + 1}, step {result['step']}; "
                          f"run the same command again to continue", flush=True)
                ranks.barrier()
                raise signals.Preempted()
            entry = self.finish_epoch(epoch, result, log_entries)
            if ranks.all_reduce([1.0 if self.stop.received else 0.0], self.device)[0] and epoch + 1 < args.epochs:
                if ranks.main:
                    print(f"{self.stop.received}: saved {self.ckpt_path} after epoch {epoch + 1}; "
                          f"run the same command again to continue", flush=True)
                raise signals.Preempted()
        if ranks.main:
            with open(self.marker, "w") as f:
                f.write(f"{args.epochs} epochs\n")
            print(f"done: {self.ckpt_path}", flush=True)
        return entry


def prepare_run(
    args: argparse.Namespace,
    build_model: Callable[..., nn.Module],
    kind: str,
    normalize: nn.Module,
    ranks: Dist,
    pool: Any,
    stop: StopSignals,
    options: dict,
) -> tuple[TrainingRun, int, int, dict | None, list[dict]]:
    """Set up a TrainingRun (resumed from the output folder's checkpoint when there is one); returns
    (run, start epoch, start step, partial totals, log entries kept)."""
    optim.check_schedule_args(args)
    device = devices.resolve_device(args.device, ranks)
    ranks.init(device)
    torch.manual_seed(args.seed)
    class_list, train_data, eval_data, eval_name, heads = training_data(args, ranks, options["paths_of"])
    if ranks.main:
        cli_flags.print_args(args)
        os.makedirs(args.output_dir, exist_ok=True)
    ckpt_path = os.path.join(args.output_dir, checkpoints.CHECKPOINT_NAME)
    checkpoint = read_resume_checkpoint(args, ckpt_path, class_list, kind)
    model, trainable = build_trained_part(args, build_model, len(class_list), ranks, checkpoint, ckpt_path,
                                          options["after_trainable"])
    raw_model = devices.prepare_model(model, device)
    model = raw_model
    if ranks.enabled:
        model = nn.parallel.DistributedDataParallel(
            raw_model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = optim.build_optimizer(args, raw_model, options["head"])
    amp = devices.amp_settings(args, device, raw_model, ranks)
    scaler = devices.grad_scaler(device, amp)
    forward = options["forward"] or model_io.Forward(normalize)
    forward.normalize = forward.normalize.to(device)
    forward.heads = heads
    start_epoch, start_step, partial = 0, 0, None
    if checkpoint is not None:
        start_epoch, start_step, partial = restore_optimizer(args, checkpoint, optimizer, scaler, ckpt_path, ranks)
    log_path = os.path.join(args.output_dir, runlog.LOG_NAME)
    log_entries = [e for e in runlog.read_log(log_path) if e["epoch"] <= start_epoch] if checkpoint else []
    marker = os.path.join(args.output_dir, checkpoints.COMPLETE_MARKER)
    if ranks.main:
        runlog.write_log(log_path, log_entries)  # drops lines of epochs the checkpoint does not hold
        if start_epoch < args.epochs and os.path.exists(marker):
            os.remove(marker)
        params = [p for p in raw_model.parameters() if p.requires_grad]
        print(f"{sum(p.numel() for p in params):,} trainable parameters of "
              f"{sum(p.numel() for p in raw_model.parameters()):,} in {len(trainable)} tensors; "
              f"device {device}, amp {amp[1] if amp[0] else 'off'}, {ranks.world_size} process(es)", flush=True)
    loaders = build_loaders(args, kind, (train_data, eval_data), pool, ranks, options["loader_kwargs"] or {},
                            options["eval_kwargs"], batchnorm=optim.trains_batchnorm(raw_model, args.bn_drift))
    run = TrainingRun(args, kind, class_list, ranks, device, stop, model, raw_model, optimizer, scaler, forward,
                      amp, loaders, eval_name)
    run.best = keep_best(args, ranks, checkpoint, eval_name)
    run.heads = heads
    run.board = runlog.TensorBoard(args, ranks, start_epoch * run.steps_per_epoch + start_step + 1 if checkpoint else 0)
    return run, start_epoch, start_step, partial, log_entries


def keep_best(args: argparse.Namespace, ranks: Dist, checkpoint: dict | None, eval_name: str
              ) -> best_checkpoint.BestKeeper:
    """The --keep-best record of this run: a resumed run's best so far; a fresh run removes the best.pth of
    an earlier run in the output folder (it would not be this run's)."""
    monitor = getattr(args, "keep_best", "none")
    keeper = best_checkpoint.BestKeeper(monitor, eval_name)
    path = best_checkpoint.best_path(args.output_dir)
    if checkpoint is None:
        if ranks.main and os.path.exists(path):
            try:
                os.remove(path)
            except OSError as e:
                raise UserError(f"cannot remove {path} of an earlier run ({e.strerror or e}): move it away") from None
            print(f"removed {path} of an earlier run: this run starts afresh", flush=True)
    elif keeper.enabled:
        keeper = best_checkpoint.BestKeeper(monitor, eval_name,
                                            best_checkpoint.resumed_record(args.output_dir, checkpoint, keeper.key))
        if ranks.main and keeper.record is None and checkpoint.get("best"):
            print(f"--keep-best {monitor}: the checkpoint's best was of {checkpoint['best'].get('key')}; comparing "
                  f"{keeper.key} from now on", flush=True)
    if ranks.main and keeper.enabled and eval_name == "test":
        print(f"note: --keep-best {monitor} chooses on the test videos ({keeper.key}), which makes best.pth's "
              f"test numbers optimistic; hold out validation groups with --val-groups", flush=True)
    return keeper


def train(
    args: argparse.Namespace,
    build_model: Callable[..., nn.Module],
    kind: str,
    normalize: nn.Module,
    *,
    loader_kwargs: dict | None = None,
    eval_kwargs: dict | None = None,
    after_trainable: Callable[[nn.Module], None] | None = None,
    head: str = "fc",
    forward: Forward | None = None,
    paths_of: Callable[[list], list] | None = None,
) -> dict | None:
    """The training driver of every train script.

    build_model(args, num_classes, ranks, pretrained) -> nn.Module with pretrained weights loaded (CPU).
    kind: the loader's sample kind ("frame", "clip", "segments", "features"); normalize: the module
    that turns a uint8 batch into the model's input on the device; forward: a Forward (default: one
    built from `normalize`); head: the new classifier's parameter prefix (for --head-lr-mult).
    Writes OUTPUT_DIR/checkpoint.pth every epoch (and on a stop signal), log.jsonl, tensorboard/,
    best.pth with --keep-best, COMPLETE at the end. Returns the last log entry; raises signals.Preempted
    (exit status 75) when a scheduler signal stopped it after saving.
    """
    check_output_paths({"--output-dir": args.output_dir}, script_inputs(args))
    ranks = devices.Dist()
    pool = loader_pool.make_pool(args.workers, shield_signals=True)  # before CUDA and the model: workers are forked
    stop = signals.StopSignals().__enter__()  # from the start: a signal during set-up must not kill the job unsaved
    run = None
    options = {"loader_kwargs": loader_kwargs, "eval_kwargs": eval_kwargs, "after_trainable": after_trainable,
               "head": head, "forward": forward, "paths_of": paths_of}
    try:
        run, start_epoch, start_step, partial, log_entries = prepare_run(args, build_model, kind, normalize, ranks,
                                                                         pool, stop, options)
        entry = run.run(start_epoch, start_step, partial, log_entries)
        video_stream.exit_if_unreadable(devices.gather({**run.train_loader.failed, **run.eval_loader.failed}, ranks),
                                      "left out of training and evaluation")
        return entry
    except loop.NonFiniteLoss as e:
        raise UserError(str(e)) from None
    finally:
        if run is not None and run.board is not None:
            run.board.close()
        stop.__exit__()
        loader_pool.close_pool(pool)
