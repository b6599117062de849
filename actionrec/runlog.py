"""A training run's log.jsonl: one JSON object per epoch, read back by the engine (to resume) and by the
report (learning curves)."""
import json
import os
from typing import Any, Dict, List, Union

import guards


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def read_log(path: Union[str, os.PathLike], skip_damaged: bool = False) -> List[Dict[str, Any]]:
    """The entries of a training run's log.jsonl ([] when there is none).

    A log is written whole, so a line that is not a JSON object with an integer ``epoch`` is damage: a
    ``guards.UserError`` naming the file, or with ``skip_damaged`` (the report, which only draws the
    curves) the entries that are whole, the others left out.
    """
    if not os.path.exists(path):
        return []
    advice = "move it away (the checkpoint is enough to resume; the log then restarts) or use --no-resume"
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line for line in f if line.strip()]
    except (OSError, ValueError) as e:  # UnicodeDecodeError is a ValueError
        raise guards.UserError(f"{path} is not a log.jsonl of the training scripts ({_first_line(e)}): "
                               f"{advice}") from None
    entries = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError as e:
            if skip_damaged:
                continue
            raise guards.UserError(f"{path} is not a log.jsonl of the training scripts ({_first_line(e)}): "
                                   f"{advice}") from None
        if isinstance(entry, dict) and isinstance(entry.get("epoch"), int):
            entries.append(entry)
        elif not skip_damaged:
            raise guards.UserError(f"{path} is not a log.jsonl of the training scripts (a line without an epoch): "
                                   f"{advice}")
    return entries
