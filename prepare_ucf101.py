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
import concurrent.futures
import math
import os
import re
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import cv2
import h5py
import numpy as np
from tqdm import tqdm

from actionrec import atomic, guards
from actionrec.bulk import available_cpus
from actionrec.data import datasets, hmdb51
from actionrec.data.loader_pool import close_pool, make_pool
from actionrec.data.video_decode import MIN_DECODED_FRACTION  # of CAP_PROP_FRAME_COUNT: one rule for every reader
from actionrec.data.video_files import READ_ERRORS, video_info, write_video_hdf5

PROG = "prepare_ucf101.py"
VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v")
LAYOUTS = {"ucf101": "UCF-101/<Class>/<video>.avi",
           "hmdb51": f"{hmdb51.HMDB_VIDEO_DIR}/<action>/<video>.avi: hmdb51_org.rar and its per-action .rar files "
                     f"unpacked"}
PIECE_ATTRS = ("source", "fps", "segment_seconds", "segment_frames", "first_frame", "segment_index",
               "segment_count")


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


def container_fps(capture):
    """Frames per second the container declares, or None when it declares none (OpenCV gives 0)."""
    fps = capture.get(cv2.CAP_PROP_FPS)
    return fps if math.isfinite(fps) and fps > 0 else None


def decode_pieces(capture, piece_frames, declared):
    """Yield (first_frame, uint8 [n, H, W, 3] RGB) pieces of `piece_frames` frames from an open capture.

    A last piece shorter than piece_frames / 2 joins the piece before it; a video shorter than one
    piece is one piece. DecodeError (before the last piece is yielded) for inconsistent frame sizes,
    no frame at all, or fewer than MIN_DECODED_FRACTION of the `declared` frames.
    """
    done, current, count = None, None, 0  # done: a full piece held back until the next one is known
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if current is None:
            current = np.empty((piece_frames,) + frame.shape, dtype=np.uint8)
        elif frame.shape != current.shape[1:]:
            raise DecodeError(f"frame {count} is {frame.shape}, the first was {current.shape[1:]}")
        cv2.cvtColor(frame, cv2.COLOR_BGR2RGB, dst=current[count % piece_frames])
        count += 1
        if count % piece_frames == 0:
            if done is not None:
                yield count - 2 * piece_frames, done
            done, current = current, np.empty_like(current)
    if count == 0:
        raise DecodeError("no frame could be decoded")
    if current.ndim != 4 or current.shape[3] != 3:
        raise DecodeError(f"frames are {current.shape[1:]}, expected [H, W, 3]")
    if declared > 0 and count < MIN_DECODED_FRACTION * declared:
        raise DecodeError(f"decoded {count} of the {declared} frames its header declares (truncated file?)")
    rest = count % piece_frames
    if done is None:
        yield 0, current[:rest]
    elif rest == 0:
        yield count - piece_frames, done
    elif rest < piece_frames / 2:
        yield count - piece_frames - rest, np.concatenate([done, current[:rest]])
    else:
        yield count - piece_frames - rest, done
        yield count - rest, current[:rest]


def piece_path(hdf5_path, index):
    """`<dir>/<stem>-segNNN.hdf5`, the index-th piece of the video whose whole output is hdf5_path."""
    return hdf5_path.with_name(f"{hdf5_path.stem}-seg{index:03d}.hdf5")


def piece_attrs(path):
    """The piece attributes (PIECE_ATTRS) of a finished piece file, or None if it is not one."""
    if not is_converted(path):
        return None
    try:
        with h5py.File(path, "r") as f:
            return {key: f.attrs[key] for key in PIECE_ATTRS}
    except READ_ERRORS:
        return None


def pieces_done(hdf5_path, segment_seconds):
    """Number of pieces if all pieces of a video were written for this segment length, else None."""
    first = piece_attrs(piece_path(hdf5_path, 0))
    if first is None or float(first["segment_seconds"]) != segment_seconds:
        return None
    count = int(first["segment_count"])
    for index in range(1, count):
        attrs = piece_attrs(piece_path(hdf5_path, index))
        if (attrs is None or int(attrs["segment_index"]) != index or int(attrs["segment_count"]) != count
                or float(attrs["segment_seconds"]) != segment_seconds):
            return None
    return count


def remove_pieces_from(hdf5_path, count):
    """Delete pieces of this video numbered `count` and above (left by a run with shorter pieces)."""
    piece = re.compile(re.escape(hdf5_path.stem) + r"-seg(\d{3,})\.hdf5")
    for path in hdf5_path.parent.iterdir():
        match = piece.fullmatch(path.name)
        if match and int(match.group(1)) >= count:
            path.unlink()


def convert_video_pieces(name, video_path, hdf5_path, storage, quality, segment_seconds):
    """--segment-seconds: (name, status, detail, bytes) as convert_video, detail = pieces when done.

    The pieces go to temporary files and are renamed together once the whole video has decoded: a
    failure or a kill leaves no piece of it (a kill may leave temporaries: removed at the next start).
    """
    done = pieces_done(hdf5_path, segment_seconds)
    if done is not None:
        return name, "skipped", done, 0
    if not video_path.is_file():
        return name, "failed", "not found under --videos", 0
    temporaries = []  # (temporary path, first frame, frames)
    try:
        capture = cv2.VideoCapture(str(video_path))
        try:
            if not capture.isOpened():
                raise DecodeError("cannot be opened as a video")
            fps = container_fps(capture)
            if fps is None:
                raise DecodeError("the container declares no frame rate, so it cannot be cut into "
                                  "seconds (convert it without --segment-seconds, or re-mux it with a frame rate)")
            piece_frames = max(1, round(segment_seconds * fps))
            declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            for index, (first_frame, frames) in enumerate(decode_pieces(capture, piece_frames, declared)):
                tmp_path = atomic.temporary_path(piece_path(hdf5_path, index))
                temporaries.append((tmp_path, first_frame, len(frames)))
                write_video_hdf5(tmp_path, frames, storage=storage, quality=quality)
        finally:
            capture.release()
        size = 0
        for index, (tmp_path, first_frame, _) in enumerate(temporaries):
            with h5py.File(tmp_path, "r+") as f:
                f.attrs.update(dict(source=name, fps=fps, segment_seconds=segment_seconds,
                                    segment_frames=piece_frames, first_frame=first_frame,
                                    segment_index=index, segment_count=len(temporaries)))
            size += os.path.getsize(tmp_path)
        for index, (tmp_path, _, _) in enumerate(temporaries):
            os.replace(tmp_path, piece_path(hdf5_path, index))
        remove_pieces_from(hdf5_path, len(temporaries))
        return name, "converted", len(temporaries), size
    except (DecodeError, OSError, ValueError, cv2.error) as e:
        reason = str(e) if isinstance(e, DecodeError) else f"{type(e).__name__}: {e}"
        return name, "failed", reason, 0
    finally:
        for tmp_path, _, _ in temporaries:
            if os.path.exists(tmp_path):
                os.remove(tmp_path)


def convert_video(task):
    """Worker: (name, video_path, hdf5_path, storage, quality, segment_seconds) -> (name, status,
    detail, bytes).

    status is "skipped", "converted" (detail = frames, or pieces with segment_seconds) or "failed"
    (detail = the reason); a skipped video's detail is its number of pieces with segment_seconds.
    """
    name, video_path, hdf5_path, storage, quality, segment_seconds = task
    if segment_seconds:
        return convert_video_pieces(name, video_path, hdf5_path, storage, quality, segment_seconds)
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
    """Relative `<Class>/<video>.avi` entries of a split list (train lists carry a label: dropped).
    An entry of another form is a ValueError naming the line: the file is not a split list."""
    with open(list_path, "r", encoding="utf-8") as f:
        lines = f.read().splitlines()
    entries = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        entry = line.split()[0]
        folder, _, name = entry.partition("/")
        if not folder or "/" in name or Path(name).suffix.lower() not in VIDEO_SUFFIXES:
            raise ValueError(f"line {number} is {line.strip()[:60]!r}, not <Class>/<video>.avi as in a split list")
        entries.append(entry)
    return entries


def is_video(path):
    return path.suffix.lower() in VIDEO_SUFFIXES and not path.name.startswith(".") and path.is_file()


def resolve_entry(videos_dir, entry):
    """A list entry `<Class>/<stem>.avi` as the video that is there: the entry itself, else
    `<Class>/<stem>.<any video suffix>` (lists name every video .avi), else the entry unchanged."""
    path = videos_dir / entry
    if path.is_file() or not path.parent.is_dir():
        return entry
    stem = Path(entry).stem
    matches = sorted(p.name for p in path.parent.iterdir() if Path(p.name).stem == stem and is_video(p))
    return (Path(entry).parent / matches[0]).as_posix() if matches else entry


def find_videos(videos_dir, list_path=None):
    """Sorted relative paths `<Class>/<video>.<suffix>` to convert (hidden files are not videos)."""
    if list_path is not None:
        return [resolve_entry(videos_dir, entry) for entry in read_video_list(list_path)]
    return sorted(p.relative_to(videos_dir).as_posix() for p in videos_dir.glob("*/*")
                  if is_video(p) and not p.parent.name.startswith("."))


def same_output(names):
    """The first two names that would be converted to the same file (a.avi and a.mp4), or None."""
    seen = {}
    for name in names:
        key = Path(name).with_suffix("").as_posix()
        if key in seen and seen[key] != name:
            return seen[key], name
        seen.setdefault(key, name)
    return None


def format_bytes(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def fail(message):
    """A usage error: one line on stderr and exit status 2 (1 is for videos that failed)."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def video_folders(videos_dir):
    """The names of the class folders under videos_dir (none when it is not a folder)."""
    try:
        return {p.name for p in videos_dir.iterdir() if p.is_dir() and not p.name.startswith(".")}
    except OSError:
        return set()


def detect_dataset(data_dir, videos_dir):
    """(dataset, why) for --dataset auto: the dataset whose split folder --data-dir holds, else whose video
    folder it holds (UCF-101/ or hmdb51/), else hmdb51 when every class folder of the videos is an HMDB-51
    action, else ucf101 (also one's own videos). ValueError when --data-dir holds both datasets' folders."""
    if data_dir is not None:
        # The split folder says which; else, when the videos are --data-dir's, which video folder is there.
        for folders in (datasets.SPLIT_DIRS, datasets.VIDEO_DIRS if videos_dir is None else {}):
            found = datasets.datasets_with(data_dir, folders)
            if len(found) > 1:
                raise ValueError(f"--data-dir {data_dir} holds both {' and '.join(f + '/' for f in folders.values())}: "
                                 f"pass --dataset ucf101 or hmdb51")
            if found:
                return found[0], f"--data-dir holds {folders[found[0]]}/"
    if videos_dir is not None:
        folders = video_folders(videos_dir)
        if folders and folders <= set(hmdb51.HMDB_ACTIONS):
            return "hmdb51", f"the {len(folders)} class folders of {videos_dir} are HMDB-51 actions"
    return "ucf101", "no HMDB-51 split or action folder"


def choose_dataset(args):
    """(dataset, videos_dir, out_dir) from --dataset, --data-dir, --videos and --out; prints the choice."""
    data_dir = Path(args.data_dir) if args.data_dir is not None else None
    if data_dir is None and (args.videos is None or args.out is None):
        fail("give --data-dir (the videos are read from its UCF-101/ or hmdb51/ folder), or --videos and --out")
    videos_dir = Path(args.videos) if args.videos is not None else None
    if args.dataset == "auto":
        try:
            dataset, why = detect_dataset(data_dir, videos_dir)
        except ValueError as e:
            fail(str(e))
        print(f"{PROG}: dataset: {dataset} (detected: {why}; --dataset chooses)")
    else:
        dataset = args.dataset
        print(f"{PROG}: dataset: {dataset} (--dataset)")
    if videos_dir is None:
        videos_dir = data_dir / datasets.VIDEO_DIRS[dataset]
    out_dir = Path(args.out) if args.out is not None else data_dir / datasets.HDF5_DIRS[dataset]
    return dataset, videos_dir, out_dir


def check_args(args, dataset, videos_dir):
    """A usage error (fail) for a flag that cannot work."""
    if args.workers < 0:
        fail(f"--workers must be >= 0, not {args.workers}")
    if not 1 <= args.quality <= 100:
        fail(f"--quality must be in 1..100, not {args.quality}")
    if not videos_dir.is_dir():
        given = "--videos " if args.videos is not None else ""  # else it comes from --data-dir
        fail(f"{given}{videos_dir} is not a directory (expected {LAYOUTS[dataset]})")
    if args.list is not None and not Path(args.list).is_file():
        fail(f"--list {args.list} is not a file")
    segment = args.segment_seconds
    if segment is not None and not (math.isfinite(segment) and segment > 0):
        fail(f"--segment-seconds must be a positive number of seconds, not {segment}")


def check_outputs(args, videos_dir, out_dir):
    """--out must not be (or hold) an input; made, and its stale temporaries removed: their number."""
    inputs = {"--videos": [str(videos_dir)], "--list": [args.list] if args.list else []}
    try:
        guards.check_output_paths({"--out": str(out_dir)}, inputs)
    except guards.UserError as e:
        fail(str(e))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        return atomic.remove_stale_temporaries(out_dir)
    except OSError as e:
        fail(f"cannot use --out {out_dir}: {e}")


def videos_to_convert(args, dataset, videos_dir):
    """The relative names `<Class>/<video>.<suffix>` to convert; a usage error when there are none, or two
    would make one file. HMDB-51: a warning line names class folders that are not its actions."""
    try:
        names = find_videos(videos_dir, args.list)
    except (OSError, ValueError) as e:  # UnicodeDecodeError is a ValueError: not a text file
        fail(f"cannot read --list {args.list}: {e}")
    if not names:
        source = f"--list {args.list}" if args.list else f"{videos_dir}/<Class>/<video> ({' '.join(VIDEO_SUFFIXES)})"
        fail(f"no videos found in {source}")
    clash = same_output(names)
    if clash:
        fail(f"{clash[0]} and {clash[1]} would both be converted to "
             f"{Path(clash[0]).with_suffix('.hdf5').as_posix()}: keep one of them")
    if dataset == "hmdb51":
        folders = sorted({Path(name).parent.as_posix() for name in names})
        strange = [f for f in folders if f not in hmdb51.HMDB_ACTIONS]
        if strange:
            print(f"{PROG}: warning: {len(strange)} of the {len(folders)} class folders are not HMDB-51 actions "
                  f"(converted all the same; getHMDB51 reads only <action>/ folders): {', '.join(strange[:5])}"
                  + (f" and {len(strange) - 5} more" if len(strange) > 5 else ""), file=sys.stderr)
    return names


def convert_all(tasks, workers, out_dir):
    """Convert every task in `workers` processes with a progress bar; the (name, status, detail, bytes)
    of each. A Ctrl-C or a dead worker removes the temporaries and exits (130, or with one line)."""
    pool = make_pool(workers)
    if pool is None:
        results = map(convert_video, tasks)
    else:  # in the order they finish, as the progress bar counts them
        results = (future.result() for future in
                   concurrent.futures.as_completed([pool.submit(convert_video, task) for task in tasks]))
    done, failed = [], 0
    try:
        with tqdm(total=len(tasks), unit="video", disable=not sys.stderr.isatty()) as progress:
            for result in results:
                done.append(result)
                failed += result[1] == "failed"
                progress.set_postfix(failed=failed, refresh=False)
                progress.update()
    except KeyboardInterrupt:
        close_pool(pool)  # the workers got Ctrl-C too; the videos they were on are left unfinished
        atomic.remove_stale_temporaries(out_dir)
        print(f"{PROG}: interrupted; finished files are kept, run again to resume", file=sys.stderr)
        sys.exit(130)
    except BrokenProcessPool:
        close_pool(pool)
        atomic.remove_stale_temporaries(out_dir)
        sys.exit(f"{PROG}: error: a worker process died (killed, e.g. out of memory, or a crash in the "
                 f"decoder); finished files are kept: run again to resume, with --workers 0 to find the video")
    close_pool(pool)
    return done


def report(results, segment_seconds, seconds):
    """Print the counts; the failed videos on stderr and exit status 1 when there are any."""
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
    failures = sorted((name, detail) for name, status, detail, _ in results if status == "failed")
    if failures:
        print(f"{PROG}: {len(failures)} videos failed (no output written):", file=sys.stderr)
        for name, reason in failures:
            print(f"  {name}: {reason}", file=sys.stderr)
        sys.exit(1)


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
    results = convert_all(tasks, args.workers, out_dir)
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
                        f"{' '.join(VIDEO_SUFFIXES)} (default: --data-dir's UCF-101/ or {hmdb51.HMDB_VIDEO_DIR}/)")
    parser.add_argument("--out", default=None,
                        help="output folder, gets <Class>/<video>.hdf5 (default: --data-dir's UCF-101-hdf5/ or "
                        f"{hmdb51.HMDB_HDF5_DIR}/)")
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
                        "testlist01.txt; an entry <Class>/<stem>.avi also finds <stem> with another video "
                        "suffix (default: every video under --videos)")
    parser.add_argument("--segment-seconds", type=float, default=None, metavar="S",
                        help="cut each video into pieces of round(S x fps) frames, <video>-seg000.hdf5, "
                        "-seg001.hdf5, ...; a last piece under half a segment joins the one before; fps "
                        "from the container (default: off, one file per video)")
    return parser


if __name__ == "__main__":
    main(get_args_parser().parse_args())
