"""Helpers shared by test modules (not tests themselves)."""
import os
import signal


def child_pids(pid):
    """The PIDs of a process's direct children (Linux /proc), e.g. a script's loader workers."""
    pids = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            pids += [int(p) for p in f.read().split()]
    return pids


def kill_all(pids):
    """SIGKILL every process of `pids` that still exists: a hung run must not outlive its test."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
