"""A bulk job over many videos (the converter, flow extraction): the CPUs it may use, the shards of a
job array, and running its tasks in a pool of processes. Its outputs are written atomically
(actionrec/atomic.py), so a killed job leaves only temporaries, which the next run removes.
"""
import concurrent.futures
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from tqdm import tqdm

from actionrec import atomic
from actionrec.data import loader_pool

EXIT_INTERRUPTED = 130  # as a shell reports a job ended by Ctrl-C
EXIT_FAILED = 1


class Interrupted(SystemExit):
    """Ctrl-C during a bulk job: the workers ended, finished files kept, temporaries removed (exit 130)."""

    def __init__(self) -> None:
        super().__init__(EXIT_INTERRUPTED)


class VideosFailed(SystemExit):
    """Every other video was done; those that failed were named: exit status 1."""

    def __init__(self) -> None:
        super().__init__(EXIT_FAILED)


def available_cpus() -> int:
    """CPUs this process may use (a cluster job's allocation, not the whole node); os.cpu_count() elsewhere."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def parse_shard(text: str) -> tuple:
    """"I/N" -> (I, N) with 0 <= I < N; ValueError naming the text otherwise."""
    index, slash, count = text.partition("/")
    if not (slash and index.strip().isdigit() and count.strip().isdigit()):
        raise ValueError(f"--shard must be I/N (e.g. 0/16: the first of 16 shards), not {text!r}")
    index, count = int(index), int(count)
    if not 0 <= index < count:
        raise ValueError(f"--shard {text}: I must be in 0..N-1 (0..{count - 1})" if count else
                         f"--shard {text}: N must be at least 1")
    return index, count


def shard(names, index: int, count: int) -> list:
    """Shard `index` of `count` of `names`: every count-th name of the sorted names, from the index-th.
    The shards of 0..count-1 hold every name exactly once, whatever the order names come in, and
    interleaving spreads each class (sorted names run class by class) over all shards."""
    return sorted(names)[index::count]


def run_tasks(prog: str, work: Callable[[Any], tuple], tasks: Sequence, workers: int, out_dir,
              outputs: Sequence | None = None) -> list:
    """`work(task)` for every task, in a pool of `workers` processes (0: in this process), with a
    progress bar (quiet when stderr is not a terminal) that counts the failed ones; the results
    (name, status, ...) in the order they finish. On Ctrl-C (Interrupted, exit 130) or a dead worker
    (LoaderWorkerDied: one line and exit 1 under runner.run_main) the workers are ended and the
    temporaries under out_dir removed (only those of `outputs` when given); finished files stay."""
    pool = loader_pool.make_pool(workers)
    if pool is None:
        results = map(work, tasks)
    else:  # in the order they finish, as the progress bar counts them
        results = (future.result() for future in
                   concurrent.futures.as_completed([pool.submit(work, task) for task in tasks]))
    done, failed = [], 0
    try:
        with tqdm(total=len(tasks), unit="video", disable=not sys.stderr.isatty()) as progress:
            for result in results:
                done.append(result)
                failed += result[1] == "failed"
                progress.set_postfix(failed=failed, refresh=False)
                progress.update()
    except KeyboardInterrupt:
        loader_pool.close_pool(pool)  # the workers got Ctrl-C too; the videos they were on are left unfinished
        atomic.remove_stale_temporaries(out_dir, outputs)
        print(f"{prog}: interrupted; finished files are kept, run again to resume", file=sys.stderr)
        raise Interrupted() from None
    except BrokenProcessPool:
        loader_pool.close_pool(pool)
        atomic.remove_stale_temporaries(out_dir, outputs)
        raise loader_pool.LoaderWorkerDied(
            "a worker process died (killed, e.g. out of memory, or a crash in the decoder); finished files are "
            "kept: run again to resume, with --workers 0 to find the video") from None
    loader_pool.close_pool(pool)
    return done


def exit_if_failed(prog: str, failures: Sequence[tuple[str, str]]) -> None:
    """The contract of a bulk job for the videos that failed ([(name, reason)]): named on stderr after
    the others were done, and exit status 1 (VideosFailed)."""
    if not failures:
        return
    print(f"{prog}: {len(failures)} videos failed (no output written):", file=sys.stderr)
    for name, reason in sorted(failures):
        print(f"  {name}: {reason}", file=sys.stderr)
    raise VideosFailed()
