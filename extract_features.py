"""Per-frame CNN features of every video, once, for the recurrent model (train_rnn.py).

    python extract_features.py --data-dir data --split 1 --subsets train,test --output-dir features/split1
    python extract_features.py ... --checkpoint runs/split1/single_frame/checkpoint.pth   # a part-1 model

Every frame (or every --frame-stride-th) of every video of the chosen subsets goes through a 2D ResNet
up to its global average pool; each video gets `OUTPUT_DIR/<Class>/<video>.hdf5` with the dataset
`features`, float16 [frames, 2048] (512 for ResNet-18/34), and attributes saying which weights, image
size and stride made it; OUTPUT_DIR/features.json says the same for the whole folder.

Default weights: torchvision's ImageNet ResNet-50, frozen, as in the course notebook and Ng et al.
A CNN fine-tuned on the training videos (--checkpoint) has seen them with their labels: its training
features are over-fitted (near-perfect on the training videos, not on the test ones), so a recurrent
model trained on them learns less than the numbers during training suggest.

Built on the test driver: streamed in chunks (memory flat in video length), AMP and channels_last on
CUDA, resumable (finished files are skipped; a file is written whole or not at all), SIGTERM/SIGUSR1
exit 75 after the video in progress, videos split over torchrun ranks; unreadable videos are listed at
the end and make the exit status 1 (the others are done).
"""
import argparse
import json
import os

import h5py
import numpy as np
import torch
import torch.nn as nn

import engine
import helperFunctions as hf
import test_single_frame
import train_single_frame
from actionrec import atomic
from actionrec.evaluation import jsonfile
from actionrec.evaluation import predictions as prediction_files

FEATURES_INFO = "features.json"


def get_args_parser():
    parser = argparse.ArgumentParser(
        description="Extract per-frame 2D CNN features (global average pool) of every video, for train_rnn.py.",
        parents=[engine.common_parser()])
    g = parser.add_argument_group("features")
    g.add_argument("--output-dir", required=True, help="OUTPUT_DIR/<Class>/<video>.hdf5 and features.json go here")
    g.add_argument("--subsets", default="train,test",
                   help="comma-separated: train (every video of the training list, validation groups included), "
                        "test (default: train,test)")
    g.add_argument("--pretrained", choices=("imagenet", "none"), default="imagenet",
                   help="torchvision's ImageNet weights (frozen, as in the course notebook), or random weights "
                        "for tests (default: imagenet)")
    g.add_argument("--weights", default=None, help="a local ImageNet state_dict (.pth) instead of the cache")
    g.add_argument("--checkpoint", default=None,
                   help="a part-1 checkpoint (train_single_frame.py) instead of ImageNet: note that a CNN fine-tuned "
                        "on the training videos gives over-fitted features for them (default: none)")
    g.add_argument("--arch", choices=train_single_frame.ARCHS, default="resnet50",
                   help="torchvision ResNet with ImageNet weights (default: resnet50; a --checkpoint says its own)")
    g.add_argument("--frame-stride", type=engine.positive_int, default=1,
                   help="every N-th frame (default: 1, every frame)")
    g.add_argument("--batch-size", type=engine.positive_int, default=100, help="frames per forward pass (default: 100)")
    g.add_argument("--chunk-frames", type=engine.positive_int, default=100,
                   help="frames loaded at a time, so memory does not grow with video length (default: 100)")
    g.add_argument(
        "--limit", type=engine.non_negative_int, default=0, help="only the first N videos of each subset (default: all)"
    )
    g.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="skip the videos OUTPUT_DIR already holds from the same extraction (same weights, "
                        "architecture, image size and stride; a folder of another one is refused); "
                        "--no-resume redoes every video (default: on)")
    return parser


def backbone(args, ranks):
    """(2D ResNet up to its global average pool, description of its weights); args.source says what
    they are ("imagenet", "weights" for a local ImageNet file, "checkpoint" for a part-1 model, "none")."""
    torch.manual_seed(getattr(args, "seed", 0))  # --pretrained none: the same random CNN for the same seed
    args.source = ("checkpoint" if args.checkpoint else "weights" if getattr(args, "weights", None)
                   else getattr(args, "pretrained", "imagenet"))
    if args.checkpoint:
        checkpoint, trained = engine.load_trained(argparse.Namespace(checkpoint=args.checkpoint), ranks, "frame")
        model = test_single_frame.load_model(checkpoint, trained, ranks, args.checkpoint)
        args.arch, source = trained.get("arch", "resnet50"), os.path.abspath(args.checkpoint)
        if args.image_size is None:
            args.image_size = trained.get("image_size")
    else:
        model_args = argparse.Namespace(arch=args.arch, pretrained=args.pretrained, weights=args.weights)
        model = train_single_frame.build_model(model_args, 1000, ranks, pretrained=True)
        source = os.path.abspath(args.weights) if args.weights else f"{args.pretrained} ({args.arch})"
    model.fc = nn.Identity()  # the global average pool's output, (N, 2048) for ResNet-50
    return model, source


def feature_rows(batch_size):
    def rows(model, frames, normalize):  # uint8 (F, H, W, 3) -> features (F, dims)
        return torch.cat([model(normalize(x)) for x in engine.batched(frames, batch_size)])
    return rows


def stride_plan(stride, chunk_frames):
    def plan(frames):
        indices = np.arange(0, frames, stride)
        return [indices[i:i + chunk_frames] for i in range(0, len(indices), chunk_frames)]
    return plan


def feature_file_complete(path):
    try:
        hf.feature_info(path)
        return True
    except hf.READ_ERRORS:
        return False


def write_features(path, features, attrs):
    """Atomically write float16 [frames, dims] features with their attributes."""
    def write(tmp_path):
        with h5py.File(tmp_path, "w") as f:
            ds = f.create_dataset(hf.FEATURES_KEY, data=np.asarray(features, dtype=np.float16))
            for key, value in attrs.items():
                ds.attrs[key] = value
    atomic.atomic_write(path, write)


def main(args):
    ranks = engine.Dist()
    subsets = [s.strip() for s in args.subsets.split(",") if s.strip()]
    if not subsets or any(s not in ("train", "test") for s in subsets):
        raise engine.UserError(f"--subsets must name train and/or test, not {args.subsets!r}")
    if args.checkpoint and (args.weights or args.pretrained != "imagenet"):
        raise engine.UserError("--checkpoint gives the weights: leave out --weights and --pretrained")
    engine.check_output_paths({"--output-dir": args.output_dir}, engine.script_inputs(args))
    model, source = backbone(args, ranks)
    engine.fill_defaults(args)
    try:
        _, train, test = hf.get_split(args.data_dir, args.split, args.storage, args.dataset)
    except (FileNotFoundError, ValueError) as e:
        raise engine.UserError(str(e)) from None
    chosen = {"train": train[0], "test": test[0]}
    paths = [p for s in subsets for p in (chosen[s][:args.limit] if args.limit else chosen[s])]
    if ranks.main:
        engine.print_args(args)
    info = {"arch": args.arch, "source": args.source, "weights": source, "image_size": args.image_size,
            "frame_stride": args.frame_stride, "seed": args.seed,
            "split": args.split, "subsets": subsets, "normalisation": "ImageNet mean/std on RGB in [0, 1]"}
    attrs = {k: v for k, v in info.items() if k not in ("subsets", "split", "normalisation", "seed")}
    weights_file = args.checkpoint or getattr(args, "weights", None)
    provenance = engine.Provenance(args.output_dir, "--output-dir", {
        "arch": args.arch, "source": args.source, "image_size": args.image_size, "frame_stride": args.frame_stride,
        "weights_sha256": engine.file_sha256(weights_file) if weights_file else None,
        "seed": args.seed if args.source == "none" else None}, {"weights": source},
        (FEATURES_INFO, {k: info[k] for k in ("arch", "source", "image_size", "frame_stride")}))
    normalize = engine.Normalize(hf.FRAME_MEAN, hf.FRAME_STD)
    result = engine.stream_videos(
        args, model, paths, plan=stride_plan(args.frame_stride, args.chunk_frames), max_chunk=args.chunk_frames,
        rows_fn=lambda m, frames: feature_rows(args.batch_size)(m, frames, normalize.to(frames.device)),
        output_path=lambda p: prediction_files.prediction_path(args.output_dir, p),
        write=lambda target, features, extra: write_features(target, features, {**attrs, **extra}),
        complete=feature_file_complete, desc="features", noun="features", provenance=provenance)
    if result.ranks.main:
        dims = None
        for path in paths:
            target = prediction_files.prediction_path(args.output_dir, path)
            if feature_file_complete(target):
                dims = hf.feature_info(target)[1]
                break
        jsonfile.write_json(os.path.join(args.output_dir, FEATURES_INFO), {**info, "dims": dims})
        print(f"features in {args.output_dir} ({FEATURES_INFO}: {json.dumps(info)})", flush=True)
    engine.exit_if_unreadable(result.failed, "no features for them")
    return result


if __name__ == "__main__":
    engine.run_main(main, get_args_parser())
