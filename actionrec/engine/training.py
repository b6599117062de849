"""Training a model from a script: the split, the loaders, resume, epochs, checkpoints and the log."""

import os
import sys

import torch
import torch.nn as nn

from actionrec.data import batching, datasets, loader_pool, video_groups
from actionrec.engine import checkpoints, cli_flags, devices, loop, model_io, optim, runlog, runner, signals, video_test
from actionrec.guards import PROVENANCE_NAME, UserError, check_output_paths, dataset_inputs, script_inputs  # noqa: F401


def build_loaders(args, kind, split_data, pool, ranks, loader_kwargs, eval_kwargs=None, batchnorm=False):
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


def load_split(args, ranks, paths_of=None):
    """(class_list, train, held_out, held_out_name): the training videos and those the per-epoch
    accuracy is measured on, the split's test videos or, with --val-groups, the held-out groups.
    `paths_of(paths)` maps video paths to what the loader reads (the RNN's feature files)."""
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
    if paths_of is not None:
        train, held_out = (paths_of(train[0]), train[1]), (paths_of(held_out[0]), held_out[1])
    if ranks.world_size > min(len(train[0]), len(held_out[0])):
        raise UserError(f"{ranks.world_size} processes but only {min(len(train[0]), len(held_out[0]))} "
                        f"videos to share")
    return [str(c) for c in class_list], train, held_out, name


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
    ranks = devices.Dist()
    pool = loader_pool.make_pool(args.workers, shield_signals=True)  # before CUDA and the model: workers are forked
    stop = signals.StopSignals().__enter__()  # from the start: a signal during set-up must not kill the job unsaved
    board = None
    try:
        optim.check_schedule_args(args)
        device = devices.resolve_device(args.device, ranks)
        ranks.init(device)
        torch.manual_seed(args.seed)
        class_list, train_data, eval_data, eval_name = load_split(args, ranks, paths_of)
        if ranks.main:
            cli_flags.print_args(args)
            os.makedirs(args.output_dir, exist_ok=True)
        ckpt_path = os.path.join(args.output_dir, checkpoints.CHECKPOINT_NAME)
        log_path = os.path.join(args.output_dir, runlog.LOG_NAME)
        marker = os.path.join(args.output_dir, checkpoints.COMPLETE_MARKER)

        checkpoint = None
        if args.resume and os.path.exists(ckpt_path):
            checkpoint = checkpoints.load_checkpoint(
                ckpt_path, what="the checkpoint to resume from (or use --no-resume)"
            )
            if not isinstance(checkpoint, dict) or "model" not in checkpoint:
                raise UserError(f"{ckpt_path} is not a checkpoint of the training scripts; use another --output-dir "
                                f"or --no-resume")
            if checkpoint.get("class_list") != class_list:
                raise UserError(f"{ckpt_path} was trained on other classes; use another --output-dir or --no-resume")
            if checkpoint.get("kind", kind) != kind:
                raise UserError(f"{ckpt_path} holds a {checkpoint['kind']} model, not a {kind} model; use another "
                                f"--output-dir or --no-resume")

        model = build_model(args, len(class_list), ranks, pretrained=checkpoint is None)
        trainable = optim.set_trainable(model, args.trainable)
        if after_trainable is not None:
            after_trainable(model)
        if args.partial_bn:
            optim.apply_partial_bn(model)
        trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        if checkpoint is not None:
            try:
                model.load_state_dict(checkpoint["model"])
            except RuntimeError as e:
                raise UserError(
                    f"{ckpt_path} does not fit this model ({runner.one_line(e)}); use the same model flags, "
                    f"another --output-dir or --no-resume"
                ) from None
        model = devices.prepare_model(model, device)
        raw_model = model
        if ranks.enabled:
            model = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)
        optimizer = optim.build_optimizer(args, raw_model, head)
        amp = devices.amp_settings(args, device, raw_model, ranks)
        scaler = devices.grad_scaler(device, amp)
        forward = forward or model_io.Forward(normalize)
        forward.normalize = forward.normalize.to(device)

        start_epoch, start_step, partial = 0, 0, None
        if checkpoint is not None:
            try:
                optimizer.load_state_dict(checkpoint["optimizer"])
            except (ValueError, KeyError) as e:
                raise UserError(
                    f"{ckpt_path}: its optimizer state does not fit --optimizer {args.optimizer} / "
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
        log_entries = [e for e in runlog.read_log(log_path) if e["epoch"] <= start_epoch] if checkpoint else []
        if ranks.main:
            runlog.write_log(log_path, log_entries)  # drops lines of epochs the checkpoint does not hold
            if start_epoch < args.epochs and os.path.exists(marker):
                os.remove(marker)
            params = [p for p in raw_model.parameters() if p.requires_grad]
            print(f"{sum(p.numel() for p in params):,} trainable parameters of "
                  f"{sum(p.numel() for p in raw_model.parameters()):,} in {len(trainable)} tensors; "
                  f"device {device}, amp {amp[1] if amp[0] else 'off'}, {ranks.world_size} process(es)", flush=True)

        train_loader, eval_loader = build_loaders(args, kind, (train_data, eval_data), pool, ranks,
                                                  loader_kwargs or {}, eval_kwargs,
                                                  batchnorm=optim.trains_batchnorm(raw_model, args.bn_drift))
        steps_per_epoch = min(len(train_loader), args.max_steps) if args.max_steps else len(train_loader)
        board = runlog.TensorBoard(args, ranks, start_epoch * steps_per_epoch + start_step + 1 if checkpoint else 0)

        def state(epoch, step=0, partial_totals=None):
            return {"model": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(), "epoch": epoch, "step": step, "partial": partial_totals,
                    "args": checkpoints.args_for_checkpoint(args), "class_list": class_list, "kind": kind,
                    "global_batch": args.batch_size * ranks.world_size,
                    "val_groups": list(video_groups.parse_groups(args.val_groups)) if args.val_groups else [],
                    "lr_schedule": {"schedule": args.lr_schedule, "steps_per_epoch": steps_per_epoch,
                                    "factor": optim.lr_factor(args, epoch, step, steps_per_epoch)}}

        entry = log_entries[-1] if log_entries else None
        for epoch in range(start_epoch, args.epochs):
            optim.set_train_mode(model, args.bn_drift)
            train_loader.set_epoch(epoch, start_step)
            result = loop.train_one_epoch(
                model,
                train_loader,
                optimizer,
                scaler,
                forward,
                device,
                amp,
                ranks,
                stop,
                start_step=start_step,
                partial=partial,
                max_steps=args.max_steps,
                clip_grad_norm=args.clip_grad_norm,
                schedule=lambda step, e=epoch: optim.lr_factor(args, e, step, steps_per_epoch),
                log_step=lambda step, loss, e=epoch: board.step(e * steps_per_epoch + step, loss),
                step_seed=lambda step, e=epoch: batching.sample_seed(
                    args.seed, e, step * ranks.world_size + ranks.rank
                ),
            )
            start_step, partial = 0, None
            if result["stopped"]:
                if ranks.main:
                    checkpoints.save_checkpoint(ckpt_path, state(epoch, result["step"], result["totals"]))
                    print(f"{stop.received}: saved {ckpt_path} at epoch {epoch + 1}, step {result['step']}; "
                          f"run the same command again to continue", flush=True)
                ranks.barrier()
                return_code = checkpoints.EXIT_PREEMPTED
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
                entry.update(loop.evaluate(model, eval_loader, forward, device, amp, ranks, eval_name))
            if ranks.main:
                log_entries.append(entry)
                checkpoints.save_checkpoint(ckpt_path, state(epoch + 1))
                runlog.write_log(log_path, log_entries)
                board.epoch((epoch + 1) * steps_per_epoch, entry)
                print(runlog.format_entry(entry, args.epochs), flush=True)
            ranks.barrier()
            if ranks.all_reduce([1.0 if stop.received else 0.0], device)[0] and epoch + 1 < args.epochs:
                if ranks.main:
                    print(f"{stop.received}: saved {ckpt_path} after epoch {epoch + 1}; "
                          f"run the same command again to continue", flush=True)
                return_code = checkpoints.EXIT_PREEMPTED
                break
        else:
            return_code = 0
            if ranks.main:
                with open(marker, "w") as f:
                    f.write(f"{args.epochs} epochs\n")
                print(f"done: {ckpt_path}", flush=True)
        if return_code:
            sys.exit(return_code)
        video_test.exit_if_unreadable(devices.gather({**train_loader.failed, **eval_loader.failed}, ranks),
                           "left out of training and evaluation")
        return entry
    except loop.NonFiniteLoss as e:
        raise UserError(str(e)) from None
    finally:
        if board is not None:
            board.close()
        stop.__exit__()
        loader_pool.close_pool(pool)
