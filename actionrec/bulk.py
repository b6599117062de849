"""A bulk job over many videos (the converter, flow extraction): the CPUs it may use and the shards of a
job array. Its outputs are written atomically (actionrec/atomic.py), so a killed job leaves only
temporaries, which the next run removes.
"""
import os


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
