"""Scheduler signals (SIGTERM, SIGUSR1, SIGINT): the loop stops at the next step and saves."""

import signal

from actionrec.engine import checkpoints


class StopSignals:
    """Turns SIGTERM/SIGUSR1 (what Slurm and PBS send before a kill or requeue) into a flag.

    The training loop checks the flag after each step, saves and exits with EXIT_PREEMPTED.
    """

    SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGUSR1", None)) if s)

    def __init__(self):
        self.received = None
        self._previous = {}

    def __enter__(self):
        for s in self.SIGNALS:
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)


class Preempted(SystemExit):
    """Stopped by a scheduler signal after saving what was done: the run ends with exit status
    EXIT_PREEMPTED (75, EX_TEMPFAIL) and the same command continues it. A SystemExit, so a caller of a
    script's main() sees the status the shell would see, and runner.run_main lets it through."""

    def __init__(self) -> None:
        super().__init__(checkpoints.EXIT_PREEMPTED)
