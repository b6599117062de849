"""Convert the UCF-101 or HMDB-51 .avi videos (or one's own) to the per-video HDF5 files the loaders read.

    python prepare_ucf101.py --data-dir DATA [--dataset auto|ucf101|hmdb51] [--workers N] [--storage raw|jpeg]
    python prepare_ucf101.py --videos UCF-101/ --out UCF-101-hdf5/ [...] [--segment-seconds S]

--data-dir DATA reads DATA/UCF-101/<Class>/<video>.avi into DATA/UCF-101-hdf5/, or for HMDB-51
DATA/hmdb51/<action>/<video>.avi (hmdb51_org.rar unpacked) into DATA/hmdb51-hdf5/, where getUCF101 and
getHMDB51 look; --videos and --out name other folders. --dataset auto (the default) takes the dataset
whose split folder DATA holds (ucfTrainTestlist/ or testTrainMulti_7030_splits/), else whose video
folder it holds, else HMDB-51 when every class folder of the videos is an HMDB-51 action, else UCF-101;
the choice is printed. HMDB-51's clips keep their names (- ( ) ! # [ ] & + ; ~ @ included), are read at
their own width (320, 432, 560, ...) and decode one frame fewer than their header declares, which the
95% rule below accepts.

Every `<Class>/<video>.avi` (also .mp4 .mkv .mov .webm .mpg .mpeg .m4v) under --videos becomes
`<Class>/<video>.hdf5` under --out holding one dataset `video`: every decoded frame, RGB, uint8
[T, H, W, 3] ("raw", the course's layout, ~500 GB for UCF-101) or one JPEG per frame ("jpeg", an
order of magnitude smaller); the loaders read both.

--segment-seconds S cuts each video into consecutive pieces of round(S x fps) frames, fps from the
container's header, written as `<Class>/<video>-seg000.hdf5`, `-seg001.hdf5`, ... (make_split_lists.py
keeps the pieces of one video on one side). A last piece shorter than half a segment joins the
piece before it, so pieces hold 0.5 to 1.5 segments of frames; a video shorter than one segment is
one piece. A video whose container declares no frame rate fails (the others are still converted).
Each piece's file records where it comes from (file attributes source, fps, segment_seconds,
segment_frames, first_frame, segment_index, segment_count). Only about two pieces are in memory
at a time, not the whole video.

The job is resumable and safe to kill: a video whose output file exists and opens (all its pieces,
with --segment-seconds) is skipped, and each file is written under a temporary name and renamed when
complete -- a video's pieces all at once, after the last one is decoded (stale temporary files are
removed at start, so do not run two jobs on the same --out at once). A video that cannot be opened,
or decodes fewer than 95% of the frames its header declares (a truncated download), gets no output
and is reported at the end; the others are still converted and the exit status is 1. A usage
error (a folder or --list that is not what it should be) is one line and exit status 2.
"""
import argparse
import math
import os
import sys
import time
from pathlib import Path

from actionrec import atomic, bulk, guards
from actionrec.data import datasets, hmdb51, source_videos, split_lists, video_conversion
from actionrec.engine.runner import run_main
from actionrec.guards import UserError

PROG = "prepare_ucf101.py"
LAYOUTS = {"ucf101": "UCF-101/<Class>/<video>.avi",
           "hmdb51": f"{hmdb51.HMDB_VIDEO_DIR}/<action>/<video>.avi: hmdb51_org.rar and its per-action .rar files "
                     f"unpacked"}


def format_bytes(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def choose_dataset(args):
    """(dataset, videos_dir, out_dir) from --dataset, --data-dir, --videos and --out; prints the choice."""
    data_dir = Path(args.data_dir) if args.data_dir is not None else None
    if data_dir is None and (args.videos is None or args.out is None):
        raise UserError("give --data-dir (the videos are read from its UCF-101/ or hmdb51/ folder), "
                        "or --videos and --out")
    videos_dir = Path(args.videos) if args.videos is not None else None
    if args.dataset == "auto":
        try:
            dataset, why = source_videos.detect_dataset(data_dir, videos_dir)
        except ValueError as e:
            raise UserError(str(e)) from None
        print(f"{PROG}: dataset: {dataset} (detected: {why}; --dataset chooses)")
    else:
        dataset = args.dataset
        print(f"{PROG}: dataset: {dataset} (--dataset)")
    if videos_dir is None:
        videos_dir = data_dir / datasets.VIDEO_DIRS[dataset]
    out_dir = Path(args.out) if args.out is not None else data_dir / datasets.HDF5_DIRS[dataset]
    return dataset, videos_dir, out_dir


def check_args(args, dataset, videos_dir):
    """A UserError for a flag that cannot work."""
    if args.workers < 0:
        raise UserError(f"--workers must be >= 0, not {args.workers}")
    if not 1 <= args.quality <= 100:
        raise UserError(f"--quality must be in 1..100, not {args.quality}")
    if not videos_dir.is_dir():
        given = "--videos " if args.videos is not None else ""  # else it comes from --data-dir
        raise UserError(f"{given}{videos_dir} is not a directory (expected {LAYOUTS[dataset]})")
    if args.list is not None and not Path(args.list).is_file():
        raise UserError(f"--list {args.list} is not a file")
    segment = args.segment_seconds
    if segment is not None and not (math.isfinite(segment) and segment > 0):
        raise UserError(f"--segment-seconds must be a positive number of seconds, not {segment}")


def check_outputs(args, videos_dir, out_dir):
    """--out must not be (or hold) an input; made, and its stale temporaries removed: their number."""
    inputs = {"--videos": [str(videos_dir)], "--list": [args.list] if args.list else []}
    guards.check_output_paths({"--out": str(out_dir)}, inputs)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        return atomic.remove_stale_temporaries(out_dir)
    except OSError as e:
        raise UserError(f"cannot use --out {out_dir}: {e}") from None


def videos_to_convert(args, dataset, videos_dir):
    """The relative names `<Class>/<video>.<suffix>` to convert; a usage error when there are none, or two
    would make one file. HMDB-51: a warning line names class folders that are not its actions."""
    try:
        names = source_videos.find_videos(videos_dir, args.list)
    except (OSError, ValueError) as e:  # UnicodeDecodeError is a ValueError: not a text file
        raise UserError(f"cannot read --list {args.list}: {e}") from None
    if not names:
        suffixes = " ".join(split_lists.VIDEO_SUFFIXES)
        source = f"--list {args.list}" if args.list else f"{videos_dir}/<Class>/<video> ({suffixes})"
        raise UserError(f"no videos found in {source}")
    clash = source_videos.same_output(names)
    if clash:
        raise UserError(f"{clash[0]} and {clash[1]} would both be converted to "
                        f"{Path(clash[0]).with_suffix('.hdf5').as_posix()}: keep one of them")
    if dataset == "hmdb51":
        folders = sorted({Path(name).parent.as_posix() for name in names})
        strange = [f for f in folders if f not in hmdb51.HMDB_ACTIONS]
        if strange:
            print(f"{PROG}: warning: {len(strange)} of the {len(folders)} class folders are not HMDB-51 actions "
                  f"(converted all the same; getHMDB51 reads only <action>/ folders): {', '.join(strange[:5])}"
                  + (f" and {len(strange) - 5} more" if len(strange) > 5 else ""), file=sys.stderr)
    return names


def report(results, segment_seconds, seconds):
    """Print the counts; the failed videos on stderr and exit status 1 (bulk.VideosFailed) when there are any."""
    counts = {"converted": 0, "skipped": 0, "failed": 0}
    pieces = {"converted": 0, "skipped": 0}
    for _, status, detail, _ in results:
        counts[status] += 1
        if segment_seconds and status != "failed":
            pieces[status] += detail
    written = format_bytes(sum(size for *_, size in results))
    if segment_seconds:
        print(f"{PROG}: converted {counts['converted']} ({pieces['converted']} pieces), skipped "
              f"{counts['skipped']} (already done, {pieces['skipped']} pieces), failed {counts['failed']}; "
              f"wrote {written} in {seconds:.1f} s")
    else:
        print(f"{PROG}: converted {counts['converted']}, skipped {counts['skipped']} (already done), "
              f"failed {counts['failed']}; wrote {written} in {seconds:.1f} s")
    bulk.exit_if_failed(PROG, [(name, detail) for name, status, detail, _ in results if status == "failed"])


def main(args):
    dataset, videos_dir, out_dir = choose_dataset(args)
    check_args(args, dataset, videos_dir)
    names = videos_to_convert(args, dataset, videos_dir)
    stale = check_outputs(args, videos_dir, out_dir)
    print(f"{PROG}: {len(names)} videos from {videos_dir} -> {out_dir} "
          f"(storage {args.storage}{f', quality {args.quality}' if args.storage == 'jpeg' else ''}, "
          f"{args.workers} workers"
          + (f", pieces of {args.segment_seconds:g} s" if args.segment_seconds else "") + ")"
          + (f"; removed {stale} stale temporary files" if stale else ""))
    # FFmpeg logs every damaged macroblock of a truncated file; the failure is reported below instead.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    tasks = [(name, videos_dir / name, (out_dir / name).with_suffix(".hdf5"), args.storage, args.quality,
              args.segment_seconds) for name in names]
    start = time.perf_counter()
    results = bulk.run_tasks(PROG, video_conversion.convert_video, tasks, args.workers, out_dir)
    report(results, args.segment_seconds, time.perf_counter() - start)


def get_args_parser():
    parser = argparse.ArgumentParser(
        prog=PROG, description="Convert UCF-101 or HMDB-51 <Class>/<video>.avi files (or .mp4 .mkv .mov .webm "
        ".mpg .mpeg .m4v) to <Class>/<video>.hdf5 (dataset 'video', uint8 RGB, every frame), optionally cut into "
        "pieces of --segment-seconds. Resumable; failed videos are listed at the end.")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="the scripts' --data-dir: converts DIR/UCF-101/ into DIR/UCF-101-hdf5/, or for HMDB-51 "
                        f"DIR/{hmdb51.HMDB_VIDEO_DIR}/ into DIR/{hmdb51.HMDB_HDF5_DIR}/ (default: none; then --videos "
                        "and --out are required)")
    parser.add_argument("--dataset", choices=datasets.DATASETS, default="auto",
                        help="which dataset the videos are: ucf101, hmdb51, or auto: the one whose split folder "
                        f"--data-dir holds (ucfTrainTestlist/ or {hmdb51.HMDB_SPLIT_DIR}/), else whose video folder "
                        f"it holds (UCF-101/ or {hmdb51.HMDB_VIDEO_DIR}/), else hmdb51 when every class folder of "
                        "the videos is one of HMDB-51's 51 actions, else ucf101 (also one's own videos); the choice "
                        "is printed. It picks the folders --data-dir reads and writes (default: auto)")
    parser.add_argument("--videos", default=None,
                        help="folder holding <Class>/<video>.avi, or another video suffix: "
                        f"{' '.join(split_lists.VIDEO_SUFFIXES)} (default: --data-dir's UCF-101/ or "
                        f"{hmdb51.HMDB_VIDEO_DIR}/)")
    parser.add_argument("--out", default=None,
                        help="output folder, gets <Class>/<video>.hdf5 (default: --data-dir's UCF-101-hdf5/ or "
                        f"{hmdb51.HMDB_HDF5_DIR}/)")
    parser.add_argument("--workers", type=int, default=bulk.available_cpus(),
                        help="parallel processes; 0 converts in this process (default: the CPUs available "
                        f"to this process, here {bulk.available_cpus()})")
    parser.add_argument("--storage", choices=("raw", "jpeg"), default="raw",
                        help="raw: uint8 [T, H, W, 3] as in the course (~500 GB for UCF-101); jpeg: one "
                        "JPEG per frame, ~10x smaller (default: raw)")
    parser.add_argument("--quality", type=int, default=90,
                        help="JPEG quality 1-100 for --storage jpeg (default: 90)")
    parser.add_argument("--list", default=None, metavar="FILE",
                        help="convert only the videos of this split list, e.g. ucfTrainTestlist/"
                        "testlist01.txt; an entry <Class>/<stem>.avi also finds <stem> with another video "
                        "suffix (default: every video under --videos)")
    parser.add_argument("--segment-seconds", type=float, default=None, metavar="S",
                        help="cut each video into pieces of round(S x fps) frames, <video>-seg000.hdf5, "
                        "-seg001.hdf5, ...; a last piece under half a segment joins the one before; fps "
                        "from the container (default: off, one file per video)")
    return parser


if __name__ == "__main__":
    run_main(main, get_args_parser())
