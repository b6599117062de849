"""HMDB-51: its real clips decode under the one decode rule, its official splits (when ../shared/data is
present, skipped when absent), and a tiny synthetic HMDB-layout set run through the scripts."""
from pathlib import Path

import numpy as np
import pytest

from actionrec.data import (
    datasets,
    hmdb51,
    sampling,
    split_lists,
    video_chunks,
    video_decode,
    video_files,
    video_groups,
)
from actionrec.data.video_decode import VideoReader, probe
from helpers import decode_from_start

SHARED_HMDB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hmdb51"
# decoded / header frames and width, ../shared/data/SOURCES.md
CLIPS = {
    "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0": (408, 409, 320),
    "climb_stairs/Increase_stride_length_by_running_stairs__working_step_over_action_speed_development_"
    "climb_stairs_f_cm_np1_le_med_1": (74, 75, 320),
    "wave/RATRACE_wave_f_nm_np1_fr_goo_37": (72, 73, 560),
    "wave/TrumanShow_wave_f_nm_np1_fr_med_26": (48, 49, 432),
}


def shared(sub):
    path = SHARED_HMDB / sub
    if not path.exists():
        pytest.skip(f"{path} not found (no ../shared in this clone)")
    return path


# ----------------------------------------------------------------------------------------------
# The real clips: one frame fewer decodes than the header declares (a dropped-frame packet)

@pytest.mark.parametrize("name", sorted(CLIPS))
def test_real_clip_decodes(name):
    path = shared("videos") / f"{name}.avi"
    frames, declared, width = CLIPS[name]
    reference = decode_from_start(path)
    assert reference.shape == (frames, 240, width, 3)
    assert probe(path, declared=True) == (frames, 240, width, pytest.approx(30.0), declared)
    assert video_files.video_info(path) == (frames, 240, width, "video")
    with VideoReader(path, frames=frames) as reader:
        np.testing.assert_array_equal(np.stack(list(reader.iter_frames())), reference)
    with VideoReader(path, frames=frames) as reader:  # a fresh reader, a clip at the very end
        np.testing.assert_array_equal(reader.read(range(frames - 16, frames)), reference[-16:])
    np.testing.assert_array_equal(video_files.read_frames(path, range(frames - 16, frames)), reference[-16:])
    for seed in range(3):  # the training loader's random 16-frame clips
        assert sampling.loadSequenceRaw((str(path), True, seed), size=112).shape == (16, 112, 112, 3)
    assert video_chunks.load_chunk(path, frames - 16, frames, size=112).shape == (
        16,
        112,
        112,
        3,
    )  # the last test chunk


def test_reader_without_a_count_corrects_the_header():
    """A reader that trusts the header (409) learns the true count (408) at the tail, once."""
    path = shared("videos") / "brush_hair" / "April_09_brush_hair_u_nm_np1_ba_goo_0.avi"
    reference = decode_from_start(path)
    with VideoReader(path) as reader:
        assert reader.frames == 409
        with pytest.raises(IndexError, match=r"409 frames were expected, 408 decode"):
            reader.read(range(409 - 16, 409))
        assert reader.frames == 408
        np.testing.assert_array_equal(reader.read(range(408 - 16, 408)), reference[-16:])
    assert video_decode.MIN_DECODED_FRACTION == video_files.MIN_DECODED_FRACTION


# ----------------------------------------------------------------------------------------------
# The official splits

@pytest.fixture(scope="module")
def hmdb_root(tmp_path_factory):
    """A --data-dir with the real split files (a link) and the four real clips in hmdb51/."""
    root = tmp_path_factory.mktemp("hmdb")
    (root / hmdb51.HMDB_SPLIT_DIR).symlink_to(shared(hmdb51.HMDB_SPLIT_DIR), target_is_directory=True)
    for name in CLIPS:
        target = root / hmdb51.HMDB_VIDEO_DIR / f"{name}.avi"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(shared("videos") / f"{name}.avi")
    return root


def split_ids(split):
    """{(action, video file name): id} of every line of the real split files of `split`."""
    ids = {}
    for path in sorted(shared(hmdb51.HMDB_SPLIT_DIR).glob(f"*_test_split{split}.txt")):
        for line in path.read_text().splitlines():
            name, subset_id = line.split()
            ids[path.name.replace(f"_test_split{split}.txt", ""), name] = subset_id
    return ids


@pytest.mark.parametrize("split", [1, 2, 3])
def test_official_splits(hmdb_root, split):
    class_list, (train, train_labels), (test, test_labels) = hmdb51.getHMDB51(hmdb_root, split)
    assert len(class_list) == 51 and list(class_list) == sorted(class_list)
    assert (class_list[0], class_list[-1]) == ("brush_hair", "wave")
    assert (len(train), len(test)) == (3570, 1530)
    assert np.bincount(train_labels).tolist() == [70] * 51 and np.bincount(test_labels).tolist() == [30] * 51
    listed = {}
    for subset, paths, labels in (("1", train, train_labels), ("2", test, test_labels)):
        for path, label in zip(paths, labels):
            path = Path(path)
            assert path.parent.name == class_list[label]  # the folder is the class
            assert (class_list[label], path.name) not in listed  # no video twice
            listed[class_list[label], path.name] = subset
    ids = split_ids(split)
    assert len(ids) == 6766
    # every video in exactly one of train / test / unused, its name intact (special characters too)
    assert listed == {key: subset_id for key, subset_id in ids.items() if subset_id != "0"}
    names = "".join(name for _, name in listed)  # ~ is in no used video of split 1, @ in none of split 3
    assert all(special in names for special in "-()!#[]&+;" + {1: "@", 2: "~@", 3: "~"}[split])
    assert "Brushing_Her_Hair__[_NEW_AUDIO_]_UPDATED!!!!_brush_hair_h_cm_np1_fr_goo_0.avi" in {n for _, n in ids}
    for path in np.concatenate([train, test]):  # the real clips resolve to the original videos
        if Path(path).is_file():
            assert str(Path(path).relative_to(hmdb_root / hmdb51.HMDB_VIDEO_DIR).with_suffix("")) in CLIPS
    assert sum(Path(p).is_file() for p in np.concatenate([train, test])) == 4


def copy_splits(root, edit=None):
    """root/testTrainMulti_7030_splits/: a copy of the real split files, edit(folder) applied."""
    folder = root / hmdb51.HMDB_SPLIT_DIR
    folder.mkdir(parents=True)
    for path in shared(hmdb51.HMDB_SPLIT_DIR).glob("*.txt"):
        (folder / path.name).write_bytes(path.read_bytes())
    if edit:
        edit(folder)
    return folder


def replace_line(path, number, text):
    lines = path.read_text().splitlines(keepends=True)
    lines[number - 1] = text
    path.write_text("".join(lines))


@pytest.mark.parametrize("mistake, message", [
    (lambda f: replace_line(f / "wave_test_split1.txt", 3, "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 \n"),
     r"wave_test_split1\.txt line 3: 'April_09_brush_hair_u_nm_np1_ba_goo_0\.avi' is not a video of 'wave'"),
    (lambda f: (f / "chew_test_split1.txt").unlink(), r"chew_test_split1\.txt not found"),
    (lambda f: replace_line(f / "clap_test_split1.txt", 5, "Clap_clap_f_cm_np1_fr_med_0.avi 3 \n"),
     r"clap_test_split1\.txt line 5: expected '<video>\.avi <0\|1\|2>'"),
    (lambda f: replace_line(f / "clap_test_split1.txt", 5, "Clap_clap_f_cm_np1_fr_med_0.avi\n"),
     r"clap_test_split1\.txt line 5: expected"),
    (lambda f: replace_line(f / "wave_test_split1.txt", 2, (f / "wave_test_split1.txt").read_text().splitlines(
        keepends=True)[0]), r"wave_test_split1\.txt line 2: .* is listed twice \(also .*line 1\)"),
])
def test_split_file_mistakes_are_one_line(tmp_path, mistake, message):
    copy_splits(tmp_path, mistake)
    with pytest.raises((ValueError, FileNotFoundError), match=message) as error:
        hmdb51.getHMDB51(tmp_path, 1)
    assert "\n" not in str(error.value)


def remove_action(folder, action):
    for split in (1, 2, 3):
        (folder / f"{action}_test_split{split}.txt").unlink()


def add_action(folder, action, like="jump"):
    for split in (1, 2, 3):
        text = (folder / f"{like}_test_split{split}.txt").read_text().replace(f"_{like}_", f"_{action}_")
        (folder / f"{action}_test_split{split}.txt").write_text(text)


def seven_missing_two_extra(folder):
    for action in ("kiss", "pour", "run", "sit", "smile", "talk", "walk"):
        remove_action(folder, action)
    add_action(folder, "Kiss")  # a case-changed name is not the action
    add_action(folder, "zz")


@pytest.mark.parametrize("edit, message", [
    (lambda f: remove_action(f, "kiss"), r"names 50 actions, HMDB-51 has 51: no <action>_test_split<N>\.txt file "
                                         r"for kiss \(unpack test_train_splits\.rar again"),
    (lambda f: add_action(f, "jump_rope"), r"names 52 actions, HMDB-51 has 51: jump_rope is not an HMDB-51 action"),
    (seven_missing_two_extra,
     r"names 46 actions, HMDB-51 has 51: no .* file for kiss, pour, run, sit, smile and 2 more; Kiss, zz are not"),
])
def test_split_folder_must_name_the_51_actions(tmp_path, edit, message):
    folder = copy_splits(tmp_path, edit)
    with pytest.raises(ValueError, match=message) as error:
        hmdb51.getHMDB51(tmp_path, 2)
    assert "\n" not in str(error.value) and str(folder) in str(error.value)
    assert hmdb51.hmdb51_actions(shared(hmdb51.HMDB_SPLIT_DIR)) == list(hmdb51.HMDB_ACTIONS)


def test_no_split_folder_is_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"testTrainMulti_7030_splits.*--data-dir must hold"):
        hmdb51.getHMDB51(tmp_path, 1)


# ----------------------------------------------------------------------------------------------
# Dataset choice and validation groups

def test_dataset_detection(tmp_path):
    assert datasets.resolve_dataset(tmp_path) == "ucf101"  # neither: getUCF101 names what is missing
    (tmp_path / hmdb51.HMDB_SPLIT_DIR).mkdir()
    assert datasets.resolve_dataset(tmp_path) == "hmdb51" == datasets.resolve_dataset(tmp_path, "hmdb51")
    assert datasets.resolve_dataset(tmp_path, "ucf101") == "ucf101"
    (tmp_path / "ucfTrainTestlist").mkdir()
    with pytest.raises(ValueError, match="holds both .*pass --dataset ucf101 or hmdb51"):
        datasets.resolve_dataset(tmp_path)
    from actionrec import guards
    assert str(tmp_path / hmdb51.HMDB_VIDEO_DIR) in guards.dataset_inputs(str(tmp_path))


def test_film_and_group():
    assert hmdb51.hmdb51_film("x/brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi", "brush_hair") == "April_09"
    path = "hmdb51/climb/Kletter_climb_climb_f_cm_np1_ba_med_0.avi"  # the action's name inside the film's
    assert hmdb51.hmdb51_film(path, "climb") == "Kletter_climb"
    assert video_groups.video_group(path, "hmdb51") == __import__("zlib").crc32(b"Kletter_climb") % 25 + 1
    assert video_groups.video_group("UCF-101/Archery/v_Archery_g08_c01.avi") == 8


@pytest.mark.parametrize("split", [1, 2, 3])
def test_validation_films_never_straddle(hmdb_root, split):
    class_list, train, _ = hmdb51.getHMDB51(hmdb_root, split)
    groups = {video_groups.video_group(p, "hmdb51") for p in train[0]}
    assert groups == set(range(1, 26))  # every group has training videos
    kept, held = video_groups.split_by_groups(train[0], train[1], video_groups.parse_groups("8"), "hmdb51")
    assert 0 < len(held[0]) < len(train[0]) / 10 and len(kept[0]) + len(held[0]) == len(train[0])

    def films(paths):
        return {(Path(p).parent.name, hmdb51.hmdb51_film(p, Path(p).parent.name)) for p in paths}
    assert not films(kept[0]) & films(held[0])
    assert not {f for _, f in films(kept[0])} & {f for _, f in films(held[0])}  # not even across actions
    _, val_paths, _ = datasets.subset_videos(hmdb_root, split, "val", (8,))  # detected from the folder
    assert sorted(val_paths) == sorted(held[0])


def test_help_says_how_groups_are_formed():
    import train_3d
    text = " ".join(train_3d.get_args_parser().format_help().split())
    assert "--dataset {auto,ucf101,hmdb51}" in text and "HMDB-51: the source film" in text and "gNN" in text


# ----------------------------------------------------------------------------------------------
# A tiny synthetic set in HMDB-51's layout, through the scripts

@pytest.fixture(scope="module")
def synthetic_hmdb(tmp_path_factory):
    """make_synthetic_ucf101's videos renamed into HMDB-51's layout: hmdb51-hdf5/<action>/<film>_<action>_
    <tags>.hdf5 (a film per UCF group) and testTrainMulti_7030_splits/<action>_test_split1.txt (ids 1/2,
    and one unused id-0 video that is not even there)."""
    import make_synthetic_ucf101
    source = tmp_path_factory.mktemp("ucf")
    make_synthetic_ucf101.make_dataset(str(source), classes=3, train_per_class=4, test_per_class=2, frames=20,
                                       size=(32, 40), seed=0)
    root = tmp_path_factory.mktemp("hmdb_synthetic")
    class_list, train, test = split_lists.getUCF101(str(source), 1)
    (root / hmdb51.HMDB_SPLIT_DIR).mkdir()
    for label, name in enumerate(class_list):
        action = f"act_{name.lower()}"
        lines = []
        for subset_id, (paths, labels) in (("1", train), ("2", test)):
            for path in paths[labels == label]:
                film = f"Film(#{video_groups.video_group(path)})-x"
                stem = f"{film}_{action}_f_cm_np1_fr_med_{Path(path).stem[-1]}"
                target = root / hmdb51.HMDB_HDF5_DIR / action / f"{stem}.hdf5"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(Path(path).read_bytes())
                lines.append(f"{stem}.avi {subset_id} \n")
        lines.append(f"Unused_{action}_f_cm_np1_fr_med_0.avi 0 \n")
        (root / hmdb51.HMDB_SPLIT_DIR / f"{action}_test_split1.txt").write_text("".join(lines))
    for split in (2, 3):  # the other splits' files exist, as in the real folder
        for path in list((root / hmdb51.HMDB_SPLIT_DIR).glob("*_split1.txt")):
            (root / hmdb51.HMDB_SPLIT_DIR / path.name.replace("split1", f"split{split}")).write_bytes(path.read_bytes())
    return root


FAST = ["--image-size", "32", "--workers", "0", "--device", "cpu", "--seed", "3", "--epochs", "1", "--max-steps", "2"]


def test_synthetic_hmdb_single_frame_train_test_combine(synthetic_hmdb, tmp_path, capsys):
    import combine_results
    import test_single_frame
    import train_single_frame
    train_single_frame.main(train_single_frame.get_args_parser().parse_args(
        ["--data-dir", str(synthetic_hmdb), "--output-dir", str(tmp_path / "run"), "--arch", "resnet18",
         "--pretrained", "none", "--batch-size", "4"] + FAST))
    assert "dataset: hmdb51 (detected" in capsys.readouterr().out
    checkpoint = torch_load(tmp_path / "run" / "checkpoint.pth")
    assert checkpoint["args"]["dataset"] == "hmdb51"
    assert len(checkpoint["class_list"]) == 3 and list(checkpoint["class_list"]) == sorted(checkpoint["class_list"])
    test_single_frame.main(test_single_frame.get_args_parser().parse_args(
        ["--checkpoint", str(tmp_path / "run" / "checkpoint.pth"), "--predictions-dir", str(tmp_path / "pred"),
         "--output-dir", str(tmp_path / "test"), "--workers", "0", "--device", "cpu"]))
    combine_results.main(combine_results.get_args_parser().parse_args(
        ["--data-dir", str(synthetic_hmdb), "--single-frame", str(tmp_path / "pred"),
         "--output-dir", str(tmp_path / "report")]))
    import json
    report = json.loads((tmp_path / "report" / "results.json").read_text())
    assert report["dataset_name"] == "hmdb51" and report["videos"] == 6
    assert report["class_list"] == sorted(report["class_list"])


def test_synthetic_hmdb_3d_train_test_combine(synthetic_hmdb, tmp_path):
    import combine_results
    import test_3d
    import train_3d
    train_3d.main(train_3d.get_args_parser().parse_args(
        ["--data-dir", str(synthetic_hmdb), "--output-dir", str(tmp_path / "run"), "--depth", "10",
         "--kinetics-checkpoint", "none", "--batch-size", "2", "--clip-len", "8"] + FAST))
    assert torch_load(tmp_path / "run" / "checkpoint.pth")["args"]["dataset"] == "hmdb51"
    test_3d.main(test_3d.get_args_parser().parse_args(
        ["--checkpoint", str(tmp_path / "run" / "checkpoint.pth"), "--predictions-dir", str(tmp_path / "pred"),
         "--output-dir", str(tmp_path / "test"), "--workers", "0", "--device", "cpu", "--max-frames", "12"]))
    _, _, (paths, _) = hmdb51.getHMDB51(synthetic_hmdb, 1)
    from actionrec.evaluation import predictions as prediction_files
    assert all(Path(prediction_files.prediction_path(tmp_path / "pred", p)).is_file() for p in paths)
    combine_results.main(combine_results.get_args_parser().parse_args(
        ["--data-dir", str(synthetic_hmdb), "--3d", str(tmp_path / "pred"), "--output-dir", str(tmp_path / "report")]))
    import json
    report = json.loads((tmp_path / "report" / "results.json").read_text())
    assert report["dataset_name"] == "hmdb51" and "name" not in report["dataset"] and report["videos"] == 6
    # the report names the dataset; a 3D ResNet-10 follows no published recipe: no number beside it
    assert (tmp_path / "report" / "tables.md").read_text().startswith("# HMDB-51 results: split 1")
    assert report["published"] == {"3d": None}


def torch_load(path):
    import torch
    return torch.load(path, map_location="cpu", weights_only=True)
