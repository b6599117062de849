"""Held-out validation groups: UCF-101's gNN, HMDB-51's source films; a group never straddles two subsets."""

import os
import re
import zlib
from collections.abc import Collection, Sequence

import numpy as np

from actionrec.data import hmdb51

_GROUP = re.compile(r"_g(\d+)_c\d+$")


HMDB_GROUPS = 25  # HMDB-51's films are mapped onto as many groups as UCF-101 has, so --val-groups 8 means alike


GROUPS_HELP = ("UCF-101: a group is the gNN of the video names (25 groups; clips of one longer video share it); "
               f"HMDB-51: the source film (the name's prefix before the action) mapped to one of {HMDB_GROUPS} "
               f"groups by zlib.crc32(film) % {HMDB_GROUPS} + 1, so a film's clips are never split")


def video_group(path: str | os.PathLike[str], dataset: str = "ucf101") -> int | None:
    """The validation group of a video path (or list entry), or None: UCF-101's group number (the NN of
    `_gNN_cMM`); for HMDB-51 the group of the video's source film (its folder is the action; see
    GROUPS_HELP), deterministic across runs and machines."""
    path = os.fspath(path)
    if dataset == "hmdb51":
        film = hmdb51.hmdb51_film(path, os.path.basename(os.path.dirname(path)))
        return None if film is None else zlib.crc32(film.encode("utf-8")) % HMDB_GROUPS + 1
    match = _GROUP.search(os.path.splitext(os.path.basename(path))[0])
    return int(match.group(1)) if match else None


def parse_groups(text: str) -> tuple[int, ...]:
    """'8-10' or '1,3,5-7' -> sorted tuple of group numbers; ValueError with a one-line reason."""
    groups = set()
    for part in str(text).split(","):
        part = part.strip()
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(f"{text!r} is not a list of group numbers like 8-10 or 1,3,5-7")
        low, high = int(low), int(high) if dash else int(low)
        if low > high:
            raise ValueError(f"{part!r}: the range runs backwards")
        groups.update(range(low, high + 1))
    return tuple(sorted(groups))


def split_by_groups(
    paths: Sequence[str] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    groups: Collection[int],
    dataset: str = "ucf101",
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(kept, held_out): the videos whose group (video_group) is not / is in `groups`, as (paths, labels).

    A group that no video has is a ValueError, and so is holding out every video, or a video without
    a group: a validation set must be made of whole groups (UCF-101's groups are clips cut from one
    longer video, HMDB-51's are source films, so a video in both halves would leak).
    """
    paths, labels = np.asarray(paths), np.asarray(labels, dtype=np.int64)
    video_groups = [video_group(p, dataset) for p in paths]
    unnamed = [str(p) for p, g in zip(paths, video_groups) if g is None]
    if unnamed:
        raise ValueError(f"{unnamed[0]} has no group in its name: validation groups need "
                         + ("<film>_<action>_ names" if dataset == "hmdb51" else "UCF-101-style _gNN_ names"))
    present = set(video_groups)
    absent = [g for g in groups if g not in present]
    if absent:
        raise ValueError(f"group(s) {', '.join(f'g{g:02d}' for g in absent)} are not in the training list "
                         f"(it has g{min(present):02d}-g{max(present):02d})")
    held = np.asarray([g in set(groups) for g in video_groups], dtype=bool)
    if held.all():
        raise ValueError("the validation groups hold every training video")
    return (paths[~held], labels[~held]), (paths[held], labels[held])
