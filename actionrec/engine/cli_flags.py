"""The flags every script shares: one parent parser, the training and the test parsers, and defaults
filled from a checkpoint."""

import argparse
from collections.abc import Callable

from actionrec.data import annotations, datasets, sampling, split_lists, video_chunks, video_groups
from actionrec.engine import arg_types, best_checkpoint, devices
from actionrec.guards import UserError

DEFAULT_WORKERS = 8  # loader processes per GPU: the loader benchmark shows 8 keep a GPU fed


# On the CPU the forward pass takes 20-80 ms of CPU per frame against 0.1-0.2 ms to load it: loader
# processes only take cores from the model (bench/README.md, test-script benchmark), so none by default.
DEFAULT_WORKERS_CPU = 0


def common_parser() -> argparse.ArgumentParser:
    """Flags shared by every training and test script."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("data and devices")
    g.add_argument("--data-dir", default=None,
                   help="folder holding ucfTrainTestlist/ and the videos: UCF-101-hdf5/ (the course's HDF5 files) "
                        "and/or UCF-101/ (the original .avi release); for HMDB-51 testTrainMulti_7030_splits/ and "
                        "hmdb51-hdf5/ and/or hmdb51/ (default: data; test scripts: the training run's)")
    g.add_argument("--dataset", choices=datasets.DATASETS, default="auto", help=datasets.DATASET_HELP)
    g.add_argument("--storage", choices=split_lists.STORAGES, default="auto",
                   help="which videos to read: auto = the HDF5 file where it exists, else the original video; "
                        "hdf5 or video = only those (default: auto)")
    g.add_argument("--split", type=int, choices=(1, 2, 3), default=None,
                   help="official split (default: 1; test scripts: the training run's)")
    g.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                   help="auto: CUDA when present, else CPU with a warning (default: auto)")
    g.add_argument("--workers", type=arg_types.non_negative_int, default=None,
                   help=f"loader processes; 0 loads in the main process (default: {DEFAULT_WORKERS} on CUDA, "
                        f"{DEFAULT_WORKERS_CPU} on the CPU)")
    g.add_argument(
        "--image-size",
        type=arg_types.image_size,
        default=None,
        help=f"frame size fed to the model, at most {arg_types.MAX_IMAGE_SIZE} (default: 224; C3D: 112; test scripts: "
        f"the training run's)",
    )
    g.add_argument("--seed", type=arg_types.seed_int, default=0,
                   help="seed for shuffling, augmentation and evaluation frames, >= 0 (default: 0)")
    g.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="mixed precision: bf16 where supported, else fp16 with a loss scaler "
                        "(default: on for CUDA, off on CPU)")
    return p


def flow_parser():
    """--flow-dir: where the motion stream's flow files are (train and test of the frame models)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument_group("optical flow").add_argument(
        "--flow-dir", default=None,
        help="folder of extract_flow.py's per-video flow files, <Class>/<video>.hdf5 (--annotations: <uid>.hdf5), "
             "read with --modality flow (default: extract_flow.py's, beside the videos: DATA_DIR/UCF-101-flow or "
             "DATA_DIR/hmdb51-flow; --annotations: VIDEOS-flow, and at test the training run's when the videos "
             "folder is the training's)")
    return p


def train_parser(defaults: dict) -> argparse.ArgumentParser:
    """Training flags; `defaults` sets the model-specific defaults (batch size, trainable layers, and
    optionally lr, epochs, optimizer, weight_decay, clip_grad_norm)."""
    d = {"lr": 1e-4, "epochs": 10, "optimizer": "adam", "weight_decay": 0.0, "clip_grad_norm": None,
         "lr_schedule": "constant", **defaults}
    p = argparse.ArgumentParser(add_help=False)
    add_training_flags(p.add_argument_group("training"), d)
    add_optimizer_flags(p.add_argument_group("optimizer and learning-rate schedule"), d)
    return p


def add_training_flags(g: argparse._ArgumentGroup, d: dict) -> None:
    """What is trained, on what, how often it is evaluated, what is kept and logged."""
    g.add_argument("--output-dir", default=d["output_dir"],
                   help=f"checkpoint.pth, log.jsonl and tensorboard/ go here (default: {d['output_dir']})")
    g.add_argument("--batch-size", type=arg_types.positive_int, default=d["batch_size"],
                   help=f"samples per step on each GPU/process (default: {d['batch_size']})")
    g.add_argument(
        "--epochs", type=arg_types.positive_int, default=d["epochs"], help=f"total epochs (default: {d['epochs']})"
    )
    g.add_argument("--trainable", default=d["trainable"],
                   help="comma-separated parameter-name prefixes to train, or 'all' (default: "
                        f"{d.get('trainable_help') or d['trainable']})")
    g.add_argument("--bn-drift", action="store_true",
                   help="let frozen layers' BatchNorm statistics update as the assignment's code does "
                        "(default: frozen BatchNorm stays in eval mode)")
    g.add_argument("--partial-bn", action="store_true",
                   help="TSN's partial BN: every BatchNorm but the first stays in eval mode with frozen affine "
                        "parameters, for runs that train all layers on little data (default: off)")
    g.add_argument("--eval-every", type=arg_types.positive_int, default=1,
                   help="test (or validation) accuracy every N epochs and after the last (default: 1)")
    g.add_argument("--eval-batch-size", type=arg_types.positive_int, default=None,
                   help="batch size for the per-epoch test accuracy (default: --batch-size)")
    g.add_argument(
        "--val-groups",
        default=None,
        help="hold these groups (1-25) of the training list out of training, e.g. 8-10 or 1,3,5-7: the "
        "per-epoch accuracy is then measured on them (val_acc) instead of on the test videos, so "
        "no choice (epochs, fusion weights) is made on the test set. "
        + video_groups.GROUPS_HELP.replace("%", "%%")
        + " (default: none)",
    )
    g.add_argument("--keep-best", choices=best_checkpoint.MONITORS, default="none",
                   help=best_checkpoint.KEEP_BEST_HELP)
    g.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue from OUTPUT_DIR/checkpoint.pth when present (default: on)")
    g.add_argument("--max-steps", type=arg_types.non_negative_int, default=0,
                   help="stop each epoch after N steps, for smoke tests (default: 0 = whole epoch)")
    g.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=True,
                   help="write TensorBoard event files to OUTPUT_DIR/tensorboard/ (default: on; "
                        "look with: tensorboard --logdir runs/)")
    g.add_argument("--tensorboard-every", type=arg_types.positive_int, default=10,
                   help="steps between points of the per-step training loss curve (default: 10)")


def add_optimizer_flags(o: argparse._ArgumentGroup, d: dict) -> None:
    """The optimizer, its learning rate and schedule, gradient clipping."""
    o.add_argument("--optimizer", choices=("adam", "sgd"), default=d["optimizer"],
                   help=f"adam (the assignment's) or sgd with --momentum (default: {d['optimizer']})")
    o.add_argument("--lr", type=arg_types.positive_float, default=d["lr"], help=f"learning rate (default: {d['lr']:g})")
    o.add_argument("--momentum", type=arg_types.non_negative_float, default=0.9, help="SGD momentum (default: 0.9)")
    o.add_argument("--weight-decay", type=arg_types.non_negative_float, default=d["weight_decay"],
                   help=f"L2 weight decay (default: {d['weight_decay']:g})")
    o.add_argument("--lr-schedule", choices=("constant", "step", "cosine"), default=d["lr_schedule"],
                   help="constant; step: times --lr-gamma at each of --lr-steps; cosine: down to 0 at the last "
                        f"epoch (default: {d['lr_schedule']})")
    o.add_argument("--lr-steps", type=arg_types.lr_steps, default=None,
                   help="epochs at which the step schedule multiplies the lr by --lr-gamma: 30,60 or every:10 "
                        "(required with --lr-schedule step)")
    o.add_argument("--lr-gamma", type=arg_types.positive_float, default=0.1, help="step schedule factor (default: 0.1)")
    o.add_argument("--warmup-epochs", type=arg_types.non_negative_float, default=0.0,
                   help="linear warm-up from 0 to --lr over this many epochs, step by step (default: 0)")
    o.add_argument("--clip-grad-norm", type=arg_types.positive_float, default=d["clip_grad_norm"],
                   help="clip the global gradient norm to this value "
                        f"(default: {d['clip_grad_norm'] if d['clip_grad_norm'] else 'off'})")
    o.add_argument("--head-lr-mult", type=arg_types.positive_float, default=1.0,
                   help="learning-rate factor of the new classifier (C3D's recipe: 10) (default: 1)")


ANNOTATED = "annotations"  # args.dataset of a run on an annotation CSV


def annotation_parser(test: bool = False, training: bool | None = None) -> argparse.ArgumentParser:
    """Flags of a dataset defined by an annotation CSV with verb and noun labels (data/annotations.py,
    engine/label_heads.py); test=True: the test scripts' (defaults from the checkpoint); training (default:
    not test): with the split's and the heads' flags (--val-fraction, --head-weights)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("annotation CSV (verb and noun labels: one head each)")
    g.add_argument("--annotations", default=None,
                   help="CSV with the columns " + ",".join(annotations.COLUMNS) + " (uid = a video file's stem; "
                        "optional split (train/val/test) and group columns), instead of --data-dir's split lists "
                        + ("(default: the checkpoint's)" if test else "(default: none)"))
    g.add_argument("--videos", default=None,
                   help="folder holding <uid>.hdf5 or <uid> with a video suffix, sub-folders included "
                        + ("(default: the checkpoint's)" if test else "(default: none)"))
    if training if training is not None else not test:
        g.add_argument("--val-fraction", type=arg_types.positive_float, default=annotations.VAL_FRACTION,
                       help="without a split column: the share of segments held out for validation, in whole "
                            f"groups drawn by --seed (default: {annotations.VAL_FRACTION:g})")
        g.add_argument("--head-weights", default=None,
                       help="loss weight of each head, comma-separated in the order " + ",".join(annotations.LABELS)
                            + " (default: 1 each: the sum of the cross-entropies)")
    return p


def test_parser(defaults: dict) -> argparse.ArgumentParser:
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
    g.add_argument("--batch-size", type=arg_types.positive_int, default=None if cpu_batch else defaults["batch_size"],
                   help=f"{defaults['unit']} per forward pass (default: {defaults['batch_size']}"
                        + (f" on CUDA, {cpu_batch} on the CPU)" if cpu_batch else ")"))
    if defaults.get("chunk_frames"):
        g.add_argument("--chunk-frames", type=arg_types.positive_int, default=defaults["chunk_frames"],
                       help="frames loaded at a time, so memory does not grow with video length; up to "
                       "max(3, workers + 1) chunks wait in /dev/shm, resized (default: "
                       f"{defaults['chunk_frames']})")
    if defaults.get("crops", True):
        g.add_argument("--crops", type=int, choices=video_chunks.CROPS, default=1,
                       help="views per frame, logits averaged: 1 = the whole frame resized (as in training); "
                            "3 = left/centre/right squares of the frame resized to short side --image-size; "
                            "10 = 4 corners + centre of the frame resized to short side --image-size*256/224, "
                            "each also mirrored (TSN's test) (default: 1)")
    g.add_argument(
        "--limit",
        type=arg_types.non_negative_int,
        default=0,
        help="test only the first N videos of the subset (default: all)",
    )
    g.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="skip the videos PREDICTIONS_DIR already holds from the same run (same checkpoint, "
                        "mode and views; a folder of another run is refused); --no-resume redoes every video "
                        "(default: on)")
    return p


def fill_defaults(args: argparse.Namespace, trained_args: dict | None = None) -> None:
    """Defaults that test scripts take from the training run; training uses the assignment's."""
    base = {"data_dir": "data", "split": 1, "image_size": sampling.IMAGE_SIZE}
    for key in ("annotations", "videos"):  # a test of a model trained on an annotation CSV: the same CSV
        if hasattr(args, key) and getattr(args, key) is None:
            setattr(args, key, (trained_args or {}).get(key))
    for key, value in base.items():
        if getattr(args, key, None) is None:
            setattr(args, key, (trained_args or {}).get(key, value))
    resolve_dataset(args)
    if getattr(args, "workers", 0) is None:
        args.workers = DEFAULT_WORKERS if devices.uses_cuda(args) else DEFAULT_WORKERS_CPU
    return args


def resolve_dataset(args: argparse.Namespace) -> str:
    """args.dataset ("auto" or absent: detected from --data-dir) -> "ucf101" or "hmdb51", printed once
    (rank 0) when detected; the resolved name is what the checkpoint and results record."""
    if getattr(args, "annotations", None):  # a dataset of one's own, defined by its CSV (label_heads)
        args.dataset = ANNOTATED
        return args.dataset
    dataset = getattr(args, "dataset", "auto") or "auto"
    try:
        args.dataset = datasets.resolve_dataset(args.data_dir, dataset)
    except ValueError as e:
        raise UserError(str(e)) from None
    if dataset == "auto" and devices.Dist().main:
        print(f"dataset: {args.dataset} (detected from the contents of --data-dir {args.data_dir}; "
              f"--dataset chooses)", flush=True)
    return args.dataset


def print_args(args: argparse.Namespace) -> None:
    print("arguments: " + " ".join(f"{k}={v}" for k, v in sorted(vars(args).items())), flush=True)


def flags_alone(add_flags: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    """A parser of only the flags `add_flags` adds (e.g. a zoo's add_model_flags): what a checkpoint's
    recorded args are checked against when it is read back (trained_model.check_trained_args)."""
    parser = argparse.ArgumentParser(add_help=False)
    add_flags(parser)
    return parser
