"""Atomic file writes: a file is either its old self or complete, never half written.

Every output is written as `<output>.tmp-<pid>` (TMP_MARKER) and renamed when complete, so a finished
name is always a whole file; a killed process leaves only temporaries, which remove_stale_temporaries
deletes.
"""
import os
from pathlib import Path
from typing import Callable, Union

PathLike = Union[str, os.PathLike]

TMP_MARKER = ".tmp-"


def temporary_path(path) -> str:
    """Where this process writes `path` before renaming it."""
    return f"{os.fspath(path)}{TMP_MARKER}{os.getpid()}"


def _is_temporary(name: str) -> bool:
    return TMP_MARKER in name and name.rpartition(TMP_MARKER)[2].isdigit()


def remove_stale_temporaries(out_dir, outputs=None) -> int:
    """Delete `*.tmp-<pid>` files a killed job left under out_dir; returns how many.

    outputs: only the temporaries of these final paths (a shard of a job array must not delete the
    files its sibling shards are writing in the same folder); None: every temporary under out_dir.
    """
    removed = 0
    if outputs is None:
        candidates = (p for p in Path(out_dir).rglob(f"*{TMP_MARKER}*") if _is_temporary(p.name))
    else:
        wanted = {Path(p) for p in outputs}
        candidates = (folder / name for folder in sorted({p.parent for p in wanted}) if folder.is_dir()
                      for name in os.listdir(folder)
                      if _is_temporary(name) and folder / name.rpartition(TMP_MARKER)[0] in wanted)
    for path in candidates:
        if path.is_file():
            path.unlink()
            removed += 1
    return removed


def atomic_write(path: PathLike, write_fn: Callable[[str], None]) -> None:
    """Call ``write_fn(tmp_path)``, then move ``tmp_path`` onto ``path`` (same directory); the temporary
    file is removed when anything fails."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp_path = temporary_path(path)
    try:
        write_fn(tmp_path)
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise
