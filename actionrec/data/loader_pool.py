"""The loader pool: worker processes that die with their parent, and ordered prefetching of tasks."""

import concurrent.futures
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import cv2
import numpy as np

from actionrec.data import sampling, video_files

PR_SET_PDEATHSIG = 1          # <linux/prctl.h>


PARENT_POLL_SECONDS = 1.0     # the watchdog's period where prctl is missing


def _die_with_parent(parent_pid):
    """End this worker when its parent dies, however it dies (SIGKILL, the out-of-memory killer): an
    orphaned worker waits forever on the pool's pipe and keeps its parent's stdout open. Linux: the
    kernel sends SIGKILL (which shielded workers cannot ignore) when the parent exits; elsewhere a
    daemon thread polls the parent's pid, as torch's DataLoader workers do."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent_pid:  # the parent died before prctl took effect
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass  # no prctl here: the watchdog below

    def watchdog():
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watchdog, name="parent-watchdog", daemon=True).start()


def _init_worker(shield_signals, parent_pid):
    _die_with_parent(parent_pid)
    video_files._worker_reader = None  # (make_pool closed the parent's; nothing of it is used here)
    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads would oversubscribe
    # A forked worker inherits the parent's generator state: every worker would draw the same
    # augmentations for the assignment-style `(path, augment)` calls. Fresh OS entropy per worker.
    sampling._global_rng = np.random.default_rng()
    if shield_signals:
        # Slurm, PBS and Ctrl-C signal the whole process group. The parent saves and stops; a worker
        # that died instead would break the pool mid-step (with multiprocessing.Pool it was re-forked
        # from the multithreaded parent and deadlocked). close_pool ends them cleanly.
        for name in ("SIGTERM", "SIGUSR1", "SIGINT"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), signal.SIG_IGN)


class LoaderWorkerDied(RuntimeError):
    """A loader process ended abruptly (killed, e.g. by the out-of-memory killer, or crashed)."""


class LoaderPool(concurrent.futures.ProcessPoolExecutor):
    """A ProcessPoolExecutor that knows its worker processes: `workers` (how many) and `processes`
    (their multiprocessing.Process objects, found with multiprocessing.active_children() when
    make_pool starts them), so that close_pool can end survivors without the executor's private state."""

    def __init__(self, workers: int, **kwargs: Any) -> None:
        super().__init__(workers, **kwargs)
        self.workers, self.processes = workers, []


def make_pool(workers: int, shield_signals: bool = False) -> LoaderPool | None:
    """A loader pool of `workers` processes, or None for loading in the calling process.

    A ProcessPoolExecutor, not a multiprocessing.Pool: when a worker dies (the out-of-memory killer, a
    crash in a decoder) the tasks in flight fail with LoaderWorkerDied instead of waiting forever, and
    the pool still shuts down. Create it before the model and CUDA: every worker is forked here, and
    holds no open HDF5 handles since every loader opens and closes its own files. `shield_signals`:
    workers ignore SIGTERM, SIGUSR1 and SIGINT, for callers that handle those themselves and end the
    pool with close_pool.
    """
    if workers <= 0:
        return None
    video_files._drop_worker_reader()  # FFmpeg state must not be shared with the children
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    before = set(multiprocessing.active_children())
    pool = LoaderPool(workers, mp_context=ctx, initializer=_init_worker, initargs=(shield_signals, os.getpid()))
    # OpenCV's own thread pool, once the parent has used it (a large resize), does not survive a
    # fork: the child's cv2.setNumThreads then waits forever on the parent's threads. Stop it for
    # the fork and restore it afterwards.
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        # The executor starts its workers on the first submit(s): start them all now, before the caller
        # makes threads, a model or CUDA state for a later fork to copy. The short sleeps keep every
        # worker busy so that Python versions that spawn on demand start one process per task.
        for future in [_submit(pool, time.sleep, 0.05) for _ in range(workers)]:
            _result(future)
    finally:
        cv2.setNumThreads(threads)
    pool.processes = [p for p in multiprocessing.active_children() if p not in before]
    return pool


def close_pool(pool: LoaderPool | None) -> None:
    """End a pool made by make_pool: tasks not started are cancelled, the ones running finish.

    After a worker died the executor ends the others with SIGTERM, which shielded workers ignore,
    and a survivor may wait forever on a queue lock the dead worker held: while shutdown waits, a
    watcher kills the survivors once any worker has ended abnormally (a non-zero exit status).
    """
    if pool is None:
        return
    done = threading.Event()

    def kill_survivors_of_a_broken_pool():
        while not done.wait(0.1):
            if any(process.exitcode not in (None, 0) for process in pool.processes):
                for process in pool.processes:
                    if process.is_alive():
                        process.kill()

    watcher = threading.Thread(target=kill_survivors_of_a_broken_pool, name="close-pool", daemon=True)
    watcher.start()
    try:
        pool.shutdown(wait=True, cancel_futures=True)
    finally:
        done.set()
        watcher.join()


def pool_size(pool: LoaderPool | None) -> int:
    return 0 if pool is None else pool.workers


@contextlib.contextmanager
def _worker_deaths_reported():
    """A worker's death (BrokenProcessPool from submit or result) becomes LoaderWorkerDied."""
    try:
        yield
    except BrokenProcessPool as e:
        raise LoaderWorkerDied(
            "a loader worker process died (killed, e.g. out of memory, or crashed): lower --workers, "
            "--batch-size or --chunk-frames, or check the node's memory limit") from e


def _submit(pool, fn, task):
    with _worker_deaths_reported():
        return pool.submit(fn, task)


def _result(future):
    with _worker_deaths_reported():
        return future.result()


class Prefetcher:
    """Runs `fn(task)` for each task on a pool, keeping at most `depth` tasks in flight.

    Yields results in task order. `wait_seconds` accumulates the time the consumer spent blocked.
    """

    def __init__(self, pool: LoaderPool | None, fn: Callable[[Any], Any], tasks: Iterable[Any], depth: int) -> None:
        self.pool, self.fn, self.tasks, self.depth = pool, fn, tasks, max(1, depth)
        self.wait_seconds = 0.0

    def __iter__(self) -> Iterator[Any]:
        if self.pool is None:
            for task in self.tasks:
                start = time.perf_counter()
                result = self.fn(task)
                self.wait_seconds += time.perf_counter() - start
                yield result
            return
        pending = deque()
        tasks = iter(self.tasks)
        for task in tasks:
            pending.append(_submit(self.pool, self.fn, task))
            if len(pending) >= self.depth:
                break
        while pending:
            start = time.perf_counter()
            result = _result(pending.popleft())
            self.wait_seconds += time.perf_counter() - start
            for task in tasks:  # refill before handing the result over: loading overlaps compute
                pending.append(_submit(self.pool, self.fn, task))
                break
            yield result
