"""Extract the optical flow of every video of a dataset to per-video HDF5 files (the motion stream's input).

    python extract_flow.py --data-dir data/                       # UCF-101-hdf5/ or UCF-101/ -> UCF-101-flow/
    python extract_flow.py --data-dir data/ --method tvl1 --shard 3/16   # one task of a 16-task job array
    python extract_flow.py --annotations mydata/annotations.csv --videos mydata/videos   # -> mydata/videos-flow/

Every video `<Class>/<video>` under `<data-dir>/UCF-101-hdf5/` or `<data-dir>/UCF-101/` (HMDB-51:
`hmdb51-hdf5/`, `hmdb51/`; the HDF5 copy when both hold it) gets `<out>/<Class>/<video>.hdf5` with
dataset `flow`, uint8 [T-1, H, W, 2] (x, y), TSN's 8-bit form (see actionrec/flow/extract.py and
codec.py). With --annotations CSV --videos DIR (a dataset of one's own, data/annotations.py), every
segment the CSV names, of every subset, gets `<out>/<uid>.hdf5` (default out: `<videos>-flow`, beside
the videos folder). The job is resumable and safe to kill: each file is written under a temporary name and
renamed when complete; a finished file of the same settings (method, size, bound, storage) for the
frames its video has is skipped; a file of other settings is refused unless --no-resume. A video that
cannot be read gets no output and is named at the end, and the exit status is 1; a usage error is
one line and exit status 2. --shard I/N takes every N-th video of the sorted names, from the I-th: the
N shards of a job array cover every video (uid) exactly once.
"""
import argparse
import os
import time

from actionrec import atomic, bulk, guards
from actionrec.data import annotations, datasets, split_lists
from actionrec.engine.runner import run_main
from actionrec.flow import codec, listing
from actionrec.flow.extract import DEFAULT_SIZE, JPEG_QUALITY, FlowSettings, extract_video, foreign_outputs
from actionrec.flow.methods import DEFAULT_METHOD, METHODS, RAFT_METHODS, load_raft_state
from actionrec.guards import UserError

PROG = "extract_flow.py"


def parse_size(text):
    """"WxH" -> (W, H), "native" -> None (each video's own size)."""
    if text == "native":
        return None
    width, x, height = text.lower().partition("x")
    if not (x and width.isdigit() and height.isdigit() and int(width) >= 8 and int(height) >= 8):
        raise UserError(f"--size must be WIDTHxHEIGHT of at least 8x8 (e.g. 340x256) or native, not {text!r}")
    return int(width), int(height)


def check_args(args):
    """The settings of this run from the flags; UserError for a flag the run cannot use."""
    if args.workers < 0:
        raise UserError(f"--workers must be >= 0, not {args.workers}")
    if not 1 <= args.quality <= 100:
        raise UserError(f"--quality must be in 1..100, not {args.quality}")
    if not args.bound > 0:
        raise UserError(f"--bound must be a positive number of pixels, not {args.bound}")
    if args.method in RAFT_METHODS:
        try:
            load_raft_state(args.raft_weights, args.method)
        except ValueError as e:
            raise UserError(str(e)) from None
    return FlowSettings(method=args.method, size=parse_size(args.size), bound=args.bound, storage=args.storage,
                        quality=args.quality, raft_weights=args.raft_weights)


def dataset_sources(args) -> tuple[dict, str]:
    """({`<Class>/<stem>`: video path}, out_dir) of --data-dir's dataset, or of --videos' class folders."""
    try:
        dataset = datasets.resolve_dataset(args.data_dir, args.dataset)
    except ValueError as e:
        raise UserError(str(e)) from None
    roots = [args.videos] if args.videos else listing.dataset_roots(args.data_dir, dataset)
    out_dir = args.out or listing.default_out_dir(args.data_dir, dataset)
    inputs = guards.dataset_inputs(args.data_dir) + ([args.videos] if args.videos else [])
    guards.check_output_paths({"--out": out_dir}, {"--data-dir/--videos": inputs})
    sources = listing.find_sources(roots)
    if not sources:
        raise UserError(f"no videos found in {' or '.join(f'{r}/<Class>/<video>' for r in roots)} "
                        f"(.hdf5 or {' '.join(split_lists.VIDEO_SUFFIXES)}); set --data-dir, --dataset or --videos")
    return sources, out_dir


def annotated_sources(args) -> tuple[dict, str]:
    """({uid: video path}, out_dir) of every segment of --annotations, all subsets, under --videos."""
    if not args.videos:
        raise UserError("--annotations needs --videos DIR: the folder of the segments' video files")
    out_dir = args.out or listing.annotated_out_dir(args.videos)
    guards.check_output_paths({"--out": out_dir}, {"--annotations/--videos": [args.annotations, args.videos]})
    read = annotations.read_annotations(args.annotations)
    return annotations.resolve_videos(read.segments, args.videos), out_dir


def find_tasks(args, settings):
    """(out_dir, shard's tasks, number of videos in all shards)."""
    try:
        index, count = bulk.parse_shard(args.shard)
    except ValueError as e:
        raise UserError(str(e)) from None
    sources, out_dir = annotated_sources(args) if args.annotations else dataset_sources(args)
    names = bulk.shard(sources, index, count)
    tasks = [(name, sources[name], listing.output_path(out_dir, name), settings, args.resume) for name in names]
    return out_dir, tasks, len(sources)


def refuse_foreign(tasks, settings):
    """UserError when finished files of this shard hold flow of other settings (without --no-resume)."""
    foreign = foreign_outputs([path for _, _, path, _, _ in tasks], settings)
    if foreign:
        path, differ = foreign[0]
        raise UserError(f"{len(foreign)} finished flow files were made with other settings, e.g. {path} "
                        f"(differing: {', '.join(differ)}): use another --out, the same settings, or --no-resume "
                        f"to redo them")


def main(args):
    settings = check_args(args)
    out_dir, tasks, total = find_tasks(args, settings)
    if args.resume:
        refuse_foreign(tasks, settings)
    os.makedirs(out_dir, exist_ok=True)
    stale = atomic.remove_stale_temporaries(out_dir, [path for _, _, path, _, _ in tasks])
    workers = 0 if settings.method in RAFT_METHODS else args.workers  # RAFT: one model, in this process
    size = "native" if settings.size is None else "x".join(map(str, settings.size))
    print(f"{PROG}: {len(tasks)} of {total} videos (shard {args.shard}) -> {out_dir} (method {settings.method}, "
          f"size {size}, bound {settings.bound:g}, storage {settings.storage}, {workers} workers)"
          + (f"; removed {stale} stale temporary files" if stale else ""), flush=True)
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # a damaged file is reported below instead
    start = time.perf_counter()
    results = bulk.run_tasks(PROG, extract_video, tasks, workers, out_dir, [path for _, _, path, _, _ in tasks])
    counts = {status: sum(result[1] == status for result in results) for status in ("extracted", "skipped", "failed")}
    print(f"{PROG}: extracted {counts['extracted']}, skipped {counts['skipped']} (already done), "
          f"failed {counts['failed']} in {time.perf_counter() - start:.1f} s")
    bulk.exit_if_failed(PROG, [(name, detail) for name, status, detail in results if status == "failed"])


def get_args_parser():
    parser = argparse.ArgumentParser(
        prog=PROG, description="Extract the optical flow of every video of a dataset to <out>/<Class>/<video>.hdf5 "
        "(an annotation CSV's segments: <out>/<uid>.hdf5) (dataset 'flow', uint8 [T-1, H, W, 2], x and y "
        "quantised to 0-255 over +-bound as TSN). Resumable; "
        "failed videos are listed at the end (exit status 1).")
    parser.add_argument("--data-dir", default="data",
                        help="holds the videos: UCF-101-hdf5/ or UCF-101/ (HMDB-51: hmdb51-hdf5/ or hmdb51/), "
                        "<Class>/<video>.hdf5 or .avi (default: data)")
    parser.add_argument("--dataset", choices=datasets.DATASETS, default="auto", help=datasets.DATASET_HELP)
    parser.add_argument("--videos", default=None, metavar="DIR",
                        help="read <Class>/<video> files from this folder instead of --data-dir's; with "
                        "--annotations, the folder of the segments' videos, <uid>.hdf5 or <uid> with a video "
                        "suffix, sub-folders included (default: off)")
    parser.add_argument("--annotations", default=None, metavar="CSV",
                        help="extract the flow of every segment (all subsets) of this annotation CSV (columns "
                        f"{','.join(annotations.COLUMNS)}; uid = a video file's stem under --videos) to "
                        "<out>/<uid>.hdf5, as train_single_frame.py --modality flow --annotations reads it, "
                        "instead of --data-dir's dataset (default: off)")
    parser.add_argument("--out", "--flow-dir", default=None, metavar="DIR",
                        help="output folder, gets <Class>/<video>.hdf5 (default: <data-dir>/UCF-101-flow, "
                        "or <data-dir>/hmdb51-flow for HMDB-51); with --annotations <uid>.hdf5 (default: beside "
                        "the videos folder, <videos>-flow: mydata/videos -> mydata/videos-flow); --flow-dir is "
                        "the same flag, named as the training scripts name it")
    parser.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD,
                        help="flow method: tvl1 is the papers' (TSN, two-stream) but ~90x the CPU of dis-medium "
                        "on a CPU (bench/README.md); raft-* need --raft-weights and run on CUDA when present "
                        f"(default: {DEFAULT_METHOD})")
    parser.add_argument("--raft-weights", default=None, metavar="FILE",
                        help="torchvision's raft_small / raft_large state dict for --method raft-small / "
                        "raft-large; never downloaded (default: none)")
    parser.add_argument("--size", default="x".join(map(str, DEFAULT_SIZE)), metavar="WxH",
                        help="frames are resized to WIDTHxHEIGHT before the flow, or 'native' for each video's "
                        f"own size (default: {DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}, TSN's)")
    parser.add_argument("--bound", type=float, default=codec.BOUND,
                        help=f"flow is clipped to +-bound pixels before the 8-bit mapping (default: {codec.BOUND:g}, "
                        "TSN's)")
    parser.add_argument("--storage", choices=("raw", "jpeg"), default="raw",
                        help="raw: uint8 [T-1, H, W, 2]; jpeg: a greyscale JPEG per component and pair, as TSN "
                        "stores flow, several times smaller (default: raw)")
    parser.add_argument("--quality", type=int, default=JPEG_QUALITY,
                        help=f"JPEG quality 1-100 for --storage jpeg (default: {JPEG_QUALITY})")
    parser.add_argument("--workers", type=int, default=bulk.available_cpus(),
                        help="parallel processes; 0 extracts in this process; RAFT always runs in this process "
                        f"(default: the CPUs available to this process, here {bulk.available_cpus()})")
    parser.add_argument("--shard", default="0/1", metavar="I/N",
                        help="extract only shard I of N (0 <= I < N): every N-th of the sorted video names from "
                        "the I-th; the N shards of a job array cover every video once (default: 0/1, all)")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                        help="skip videos whose finished flow file has these settings; --no-resume redoes every "
                        "video of the shard (default: on)")
    return parser


if __name__ == "__main__":
    run_main(main, get_args_parser())
