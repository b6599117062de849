"""A trained checkpoint read back for testing: its kind and flags checked, its model rebuilt, its weights loaded."""

import argparse
from collections.abc import Callable, Iterable
from typing import Any

import torch

from actionrec.engine import checkpoints, cli_flags, devices, runner
from actionrec.guards import UserError
from actionrec.models import weights_file

TEST_SCRIPTS = {"frame": "test_single_frame.py", "clip": "test_3d.py", "features": "test_rnn.py"}


def check_trained(checkpoint: Any, path: str, expected_kind: str | None = None) -> tuple[dict, dict, str]:
    """(checkpoint, training args, kind) of a loaded training-script checkpoint, kind being "frame" (single
    frame and TSN: a TSN model is a frame model at test time), "clip" or "features"; the optimizer state
    is dropped (as large as the model, or twice for Adam). A file of another model kind than
    `expected_kind` (a 3D checkpoint given to the single-frame test, say) is one line naming the right
    script."""
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict) \
            or not isinstance(checkpoint.get("class_list"), (list, tuple)) \
            or not isinstance(checkpoint.get("args") or {}, dict) or not isinstance(checkpoint.get("kind") or "", str):
        raise UserError(f"{path} is not a checkpoint written by the training scripts "
                        f"(expected their checkpoint.pth: a dict with 'model', 'class_list', 'args')")
    checkpoint.pop("optimizer", None)
    trained = checkpoint.get("args") or {}
    kind = checkpoint.get("kind")
    if kind is None:  # written before checkpoints recorded their kind
        kind = "features" if "features" in trained else "clip" if "clip_len" in trained else (expected_kind or "frame")
    kind = "frame" if kind in ("segments", "flow", "rgbdiff") else kind  # TSN and the motion stream: frame models
    if kind not in TEST_SCRIPTS:
        raise UserError(f"{path} holds a {kind!r} model, which no test script knows")
    if expected_kind is not None and kind != expected_kind:
        raise UserError(f"{path} holds a {kind} model; test it with {TEST_SCRIPTS[kind]}")
    check_trained_args(trained, cli_flags.common_parser(), path, ("data_dir", "split", "image_size"))
    return checkpoint, trained, kind


def check_trained_args(trained: dict, parser: argparse.ArgumentParser, path: str, keys: Iterable[str]) -> None:
    """Check the training args `keys` of a checkpoint as `parser` (the training script's) checks its
    flags: the flag's type (positive_int, image_size, ...) and choices. A damaged value (an unknown
    arch, a size that is no integer) is one UserError line naming the checkpoint, the flag and the value."""
    actions = {a.dest: a for a in parser._actions if a.option_strings}
    for key in keys:
        if key not in trained or key not in actions:
            continue  # not recorded (an older checkpoint): the script's default
        action, value = actions[key], trained[key]
        problem = flag_value_problem(action, value)
        if problem:
            raise UserError(f"{path}: its training args are damaged: {key}={value!r} is not a value of "
                            f"{action.option_strings[-1]} ({problem})")


def flag_value_problem(action: argparse.Action, value: Any) -> str:
    """Why `value` is not what `action`'s flag would have stored ('' when it is)."""
    if action.nargs == 0:  # store_true / --flag/--no-flag
        return "" if isinstance(value, bool) or (value is None and action.default is None) else "expected true or false"
    if value is None:
        return "" if action.default is None else "expected a value"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return f"a {type(value).__name__}"
    if action.type is not None:
        try:
            parsed = action.type(str(value))
        except (argparse.ArgumentTypeError, ValueError, TypeError) as e:
            return str(e)
        if type(parsed) is not type(value) and not (type(parsed) is float and type(value) is int):
            return f"expected {'an integer' if type(parsed) is int else 'a number'}, not a {type(value).__name__}"
        value = parsed
    elif not isinstance(value, str):
        return f"expected text, not a {type(value).__name__}"
    if action.choices is not None and value not in action.choices:
        return f"choose from {', '.join(map(str, action.choices))}"
    return ""


def rebuild_model(build: Callable[..., torch.nn.Module], model_args: Any, num_classes: int, ranks: devices.Dist,
                  path: str) -> torch.nn.Module:
    """build(model_args, num_classes, ranks, pretrained=False) for a checkpoint's model, or one line naming
    the checkpoint when its args describe no model this code builds (a depth without that many layer4
    blocks, a dropout of 5)."""
    try:
        return build(model_args, num_classes, ranks, pretrained=False)
    except (UserError, ValueError) as e:
        raise UserError(
            f"{path}: its training args describe no model that can be built ({runner.one_line(e)})"
        ) from None


def load_trained(args: argparse.Namespace, ranks: devices.Dist, expected_kind: str) -> tuple[dict, dict]:
    """Checkpoint of a training script (--checkpoint): (checkpoint dict, its training args)."""
    checkpoint, trained, _ = check_trained(
        checkpoints.load_checkpoint(args.checkpoint, what="--checkpoint"), args.checkpoint, expected_kind
    )
    return checkpoint, trained


def load_model_state(model: torch.nn.Module, state: Any, path: str) -> None:
    """model.load_state_dict(state), or one line when the checkpoint's weights do not fit the model."""
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"{path}: its weights do not fit the model its arguments describe "
                        f"({weights_file.state_dict_misfit(model, state) or runner.one_line(e)})") from None
