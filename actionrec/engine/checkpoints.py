"""Checkpoints: written atomically, read weights-only, with the arguments that rebuild the model."""

import argparse
import contextlib
import os
import pickle
import re
from typing import Any

import torch

from actionrec import atomic
from actionrec.engine import runner
from actionrec.guards import UserError

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped by a scheduler signal after saving; run again to continue


COMPLETE_MARKER = "COMPLETE"


CHECKPOINT_NAME = "checkpoint.pth"


def save_checkpoint(path: str, state: dict) -> None:
    """Atomic: a killed job leaves the previous checkpoint or the new one, never half a file. A write
    that fails (disk full, permissions) keeps the previous checkpoint, removes the temporary file and
    becomes one line."""
    tmp = atomic.temporary_path(path)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch's zip writer reports a full disk as RuntimeError
        with contextlib.suppress(OSError):
            os.remove(tmp)
        kept = "the previous checkpoint is kept" if os.path.exists(path) else "no checkpoint was written"
        raise UserError(f"cannot write checkpoint {path}: {runner.write_failure(e, path)}; {kept}") from None


# What torch's weights-only unpickler raises on a file that is not a checkpoint depends on the bytes:
# random bytes, text and JSON reach the unpickler ("Unsupported operand", IndexError, ...), a truncated
# zip fails in the zip reader (RuntimeError), an empty file with EOFError.
UNPICKLE_ERRORS = (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, IndexError, KeyError,
                   TypeError, AttributeError, UnicodeDecodeError, OverflowError, MemoryError)


def load_checkpoint(path: str, what: str = "checkpoint") -> Any:
    """torch.load(path, weights_only=True) on the CPU, or one line (UserError) that names the file and
    says what was expected. weights_only refuses anything but tensors and plain containers, so a file
    crafted to run code when unpickled is refused without running it."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise UserError(f"{what} {path} is a directory, not a .pth file")
    if not os.path.exists(path):
        raise UserError(f"{what} {path} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError as e:
        raise UserError(f"{what} {path} cannot be read ({e.strerror or e})") from None
    except UNPICKLE_ERRORS as e:
        raise UserError(f"{what} {path} {_why_not_a_checkpoint(path, e)}") from None


def _why_not_a_checkpoint(path, error):
    """What is wrong with a file torch.load refused, in words (torch's own message advises
    weights_only=False, which is exactly what must not be done with a file one does not trust)."""
    refused = re.search(r"GLOBAL (\S+) was not an allowed global", str(error))
    if refused:
        return (f"holds pickled Python objects, not only tensors and plain values (it would call "
                f"{refused.group(1)}): refused without running them; expected a .pth file of weights "
                f"(torch.save of a state_dict or of a dict of them)")
    expected = "expected a .pth file written by torch.save"
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        head = b""
    if not head:
        return f"is empty; {expected}"
    if head.startswith(b"PK\x03\x04") or isinstance(error, (RuntimeError, EOFError)):
        return f"is truncated or damaged ({runner.one_line(error).split('. ')[0][:120]}); {expected}"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text:
        kind = "a JSON file" if text.lstrip()[:1] in ("{", "[") else "a text file"
        return f"is {kind}, not a PyTorch checkpoint; {expected}"
    return f"is not a PyTorch checkpoint (its bytes are not a torch.save file); {expected}"


def args_for_checkpoint(args: argparse.Namespace) -> dict:
    """The run's flags as plain values (what a test script needs to rebuild the model)."""
    plain = (int, float, str, bool, type(None))
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()
            if isinstance(v, plain) or (isinstance(v, tuple) and all(isinstance(x, plain) for x in v))}
