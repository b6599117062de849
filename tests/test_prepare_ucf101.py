"""prepare_ucf101.py on the six real UCF-101 clips of ../shared/data (skipped when absent)."""
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import helperFunctions as hf
import prepare_ucf101

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
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)],
                          capture_output=True, text=True, timeout=300)


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
        assert hf.video_info(raw_out / f"{name}.hdf5") == (count, 240, 320, "raw"), name
    frames = hf.read_frames(raw_out / f"{SMALL[0]}.hdf5", np.arange(FRAME_COUNTS[SMALL[0]]))
    assert frames.dtype == np.uint8 and frames.shape == (79, 240, 320, 3)
    assert not list(raw_out.rglob("*.tmp-*"))


@pytest.mark.parametrize("name", SMALL)
def test_frames_are_rgb(samples, raw_out, name):
    capture = cv2.VideoCapture(str(samples / f"{name}.avi"))
    for _ in range(11):
        ok, bgr = capture.read()
        assert ok
    capture.release()
    stored = hf.read_frames(raw_out / f"{name}.hdf5", [10])[0]
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
        assert hf.video_info(out / f"{name}.hdf5") == (count, 240, 320, "jpeg")
        jpeg = hf.read_frames(out / f"{name}.hdf5", np.arange(count))
        raw = hf.read_frames(raw_out / f"{name}.hdf5", np.arange(count))
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
    assert hf.video_info(out / "PushUps/v_PushUps_g02_c03.hdf5")[0] == 79


def test_decode_video_rejects_truncated_and_non_videos(samples, tmp_path):
    data = (samples / "Archery/v_Archery_g01_c01.avi").read_bytes()
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(data[:int(0.4 * len(data))])
    with pytest.raises(prepare_ucf101.DecodeError, match="of the 131 frames"):
        prepare_ucf101.decode_video(truncated)
    text = tmp_path / "notes.avi"
    text.write_text("not a video\n")
    with pytest.raises(prepare_ucf101.DecodeError, match="cannot be opened"):
        prepare_ucf101.decode_video(text)


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
    assert hf.video_info(out / f"{name}.hdf5") == (79, 240, 320, "raw")


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
    result = run("--videos", tmp_path, "--out", tmp_path / "out")
    assert result.returncode != 0 and "no videos found" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _crash_on_pushups(task):
    if "PushUps" in str(task[0]):
        os.kill(os.getpid(), signal.SIGKILL)  # a decoder crash or the out-of-memory killer
    return _convert_video(task)


_convert_video = prepare_ucf101.convert_video


def test_a_dead_worker_is_one_line_and_finished_files_stay(samples, tmp_path, monkeypatch, capsys):
    videos = copy_tree(samples, tmp_path / "videos", SMALL)
    out = tmp_path / "out"
    monkeypatch.setattr(prepare_ucf101, "convert_video", _crash_on_pushups)  # the workers fork after this
    args = prepare_ucf101.get_args_parser().parse_args(["--videos", str(videos), "--out", str(out),
                                                        "--workers", "2"])
    with pytest.raises(SystemExit) as exit_info:
        prepare_ucf101.main(args)
    assert str(exit_info.value.code).startswith("prepare_ucf101.py: error: a worker process died")
    assert not list(out.rglob("*.tmp-*"))  # no half-written file left behind
    monkeypatch.setattr(prepare_ucf101, "convert_video", _convert_video)
    capsys.readouterr()
    prepare_ucf101.main(args)  # run again without the crash: it resumes and finishes
    assert "failed 0" in capsys.readouterr().out
    assert sorted(p.relative_to(out).with_suffix("").as_posix() for p in out.rglob("*.hdf5")) == sorted(SMALL)
