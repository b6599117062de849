"""Reading released weight files for the model modules (resnet_3d.py, c3d.py).

The model modules stand alone (no engine import): they read a path with torch's weights-only
unpickler, which refuses anything but tensors and plain containers, and turn what it raises on a file
that is not a checkpoint into one ValueError line naming the file.
"""
import os
import pickle
import struct

import torch

# What the unpickler raises on bytes that are not a checkpoint varies with the bytes; OSError (a
# missing file, permissions) is not caught: it already names the path.
UNPICKLER_ERRORS = (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError, IndexError,
                    KeyError, TypeError, OverflowError, struct.error)  # struct.error: a file of a few bytes


def read_weights(path, expected):
    """torch.load(path, weights_only=True) on the CPU; ValueError '<path>: not a weights-only PyTorch
    checkpoint (...); expected <expected>' for a file that is not one."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except UNPICKLER_ERRORS as exc:
        detail = str(exc).strip().splitlines()[0][:150] if str(exc).strip() else ""
        raise ValueError(f"{os.fspath(path)}: not a weights-only PyTorch checkpoint "
                         f"({type(exc).__name__}: {detail}); expected {expected}") from None


def summarise(names, limit=5, sort=True):
    """'count (first, second, ...)' of a list of key names, on one line."""
    names = sorted(names) if sort else list(names)
    shown = ", ".join(names[:limit])
    more = f", ... (+{len(names) - limit} more)" if len(names) > limit else ""
    return f"{len(names)} ({shown}{more})"
