"""Annotation CSVs of one's own (issue 26): the study's columns, vocabularies, one-line errors naming the
line, group-aware splits, and the video file of each uid."""
import argparse
import logging
import random

import pytest

from actionrec import guards
from actionrec.data import annotations
from actionrec.engine import cli_flags

HEADER = "uid,verb,noun,action,verb_class,noun_class"
STUDY = [("put", 0), ("take", 1), ("move", 2)], [("meat", 0), ("bag", 1), ("sauce", 2), ("potato", 3),
                                                  ("tortilla", 4)]


def write_csv(tmp_path, lines, name="annotations.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def study_lines(count=20, seed=0, extra_header="", extra=lambda i: ""):
    """A CSV like the study's: verbs put/take/move, nouns meat/bag/sauce/potato/tortilla."""
    rng = random.Random(seed)
    verbs, nouns = STUDY
    lines = [HEADER + extra_header]
    for i in range(count):
        (verb, v), (noun, n) = rng.choice(verbs), rng.choice(nouns)
        lines.append(f"seg{i:03d},{verb},{noun},{verb} {noun},{v},{n}{extra(i)}")
    return lines


def test_the_study_columns_with_extra_columns(tmp_path):
    path = write_csv(tmp_path, study_lines(12, extra_header=",participant,split,group",
                                           extra=lambda i: f",P01,{'val' if i >= 9 else 'train'},r{i // 3}"))
    read = annotations.read_annotations(path)
    assert [s.uid for s in read.segments] == [f"seg{i:03d}" for i in range(12)]
    assert [s.line for s in read.segments] == list(range(2, 14))
    names = dict(STUDY[0])
    assert all(names[s.verb] == s.verb_class and s.action == f"{s.verb} {s.noun}" for s in read.segments)
    assert set(read.verbs.items()) <= {(i, n) for n, i in STUDY[0]}
    assert list(read.verbs) == sorted(read.verbs) and list(read.nouns) == sorted(read.nouns)
    assert read.segments[0].group == "r0" and read.segments[-1].split == "val"
    subsets = annotations.split_segments(read)
    assert [s.uid for s in subsets["val"]] == ["seg009", "seg010", "seg011"] and subsets["test"] == []


def test_a_uid_is_its_own_group_without_a_group_column_and_bom_and_quotes_are_read(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("\ufeff" + HEADER + '\r\nseg1,put,meat,"put meat",0,0\r\n\r\nseg2,take,bag,take bag,1,1\r\n',
                    encoding="utf-8")
    read = annotations.read_annotations(path)
    assert [(s.uid, s.group, s.line, s.split) for s in read.segments] == [("seg1", "seg1", 2, ""),
                                                                          ("seg2", "seg2", 4, "")]
    assert read.verbs == {0: "put", 1: "take"} and read.nouns == {0: "meat", 1: "bag"}


def test_class_names_fill_ids_no_segment_has():
    assert annotations.class_names({0: "take", 2: "put"}) == ["take", "<unused 1>", "put"]


@pytest.mark.parametrize("lines, message", [
    (["uid,verb,noun,action,verb_class", "s1,put,meat,put meat,0"], "line 1: no column noun_class"),
    ([HEADER, "s1,put,meat,put meat,0,0", "s2,take,bag,take bag,1,x"], "line 3: noun_class 'x' is not an integer"),
    ([HEADER, "s1,put,meat,put meat,0,0", "s2,take,bag,take bag,-1,1"], "line 3: verb_class -1 is negative"),
    ([HEADER, "s1,put,meat,put meat,0,0", "s2,take,bag,take bag,1.5,1"], "line 3: verb_class '1.5' is not"),
    ([HEADER, "s1,put,meat,put meat,0,0", "s2,take,bag,take bag,1"], "line 3: 5 fields, the header has 6"),
    ([HEADER, "s1,put,meat,put meat,0,0", "s2,take,bag,take bag,1,1,extra"], "line 3: 7 fields"),
    ([HEADER, "s1,put,meat,put meat,0,0", "s1,take,bag,take bag,1,1"], "line 3: uid 's1' again (first on line 2)"),
    ([HEADER, "s1,put,meat,put meat,0,0", "s2,take,bag,take bag,0,1"],
     "line 3: verb_class 0 is named 'take', but 'put' in line 2"),
    ([HEADER, "s1,put,meat,put meat,0,0", "s2,put,bag,put bag,1,1"],
     "line 3: verb 'put' has verb_class 1, but 0 on line 2"),
    ([HEADER, "s1,put,meat,put meat,0,0", ",take,bag,take bag,1,1"], "line 3: the uid is empty"),
    ([HEADER + ",split", "s1,put,meat,put meat,0,0,train", "s2,take,bag,take bag,1,1,dev"],
     "line 3: split 'dev' is not one of train, val, test"),
    ([HEADER], "has a header but no segment"),
    (["uid,uid,verb,noun,action,verb_class,noun_class"], "line 1: column uid named twice"),
])
def test_each_mistake_is_one_line_naming_the_file_and_line(tmp_path, lines, message):
    path = write_csv(tmp_path, lines)
    with pytest.raises(guards.UserError) as error:
        annotations.read_annotations(path)
    text = str(error.value)
    assert message in text and str(path) in text and "\n" not in text


def test_a_given_vocabulary_makes_other_ids_unknown(tmp_path):
    path = write_csv(tmp_path, [HEADER, "s1,put,meat,put meat,0,0", "s2,take,bag,take bag,3,1"])
    with pytest.raises(guards.UserError, match=r"line 3: verb_class 3 is unknown \(the verb classes are 0-2\)"):
        annotations.read_annotations(path, verbs={0: "put", 1: "take", 2: "move"})
    with pytest.raises(guards.UserError, match="line 2: verb_class 0 is named 'put', but 'take' in the given"):
        annotations.read_annotations(path, verbs={0: "take", 3: "put"})
    known = annotations.read_annotations(path, verbs={0: "put", 1: "open", 3: "take"})
    assert known.verbs == {0: "put", 1: "open", 3: "take"}  # the given vocabulary, ids no line has included


def test_missing_files_and_non_text_are_one_line(tmp_path):
    with pytest.raises(guards.UserError, match="not found"):
        annotations.read_annotations(tmp_path / "none.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(guards.UserError, match="is not a UTF-8 text file"):
        annotations.read_annotations(tmp_path / "bin.csv")


def grouped_csv(tmp_path, seed, groups):
    rng = random.Random(seed)
    sizes = [rng.randint(1, 6) for _ in range(groups)]
    group_of = [g for g, size in enumerate(sizes) for _ in range(size)]
    return write_csv(tmp_path, study_lines(len(group_of), seed, ",group", lambda i: f",rec{group_of[i]:02d}"),
                     f"grouped{seed}.csv")


@pytest.mark.parametrize("seed", range(40))
def test_a_seeded_split_never_puts_one_group_in_two_subsets(tmp_path, seed):
    read = annotations.read_annotations(grouped_csv(tmp_path, seed, groups=2 + seed % 9))
    fraction = (0.1, 0.2, 0.3, 0.5)[seed % 4]
    subsets = annotations.split_segments(read, fraction, seed)
    train, val = ({s.group for s in subsets[name]} for name in ("train", "val"))
    assert train and val and not train & val
    assert sorted(s.uid for s in subsets["train"] + subsets["val"]) == sorted(s.uid for s in read.segments)
    assert subsets == annotations.split_segments(read, fraction, seed)  # the seed decides


def test_without_a_group_column_each_uid_is_drawn_alone(tmp_path):
    read = annotations.read_annotations(write_csv(tmp_path, study_lines(102, seed=1)))
    subsets = annotations.split_segments(read, 23 / 102, seed=0)
    assert (len(subsets["train"]), len(subsets["val"])) == (79, 23)  # the study's sizes
    other = annotations.split_segments(read, 23 / 102, seed=1)
    assert {s.uid for s in other["val"]} != {s.uid for s in subsets["val"]}


def test_a_split_column_with_a_group_in_two_subsets_is_refused(tmp_path):
    path = write_csv(tmp_path, [HEADER + ",split,group", "s1,put,meat,put meat,0,0,train,r1",
                                "s2,take,bag,take bag,1,1,val,r2", "s3,put,bag,put bag,0,1,val,r1"])
    with pytest.raises(guards.UserError, match=r"line 4: group 'r1' is in val, but in train on line 2"):
        annotations.split_segments(annotations.read_annotations(path))


def test_classes_validation_has_and_training_never_are_named(tmp_path, caplog):
    path = write_csv(tmp_path, [HEADER + ",split", "s1,put,meat,put meat,0,0,train", "s2,take,bag,take bag,1,1,train",
                                "s3,put,tortilla,put tortilla,0,4,val", "s4,move,potato,move potato,2,3,val"])
    with caplog.at_level(logging.WARNING, logger="annotations"):
        annotations.split_segments(annotations.read_annotations(path))
    lines = [r.getMessage() for r in caplog.records]
    assert any("verb class(es) move (2) in val but never in training" in line for line in lines)
    assert any("noun class(es) potato (3), tortilla (4) in val but never in training" in line for line in lines)


def test_each_uid_resolves_to_its_video_file(tmp_path):
    path = write_csv(tmp_path, [HEADER, "s1,put,meat,put meat,0,0", "s2,take,bag,take bag,1,1",
                                "s3,put,bag,put bag,0,1"])
    videos = tmp_path / "videos"
    (videos / "P01").mkdir(parents=True)
    for name in ("s1.mp4", "s1.hdf5", "P01/s2.avi", "s3.MOV", "notes.txt", ".s3.mp4"):
        (videos / name).write_bytes(b"")
    read = annotations.read_annotations(path)
    found = annotations.resolve_videos(read.segments, videos)
    assert found == {"s1": str(videos / "s1.hdf5"), "s2": str(videos / "P01" / "s2.avi"), "s3": str(videos / "s3.MOV")}
    (videos / "s1.hdf5").unlink()
    (videos / "s3.MOV").unlink()
    with pytest.raises(guards.UserError, match=r"1 segment\(s\) have no video under .*videos: s3 \(expected"):
        annotations.resolve_videos(read.segments, videos)
    (videos / "s3.mp4").write_bytes(b"")
    (videos / "P01" / "s3.mp4").write_bytes(b"")
    with pytest.raises(guards.UserError, match=r"uid 's3' \(line 4\) has files in 2 folders"):
        annotations.resolve_videos(read.segments, videos)


def test_the_flags_load_a_dataset_split_and_resolved(tmp_path):
    path = grouped_csv(tmp_path, seed=3, groups=6)
    videos = tmp_path / "videos"
    videos.mkdir()
    read = annotations.read_annotations(path)
    for s in read.segments:
        (videos / f"{s.uid}.mp4").write_bytes(b"")
    parser = argparse.ArgumentParser(parents=[cli_flags.annotation_parser()])
    args = parser.parse_args(["--annotations", str(path), "--videos", str(videos), "--val-fraction", "0.3"])
    loaded, subsets, paths = annotations.load_dataset(args.annotations, args.videos, args.val_fraction, seed=3)
    assert loaded == read and subsets == annotations.split_segments(read, 0.3, 3)
    assert paths == {s.uid: str(videos / f"{s.uid}.mp4") for s in read.segments}
    assert parser.parse_args([]).val_fraction == annotations.VAL_FRACTION
    with pytest.raises(guards.UserError, match="between 0 and 1, not 1.5"):
        annotations.load_dataset(path, videos, 1.5)
