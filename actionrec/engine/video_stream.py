"""The per-video driver of the test scripts and of feature extraction: every video streamed in chunks
through the model on the loader pool, one output file each, resumable, split over ranks."""

import argparse
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn as nn

from actionrec.data import feature_files, loader_pool, video_chunks
from actionrec.data.video_chunks import VideoChunkLoader
from actionrec.engine import devices, output_provenance, runlog, runner, signals
from actionrec.engine.devices import Amp, Dist
from actionrec.engine.output_provenance import Provenance
from actionrec.engine.signals import StopSignals
from actionrec.guards import UserError

log = logging.getLogger("ucf101")


EXIT_UNREADABLE = 1


class UnreadableVideos(SystemExit):
    """Every readable video was done, and those that could not be read were named: exit status 1 (a
    SystemExit, as for a script's caller; runner.run_main lets it through)."""

    def __init__(self) -> None:
        super().__init__(EXIT_UNREADABLE)


def exit_if_unreadable(failed: dict[str, str], what: str) -> None:
    """The README's contract for videos that cannot be read ({path: reason}): every other video was
    done; these are named at the end and the exit status is 1."""
    if not failed:
        return
    if devices.Dist().main:
        print(f"{len(failed)} video{'s' if len(failed) > 1 else ''} could not be read ({what}; exit status 1):",
              flush=True)
        for path, reason in sorted(failed.items()):
            print(f"  {path}: {reason}", flush=True)
    raise UnreadableVideos()


class VideoPass(NamedTuple):
    """What stream_videos did on this rank (and, gathered, on all): see stream_videos."""
    ranks: devices.Dist
    device: torch.device
    failed: dict      # path -> reason, all ranks
    written: list     # videos written per rank
    timing: dict      # totals over all ranks
    amp: tuple        # (enabled, dtype) the model ran in


def claim_output(provenance: Provenance | None, resume: bool, ranks: Dist) -> None:
    """Refuse an output folder of another run (claim_folder), then record this run's provenance."""
    if provenance is None:
        return
    output_provenance.claim_folder(provenance, resume)
    ranks.barrier()  # every rank has read the old record before rank 0 replaces it
    if ranks.main:
        output_provenance.record_provenance(provenance)
    ranks.barrier()


def videos_to_do(
    paths: Sequence[str], ranks: Dist, resume: bool, complete: Callable[[str], bool], output_path: Callable[[str], str]
) -> list[int]:
    """Indices of this rank's share of `paths` whose output is not complete yet (all with resume off)."""
    mine = list(range(ranks.rank, len(paths), ranks.world_size))
    todo = [i for i in mine if not (resume and complete(output_path(paths[i])))]
    if ranks.main and len(todo) < len(mine):
        print(f"{len(mine) - len(todo)} videos already done: skipping them", flush=True)
    return todo


def unreadable_chunk(path: str, message: str) -> None:
    """A chunk the loader could not read: a damaged feature file is refused; any other video is skipped."""
    if feature_files.NON_FINITE in message:  # a damaged feature file: refuse it rather than skip it
        raise UserError(f"{path} holds {feature_files.NON_FINITE}: extract its features again "
                        f"(delete the file and rerun extract_features.py)")
    log.warning("cannot read %s: %s", path, message)


def write_video_rows(
    path: str, video_rows: np.ndarray, target: str, write: Callable[[str, np.ndarray, dict], None], attrs: dict
) -> None:
    """Check a finished video's rows (all finite) and write them to `target` with `write`."""
    if not np.isfinite(video_rows).all():
        bad = int((~np.isfinite(video_rows)).sum())
        raise UserError(f"the model's outputs for {path} are not finite ({bad} of {video_rows.size} "
                        f"values; nothing written for it, finished videos are kept): rerun with "
                        f"--no-amp (fp16 overflow is the usual cause) or check the checkpoint")
    try:
        write(target, video_rows, attrs)
    except OSError as e:
        raise UserError(f"cannot write {target}: {runner.write_failure(e, target)}; finished videos are "
                        f"kept: run again to continue") from None


class _Counts:
    """What a pass did on this rank."""

    def __init__(self):
        self.failed, self.written, self.rows_written, self.computed, self.model_seconds = {}, 0, 0, 0, 0.0


def run_chunks(
    loader: VideoChunkLoader,
    paths: Sequence[str],
    todo: list[int],
    model: nn.Module,
    device: torch.device,
    amp: Amp,
    stop: StopSignals,
    ranks: Dist,
    hooks: dict,
    counts: _Counts,
) -> None:
    """Every chunk of the loader through rows_fn; each video's rows written after its last chunk. Stops
    after the video in progress when a stop signal came."""
    rows = []
    for video_index, number, count, chunk in runlog.progress(loader, ranks, desc=hooks["desc"], unit="chunk"):
        path = paths[todo[video_index]]
        if isinstance(chunk, str):
            unreadable_chunk(path, chunk)
            counts.failed[str(path)] = chunk
            rows = []
            continue
        started = time.perf_counter()
        if number == 0 and hooks["video_start"] is not None:
            hooks["video_start"]()
        with devices.autocast(device, amp):
            out = hooks["rows_fn"](model, devices.to_device(chunk, device))
            if number + 1 == count and hooks["video_end"] is not None:
                out = torch.cat([out, hooks["video_end"](model)])
        rows.append(out.float().cpu().numpy())  # .cpu() waits for the GPU: the time below is its work
        counts.model_seconds += time.perf_counter() - started
        counts.computed += len(chunk)
        if number + 1 < count:
            continue
        video_rows, rows = np.concatenate(rows), []  # the video's last chunk: its file is complete
        write_video_rows(path, video_rows, hooks["output_path"](path), hooks["write"],
                         {"frames": loader.frames[video_index], "crops": hooks["crops"]})
        counts.written += 1
        counts.rows_written += len(video_rows)
        if stop.received:
            break


def finish_pass(
    loader: VideoChunkLoader,
    todo: list[int],
    counts: _Counts,
    seconds: float,
    ranks: Dist,
    device: torch.device,
    stop: StopSignals,
    amp: Amp,
    unit: str,
    noun: str,
) -> VideoPass:
    """Gather the ranks' counts; raise signals.Preempted when any rank was stopped; returns the VideoPass."""
    loaded = [loader.load_seconds.get(i, 0.0) for i in range(len(todo))]
    timing = {"videos": counts.written, "frames": counts.computed, "rows": counts.rows_written,
              "wall_seconds": seconds, "model_seconds": counts.model_seconds, "load_seconds": float(sum(loaded))}
    failed = devices.gather(counts.failed, ranks)
    written_per_rank = devices.gather(counts.written, ranks)
    totals = devices.gather(timing, ranks, merge=False)
    timing = {k: sum(t[k] for t in totals) for k in timing}
    timing["wall_seconds"] = max(t["wall_seconds"] for t in totals)
    if ranks.all_reduce([1.0 if stop.received else 0.0], device)[0]:  # any rank stopped: all stop
        if ranks.main:
            print(f"{stop.received or 'signal'}: stopped; finished videos are saved, "
                  f"run the same command again to continue", flush=True)
        raise signals.Preempted()
    ranks.barrier()
    if ranks.main:
        computed = counts.computed
        print(f"wrote {noun} for {sum(written_per_rank)} videos (per rank: {', '.join(map(str, written_per_rank))}); "
              f"{computed} {unit} in {seconds:.1f} s ({computed / max(seconds, 1e-9):.1f} {unit}/s), "
              f"loader wait {loader.wait_seconds:.1f} s", flush=True)
    return VideoPass(ranks, device, failed, written_per_rank, timing, amp)


def stream_videos(
    args: argparse.Namespace,
    model: nn.Module,
    paths: Sequence[str],
    *,
    plan: Callable[[int], list],
    max_chunk: int,
    rows_fn: Callable[[nn.Module, torch.Tensor], torch.Tensor],
    output_path: Callable[[str], str],
    write: Callable[[str, np.ndarray, dict], None],
    complete: Callable[[str], bool],
    crops: int = 1,
    desc: str = "test",
    unit: str = "frames",
    noun: str = "predictions",
    features: bool = False,
    fixed_shapes: bool = True,
    provenance: Provenance | None = None,
    video_start: Callable[[], None] | None = None,
    video_end: Callable[[nn.Module], torch.Tensor] | None = None,
    reader: Callable[[str], Any] | None = None,
) -> VideoPass:
    """The per-video driver of the test scripts and of feature extraction.

    Every video of `paths` whose output is not complete yet (`complete(output_path(path))`; resume) is
    loaded chunk by chunk on the loader pool as `plan(frames)` says, each uint8 chunk (F, size, size, 3)
    (or (F, crops, size, size, 3)) goes through `rows_fn(model, chunk_on_device)`, and once its last
    chunk is done the video's rows are checked (all finite) and written with
    `write(output_path(path), rows, {"frames": length, "crops": crops})`, atomically. Videos are split
    over torchrun ranks. SIGTERM/SIGUSR1: the video in progress is finished, then exit 75. Returns a
    VideoPass; the caller's rank 0 then summarises. fixed_shapes=False: the chunks' shapes vary (whole
    pieces of videos), see resolve_device. provenance: what makes the output folder; a folder of another
    run is refused (claim_folder), and with --no-resume (args.resume False) every video is redone.
    video_start(), video_end(model) -> rows: for a rows_fn that keeps state over a video's chunks (test_3d's
    exact full mode): called before a video's first chunk, and after its last one for its last rows.
    reader (motion.SnippetReader): the chunks are the motion stream's snippets (F, [crops,] size, size, C),
    the plan's indices their starts.
    """
    devices.return_freed_memory()
    ranks = devices.Dist()
    pool = loader_pool.make_pool(args.workers, shield_signals=True)
    stop = signals.StopSignals().__enter__()
    try:
        device = devices.resolve_device(args.device, ranks, fixed_shapes)
        ranks.init(device)
        model = devices.prepare_model(model, device).eval()
        amp = devices.amp_settings(args, device, model, ranks)
        resume = getattr(args, "resume", True)
        claim_output(provenance, resume, ranks)
        todo = videos_to_do(paths, ranks, resume, complete, output_path)
        loader = video_chunks.VideoChunkLoader([paths[i] for i in todo], plan, pool=pool, size=args.image_size,
                                               depth=max(2, args.workers), max_chunk=max_chunk, crops=crops,
                                               features=features, reader=reader)
        hooks = {"rows_fn": rows_fn, "output_path": output_path, "write": write, "crops": crops, "desc": desc,
                 "video_start": video_start, "video_end": video_end}
        counts = _Counts()
        start = time.perf_counter()
        with torch.no_grad():
            run_chunks(loader, paths, todo, model, device, amp, stop, ranks, hooks, counts)
        return finish_pass(loader, todo, counts, time.perf_counter() - start, ranks, device, stop, amp, unit, noun)
    finally:
        stop.__exit__()
        loader_pool.close_pool(pool)
