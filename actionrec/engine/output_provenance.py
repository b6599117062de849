"""What an output folder was made from (checkpoint, data, flags): resuming only into a folder of the same run."""

import hashlib
import json
import os
import sys
from typing import NamedTuple

from actionrec.engine import devices, runner
from actionrec.evaluation import jsonfile
from actionrec.guards import PROVENANCE_NAME, UserError


def file_sha256(path: str, block: int = 1 << 20) -> str:
    """The SHA-256 of a file's bytes: a checkpoint's identity wherever it was copied or moved."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


class Provenance(NamedTuple):
    """What made an output folder. `identity`: what must be equal for a resume (checkpoint hash, test
    mode and views, architecture, class list, ...); `about`: recorded, not compared (paths). `legacy`:
    (file name, {key: value}) of what a folder written before provenance.json existed says of its run
    (model.json, features.json), compared where it says it."""
    folder: str
    flag: str          # the option that named the folder, for the messages
    identity: dict
    about: dict
    legacy: tuple = ("", {})


def claim_folder(provenance: Provenance, resume: bool) -> None:
    """Check that `provenance.folder` holds nothing of another run (UserError naming what differs,
    unless `resume` is False: then this run starts over and every video is redone). Read-only: every
    rank may call it; record_provenance writes."""
    if not resume:  # the record, damaged or not, is replaced
        return
    path = os.path.join(provenance.folder, PROVENANCE_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            recorded = json.load(f)["identity"]
        if not isinstance(recorded, dict):
            raise ValueError(f"its identity is {type(recorded).__name__}, not a dict")
    except FileNotFoundError:
        recorded = None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: not a provenance record ({runner.one_line(e)}): use another {provenance.flag}, "
                        f"or --no-resume to redo every video") from None
    if recorded == jsonfile.to_jsonable(provenance.identity):
        return
    if recorded is None:
        _claim_older_folder(provenance)
        return
    new = jsonfile.to_jsonable(provenance.identity)
    differs = [k for k in sorted(set(recorded) | set(new)) if recorded.get(k) != new.get(k)]
    shown = "; ".join(f"{k}: {_short(recorded.get(k))} there, {_short(new.get(k))} now" for k in differs[:3])
    raise UserError(f"{provenance.flag} {provenance.folder} holds the results of another run ({shown}): use "
                    f"another folder, or --no-resume to redo every video")


def _claim_older_folder(provenance):
    """A folder without provenance.json: new, or written by an older version. What its model.json or
    features.json says of its run must agree; results that say nothing are taken with a warning."""
    if not any(name.endswith(".hdf5") for _, _, names in os.walk(provenance.folder) for name in names):
        return  # a new (or empty) folder
    name, expected = provenance.legacy
    try:
        with open(os.path.join(provenance.folder, name), encoding="utf-8") as f:
            said = json.load(f)
    except (OSError, ValueError):
        said = None
    if not isinstance(said, dict):
        if devices.Dist().main:
            print(f"warning: {provenance.flag} {provenance.folder} holds results that do not say what made them "
                  f"(an older version's, or copied by hand): they are taken as this run's; --no-resume redoes "
                  f"them", file=sys.stderr, flush=True)
        return
    expected = jsonfile.to_jsonable(expected)
    differs = [k for k in expected if k in said and said[k] != expected[k]]
    if differs:
        shown = "; ".join(f"{k}: {_short(said[k])} there, {_short(expected[k])} now" for k in differs[:3])
        raise UserError(f"{provenance.flag} {provenance.folder} holds the results of another run ({shown}): use "
                        f"another folder, or --no-resume to redo every video")


def _short(value, limit=60):
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit - 3] + "..."


def record_provenance(provenance: Provenance) -> None:
    os.makedirs(provenance.folder, exist_ok=True)
    jsonfile.write_json(os.path.join(provenance.folder, PROVENANCE_NAME),
                       {"identity": provenance.identity, "about": provenance.about})
