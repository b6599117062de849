"""Per-frame CNN features of every video, once, for the recurrent model (train_rnn.py).

    python extract_features.py --data-dir data --split 1 --subsets train,test --output-dir features/split1
    python extract_features.py ... --checkpoint runs/split1/single_frame/checkpoint.pth   # a part-1 model
    # a dataset of one's own: every segment of an annotation CSV (train_rnn.py --annotations splits them)
    python extract_features.py --annotations mydata/annotations.csv --videos mydata/videos --output-dir features/own

Every frame (or every --frame-stride-th) of every video of the chosen subsets goes through a 2D ResNet
up to its global average pool; each video gets `OUTPUT_DIR/<Class>/<video>.hdf5` with the dataset
`features`, float16 [frames, 2048] (512 for ResNet-18/34), and attributes saying which weights, image
size and stride made it; OUTPUT_DIR/features.json says the same for the whole folder. With
--annotations a segment's file is OUTPUT_DIR/<its video's folder>/<uid>.hdf5, for every line of the
CSV: the split is train_rnn.py's to make.

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

from actionrec import guards
from actionrec.data import annotations, datasets, feature_files, normalization
from actionrec.engine import arg_types, cli_flags, devices, model_io, output_provenance, runner, video_stream
from actionrec.evaluation import jsonfile
from actionrec.evaluation import predictions as prediction_files
from actionrec.inference import feature_extraction
from actionrec.zoo import frame_nets


def get_args_parser():
    parser = argparse.ArgumentParser(
        description="Extract per-frame 2D CNN features (global average pool) of every video (of the split lists, or "
                    "of an annotation CSV's segments), for train_rnn.py.",
        parents=[cli_flags.common_parser(), cli_flags.annotation_parser(training=False)])
    g = parser.add_argument_group("features")
    g.add_argument("--output-dir", required=True, help="OUTPUT_DIR/<Class>/<video>.hdf5 and features.json go here")
    g.add_argument("--subsets", default=None,
                   help="comma-separated: train (every video of the training list, validation groups included), "
                        "test (default: train,test; with --annotations every segment of the CSV, whatever its "
                        "split)")
    g.add_argument("--pretrained", choices=("imagenet", "none"), default="imagenet",
                   help="torchvision's ImageNet weights (frozen, as in the course notebook), or random weights "
                        "for tests (default: imagenet)")
    g.add_argument("--weights", default=None, help="a local ImageNet state_dict (.pth) instead of the cache")
    g.add_argument("--checkpoint", default=None,
                   help="a part-1 checkpoint (train_single_frame.py) instead of ImageNet: note that a CNN fine-tuned "
                        "on the training videos gives over-fitted features for them (default: none)")
    g.add_argument("--arch", choices=frame_nets.ARCHS, default="resnet50",
                   help="torchvision ResNet with ImageNet weights (default: resnet50; a --checkpoint says its own)")
    g.add_argument("--frame-stride", type=arg_types.positive_int, default=1,
                   help="every N-th frame (default: 1, every frame)")
    g.add_argument(
        "--batch-size", type=arg_types.positive_int, default=100, help="frames per forward pass (default: 100)"
    )
    g.add_argument("--chunk-frames", type=arg_types.positive_int, default=100,
                   help="frames loaded at a time, so memory does not grow with video length (default: 100)")
    g.add_argument(
        "--limit",
        type=arg_types.non_negative_int,
        default=0,
        help="only the first N videos of each subset (with --annotations: of the CSV) (default: all)",
    )
    g.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="skip the videos OUTPUT_DIR already holds from the same extraction (same weights, "
                        "architecture, image size and stride; a folder of another one is refused); "
                        "--no-resume redoes every video (default: on)")
    return parser


def parse_subsets(args):
    """--subsets as a list (None with --annotations: every segment), or a UserError line."""
    if args.annotations:
        if args.subsets is not None:
            raise guards.UserError("--annotations extracts every segment of the CSV (train_rnn.py splits them): "
                                   "leave out --subsets")
        if not args.videos:
            raise guards.UserError("--annotations needs --videos DIR: the folder of the segments' video files")
        return None
    subsets = [s.strip() for s in (args.subsets or "train,test").split(",") if s.strip()]
    if not subsets or any(s not in ("train", "test") for s in subsets):
        raise guards.UserError(f"--subsets must name train and/or test, not {args.subsets!r}")
    return subsets


def video_paths(args, subsets):
    """The videos to extract: those of `subsets` of the split lists (the first --limit of each), or with
    --annotations every segment's video (the first --limit lines)."""
    if args.annotations:
        segments = annotations.read_annotations(args.annotations).segments
        found = annotations.resolve_videos(segments, args.videos)
        return [found[s.uid] for s in segments][:args.limit or None]
    try:
        _, train, test = datasets.get_split(args.data_dir, args.split, args.storage, args.dataset)
    except (FileNotFoundError, ValueError) as e:
        raise guards.UserError(str(e)) from None
    chosen = {"train": train[0], "test": test[0]}
    return [p for s in subsets for p in (chosen[s][:args.limit] if args.limit else chosen[s])]


def main(args):
    ranks = devices.Dist()
    subsets = parse_subsets(args)
    if args.checkpoint and (args.weights or args.pretrained != "imagenet"):
        raise guards.UserError("--checkpoint gives the weights: leave out --weights and --pretrained")
    guards.check_output_paths({"--output-dir": args.output_dir}, guards.script_inputs(args))
    model, source = feature_extraction.backbone(args, ranks)
    cli_flags.fill_defaults(args)
    paths = video_paths(args, subsets)
    if ranks.main:
        cli_flags.print_args(args)
    dataset = ({"annotations": os.path.abspath(args.annotations), "videos": os.path.abspath(args.videos)}
               if args.annotations else {"split": args.split, "subsets": subsets})
    info = {"arch": args.arch, "source": args.source, "weights": source, "image_size": args.image_size,
            "frame_stride": args.frame_stride, "seed": args.seed, **dataset,
            "normalisation": "ImageNet mean/std on RGB in [0, 1]"}
    attrs = {k: info[k] for k in ("arch", "source", "weights", "image_size", "frame_stride")}
    weights_file = args.checkpoint or getattr(args, "weights", None)
    provenance = output_provenance.Provenance(args.output_dir, "--output-dir", {
        "arch": args.arch, "source": args.source, "image_size": args.image_size, "frame_stride": args.frame_stride,
        "weights_sha256": output_provenance.file_sha256(weights_file) if weights_file else None,
        "seed": args.seed if args.source == "none" else None}, {"weights": source},
        (feature_files.FEATURES_INFO, {k: info[k] for k in ("arch", "source", "image_size", "frame_stride")}))
    normalize = model_io.Normalize(normalization.FRAME_MEAN, normalization.FRAME_STD)
    result = video_stream.stream_videos(
        args,
        model,
        paths,
        plan=feature_extraction.stride_plan(args.frame_stride, args.chunk_frames),
        max_chunk=args.chunk_frames,
        rows_fn=lambda m, frames: feature_extraction.feature_rows(args.batch_size)(
            m, frames, normalize.to(frames.device)
        ),
        output_path=lambda p: prediction_files.prediction_path(args.output_dir, p),
        write=lambda target, features, extra: feature_extraction.write_features(target, features, {**attrs, **extra}),
        complete=feature_extraction.feature_file_complete,
        desc="features",
        noun="features",
        provenance=provenance,
    )
    if result.ranks.main:
        dims = None
        for path in paths:
            target = prediction_files.prediction_path(args.output_dir, path)
            if feature_extraction.feature_file_complete(target):
                dims = feature_files.feature_info(target)[1]
                break
        jsonfile.write_json(os.path.join(args.output_dir, feature_files.FEATURES_INFO), {**info, "dims": dims})
        print(f"features in {args.output_dir} ({feature_files.FEATURES_INFO}: {json.dumps(info)})", flush=True)
    video_stream.exit_if_unreadable(result.failed, "no features for them")
    return result


if __name__ == "__main__":
    runner.run_main(main, get_args_parser())
