"""A dataset of one's own defined by an EPIC-Kitchens-style annotation CSV: one segment (a video file)
per line with a verb and a noun label, their class ids, a group-aware train/validation split, and the
video file of each segment.

    uid,verb,noun,action,verb_class,noun_class[,split][,group][,any other column]
    seg001,put,meat,put meat,0,0,train,rec01

uid is the video file's stem (<videos>/<uid>.mp4, any suffix of split_lists.VIDEO_SUFFIXES, or .hdf5);
the class ids are integers >= 0, each with one name (and each name with one id); `split` (train, val or
test) fixes the subsets, else a seeded split draws whole groups (`group`, else each uid alone) into
validation, so segments of one recording never straddle training and validation.
"""

import csv
import dataclasses
import logging
import os
import random

from actionrec import guards
from actionrec.data import split_lists

log = logging.getLogger("annotations")

COLUMNS = ("uid", "verb", "noun", "action", "verb_class", "noun_class")


SUBSETS = ("train", "val", "test")


HDF5_SUFFIX = ".hdf5"


LABELS = ("verb", "noun")  # each has a name column and a `<label>_class` id column


@dataclasses.dataclass(frozen=True)
class Segment:
    """One line of the CSV. group: the `group` column, or the uid when there is none; split: the
    `split` column ('' when there is none); line: the CSV line it came from (1 = the header)."""

    uid: str
    verb: str
    noun: str
    action: str
    verb_class: int
    noun_class: int
    group: str
    split: str
    line: int


@dataclasses.dataclass(frozen=True)
class Annotations:
    """The segments of a CSV, in file order, and each label's vocabulary {class id: name}, sorted by id."""

    path: str
    segments: list[Segment]
    verbs: dict[int, str]
    nouns: dict[int, str]

    def vocabulary(self, label: str) -> dict[int, str]:
        return self.verbs if label == "verb" else self.nouns


def class_names(vocabulary: dict[int, str]) -> list[str]:
    """The names of a head's outputs 0..max id; an id no segment has is '<unused N>' (a subset of a
    larger vocabulary, e.g. EPIC-Kitchens' class ids)."""
    top = max(vocabulary, default=-1)
    return [vocabulary.get(i, f"<unused {i}>") for i in range(top + 1)]


def _class_id(text: str, column: str, where: str) -> int:
    text = text.strip()
    try:
        value = int(text)
    except ValueError:
        raise guards.UserError(f"{where}: {column} {text!r} is not an integer class id") from None
    if value < 0:
        raise guards.UserError(f"{where}: {column} {value} is negative; class ids are 0, 1, 2, ...")
    return value


def _read_rows(path: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line number, fields)]) of a CSV; blank lines are skipped; a BOM (Excel) is dropped."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            rows = []
            for fields in reader:
                if any(field.strip() for field in fields):
                    rows.append((reader.line_num, [field.strip() for field in fields]))
    except FileNotFoundError:
        raise guards.UserError(f"annotation file {path} not found") from None
    except IsADirectoryError:
        raise guards.UserError(f"annotation file {path} is a directory, not a CSV file") from None
    except UnicodeDecodeError as e:
        raise guards.UserError(f"{path} is not a UTF-8 text file ({e.reason} at byte {e.start}): expected an "
                               f"annotation CSV") from None
    except csv.Error as e:
        raise guards.UserError(f"{path} line {reader.line_num}: not CSV ({e})") from None
    except OSError as e:
        raise guards.UserError(f"annotation file {path} cannot be read ({e.strerror or e})") from None
    if not rows:
        raise guards.UserError(f"{path} is empty: expected a header line {','.join(COLUMNS)} and one line per segment")
    return rows[0][1], rows[1:]


def _check_vocabulary(vocabularies, label, class_id, name, path, line, known):
    """Record (class_id, name) in vocabularies[label]: one name per id and one id per name, and with
    `known` (a given vocabulary) only its ids, under its names."""
    column, where = f"{label}_class", f"{path} line {line}"
    if known is not None and class_id not in known:
        raise guards.UserError(f"{where}: {column} {class_id} is unknown (the {label} classes are "
                               f"{min(known, default=0)}-{max(known, default=-1)})")
    by_id, ids_of = vocabularies[label]
    expected = known[class_id] if known is not None else by_id.get(class_id, (name, line))[0]
    if expected != name:
        first = f"line {by_id[class_id][1]}" if class_id in by_id else "the given vocabulary"
        raise guards.UserError(f"{where}: {column} {class_id} is named {name!r}, but {expected!r} in {first}: "
                               f"one name per class id")
    if name in ids_of and ids_of[name][0] != class_id:
        raise guards.UserError(f"{where}: {label} {name!r} has {column} {class_id}, but {ids_of[name][0]} on "
                               f"line {ids_of[name][1]}: one class id per name")
    by_id.setdefault(class_id, (name, line))
    ids_of.setdefault(name, (class_id, line))


def read_annotations(
    path: str | os.PathLike,
    verbs: dict[int, str] | None = None,
    nouns: dict[int, str] | None = None,
) -> Annotations:
    """The segments of an annotation CSV (see the module's docstring) and its vocabularies.

    verbs / nouns: given vocabularies (e.g. those of the training CSV when reading a test CSV): an id
    not in them is unknown and a name other than theirs inconsistent. Every mistake is a UserError of
    one line naming the file and the line.
    """
    path = os.fspath(path)
    header, rows = _read_rows(path)
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise guards.UserError(f"{path} line 1: no column {', '.join(missing)} (the header must name "
                               f"{','.join(COLUMNS)}; other columns are allowed)")
    repeated = sorted({c for c in header if header.count(c) > 1 and c})
    if repeated:
        raise guards.UserError(f"{path} line 1: column {', '.join(repeated)} named twice")
    index = {name: i for i, name in enumerate(header)}
    known = {"verb": verbs, "noun": nouns}
    vocabularies = {label: ({}, {}) for label in LABELS}
    segments, seen = [], {}
    for line, fields in rows:
        where = f"{path} line {line}"
        if len(fields) != len(header):
            raise guards.UserError(f"{where}: {len(fields)} fields, the header has {len(header)}")
        row = {name: fields[i] for name, i in index.items()}
        for column in ("uid", "verb", "noun"):
            if not row[column]:
                raise guards.UserError(f"{where}: the {column} is empty")
        if row["uid"] in seen:
            raise guards.UserError(f"{where}: uid {row['uid']!r} again (first on line {seen[row['uid']]}): a "
                                   f"segment counted twice makes every number wrong")
        seen[row["uid"]] = line
        split = row.get("split", "").lower()
        if "split" in row and split not in SUBSETS:
            raise guards.UserError(f"{where}: split {row['split']!r} is not one of {', '.join(SUBSETS)}")
        ids = {label: _class_id(row[f"{label}_class"], f"{label}_class", where) for label in LABELS}
        for label in LABELS:
            _check_vocabulary(vocabularies, label, ids[label], row[label], path, line, known[label])
        segments.append(Segment(uid=row["uid"], verb=row["verb"], noun=row["noun"], action=row["action"],
                                verb_class=ids["verb"], noun_class=ids["noun"],
                                group=row.get("group") or row["uid"], split=split, line=line))
    if not segments:
        raise guards.UserError(f"{path} has a header but no segment")
    found = {label: {i: name for i, (name, _) in sorted(vocabularies[label][0].items())} for label in LABELS}
    return Annotations(path, segments, dict(sorted((verbs or found["verb"]).items())),
                       dict(sorted((nouns or found["noun"]).items())))


def split_segments(annotations: Annotations, val_fraction: float = 0.2, seed: int = 0) -> dict[str, list[Segment]]:
    """{"train": [...], "val": [...], "test": [...]}: the `split` column's subsets when the CSV has one
    (a group in two of them is a UserError), else whole groups drawn at random (by `seed`) into "val"
    while that brings its segment count closer to val_fraction of all (at least one group on each side
    when there are two or more) and "test" empty. Logs a warning naming the verb and noun classes that
    validation (or test) has and training never has."""
    if not 0.0 < val_fraction < 1.0:
        raise guards.UserError(f"the validation fraction must be between 0 and 1, not {val_fraction}")
    segments = annotations.segments
    if any(s.split for s in segments):
        subsets = {name: [s for s in segments if s.split == name] for name in SUBSETS}
        _check_groups_whole(annotations.path, subsets)
    else:
        subsets = {**_draw_groups(segments, val_fraction, seed), "test": []}
    if not subsets["train"]:
        raise guards.UserError(f"{annotations.path}: no segment is left for training")
    for line in unseen_in_training(annotations, subsets):
        log.warning("%s", line)
    return subsets


def _check_groups_whole(path, subsets):
    where = {}
    for name, members in subsets.items():
        for s in members:
            first = where.setdefault(s.group, (name, s.line))
            if first[0] != name:
                raise guards.UserError(f"{path} line {s.line}: group {s.group!r} is in {name}, but in {first[0]} "
                                       f"on line {first[1]}: segments of one recording must not straddle subsets")


def _draw_groups(segments, val_fraction, seed):
    groups = {}
    for s in segments:
        groups.setdefault(s.group, []).append(s)
    names = sorted(groups)
    random.Random(seed).shuffle(names)
    target = val_fraction * len(segments)
    held, count = set(), 0
    for name in names[:-1]:  # the last group always trains
        size = len(groups[name])
        if not held or abs(count + size - target) < abs(count - target):
            held.add(name)
            count += size
    if len(names) < 2:
        held = set()
    return {"train": [s for s in segments if s.group not in held], "val": [s for s in segments if s.group in held]}


def unseen_in_training(annotations: Annotations, subsets: dict[str, list[Segment]]) -> list[str]:
    """One line per held-out subset and label naming the classes it has that training never has (a
    model cannot predict them: the study's random split had nouns like that)."""
    lines = []
    for name in ("val", "test"):
        for label in LABELS:
            trained = {getattr(s, f"{label}_class") for s in subsets["train"]}
            unseen = sorted({getattr(s, f"{label}_class") for s in subsets.get(name, [])} - trained)
            if unseen:
                vocabulary = annotations.vocabulary(label)
                names = ", ".join(f"{vocabulary.get(i, '?')} ({i})" for i in unseen)
                lines.append(f"{annotations.path}: {label} class(es) {names} in {name} but never in training: "
                             f"the model cannot learn them (fix the split with a split or group column)")
    return lines


def resolve_videos(segments: list[Segment], videos_dir: str | os.PathLike) -> dict[str, str]:
    """{uid: path}: the file <uid><suffix> under videos_dir (sub-folders included), HDF5 first, then the
    video suffixes in split_lists.VIDEO_SUFFIXES order. A uid with no file, or with files in two folders,
    is a UserError naming them."""
    videos_dir = os.fspath(videos_dir)
    if not os.path.isdir(videos_dir):
        raise guards.UserError(f"the videos folder {videos_dir} is not a directory")
    order = (HDF5_SUFFIX,) + tuple(split_lists.VIDEO_SUFFIXES)
    found = {}
    for folder, dirs, files in os.walk(videos_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for file_name in files:
            stem, suffix = os.path.splitext(file_name)
            if suffix.lower() in order and not file_name.startswith("."):
                found.setdefault(stem, []).append((order.index(suffix.lower()), os.path.join(folder, file_name)))
    paths, missing = {}, []
    for s in segments:
        candidates = sorted(found.get(s.uid, []))
        if not candidates:
            missing.append(s.uid)
            continue
        folders = sorted({os.path.dirname(p) for _, p in candidates})
        if len(folders) > 1:
            raise guards.UserError(f"uid {s.uid!r} (line {s.line}) has files in {len(folders)} folders "
                                   f"({', '.join(folders[:3])}): keep one")
        paths[s.uid] = candidates[0][1]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise guards.UserError(f"{len(missing)} segment(s) have no video under {videos_dir}: {shown} (expected "
                               f"<uid>{HDF5_SUFFIX} or <uid> with one of {' '.join(split_lists.VIDEO_SUFFIXES)})")
    return paths


VAL_FRACTION = 0.2  # of the segments, in whole groups, when the CSV has no split column


def load_dataset(
    csv_path: str | os.PathLike, videos_dir: str | os.PathLike, val_fraction: float = VAL_FRACTION, seed: int = 0
) -> tuple[Annotations, dict[str, list[Segment]], dict[str, str]]:
    """(annotations, subsets, {uid: video path}): read_annotations, split_segments and resolve_videos."""
    read = read_annotations(csv_path)
    subsets = split_segments(read, val_fraction, seed)
    return read, subsets, resolve_videos(read.segments, videos_dir)
