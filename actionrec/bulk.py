"""A batch of per-video jobs that writes one file per video: atomic temporaries, their clean-up after a
kill, the CPUs a job may use, and shards of a job array. Shared by prepare_ucf101.py and
extract_flow.py.

Every output is written as `<output>.tmp-<pid>` (TMP_MARKER) and renamed when complete, so a finished
name is always a whole file; a killed job leaves only temporaries, removed by the next run.
"""
import os
from pathlib import Path

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
