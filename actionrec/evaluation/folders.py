"""The prediction folders a combiner run reads: each checked against the split's videos and class list
(files, shapes, model.json, provenance.json) before anything is scored; every problem of every folder
is one ``guards.UserError`` line."""
import json
import os
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from actionrec import formatting, guards
from actionrec.evaluation import predictions

NUM_MISSING_SHOWN = 3  # files named in a refusal message


def first_few(paths: Sequence[str], shown: int = NUM_MISSING_SHOWN,
              describe: Callable[[str], str] = predictions.video_name) -> str:
    text = ", ".join(describe(p) for p in paths[:shown])
    return text + (f" and {len(paths) - shown} more" if len(paths) > shown else "")


def folder_problem(label: str, directory: str, video_paths: Sequence[str], what: str) -> Optional[str]:
    """Why ``directory`` cannot be a prediction folder for ``video_paths``, or None."""
    if not os.path.isdir(directory):
        return f"{label}: no such directory (the prediction folder written by the test script)"
    if not any(os.path.isfile(predictions.prediction_path(directory, p)) for p in video_paths):
        hint = ""
        if os.path.isdir(os.path.join(directory, "predictions")):
            hint = f"; did you mean {os.path.join(directory, 'predictions')}?"
        return (f"{label}: not a prediction folder: no <Class>/<video>.hdf5 file for any of the "
                f"{len(video_paths)} {what}{hint}")
    return None


def scan_problem(label: str, directory: str, scan: predictions.PredictionScan, video_paths: Sequence[str],
                 num_classes: int, what: str) -> Optional[str]:
    """The problems of one folder's scan as one message, or None."""
    parts = []
    if scan.missing:
        parts.append(f"{len(scan.missing)} of {len(video_paths)} {what} have no readable prediction file: "
                     f"{first_few(scan.missing)}")
    if scan.wrong_columns:
        counts = sorted(set(scan.wrong_columns.values()))
        parts.append(
            f"{len(scan.wrong_columns)} prediction files have {'/'.join(map(str, counts))} classes but "
            f"classInd.txt lists {num_classes} (e.g. {predictions.video_name(next(iter(scan.wrong_columns)))})"
        )
    if scan.wrong_shape:
        path, shape = next(iter(scan.wrong_shape.items()))
        parts.append(f"{len(scan.wrong_shape)} prediction files are not [rows, classes] arrays: "
                     f"{predictions.prediction_path(directory, path)} has shape {shape}")
    if scan.non_finite:
        more = f" (and {len(scan.non_finite) - 1} more files)" if len(scan.non_finite) > 1 else ""
        parts.append(f"non-finite values in {predictions.prediction_path(directory, scan.non_finite[0])}{more}")
    return f"{label}: " + "; ".join(parts) if parts else None


def scan_folders(folders: Sequence[Tuple[str, str, str]], video_paths: Sequence[str], num_classes: int, what: str,
                 hint: str) -> Dict[str, predictions.PredictionScan]:
    """Scan every (name, directory, label) for ``video_paths``; refuse with every problem at once."""
    problems = [folder_problem(label, d, video_paths, what) for _, d, label in folders]
    problems = [p for p in problems if p]
    if problems:
        raise guards.UserError(" | ".join(problems))
    scans = {}
    for name, directory, _label in folders:
        print(f"reading {len(video_paths)} prediction files of {name} ({directory})", flush=True)
        scans[name] = predictions.scan_predictions(directory, video_paths, num_classes)
    problems = [scan_problem(label, d, scans[n], video_paths, num_classes, what) for n, d, label in folders]
    problems = [p for p in problems if p]
    if problems:
        raise guards.UserError(" | ".join(problems) + f" ({hint})")
    return scans


def read_model_json(directory: str, label: str) -> Optional[Dict[str, Any]]:
    """``directory/model.json`` as a dict, None when absent; an unreadable file is a refusal."""
    path = os.path.join(directory, "model.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path, "r", encoding="utf-8") as f:
            meta = json.load(f)
    except json.JSONDecodeError as e:
        raise guards.UserError(
            f"{label}: {path} is not valid JSON ({e.msg}, line {e.lineno}); fix it, or delete it to use "
            f"the folder's name instead"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise guards.UserError(
            f"{label}: cannot read {path} ({e}); fix it, or delete it to use the folder's name instead"
        ) from None
    if not isinstance(meta, dict):
        raise guards.UserError(
            f"{label}: {path} must hold a JSON object, not {type(meta).__name__}; fix it or delete it"
        )
    return meta


def check_classes(label: str, directory: str, meta: Optional[Dict[str, Any]], class_list: Sequence[str]) -> None:
    """Refuse predictions written under another class list (another classInd.txt, or its classes in
    another order): their columns would be scored against the wrong classes. The test scripts record
    it in model.json and provenance.json; folders written before either says nothing and are taken."""
    recorded = (meta or {}).get("class_list")
    if recorded is None:
        try:
            with open(os.path.join(directory, guards.PROVENANCE_NAME), encoding="utf-8") as f:
                recorded = json.load(f)["identity"]["class_list"]
        except (OSError, ValueError, KeyError, TypeError):
            return
    if [str(c) for c in recorded] != class_list:
        moved = next((i for i, (a, b) in enumerate(zip(recorded, class_list)) if str(a) != b), None)
        where = (f"class {moved + 1} is {recorded[moved]!r} there, {class_list[moved]!r} here" if moved is not None
                 else f"{len(recorded)} classes there, {len(class_list)} here")
        raise guards.UserError(
            f"{label}: its predictions were written for another class list than --data-dir's classInd.txt "
            f"({where}): use the --data-dir the model was tested with"
        )


def check_meta(label: str, meta: Optional[Dict[str, Any]], subset: str, split: int) -> None:
    """Refuse a model.json that names another subset or split than the one it is given for."""
    if not meta:
        return
    recorded = meta.get("subset")
    if recorded is not None and recorded != subset:
        if subset == "test":
            raise guards.UserError(
                f"{label}: its model.json says subset {recorded!r}: give the folder written with --subset test "
                f"(a val folder goes with --val NAME=DIR)"
            )
        raise guards.UserError(
            f"{label}: its model.json says subset {recorded!r}, not 'val': give the folder written with --subset val"
        )
    if meta.get("split") is not None and meta.get("split") != split:
        raise guards.UserError(f"{label}: its model.json says split {meta.get('split')}, but --split is {split}")


def validation_groups(val_folders: Sequence[Tuple[str, str, str]], val_metas: Dict[str, Optional[Dict[str, Any]]],
                      given: Any) -> Tuple[int, ...]:
    """The validation groups the --val folders were written for (they must agree)."""
    recorded = {}
    for name, _, label in val_folders:
        groups = (val_metas[name] or {}).get("val_groups")
        if groups is None:
            continue
        if not isinstance(groups, list) or not all(isinstance(g, int) for g in groups):
            raise guards.UserError(f"{label}: model.json val_groups must be a list of group numbers, not {groups!r}")
        if not groups:
            raise guards.UserError(f"{label}: model.json records no validation groups (its model was trained without "
                 f"--val-groups), so it has no validation predictions")
        recorded[name] = tuple(sorted(groups))
    if given:
        for name, groups in recorded.items():
            if groups != given:
                raise guards.UserError(
                    f"--val {name}: its model.json says val_groups {formatting.groups_text(groups)}, but "
                    f"--val-groups is "
                    f"{formatting.groups_text(given)}"
                )
        return given
    distinct = sorted(set(recorded.values()))
    if len(distinct) > 1:
        detail = ", ".join(f"{n}: {formatting.groups_text(g)}" for n, g in recorded.items())
        raise guards.UserError(
            f"the --val folders were written for different validation groups ({detail}); they must agree"
        )
    if not distinct:
        raise guards.UserError(
            "the --val folders have no model.json with val_groups: give --val-groups (the groups held out "
            "in training, e.g. 8-10)"
        )
    return distinct[0]
