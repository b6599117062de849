"""Convert the UCF-101 .avi videos to the per-video HDF5 files the loaders read.

    python prepare_ucf101.py --videos UCF-101/ --out UCF-101-hdf5/ [--workers N] [--storage raw|jpeg]

Every `<Class>/<video>.avi` under --videos becomes `<Class>/<video>.hdf5` under --out holding one
dataset `video`: every decoded frame, RGB, uint8 [T, H, W, 3] ("raw", the course's layout, ~500 GB for
UCF-101) or one JPEG per frame ("jpeg", an order of magnitude smaller); the loaders read both.

The job is resumable and safe to kill: a video whose output file exists and opens is skipped, and
each file is written under a temporary name and renamed when complete (stale temporary files are
removed at start, so do not run two jobs on the same --out at once). A video that cannot be opened,
or decodes fewer than 95% of the frames its header declares (a truncated download), gets no output
and is reported at the end; the others are still converted and the exit status is 1.
"""
import argparse
import concurrent.futures
import os
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from helperFunctions import READ_ERRORS, close_pool, make_pool, video_info, write_video_hdf5

PROG = "prepare_ucf101.py"
MIN_DECODED_FRACTION = 0.95  # of CAP_PROP_FRAME_COUNT; a truncated .avi decodes a fraction, quietly
TMP_MARKER = ".tmp-"         # write_video_hdf5 writes `<path>.tmp-<pid>` and renames it when done


class DecodeError(ValueError):
    """A video that cannot be converted (unreadable, truncated, inconsistent frames)."""


def decode_video(video_path):
    """All frames of a video as uint8 [T, H, W, 3] RGB; DecodeError if unreadable or truncated."""
    capture = cv2.VideoCapture(str(video_path))
    try:
        if not capture.isOpened():
            raise DecodeError("cannot be opened as a video")
        declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        frames, count = None, 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if frames is None:
                # Preallocated from the header's count: no list + stack copy (a long video is ~400 MB).
                frames = np.empty((max(declared, 1),) + frame.shape, dtype=np.uint8)
            elif frame.shape != frames.shape[1:]:
                raise DecodeError(f"frame {count} is {frame.shape}, the first was {frames.shape[1:]}")
            if count == len(frames):  # the header declared fewer frames than there are
                frames = np.concatenate([frames, np.empty_like(frames)])
            cv2.cvtColor(frame, cv2.COLOR_BGR2RGB, dst=frames[count])
            count += 1
    finally:
        capture.release()
    if count == 0:
        raise DecodeError("no frame could be decoded")
    if frames.ndim != 4 or frames.shape[3] != 3:
        raise DecodeError(f"frames are {frames.shape[1:]}, expected [H, W, 3]")
    if declared > 0 and count < MIN_DECODED_FRACTION * declared:
        raise DecodeError(f"decoded {count} of the {declared} frames its header declares (truncated file?)")
    return frames[:count]


def is_converted(hdf5_path):
    """True if `hdf5_path` exists and opens as a video file (a finished conversion)."""
    if not hdf5_path.is_file():
        return False
    try:
        video_info(hdf5_path)
    except READ_ERRORS:
        return False
    return True


def convert_video(task):
    """Worker: (name, video_path, hdf5_path, storage, quality) -> (name, status, detail, bytes).

    status is "skipped", "converted" (detail = frames) or "failed" (detail = the reason).
    """
    name, video_path, hdf5_path, storage, quality = task
    if is_converted(hdf5_path):
        return name, "skipped", None, 0
    if not video_path.is_file():
        return name, "failed", "not found under --videos", 0
    try:
        frames = decode_video(video_path)
        write_video_hdf5(str(hdf5_path), frames, storage=storage, quality=quality)
        return name, "converted", len(frames), hdf5_path.stat().st_size
    except (DecodeError, OSError, ValueError, cv2.error) as e:
        reason = str(e) if isinstance(e, DecodeError) else f"{type(e).__name__}: {e}"
        return name, "failed", reason, 0


def read_video_list(list_path):
    """Relative `<Class>/<video>.avi` entries of a split list (train lists carry a label: dropped)."""
    with open(list_path, "r", encoding="utf-8") as f:
        return [line.split()[0] for line in f.read().splitlines() if line.strip()]


def find_videos(videos_dir, list_path=None):
    """Sorted relative paths `<Class>/<video>.avi` to convert."""
    if list_path is not None:
        return read_video_list(list_path)
    return sorted(p.relative_to(videos_dir).as_posix() for p in videos_dir.glob("*/*")
                  if p.suffix.lower() == ".avi" and p.is_file())


def remove_stale_temporaries(out_dir):
    """Delete `*.tmp-<pid>` files a killed job left under out_dir; returns how many."""
    removed = 0
    for path in out_dir.rglob(f"*{TMP_MARKER}*"):
        if path.is_file() and path.name.rpartition(TMP_MARKER)[2].isdigit():
            path.unlink()
            removed += 1
    return removed


def available_cpus():
    """CPUs this process may use (a cluster job's allocation, not the whole node); os.cpu_count() elsewhere."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def format_bytes(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def main(args):
    videos_dir, out_dir = Path(args.videos), Path(args.out)
    if args.workers < 0:
        raise SystemExit(f"{PROG}: error: --workers must be >= 0, not {args.workers}")
    if not 1 <= args.quality <= 100:
        raise SystemExit(f"{PROG}: error: --quality must be in 1..100, not {args.quality}")
    if not videos_dir.is_dir():
        raise SystemExit(f"{PROG}: error: --videos {videos_dir} is not a directory (expected UCF-101/<Class>/<video>.avi)")
    if args.list is not None and not Path(args.list).is_file():
        raise SystemExit(f"{PROG}: error: --list {args.list} is not a file")
    if out_dir.resolve() == videos_dir.resolve():
        raise SystemExit(f"{PROG}: error: --out must differ from --videos")
    try:
        names = find_videos(videos_dir, args.list)
    except (OSError, UnicodeDecodeError, IndexError) as e:
        raise SystemExit(f"{PROG}: error: cannot read --list {args.list}: {e}")
    if not names:
        source = f"--list {args.list}" if args.list else f"{videos_dir}/<Class>/*.avi"
        raise SystemExit(f"{PROG}: error: no videos found in {source}")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        stale = remove_stale_temporaries(out_dir)
    except OSError as e:
        raise SystemExit(f"{PROG}: error: cannot use --out {out_dir}: {e}")

    print(f"{PROG}: {len(names)} videos from {videos_dir} -> {out_dir} "
          f"(storage {args.storage}{f', quality {args.quality}' if args.storage == 'jpeg' else ''}, "
          f"{args.workers} workers)" + (f"; removed {stale} stale temporary files" if stale else ""))
    # FFmpeg logs every damaged macroblock of a truncated file; the failure is reported below instead.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

    tasks = [(name, videos_dir / name, (out_dir / name).with_suffix(".hdf5"), args.storage, args.quality)
             for name in names]
    counts = {"converted": 0, "skipped": 0, "failed": 0}
    failures, bytes_written = [], 0
    start = time.perf_counter()
    pool = make_pool(args.workers)
    if pool is None:
        results = map(convert_video, tasks)
    else:  # in the order they finish, as the progress bar counts them
        results = (future.result() for future in
                   concurrent.futures.as_completed([pool.submit(convert_video, task) for task in tasks]))
    try:
        with tqdm(total=len(tasks), unit="video", disable=not sys.stderr.isatty()) as progress:
            for name, status, detail, size in results:
                counts[status] += 1
                bytes_written += size
                if status == "failed":
                    failures.append((name, detail))
                progress.set_postfix(failed=counts["failed"], refresh=False)
                progress.update()
    except KeyboardInterrupt:
        close_pool(pool)  # the workers got Ctrl-C too; the videos they were on are left unfinished
        remove_stale_temporaries(out_dir)
        print(f"{PROG}: interrupted; finished files are kept, run again to resume", file=sys.stderr)
        sys.exit(130)
    except BrokenProcessPool:
        close_pool(pool)
        remove_stale_temporaries(out_dir)
        sys.exit(f"{PROG}: error: a worker process died (killed, e.g. out of memory, or a crash in the "
                 f"decoder); finished files are kept: run again to resume, with --workers 0 to find the video")
    close_pool(pool)
    seconds = time.perf_counter() - start

    print(f"{PROG}: converted {counts['converted']}, skipped {counts['skipped']} (already done), "
          f"failed {counts['failed']}; wrote {format_bytes(bytes_written)} in {seconds:.1f} s")
    if failures:
        print(f"{PROG}: {len(failures)} videos failed (no output written):", file=sys.stderr)
        for name, reason in sorted(failures):
            print(f"  {name}: {reason}", file=sys.stderr)
        sys.exit(1)


def get_args_parser():
    parser = argparse.ArgumentParser(
        prog=PROG, description="Convert UCF-101 <Class>/<video>.avi files to <Class>/<video>.hdf5 "
        "(dataset 'video', uint8 RGB, every frame). Resumable; failed videos are listed at the end.")
    parser.add_argument("--videos", required=True,
                        help="folder holding <Class>/<video>.avi (e.g. UCF-101/); required")
    parser.add_argument("--out", required=True,
                        help="output folder, gets <Class>/<video>.hdf5 (e.g. UCF-101-hdf5/); required")
    parser.add_argument("--workers", type=int, default=available_cpus(),
                        help="parallel processes; 0 converts in this process (default: the CPUs available "
                        f"to this process, here {available_cpus()})")
    parser.add_argument("--storage", choices=("raw", "jpeg"), default="raw",
                        help="raw: uint8 [T, H, W, 3] as in the course (~500 GB for UCF-101); jpeg: one "
                        "JPEG per frame, ~10x smaller (default: raw)")
    parser.add_argument("--quality", type=int, default=90,
                        help="JPEG quality 1-100 for --storage jpeg (default: 90)")
    parser.add_argument("--list", default=None, metavar="FILE",
                        help="convert only the videos of this split list, e.g. ucfTrainTestlist/"
                        "testlist01.txt (default: every video under --videos)")
    return parser


if __name__ == "__main__":
    main(get_args_parser().parse_args())
