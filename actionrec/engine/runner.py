"""Running a script: its main under one error path (a user's mistake, an unusable path, a dead loader
worker, an allocation the machine cannot give: one line, no traceback)."""

import argparse
import errno
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist

from actionrec.data import loader_pool
from actionrec.guards import UserError

# Errors of a path itself (not of a bug), with what to do: a file where a folder is expected, permissions,
# a full disk.
PATH_ERRNOS = {
    errno.EEXIST: "a file is where a folder is expected",
    errno.ENOTDIR: "a file is where a folder is expected",
    errno.EISDIR: "a folder is where a file is expected",
    errno.EACCES: "choose a folder you can write to",
    errno.EPERM: "choose a folder you can write to",
    errno.EROFS: "choose a folder you can write to",
    errno.ENOSPC: "free some space and run again",
    errno.EDQUOT: "free some space and run again",
}


def run_main(
    main: Callable[[argparse.Namespace], Any], parser: argparse.ArgumentParser, argv: Sequence[str] | None = None
) -> Any:
    """Parse the command line and run `main(args)`; a UserError, or an OSError of a path itself
    (PATH_ERRNOS), becomes one line and exit status 2, a dead loader worker one line and exit status 1
    (the last checkpoint is kept: run again to resume)."""
    args = parser.parse_args(argv)
    try:
        return main(args)
    except UserError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:
        # A path the user chose that cannot be used (a file where a folder goes, no permission, a
        # full or read-only disk): one line naming it. Other OS errors are bugs and keep their traceback.
        full = e.errno in (errno.ENOSPC, errno.EDQUOT)  # a write to an open file names no file
        if e.errno not in PATH_ERRNOS or (e.filename is None and not full):
            raise
        where = f"cannot use {e.filename}" if e.filename is not None else "cannot write"
        print(f"{parser.prog}: error: {where}: {write_failure(e, e.filename or '.')}", file=sys.stderr)
        sys.exit(2)
    except loader_pool.LoaderWorkerDied as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        sys.exit(1)
    except (MemoryError, RuntimeError) as e:
        # An allocation the machine cannot give (numpy's MemoryError, torch's OutOfMemoryError on CUDA,
        # its RuntimeError "DefaultCPUAllocator: can't allocate memory"): one line with the flags that
        # size it. Other RuntimeErrors are bugs and keep their traceback.
        if not out_of_memory(e):
            raise
        flags = [f for f in MEMORY_FLAGS if f in parser._option_string_actions]
        print(f"{parser.prog}: error: out of memory ({memory_error_text(e)}): use a smaller "
              f"{' or '.join(flags) or 'input'}; the last checkpoint and finished files are kept", file=sys.stderr)
        sys.exit(2)
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


MEMORY_FLAGS = ("--batch-size", "--image-size", "--chunk-frames", "--max-frames")  # what sizes an allocation


def out_of_memory(error: BaseException) -> bool:
    """Whether an exception says an allocation failed (host or GPU memory), not a bug."""
    return isinstance(error, (MemoryError, torch.OutOfMemoryError)) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error))


def memory_error_text(error: BaseException) -> str:
    """The useful part of an allocation failure: numpy's and CUDA's first line, torch's CPU message
    without its "[enforce fail at alloc_cpu.cpp:127] err == 0." prefix."""
    text = one_line(error)
    return text[text.find("DefaultCPUAllocator"):] if "DefaultCPUAllocator" in text else text


def write_failure(error: BaseException, path: str) -> str:
    """Why writing `path` failed, on one line, with what to do: h5py's message of a full disk is several
    lines and torch's ("[enforce fail at inline_container.cc] . unexpected pos") names no cause, so the
    errno's own words are used, and for torch the free space is given."""
    if isinstance(error, OSError) and error.errno:
        return f"{os.strerror(error.errno)} ({PATH_ERRNOS.get(error.errno, 'check the disk and run again')})"
    try:
        free = f"{shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free / 1e6:.0f} MB free there"
    except OSError:
        free = "free space unknown"
    return f"{one_line(error)} (a full disk is the usual cause: {free})"


def one_line(error: BaseException) -> str:
    """The first line of an exception's message (its type when it has none), at most 200 characters."""
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__
