"""Helpers shared by test modules (not tests themselves)."""
import json
import os
import signal
import subprocess
import threading

import cv2
import numpy as np


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


def end_group(pgid):
    """SIGKILL every process left in a process group (a script's loader workers, its children)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def start_group(cmd, **kwargs):
    """subprocess.Popen in a process group of its own, so that end_group(proc.pid) ends everything
    it started. Use as a context manager: the group is ended when the block leaves."""
    return _Group(cmd, **kwargs)


class _Group(subprocess.Popen):
    def __init__(self, cmd, **kwargs):
        super().__init__(cmd, start_new_session=True, **kwargs)

    def __exit__(self, *exc):
        end_group(self.pid)
        return super().__exit__(*exc)


def run_group(cmd, *, timeout, input=None, **kwargs):
    """subprocess.run(cmd, capture_output=True, text=True, timeout=...) in a process group of its own,
    ended when the command returns or times out. Output is read until the command itself exits, not
    until every copy of its pipes closes: a child that outlives it (an orphaned loader worker holding
    stdout) cannot make the test wait for its timeout."""
    with start_group(cmd, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs) as proc:
        out = {}
        readers = [threading.Thread(target=lambda name, stream: out.__setitem__(name, stream.read()),
                                    args=(name, stream), daemon=True)
                   for name, stream in (("stdout", proc.stdout), ("stderr", proc.stderr))]
        for reader in readers:
            reader.start()
        if input is not None:
            proc.stdin.write(input)
            proc.stdin.close()
        timed_out = False
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        end_group(proc.pid)  # leftovers die, so the pipes close
        for reader in readers:
            reader.join(10)
        if timed_out:
            raise subprocess.TimeoutExpired(cmd, timeout, out.get("stdout"), out.get("stderr"))
        return subprocess.CompletedProcess(cmd, proc.returncode, out.get("stdout", ""), out.get("stderr", ""))


def decode_from_start(path):
    """Every frame, OpenCV from the start: uint8 [T, H, W, 3] RGB."""
    capture, frames = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG), []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return np.stack(frames)


def read_log(out):
    """The records of a training run's OUTPUT_DIR/log.jsonl, in order."""
    with open(os.path.join(out, "log.jsonl")) as f:
        return [json.loads(line) for line in f]
