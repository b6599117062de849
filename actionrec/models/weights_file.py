"""Reading weight files for the model modules (resnet_3d.py, c3d.py), and saying how a state_dict
does not fit a model.

The model modules stand alone (no engine import): they read a path with torch's weights-only
unpickler, which refuses anything but tensors and plain containers, and turn what it raises on a file
that is not a checkpoint into one ValueError line naming the file. Every loader of the project (the
released 3D ResNet and C3D weights, the training scripts' checkpoints) reports a state_dict that does
not fit its model in the same words, made by :func:`describe_misfit`:
``missing keys: 2 (a, b); unexpected keys: 1 (c); shape mismatches: 1 (d: file (3,) vs model (4,))``.
"""
import os
import pickle
import struct
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import torch

# What the unpickler raises on bytes that are not a checkpoint varies with the bytes; OSError (a
# missing file, permissions) is not caught: it already names the path.
UNPICKLER_ERRORS = (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError, IndexError,
                    KeyError, TypeError, OverflowError, struct.error)  # struct.error: a file of a few bytes
KEYS_SHOWN = 5        # key names listed per kind of misfit (the first ones, in the model's or the file's order)
MISMATCHES_SHOWN = 3  # shape mismatches listed (each names two shapes: a long line otherwise)


def read_weights(path: str | os.PathLike[str], expected: str) -> Any:
    """torch.load(path, weights_only=True) on the CPU; ValueError '<path>: not a weights-only PyTorch
    checkpoint (...); expected <expected>' for a file that is not one."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except UNPICKLER_ERRORS as exc:
        detail = str(exc).strip().splitlines()[0][:150] if str(exc).strip() else ""
        raise ValueError(f"{os.fspath(path)}: not a weights-only PyTorch checkpoint "
                         f"({type(exc).__name__}: {detail}); expected {expected}") from None


def summarise(names: Iterable[str], limit: int = KEYS_SHOWN, sort: bool = False) -> str:
    """'count (first, second, ...)' of a list of key names, on one line (in their order unless `sort`)."""
    names = sorted(names) if sort else list(names)
    shown = ", ".join(names[:limit])
    more = f", ... (+{len(names) - limit} more)" if len(names) > limit else ""
    return f"{len(names)} ({shown}{more})"


class Misfit(NamedTuple):
    """How a state_dict differs from a model's: key names in the model's order (missing) and the file's
    (unexpected), and shape_mismatch() lines."""
    missing: list[str]
    unexpected: list[str]
    mismatched: list[str]


def shape_mismatch(key: str, file_shape: Iterable[int], model_shape: Iterable[int]) -> str:
    """'key: file (a, b) vs model (c, d)', one entry of Misfit.mismatched."""
    return f"{key}: file {tuple(file_shape)} vs model {tuple(model_shape)}"


def find_misfit(model_state: Mapping[str, torch.Tensor], state: Mapping[Any, Any],
                optional: Iterable[str] = ()) -> Misfit:
    """The keys of `model_state` that `state` lacks (except the `optional` ones), the keys it has that the
    model does not, and the keys whose shapes differ (a value without a shape counts as shape ())."""
    optional = set(optional)
    missing = [k for k in model_state if k not in state and k not in optional]
    unexpected = [str(k) for k in state if k not in model_state]
    mismatched = [shape_mismatch(k, getattr(v, "shape", ()), model_state[k].shape) for k, v in state.items()
                  if k in model_state and getattr(v, "shape", None) != model_state[k].shape]
    return Misfit(missing, unexpected, mismatched)


def describe_misfit(misfit: Misfit) -> str:
    """'missing keys: N (...); unexpected keys: N (...); shape mismatches: N (...)', the parts that apply
    ('' when none does)."""
    parts = [f"missing keys: {summarise(misfit.missing)}" if misfit.missing else "",
             f"unexpected keys: {summarise(misfit.unexpected)}" if misfit.unexpected else "",
             f"shape mismatches: {summarise(misfit.mismatched, MISMATCHES_SHOWN)}" if misfit.mismatched else ""]
    return "; ".join(part for part in parts if part)


def state_dict_misfit(model: torch.nn.Module, state: Any) -> str:
    """How `state` fails to be `model`'s state_dict, on one line ('' when the keys and shapes agree);
    torch's own message is many lines, of which the first says nothing."""
    if not isinstance(state, Mapping):
        return f"a {type(state).__name__}, not a state_dict"
    return describe_misfit(find_misfit(model.state_dict(), state))
