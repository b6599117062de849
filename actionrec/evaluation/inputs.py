"""The combiner's command-line inputs as a plan: which prediction folders (``--model``, ``--val``), which
fusions with which rules and weights (``--fuse``, ``--fusion``, ``--weights``), which training logs, and
checks of the flags that need no file. A mistake is a ``guards.UserError`` (one line)."""
import argparse
import os
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from actionrec import guards
from actionrec.data import video_groups
from actionrec.evaluation import fusion as score_fusion
from actionrec.evaluation import weights as weight_choice

NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
ALL = "all"
Spec = Tuple[str, str, str]  # (name, folder, label: the flag that gave it, for messages)


def parse_named(text: str, flag: str) -> Tuple[str, str]:
    """``NAME=PATH`` -> (name, path)."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise guards.UserError(f"{flag} expects NAME=PATH (e.g. {flag} 3d=runs/3d/predictions), got {text!r}")
    if not NAME_RE.match(name):
        raise guards.UserError(f"{flag} {text}: a name is made of letters, digits, _ and - only")
    return name, path


def model_specs(args: argparse.Namespace) -> List[Spec]:
    """[(name, predictions_dir, label)] in command-line order; label names the flag for messages."""
    specs = []
    if args.single_frame:
        specs.append(("single_frame", args.single_frame, f"--single-frame {args.single_frame}"))
    if args.three_d:
        specs.append(("3d", args.three_d, f"--3d {args.three_d}"))
    for text in args.model or []:
        name, path = parse_named(text, "--model")
        specs.append((name, path, f"--model {text}"))
    if not specs:
        raise guards.UserError(
            "give at least one model: --model NAME=PREDICTIONS_DIR (or --single-frame DIR, --3d DIR), "
            "or --summarize REPORT_DIR ... to average splits"
        )
    seen = set()
    for name, _, _ in specs:
        if name == ALL:
            raise guards.UserError(f"'{ALL}' is reserved for the fusion of every model; give the model another name")
        if name in seen:
            raise guards.UserError(f"model name {name!r} is given twice (names must be unique: --model NAME=DIR)")
        seen.add(name)
    return specs


def fusion_weights(text: str, members: Sequence[str], fusion_name: str) -> Union[None, str, List[float]]:
    """'equal' -> None, 'auto' or 'auto-top1' -> itself, 'W1,W2,...' -> [floats] (one per member)."""
    if text == "equal":
        return None
    if text in score_fusion.AUTO_CRITERIA:
        return text
    return score_fusion.parse_weights(text, len(members), f"one per model of fusion {fusion_name} in the order "
                                      f"{','.join(members)}", "auto, auto-top1 or equal")


def _per_fusion(values: Optional[List[str]], flag: str, default: str, count: int) -> List[str]:
    """A flag given once (for every fusion) or once per --fuse, as one value per fusion."""
    if not values:
        return [default] * count
    if len(values) == 1:
        return values * count
    if len(values) == count:
        return list(values)
    raise guards.UserError(f"{flag} is given {len(values)} times for {count} fusions: give it once (for every "
                           f"fusion) or once per --fuse, in the same order")


def _fusion_members(text: str, names: Sequence[str]) -> Tuple[str, List[str]]:
    """(fusion name, members) of one --fuse value."""
    if text == ALL:
        if len(names) < 2:
            raise guards.UserError("--fuse all: a fusion needs two or more models")
        return ALL, list(names)
    members = [m.strip() for m in text.split(",")]
    unknown = [m for m in members if m not in names]
    if unknown:
        raise guards.UserError(f"--fuse {text}: {unknown[0]!r} is not one of the models given ({', '.join(names)})")
    if len(set(members)) != len(members) or len(members) < 2:
        raise guards.UserError(f"--fuse {text}: a fusion needs two or more different models")
    return "+".join(members), members


def plan_fusions(args: argparse.Namespace, names: Sequence[str]) -> List[Dict[str, Any]]:
    """[{name, members, rule, weights}] from --fuse/--fusion/--weights (weights: None, 'auto', 'auto-top1'
    or a list)."""
    fuse = list(args.fuse or ([ALL] if len(names) >= 2 else []))
    if not fuse:
        if args.weights or args.fusion:
            raise guards.UserError("--fusion/--weights: there is nothing to fuse with one model (give two or more)")
        return []

    rules = _per_fusion(args.fusion, "--fusion", "logmean", len(fuse))
    weight_texts = _per_fusion(args.weights, "--weights", "equal", len(fuse))
    plans, seen = [], set()
    for text, rule, weight_text in zip(fuse, rules, weight_texts):
        name, members = _fusion_members(text, names)
        if name in seen:
            name = f"{name}_{rule}"
        if name in seen:
            raise guards.UserError(f"--fuse {text} with --fusion {rule} is given twice")
        seen.add(name)
        plans.append({"name": name, "members": members, "rule": rule,
                      "weights": fusion_weights(weight_text, members, name)})
    return plans


def log_paths(args: argparse.Namespace, names: Sequence[str]) -> Dict[str, str]:
    """{model name: training log path} from --log NAME=PATH and the older --logs SF_LOG,3D_LOG."""
    given = {}
    if args.logs is not None:  # the older two-model form
        parts = args.logs.split(",")
        if len(parts) != 2:
            raise guards.UserError(
                f"--logs must be SF_LOG,3D_LOG (either may be empty), got {args.logs!r}; or use --log NAME=PATH"
            )
        for name, path in zip(("single_frame", "3d"), parts):
            if path:
                given[name] = path
    for text in args.log or []:
        name, path = parse_named(text, "--log")
        given[name] = path
    for name, path in given.items():
        if name not in names:
            raise guards.UserError(f"--log {name}={path}: {name!r} is not one of the models given ({', '.join(names)})")
        if not os.path.isfile(path):
            raise guards.UserError(f"--log {name}={path}: {path} not found")
    return given


def check_output_folder(output_dir: str) -> None:
    """A folder that can be made or written to, checked before the work: a file of that name is one line."""
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise guards.UserError(
            f"--output-dir {output_dir} is a file, not a folder: choose another --output-dir (the file is left "
            f"as it is)"
        )
    parent = os.path.dirname(os.path.abspath(output_dir))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise guards.UserError(
            f"--output-dir {output_dir}: {parent} is a file, not a folder: choose another --output-dir"
        )


def val_specs(args: argparse.Namespace, names: Sequence[str]) -> List[Spec]:
    """[(name, val predictions_dir, label)] of the --val flags, each naming a model given once."""
    specs, seen = [], set()
    for text in args.val or []:
        name, path = parse_named(text, "--val")
        if name not in names:
            raise guards.UserError(f"--val {text}: {name!r} is not one of the models given ({', '.join(names)})")
        if name in seen:
            raise guards.UserError(f"--val {name} is given twice")
        seen.add(name)
        specs.append((name, path, f"--val {text}"))
    return specs


def check_validation_flags(args: argparse.Namespace, plans: Sequence[Dict[str, Any]],
                           validation: Sequence[Spec]) -> Optional[Tuple[int, ...]]:
    """Refuse --weights auto without the --val folders it needs, and bad --bootstrap, --weight-step and
    --val-groups values; returns the --val-groups given (None when not given)."""
    auto = [p for p in plans if isinstance(p["weights"], str)]  # auto or auto-top1
    if auto and not validation:
        raise guards.UserError(f"--weights {auto[0]['weights']} chooses the fusion weights on validation predictions: "
                               "give --val NAME=DIR for each fused model (the folders the test scripts write with "
                               "--subset val); without them the only choice would be on the test set (test-set "
                               "tuning)")
    for plan in auto:
        lacking = [m for m in plan["members"] if m not in {name for name, _, _ in validation}]
        if lacking:
            raise guards.UserError(f"--weights {plan['weights']} for fusion {plan['name']}: no --val predictions for "
                                   f"{', '.join(lacking)}")
    if args.bootstrap < 1:
        raise guards.UserError(f"--bootstrap {args.bootstrap}: give a number of resamples of 1 or more (e.g. 1000)")
    if args.weight_step is not None:
        try:
            weight_choice.simplex_grid(2, args.weight_step)
        except ValueError as e:
            raise guards.UserError(f"--weight-step: {e}") from None
    try:
        return tuple(video_groups.parse_groups(args.val_groups)) if args.val_groups else None
    except ValueError as e:
        raise guards.UserError(f"--val-groups: {e}") from None
