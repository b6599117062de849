"""prepare_ucf101.py on the six real UCF-101 clips of ../shared/data (skipped when absent)."""
import os
import shlex
import shutil
import signal
import sys
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

import prepare_ucf101
from actionrec.data import hmdb51, video_conversion, video_files
from actionrec.engine import runner
from helpers import decode_from_start, run_group

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "prepare_ucf101.py"
SAMPLES = REPO_ROOT / ".." / "shared" / "data" / "ucf101-samples"
FRAME_COUNTS = {  # decoded frame counts, FACTS.md
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01": 164,
    "BaseballPitch/v_BaseballPitch_g01_c01": 107,
    "Basketball/v_Basketball_g01_c01": 141,
    "Archery/v_Archery_g01_c01": 131,
    "PlayingGuitar/v_PlayingGuitar_g16_c02": 250,
    "PushUps/v_PushUps_g02_c03": 79,
}
SMALL = ["PushUps/v_PushUps_g02_c03", "BaseballPitch/v_BaseballPitch_g01_c01"]  # the shortest two


@pytest.fixture(scope="module")
def samples():
    if not all((SAMPLES / f"{name}.avi").is_file() for name in FRAME_COUNTS):
        pytest.skip(f"the UCF-101 sample clips are not in {SAMPLES}")
    return SAMPLES


def run(*args):
    return run_group([sys.executable, str(SCRIPT), *map(str, args)],
                          timeout=300)


def copy_tree(samples, dest, names):
    """A --videos tree holding copies of the given sample clips."""
    for name in names:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(samples / f"{name}.avi", dest / f"{name}.avi")
    return dest


@pytest.fixture(scope="module")
def raw_out(samples, tmp_path_factory):
    """All six clips converted once, raw storage."""
    out = tmp_path_factory.mktemp("raw") / "UCF-101-hdf5"
    result = run("--videos", samples, "--out", out, "--workers", 2)
    assert result.returncode == 0, result.stderr
    assert "converted 6, skipped 0" in result.stdout and "failed 0" in result.stdout
    return out


def test_import_runs_nothing():
    assert callable(prepare_ucf101.main) and callable(prepare_ucf101.get_args_parser)


def test_every_frame_of_every_clip(raw_out):
    assert sorted(p.relative_to(raw_out).with_suffix("").as_posix()
                  for p in raw_out.rglob("*.hdf5")) == sorted(FRAME_COUNTS)
    for name, count in FRAME_COUNTS.items():
        assert video_files.video_info(raw_out / f"{name}.hdf5") == (count, 240, 320, "raw"), name
    frames = video_files.read_frames(raw_out / f"{SMALL[0]}.hdf5", np.arange(FRAME_COUNTS[SMALL[0]]))
    assert frames.dtype == np.uint8 and frames.shape == (79, 240, 320, 3)
    assert not list(raw_out.rglob("*.tmp-*"))


@pytest.mark.parametrize("name", SMALL)
def test_frames_are_rgb(samples, raw_out, name):
    capture = cv2.VideoCapture(str(samples / f"{name}.avi"))
    for _ in range(11):
        ok, bgr = capture.read()
        assert ok
    capture.release()
    stored = video_files.read_frames(raw_out / f"{name}.hdf5", [10])[0]
    np.testing.assert_array_equal(stored, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    assert not np.array_equal(stored, bgr)  # the clip has colour: the order is really checked


def test_second_run_skips_everything(samples, raw_out):
    mtimes = {p: p.stat().st_mtime_ns for p in raw_out.rglob("*.hdf5")}
    result = run("--videos", samples, "--out", raw_out, "--workers", 2)
    assert result.returncode == 0, result.stderr
    assert "converted 0, skipped 6" in result.stdout
    assert {p: p.stat().st_mtime_ns for p in raw_out.rglob("*.hdf5")} == mtimes


def test_jpeg_storage_is_close_and_small(samples, raw_out, tmp_path):
    videos = copy_tree(samples, tmp_path / "videos", SMALL)
    out = tmp_path / "jpeg"
    result = run("--videos", videos, "--out", out, "--workers", 2, "--storage", "jpeg", "--quality", 90)
    assert result.returncode == 0, result.stderr
    for name in SMALL:
        count = FRAME_COUNTS[name]
        assert video_files.video_info(out / f"{name}.hdf5") == (count, 240, 320, "jpeg")
        jpeg = video_files.read_frames(out / f"{name}.hdf5", np.arange(count))
        raw = video_files.read_frames(raw_out / f"{name}.hdf5", np.arange(count))
        assert jpeg.shape == raw.shape and jpeg.dtype == np.uint8
        assert np.abs(jpeg.astype(np.int16) - raw).mean() < 3.0
        assert (out / f"{name}.hdf5").stat().st_size < (raw_out / f"{name}.hdf5").stat().st_size / 5


def test_truncated_video_is_reported_and_others_convert(samples, tmp_path):
    videos = copy_tree(samples, tmp_path / "videos", ["PushUps/v_PushUps_g02_c03"])
    archery = samples / "Archery/v_Archery_g01_c01.avi"
    data = archery.read_bytes()
    (videos / "Archery").mkdir()
    (videos / "Archery/v_Archery_g01_c01.avi").write_bytes(data[:int(0.4 * len(data))])
    out = tmp_path / "out"
    result = run("--videos", videos, "--out", out, "--workers", 2)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "Archery/v_Archery_g01_c01.avi" in result.stderr and "131" in result.stderr
    assert "converted 1, skipped 0 (already done), failed 1" in result.stdout
    assert not (out / "Archery/v_Archery_g01_c01.hdf5").exists()
    assert not list(out.rglob("*.tmp-*"))
    assert video_files.video_info(out / "PushUps/v_PushUps_g02_c03.hdf5")[0] == 79


def test_decode_video_rejects_truncated_and_non_videos(samples, tmp_path):
    data = (samples / "Archery/v_Archery_g01_c01.avi").read_bytes()
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(data[:int(0.4 * len(data))])
    with pytest.raises(video_conversion.DecodeError, match="of the 131 frames"):
        video_conversion.decode_video(truncated)
    text = tmp_path / "notes.avi"
    text.write_text("not a video\n")
    with pytest.raises(video_conversion.DecodeError, match="cannot be opened"):
        video_conversion.decode_video(text)


def test_broken_output_is_redone_and_stale_temporaries_removed(samples, tmp_path):
    name = SMALL[0]
    videos = copy_tree(samples, tmp_path / "videos", [name])
    out = tmp_path / "out"
    (out / name).parent.mkdir(parents=True)
    (out / f"{name}.hdf5").write_bytes(b"half a file")  # e.g. a conversion made by another tool
    stale = out / f"{name}.hdf5.tmp-12345"
    stale.write_bytes(b"left by a killed job")
    result = run("--videos", videos, "--out", out, "--workers", 0)
    assert result.returncode == 0, result.stderr
    assert "converted 1, skipped 0" in result.stdout and "removed 1 stale" in result.stdout
    assert not stale.exists()
    assert video_files.video_info(out / f"{name}.hdf5") == (79, 240, 320, "raw")


def test_list_converts_only_listed_videos(samples, tmp_path):
    videos = copy_tree(samples, tmp_path / "videos", SMALL)
    split = tmp_path / "testlist.txt"
    split.write_bytes(b"PushUps/v_PushUps_g02_c03.avi 72\r\n")  # train-list format, CRLF
    out = tmp_path / "out"
    result = run("--videos", videos, "--out", out, "--workers", 0, "--list", split)
    assert result.returncode == 0, result.stderr
    assert [p.relative_to(out).as_posix() for p in out.rglob("*.hdf5")] == ["PushUps/v_PushUps_g02_c03.hdf5"]


@pytest.mark.parametrize("args, message", [
    (["--videos", "/no/such/UCF-101", "--out", "OUT"], "--videos /no/such/UCF-101 is not a directory"),
    (["--videos", ".", "--out", "OUT", "--quality", "0"], "--quality must be in 1..100"),
])
def test_user_errors_are_one_line(tmp_path, args, message):
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    result = run(*args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert not (tmp_path / "out").exists()


def test_empty_videos_folder(tmp_path):
    (tmp_path / "videos").mkdir()
    result = run("--videos", tmp_path / "videos", "--out", tmp_path / "out")
    assert result.returncode != 0 and "no videos found" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _crash_on_pushups(task):
    if "PushUps" in str(task[0]):
        os.kill(os.getpid(), signal.SIGKILL)  # a decoder crash or the out-of-memory killer
    return _convert_video(task)


_convert_video = video_conversion.convert_video


def test_a_dead_worker_is_one_line_and_finished_files_stay(samples, tmp_path, monkeypatch, capsys):
    videos = copy_tree(samples, tmp_path / "videos", SMALL)
    out = tmp_path / "out"
    monkeypatch.setattr(video_conversion, "convert_video", _crash_on_pushups)  # the workers fork after this
    argv = ["--videos", str(videos), "--out", str(out), "--workers", "2"]
    with pytest.raises(SystemExit) as exit_info:
        runner.run_main(prepare_ucf101.main, prepare_ucf101.get_args_parser(), argv)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.startswith("prepare_ucf101.py: error: a worker process died")
    assert not list(out.rglob("*.tmp-*"))  # no half-written file left behind
    monkeypatch.setattr(video_conversion, "convert_video", _convert_video)
    prepare_ucf101.main(prepare_ucf101.get_args_parser().parse_args(argv))  # again, without the crash: it resumes
    assert "failed 0" in capsys.readouterr().out
    assert sorted(p.relative_to(out).with_suffix("").as_posix() for p in out.rglob("*.hdf5")) == sorted(SMALL)


# ----------------------------------------------------------------------------------------------
# Other video suffixes and --segment-seconds. Generated videos (always run), then the real clip.

GUITAR = "PlayingGuitar/v_PlayingGuitar_g16_c02"  # 250 frames at 25 fps


def write_video(path, frames=23, fps=10, fourcc="mp4v", size=(32, 24)):
    """A small real video file: frame i is a gradient shifted by i (every frame differs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    ramp = np.add.outer(np.arange(size[1]), np.arange(size[0])).astype(np.uint8)
    for i in range(frames):
        writer.write(np.stack([ramp + 7 * i, ramp * 2, 255 - ramp - 5 * i], axis=-1).astype(np.uint8))
    writer.release()
    return path


def convert(videos, out, *extra, workers=0, through_runner=False):
    """prepare_ucf101.main in this process (through runner.run_main, as the script runs it: errors become
    one line and an exit status)."""
    argv = ["--videos", str(videos), "--out", str(out), "--workers", str(workers), *map(str, extra)]
    if through_runner:
        runner.run_main(prepare_ucf101.main, prepare_ucf101.get_args_parser(), argv)
    else:
        prepare_ucf101.main(prepare_ucf101.get_args_parser().parse_args(argv))


def pieces_of(out, name):
    """[(frames, attrs)] of the pieces `<name>-segNNN.hdf5` under out, in order."""
    paths = sorted((out / name).parent.glob(f"{Path(name).name}-seg*.hdf5"))
    assert [p.name for p in paths] == [f"{Path(name).name}-seg{i:03d}.hdf5" for i in range(len(paths))]
    result = []
    for path in paths:
        frames = video_files.read_frames(path, np.arange(video_files.video_info(path)[0]))
        with h5py.File(path, "r") as f:
            result.append((frames, dict(f.attrs)))
    return result


@pytest.fixture
def own_videos(tmp_path):
    """A dataset of one's own: .mp4 and .mkv videos (10 fps, 23 frames), a hidden copy, a text file."""
    videos = tmp_path / "videos"
    write_video(videos / "Dog" / "walk.mp4")
    write_video(videos / "Cat" / "nap.mkv", fourcc="XVID", frames=31)
    shutil.copy(videos / "Dog" / "walk.mp4", videos / "Dog" / ".walk.mp4")  # e.g. macOS metadata
    (videos / "Dog" / "notes.txt").write_text("not a video\n")
    return videos


def test_other_video_suffixes_are_converted(own_videos, tmp_path, capsys):
    out = tmp_path / "out"
    convert(own_videos, out)
    assert "converted 2, skipped 0 (already done), failed 0" in capsys.readouterr().out
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == \
        ["Cat/nap.hdf5", "Dog/walk.hdf5"]
    assert video_files.video_info(out / "Dog/walk.hdf5") == (23, 24, 32, "raw")
    assert video_files.video_info(out / "Cat/nap.hdf5") == (31, 24, 32, "raw")


def test_a_list_entry_finds_the_video_whatever_its_suffix(own_videos, tmp_path):
    split = tmp_path / "trainlist01.txt"
    split.write_bytes(b"Dog/walk.avi 2\r\n")  # make_split_lists.py names every video .avi
    out = tmp_path / "out"
    convert(own_videos, out, "--list", split)
    assert [p.relative_to(out).as_posix() for p in out.rglob("*.hdf5")] == ["Dog/walk.hdf5"]


def test_two_videos_of_the_same_stem_are_one_line(own_videos, tmp_path):
    write_video(own_videos / "Dog" / "walk.avi", fourcc="MJPG")
    result = run("--videos", own_videos, "--out", tmp_path / "out")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Dog/walk.avi and Dog/walk.mp4 would both be converted to Dog/walk.hdf5" in result.stderr
    assert not list((tmp_path / "out").rglob("*.hdf5"))


def test_pieces_hold_the_frames_of_the_whole_conversion(own_videos, tmp_path, capsys):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    convert(own_videos, whole)
    convert(own_videos, cut, "--segment-seconds", 1)  # 10 frames a piece at 10 fps
    assert "converted 2 (5 pieces), skipped 0 (already done, 0 pieces), failed 0" in capsys.readouterr().out
    for name, lengths in (("Dog/walk", [10, 13]), ("Cat/nap", [10, 10, 11])):  # 23 = 10 + 10 + 3 -> 10 + 13
        reference = video_files.read_frames(whole / f"{name}.hdf5", np.arange(sum(lengths)))
        pieces = pieces_of(cut, name)
        assert [len(frames) for frames, _ in pieces] == lengths, name
        first = 0
        for index, (frames, attrs) in enumerate(pieces):
            np.testing.assert_array_equal(frames, reference[first:first + len(frames)])
            assert attrs["first_frame"] == first and attrs["segment_index"] == index
            assert attrs["segment_count"] == len(lengths) and attrs["segment_frames"] == 10
            assert attrs["fps"] == pytest.approx(10) and attrs["segment_seconds"] == 1.0
            assert attrs["source"] == f"{name}{'.mp4' if name.startswith('Dog') else '.mkv'}"
            first += len(frames)
    assert not (cut / "Dog/walk.hdf5").exists() and not list(cut.rglob("*.tmp-*"))


def test_pieces_are_resumed_and_recut_for_another_length(own_videos, tmp_path, capsys):
    out = tmp_path / "out"
    convert(own_videos, out, "--segment-seconds", 0.5)  # 5 frames: walk 23 -> 4 x 5 + 3, nap 31 -> 5 x 5 + 6
    assert "converted 2 (11 pieces)" in capsys.readouterr().out
    assert [len(f) for f, _ in pieces_of(out, "Dog/walk")] == [5, 5, 5, 5, 3]  # 3 >= 2.5: its own piece
    assert [len(f) for f, _ in pieces_of(out, "Cat/nap")] == [5, 5, 5, 5, 5, 6]  # 1 < 2.5 joins
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.hdf5")}
    convert(own_videos, out, "--segment-seconds", 0.5)
    assert "converted 0 (0 pieces), skipped 2 (already done, 11 pieces)" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.hdf5")} == mtimes
    (out / "Dog/walk-seg002.hdf5").unlink()  # an incomplete video is cut again
    convert(own_videos, out, "--segment-seconds", 0.5)
    assert "converted 1 (5 pieces), skipped 1 (already done, 6 pieces)" in capsys.readouterr().out
    convert(own_videos, out, "--segment-seconds", 1)  # longer pieces: the extra old pieces go
    assert "converted 2 (5 pieces)" in capsys.readouterr().out
    assert [len(f) for f, _ in pieces_of(out, "Dog/walk")] == [10, 13]
    assert [len(f) for f, _ in pieces_of(out, "Cat/nap")] == [10, 10, 11]


def test_unknown_frame_rate_fails_that_video_only(own_videos, tmp_path, monkeypatch, capsys):
    calls, real = [], video_conversion.container_fps

    def no_fps_for_the_first(capture):  # videos are converted in sorted order: Cat/nap.mkv first
        calls.append(1)
        return None if len(calls) == 1 else real(capture)
    monkeypatch.setattr(video_conversion, "container_fps", no_fps_for_the_first)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        convert(own_videos, out, "--segment-seconds", 1)
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert "converted 1 (2 pieces), skipped 0 (already done, 0 pieces), failed 1" in captured.out
    assert "Cat/nap.mkv: the container declares no frame rate" in captured.err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == \
        ["Dog/walk-seg000.hdf5", "Dog/walk-seg001.hdf5"]


_write_video_hdf5 = video_files.write_video_hdf5


def _killed_at_second_piece_of_walk(path, frames, **kwargs):
    if "walk-seg001" in str(path):
        os.kill(os.getpid(), signal.SIGKILL)
    return _write_video_hdf5(path, frames, **kwargs)


def test_a_kill_while_cutting_leaves_no_piece_and_no_temporary(own_videos, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    monkeypatch.setattr(video_files, "write_video_hdf5", _killed_at_second_piece_of_walk)  # before the fork
    with pytest.raises(SystemExit) as exit_info:
        convert(own_videos, out, "--segment-seconds", 1, workers=2, through_runner=True)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.startswith("prepare_ucf101.py: error: a worker process died")
    assert not list(out.rglob("*.tmp-*")) and not list(out.rglob("walk-seg*"))  # seg000 was written, unnamed
    monkeypatch.setattr(video_files, "write_video_hdf5", _write_video_hdf5)
    capsys.readouterr()
    convert(own_videos, out, "--segment-seconds", 1, workers=2)
    assert "failed 0" in capsys.readouterr().out
    assert [len(f) for f, _ in pieces_of(out, "Dog/walk")] == [10, 13]


@pytest.mark.parametrize("seconds", ["0", "-2", "nan", "inf"])
def test_segment_seconds_must_be_positive(own_videos, tmp_path, seconds):
    result = run("--videos", own_videos, "--out", tmp_path / "out", "--segment-seconds", seconds)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "--segment-seconds must be a positive" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("seconds, lengths", [
    (3, [75, 75, 100]),   # 250 = 3 x 75 + 25; 25 < 75 / 2 joins the piece before
    (4, [100, 100, 50]),  # 50 is half a segment, not shorter: a piece of its own
    (8, [250]),           # 200 + 50, 50 < 100 joins
    (20, [250]),          # shorter than one segment: one piece
])
def test_real_clip_is_cut_as_documented(samples, raw_out, tmp_path, capsys, seconds, lengths):
    capture = cv2.VideoCapture(str(samples / f"{GUITAR}.avi"))
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    assert fps == 25.0
    videos = copy_tree(samples, tmp_path / "videos", [GUITAR])
    out = tmp_path / "out"
    convert(videos, out, "--segment-seconds", seconds)
    assert f"converted 1 ({len(lengths)} pieces)" in capsys.readouterr().out
    reference = video_files.read_frames(raw_out / f"{GUITAR}.hdf5", np.arange(250))
    pieces = pieces_of(out, GUITAR)
    assert [len(frames) for frames, _ in pieces] == lengths
    starts = np.cumsum([0] + lengths[:-1])
    for (frames, attrs), start in zip(pieces, starts):
        assert attrs["first_frame"] == start and attrs["segment_frames"] == round(seconds * fps)
        np.testing.assert_array_equal(frames, reference[start:start + len(frames)])


# ----------------------------------------------------------------------------------------------
# HMDB-51: <data-dir>/hmdb51/<action>/<video>.avi -> <data-dir>/hmdb51-hdf5/<action>/<video>.hdf5. The four
# real clips of ../shared/data/hmdb51 (skipped when absent), then tiny generated ones (always run).

HMDB_SHARED = REPO_ROOT / ".." / "shared" / "data" / "hmdb51"
HMDB_CLIPS = {  # decoded / header frames and width, ../shared/data/SOURCES.md
    "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0": (408, 409, 320),
    "climb_stairs/Increase_stride_length_by_running_stairs__working_step_over_action_speed_development_"
    "climb_stairs_f_cm_np1_le_med_1": (74, 75, 320),
    "wave/RATRACE_wave_f_nm_np1_fr_goo_37": (72, 73, 560),
    "wave/TrumanShow_wave_f_nm_np1_fr_med_26": (48, 49, 432),
}
# Names as HMDB-51's split files spell them (every special character of theirs), each of its action.
SPECIAL_NAMES = {
    "brush_hair": "Brushing_Her_Hair__[_NEW_AUDIO_]_UPDATED!!!!_brush_hair_h_cm_np1_fr_goo_0",
    "wave": "Jay_Leno_@_Dave_(#2)_&_Co+;~-_wave_u_cm_np1_fr_med_3",
}


@pytest.fixture(scope="module")
def hmdb_converted(tmp_path_factory):
    """A --data-dir with the real split files (a link) and the four real clips in hmdb51/, converted by
    `prepare_ucf101.py --data-dir` alone (the dataset detected); (data dir, the run's stdout)."""
    if not all((HMDB_SHARED / "videos" / f"{name}.avi").is_file() for name in HMDB_CLIPS):
        pytest.skip(f"the HMDB-51 clips are not in {HMDB_SHARED / 'videos'}")
    root = tmp_path_factory.mktemp("hmdb")
    (root / hmdb51.HMDB_SPLIT_DIR).symlink_to((HMDB_SHARED / hmdb51.HMDB_SPLIT_DIR).resolve(), target_is_directory=True)
    for name in HMDB_CLIPS:
        (root / hmdb51.HMDB_VIDEO_DIR / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(HMDB_SHARED / "videos" / f"{name}.avi", root / hmdb51.HMDB_VIDEO_DIR / f"{name}.avi")
    result = run("--data-dir", root, "--workers", 2)
    assert result.returncode == 0, result.stderr
    return root, result.stdout


def test_hmdb51_real_clips_convert_from_the_data_dir(hmdb_converted):
    root, stdout = hmdb_converted
    assert (f"dataset: hmdb51 (detected: --data-dir holds {hmdb51.HMDB_SPLIT_DIR}/; --dataset chooses)" in stdout)
    assert f"4 videos from {root / 'hmdb51'} -> {root / 'hmdb51-hdf5'}" in stdout
    assert "converted 4, skipped 0 (already done), failed 0" in stdout
    out = root / hmdb51.HMDB_HDF5_DIR
    assert sorted(p.relative_to(out).with_suffix("").as_posix() for p in out.rglob("*.hdf5")) == sorted(HMDB_CLIPS)
    for name, (frames, declared, width) in HMDB_CLIPS.items():
        # one frame fewer than the header declares is every frame there is; widths as they are
        assert video_files.video_info(out / f"{name}.hdf5") == (frames, 240, width, "raw"), name
        assert frames == declared - 1
    name = "wave/TrumanShow_wave_f_nm_np1_fr_med_26"  # 432 wide
    np.testing.assert_array_equal(video_files.read_frames(out / f"{name}.hdf5", np.arange(48)),
                                  decode_from_start(root / hmdb51.HMDB_VIDEO_DIR / f"{name}.avi"))


@pytest.mark.parametrize("split", [1, 2, 3])
def test_hmdb51_converted_clips_are_what_getHMDB51_reads(hmdb_converted, split):
    root, _ = hmdb_converted
    _, (train, _), (test, _) = hmdb51.getHMDB51(root, split, storage="hdf5")
    converted = [Path(p) for p in np.concatenate([train, test]) if Path(p).is_file()]
    assert sorted(p.relative_to(root / hmdb51.HMDB_HDF5_DIR).with_suffix("").as_posix() for p in converted) == \
        sorted(HMDB_CLIPS)  # every real clip is used in every split (SOURCES.md: ids 1 or 2)


def test_hmdb51_second_run_skips_and_data_dir_with_both_datasets_is_one_line(hmdb_converted, tmp_path):
    root, _ = hmdb_converted
    result = run("--data-dir", root, "--workers", 0, "--dataset", "hmdb51")
    assert result.returncode == 0, result.stderr
    assert "dataset: hmdb51 (--dataset)" in result.stdout and "converted 0, skipped 4" in result.stdout
    both = tmp_path / "both"
    (both / "ucfTrainTestlist").mkdir(parents=True)
    (both / hmdb51.HMDB_SPLIT_DIR).symlink_to(root / hmdb51.HMDB_SPLIT_DIR)
    result = run("--data-dir", both)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"prepare_ucf101.py: error: --data-dir {both} holds both ucfTrainTestlist/ and "
                                     f"{hmdb51.HMDB_SPLIT_DIR}/: pass --dataset ucf101 or hmdb51")


def hmdb_layout(root, width=56):
    """root/hmdb51/<action>/<video>.avi: generated XviD clips under HMDB-51's special-character names,
    `width` wide (not 320)."""
    for action, stem in SPECIAL_NAMES.items():
        write_video(root / hmdb51.HMDB_VIDEO_DIR / action / f"{stem}.avi", frames=12, fps=30, fourcc="XVID",
                    size=(width, 24))
    return root


def test_hmdb51_synthetic_layout_names_intact_and_detected_by_its_folders(tmp_path, capsys):
    videos = hmdb_layout(tmp_path) / hmdb51.HMDB_VIDEO_DIR
    out = tmp_path / "elsewhere"
    convert(videos, out)  # --videos and --out: no split folder, the action folders say HMDB-51
    printed = capsys.readouterr().out
    assert f"dataset: hmdb51 (detected: the 2 class folders of {videos} are HMDB-51 actions" in printed
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == \
        sorted(f"{action}/{stem}.hdf5" for action, stem in SPECIAL_NAMES.items())
    for action, stem in SPECIAL_NAMES.items():
        assert video_files.video_info(out / action / f"{stem}.hdf5") == (12, 24, 56, "raw")
    own = tmp_path / "own"
    write_video(own / "Dog" / "walk.avi", fourcc="XVID")
    convert(own, tmp_path / "own-out")
    assert "dataset: ucf101 (detected: no HMDB-51 split or action folder" in capsys.readouterr().out


def test_hmdb51_synthetic_data_dir_round_trip(tmp_path, capsys):
    """--data-dir with split files of one's own action names: converted where getHMDB51 reads."""
    root = tmp_path / "data"
    for action in ("act_a", "act_b"):
        write_video(root / hmdb51.HMDB_VIDEO_DIR / action / f"F(1)!_{action}_u_0.avi", frames=9, fourcc="XVID",
                    size=(40, 24))
        write_video(root / hmdb51.HMDB_VIDEO_DIR / action / f"G[2]@_{action}_u_0.avi", frames=9, fourcc="XVID",
                    size=(40, 24))
        (root / hmdb51.HMDB_SPLIT_DIR).mkdir(parents=True, exist_ok=True)
        for split in (1, 2, 3):
            (root / hmdb51.HMDB_SPLIT_DIR / f"{action}_test_split{split}.txt").write_text(
                f"F(1)!_{action}_u_0.avi 1 \nG[2]@_{action}_u_0.avi 2 \n")
    args = prepare_ucf101.get_args_parser().parse_args(["--data-dir", str(root), "--workers", "0"])
    prepare_ucf101.main(args)
    assert "dataset: hmdb51 (detected: --data-dir holds testTrainMulti_7030_splits/" in capsys.readouterr().out
    classes, (train, _), (test, _) = hmdb51.getHMDB51(root, 1, storage="hdf5")
    assert list(classes) == ["act_a", "act_b"]
    assert all(Path(p).is_file() and video_files.video_info(p) == (9, 24, 40, "raw") for p in [*train, *test])


def test_hmdb51_folders_that_are_not_actions_are_named(tmp_path, capsys):
    videos = hmdb_layout(tmp_path) / hmdb51.HMDB_VIDEO_DIR
    write_video(videos / "Waving" / "x_Waving_0.avi", fourcc="XVID")
    convert(videos, tmp_path / "out", "--dataset", "hmdb51")
    captured = capsys.readouterr()
    assert "dataset: hmdb51 (--dataset)" in captured.out and "converted 3" in captured.out
    assert captured.err.strip() == ("prepare_ucf101.py: warning: 1 of the 3 class folders are not HMDB-51 actions "
                                    "(converted all the same; getHMDB51 reads only <action>/ folders): Waving")


@pytest.mark.parametrize("args, message", [
    ([], "give --data-dir (the videos are read from its UCF-101/ or hmdb51/ folder), or --videos and --out"),
    (["--videos", "V"], "give --data-dir"),
    (["--data-dir", "D", "--dataset", "hmdb51"], "D/hmdb51 is not a directory (expected hmdb51/<action>/<video>.avi: "
                                                 "hmdb51_org.rar and its per-action .rar files unpacked)"),
    (["--data-dir", "D"], "D/UCF-101 is not a directory (expected UCF-101/<Class>/<video>.avi)"),
])
def test_dataset_usage_errors_are_one_line(tmp_path, args, message):
    (tmp_path / "D").mkdir()
    args = [str(tmp_path / a) if a in ("D", "V") else a for a in args]
    result = run(*args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert message.replace("D/", f"{tmp_path}/D/") in result.stderr


def test_help_says_how_the_dataset_is_chosen():
    text = " ".join(prepare_ucf101.get_args_parser().format_help().split())
    assert "--dataset {auto,ucf101,hmdb51}" in text and "--data-dir DIR" in text
    for words in ("the one whose split folder --data-dir holds (ucfTrainTestlist/ or testTrainMulti_7030_splits/)",
                  "else whose video folder it holds (UCF-101/ or hmdb51/)",
                  "else hmdb51 when every class folder of the videos is one of HMDB-51's 51 actions",
                  "the choice is printed", "DIR/hmdb51/ into DIR/hmdb51-hdf5/"):
        assert words in text


def test_readme_conversion_commands_parse():
    """Every prepare_ucf101.py command of README.md parses with the script's parser (DATA_DIR as written)."""
    commands = [line.split("#")[0] for line in (REPO_ROOT / "README.md").read_text().splitlines()
                if line.startswith("python prepare_ucf101.py")]
    assert any("--data-dir" in c and "--dataset hmdb51" in c for c in commands)
    for command in commands:
        args = prepare_ucf101.get_args_parser().parse_args(shlex.split(command)[2:])
        assert args.data_dir is not None or (args.videos and args.out), command
