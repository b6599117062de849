"""Write UCF-101-style split lists for a dataset of one's own: one folder per label.

    python make_split_lists.py --videos ROOT/UCF-101-hdf5 --out ROOT/ucfTrainTestlist \
        [--test-fraction 0.3] [--group-pattern REGEX] [--seed 0] [--splits 1]

reads DIR/<Label>/<video> (.avi .mp4 .mkv .mov .webm .mpg .mpeg .m4v or .hdf5; other and hidden
files are ignored, and so is anything deeper than the label folders) and writes, in the official
format (CRLF on every line),
    OUT/classInd.txt       <1-based index> <Label>        labels = the folder names, sorted
    OUT/trainlist0N.txt    <Label>/<stem>.avi <index>     one line per training video
    OUT/testlist0N.txt     <Label>/<stem>.avi             one line per test video
Entries always end in `.avi`, the name getUCF101 reads: only the stem matters, it maps to
ROOT/UCF-101-hdf5/<Label>/<stem>.hdf5. A label folder that holds no video is skipped with a warning
(it gets no classInd line, so a model trained on these lists has no output for it).

Videos come in groups, and a group never straddles train and test (UCF-101's clips of one gNN
come from one long video; pieces of one recording look alike). The group of a video is, the first
rule that applies:
  1. --group-pattern REGEX: what it captures in the file name without its suffix (its first
     group, or the whole match when it has none); a name it does not match is an error;
  2. UCF-101's `_gNN_` in the name (v_Archery_g03_c02: group g03 of its label);
  3. a piece written by `prepare_ucf101.py --segment-seconds` (`<stem>-segNNN`): its source `<stem>`;
  4. otherwise the video alone.
Groups belong to one label: the same text in two label folders is two groups.

Within each label the groups are shuffled (by seed and label) and taken into the test side while
that brings its video count closer to --test-fraction of the label's videos; at least one group is
tested and at least one trained, so every label with two groups or more is on both sides. A label
with a single group is all training (with a warning); when every label has a single group nothing
could be tested, which is an error (exit status 2, nothing written). The same videos, options and seed give
byte-identical files; --splits K writes K independent splits with seeds seed, seed+1, ...
"""
import argparse
import os
import random
import re
import sys
from pathlib import Path

PROG = "make_split_lists.py"
VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".hdf5")
LIST_SUFFIX = ".avi"                    # what the official lists say; getUCF101 keeps only the stem
UCF_GROUP = re.compile(r"_g(\d\d)_")    # v_<Class>_g<NN>_c<NN>
PIECE = re.compile(r"^(.+)-seg\d{3,}$")  # prepare_ucf101.py --segment-seconds: <stem>-seg000, ...
MAX_SPLITS = 3                          # the scripts' --split takes 1, 2 or 3, as UCF-101 has
RULES = ("pattern", "ucf", "piece", "single")
RULE_NAMES = {"pattern": "from --group-pattern", "ucf": "UCF-101 _gNN_",
              "piece": "source videos of -segNNN pieces", "single": "single videos"}


class UserError(ValueError):
    """A mistake in the command line or the video folder: one line, exit status 2."""


def find_videos(videos_dir):
    """{label: sorted video file names} for DIR/<Label>/<video>, and the label folders with no video.

    Labels are the non-hidden sub-folders, in sorted (case-sensitive) order.
    """
    if not videos_dir.is_dir():
        raise UserError(f"--videos {videos_dir} is not a directory (expected DIR/<Label>/<video>)")
    label_dirs = sorted(p for p in videos_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not label_dirs:
        raise UserError(f"--videos {videos_dir} has no label folders (expected DIR/<Label>/<video>)")
    videos, empty = {}, []
    for label_dir in label_dirs:
        names = sorted(p.name for p in label_dir.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES
                       and not p.name.startswith(".") and p.is_file())
        if names:
            videos[label_dir.name] = names
        else:
            empty.append(label_dir.name)
    if not videos:
        raise UserError(f"no videos in the label folders of {videos_dir} (suffixes: {' '.join(VIDEO_SUFFIXES)})")
    return videos, empty


def check_names(videos):
    """Names the list format cannot carry: whitespace (fields are space-separated), two videos of one
    label with the same stem (both would be `<Label>/<stem>.avi`)."""
    for label, names in videos.items():
        if any(c.isspace() for c in label):
            raise UserError(f"label folder {label!r} contains whitespace, which the split-list format "
                            "cannot hold: rename it")
        stems = {}
        for name in names:
            if any(c.isspace() for c in name):
                raise UserError(f"{label}/{name}: the name contains whitespace, which the split-list "
                                "format cannot hold: rename it")
            stem = Path(name).stem
            if stem in stems:
                raise UserError(f"{label}/{stems[stem]} and {label}/{name} have the same stem, so both would "
                                f"be {label}/{stem}{LIST_SUFFIX}: keep one")
            stems[stem] = name


def group_of(stem, pattern=None):
    """(group key, rule) of a video from its file name without the suffix; rule is one of RULES.

    Raises UserError when `pattern` is given and does not match.
    """
    if pattern is not None:
        match = pattern.search(stem)
        key = None if match is None else match.group(1) if pattern.groups else match.group(0)
        if key is None:
            raise UserError(f"--group-pattern {pattern.pattern!r} does not match {stem!r}"
                            + (" (its first group captured nothing)" if match else "")
                            + ": every video needs a group (the pattern is searched in the name without its suffix)")
        return key, "pattern"
    match = UCF_GROUP.search(stem)
    if match:
        return f"g{match.group(1)}", "ucf"
    match = PIECE.match(stem)
    if match:
        return match.group(1), "piece"
    return stem, "single"


def group_videos(videos, pattern=None):
    """{label: {group key: [stems]}} and {rule: number of groups}."""
    groups, rules = {}, dict.fromkeys(RULES, 0)
    for label, names in videos.items():
        groups[label] = {}
        for name in names:
            stem = Path(name).stem
            key, rule = group_of(stem, pattern)
            if key not in groups[label]:
                rules[rule] += 1
            groups[label].setdefault(key, []).append(stem)
    return groups, rules


def check_splittable(groups, shown=5):
    """A UserError when no label has two groups: a group is never split, so every video would be training
    and the test list empty."""
    if any(len(label_groups) > 1 for label_groups in groups.values()):
        return
    labels = [f"{label} ({sum(map(len, g.values()))} video{'s' if sum(map(len, g.values())) > 1 else ''})"
              for label, g in groups.items()]
    listed = ", ".join(labels[:shown]) + (f", ... (+{len(labels) - shown})" if len(labels) > shown else "")
    raise UserError(f"cannot split: every label has a single group of videos ({listed}), and a group is never "
                    f"split between train and test, so no video could be tested: give labels videos of two "
                    f"groups or more (see the group rules in --help)")


def choose_test_groups(group_sizes, test_fraction, rng):
    """Group keys for the test side of one label, from {key: videos}.

    Shuffled groups are taken while they bring the test count closer to test_fraction of the videos;
    at least one group is tested and at least one trained when there are two or more; none is tested
    when there is only one.
    """
    if len(group_sizes) < 2:
        return set()
    keys = sorted(group_sizes)
    rng.shuffle(keys)
    total = sum(group_sizes.values())
    target = test_fraction * total
    test, count = set(), 0
    for key in keys:
        size = group_sizes[key]
        if count + size < total and abs(count + size - target) < abs(count - target):
            test.add(key)
            count += size
    if not test:  # every group alone overshoots: the smallest, first in shuffled order on ties
        test.add(min(keys, key=lambda k: group_sizes[k]))
    return test


def make_split(groups, test_fraction, seed):
    """{label: (train stems, test stems)}, each sorted; one random generator per (seed, label), so a
    label's split does not depend on the other labels."""
    split = {}
    for label, label_groups in groups.items():
        rng = random.Random(f"{seed}/{label}")
        test_keys = choose_test_groups({k: len(v) for k, v in label_groups.items()}, test_fraction, rng)
        train = sorted(s for k, stems in label_groups.items() if k not in test_keys for s in stems)
        test = sorted(s for k in test_keys for s in label_groups[k])
        split[label] = (train, test)
    return split


def write_lines(path, lines):
    """CRLF on every line, as the official files; atomic (temporary name, then rename)."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write("".join(f"{line}\r\n" for line in lines))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_split_lists(out_dir, labels, splits):
    """Write classInd.txt and train/testlist0N.txt for each split (N = 1, 2, ...); remove list files
    of higher splits left by an earlier run (they would not match this classInd.txt).

    Returns (written, removed) file names.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    write_lines(out_dir / "classInd.txt", [f"{i} {label}" for i, label in enumerate(labels, 1)])
    written, removed = ["classInd.txt"], []
    for number, split in enumerate(splits, 1):
        train = [f"{label}/{stem}{LIST_SUFFIX} {i}" for i, label in enumerate(labels, 1) for stem in split[label][0]]
        test = [f"{label}/{stem}{LIST_SUFFIX}" for label in labels for stem in split[label][1]]
        write_lines(out_dir / f"trainlist0{number}.txt", train)
        write_lines(out_dir / f"testlist0{number}.txt", test)
        written += [f"trainlist0{number}.txt", f"testlist0{number}.txt"]
    for number in range(len(splits) + 1, MAX_SPLITS + 1):
        for name in (f"trainlist0{number}.txt", f"testlist0{number}.txt"):
            if (out_dir / name).is_file():
                (out_dir / name).unlink()
                removed.append(name)
    return written, removed


def summary_lines(labels, groups, splits, seeds):
    """A table: per label its groups and videos, and train/test videos (groups) of each split."""
    rows = [["", "label", "groups", "videos"] + [f"split {n} (seed {s}) train/test" for n, s in enumerate(seeds, 1)]]
    for i, label in enumerate(labels, 1):
        row = [str(i), label, str(len(groups[label])), str(sum(map(len, groups[label].values())))]
        for split in splits:
            train, test = split[label]
            tested = set(test)
            test_groups = sum(1 for stems in groups[label].values() if stems[0] in tested)
            row.append(f"{len(train)}/{len(test)} ({len(groups[label]) - test_groups}/{test_groups} groups)")
        rows.append(row)
    total = ["", "total", str(sum(len(g) for g in groups.values())),
             str(sum(len(s) for g in groups.values() for s in g.values()))]
    for split in splits:
        total.append(f"{sum(len(t) for t, _ in split.values())}/{sum(len(t) for _, t in split.values())}")
    rows.append(total)
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(w) if c == 1 else cell.rjust(w) for c, (cell, w) in
                             enumerate(zip(row, widths))).rstrip() for row in rows]


def fail(message):
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(args):
    try:
        if not 0 < args.test_fraction < 1:
            raise UserError(f"--test-fraction must be between 0 and 1 (exclusive), not {args.test_fraction}")
        if not 1 <= args.splits <= MAX_SPLITS:
            raise UserError(f"--splits must be in 1..{MAX_SPLITS}, not {args.splits}")
        try:
            pattern = None if args.group_pattern is None else re.compile(args.group_pattern)
        except re.error as e:
            raise UserError(f"--group-pattern {args.group_pattern!r} is not a valid regular expression: {e}") from None
        videos_dir, out_dir = Path(args.videos), Path(args.out)
        videos, empty = find_videos(videos_dir)
        check_names(videos)
        groups, rules = group_videos(videos, pattern)
        check_splittable(groups)
    except UserError as e:
        fail(e)
    for label in empty:
        print(f"{PROG}: warning: label folder {label} holds no videos: skipped (not in classInd.txt)", file=sys.stderr)
    for label, label_groups in groups.items():
        if len(label_groups) == 1:
            print(f"{PROG}: warning: label {label} has a single group ({len(next(iter(label_groups.values())))} "
                  "videos): all of it is training, it has no test video", file=sys.stderr)

    labels = sorted(groups)
    seeds = [args.seed + k for k in range(args.splits)]
    splits = [make_split(groups, args.test_fraction, seed) for seed in seeds]
    try:
        written, removed = write_split_lists(out_dir, labels, splits)
    except OSError as e:
        fail(f"cannot write to --out {out_dir}: {e}")

    num_groups = sum(len(g) for g in groups.values())
    print(f"{PROG}: {len(labels)} labels, {num_groups} groups, {sum(map(len, videos.values()))} videos "
          f"under {videos_dir} (test fraction {args.test_fraction:g})")
    print("  groups: " + ", ".join(f"{rules[r]} {RULE_NAMES[r]}" for r in RULES if rules[r]))
    for line in summary_lines(labels, groups, splits, seeds):
        print(line)
    print(f"{PROG}: wrote {out_dir}/{{{','.join(written)}}}"
          + (f"; removed {', '.join(removed)} of an earlier run" if removed else ""))
    if out_dir.name != "ucfTrainTestlist":
        print(f"{PROG}: note: getUCF101(ROOT) reads ROOT/ucfTrainTestlist/, not {out_dir.name}/")


def get_args_parser():
    parser = argparse.ArgumentParser(
        prog=PROG, description="Write UCF-101-style split lists (classInd.txt, trainlist0N.txt, testlist0N.txt, "
        "CRLF) for DIR/<Label>/<video>: labels are the folder names in sorted order, a group of videos "
        "is never split between train and test.",
        epilog="Groups, first rule that applies: --group-pattern; UCF-101's _gNN_ in the name; the source "
        "video of a prepare_ucf101.py --segment-seconds piece (<stem>-segNNN); the video alone. "
        "Groups are per label. Empty label folders are skipped with a warning.")
    parser.add_argument("--videos", required=True, metavar="DIR",
                        help="folder of label folders, DIR/<Label>/<video> with suffix "
                        f"{' '.join(VIDEO_SUFFIXES)} (e.g. ROOT/UCF-101-hdf5); required")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="where the lists go; getUCF101(ROOT) reads ROOT/ucfTrainTestlist; required")
    parser.add_argument("--test-fraction", type=float, default=0.3, metavar="F",
                        help="fraction of each label's videos to test on, in whole groups, between 0 and 1 "
                        "(default: 0.3)")
    parser.add_argument("--group-pattern", default=None, metavar="REGEX",
                        help="regular expression searched in each file name without its suffix; its first "
                        "group (or the whole match) names the video's group, e.g. '^(.+)_take\\d+$' "
                        "(default: UCF-101's _gNN_, else the -segNNN piece's source, else the video alone)")
    parser.add_argument("--seed", type=int, default=0, metavar="N",
                        help="seed of the group draw; same videos and seed, same bytes (default: 0)")
    parser.add_argument("--splits", type=int, default=1, metavar="K",
                        help=f"independent splits to write, 1..{MAX_SPLITS}: split N uses seed + N - 1 "
                        "(default: 1)")
    return parser


if __name__ == "__main__":
    main(get_args_parser().parse_args())
