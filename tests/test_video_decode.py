"""video_decode.py: frame counts, frame-accurate reads, truncated and broken files.

Files written here with cv2.VideoWriter need no data; the six real UCF-101 clips of
../shared/data are used when present (skipped when absent).
"""
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from actionrec.data import video_decode
from actionrec.data.video_decode import VideoDecodeError, VideoReader, probe
from helpers import decode_from_start

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES = REPO_ROOT / ".." / "shared" / "data" / "ucf101-samples"
FRAME_COUNTS = {  # decoded frame counts, FACTS.md
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01": 164,
    "BaseballPitch/v_BaseballPitch_g01_c01": 107,
    "Basketball/v_Basketball_g01_c01": 141,
    "Archery/v_Archery_g01_c01": 131,
    "PlayingGuitar/v_PlayingGuitar_g16_c02": 250,
    "PushUps/v_PushUps_g02_c03": 79,
}
# One-keyframe (ApplyEyeMakeup has B-frames too) and 12-frame-GOP clips.
REAL = ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01", "Archery/v_Archery_g01_c01", "PushUps/v_PushUps_g02_c03"]


def write_video(path, fourcc, frames=96, size=(160, 120)):
    """A video whose frames all differ (a moving number on a changing background); None if the
    codec is not available to this OpenCV."""
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), 25, size)
    if not writer.isOpened():
        return None
    for i in range(frames):
        image = np.full((size[1], size[0], 3), (3 * i % 256, 100, 255 - 2 * i % 256), np.uint8)
        cv2.putText(image, str(i), (5 + i % 40, 80), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
        writer.write(image)
    writer.release()
    return path


def truncate_copy(source, target, fraction=0.15):
    data = Path(source).read_bytes()
    Path(target).write_bytes(data[:int(len(data) * fraction)])
    return target


def index_sets(frames, rng):
    """Sorted, unsorted, repeated, spread (several keyframes apart) index sets, the last frame."""
    start = int(rng.integers(frames - 16 + 1))
    return [
        list(range(start, start + 16)),
        list(range(frames - 16, frames)),
        [frames - 1],
        [0],
        rng.permutation(frames)[:12].tolist(),
        [5, 3, 5, 9, 3, frames - 1, 0],
        sorted(rng.choice(frames, 5, replace=False).tolist()),
        [int((k + 0.5) * frames / 3) for k in range(3)],  # TSN segment centres
    ]


class CountingCapture:
    """Delegates to a cv2.VideoCapture, counting grab() and set() calls."""

    def __init__(self, capture):
        self.capture, self.grabs, self.seeks = capture, 0, 0

    def grab(self):
        self.grabs += 1
        return self.capture.grab()

    def set(self, prop, value):
        self.seeks += 1
        return self.capture.set(prop, value)

    def __getattr__(self, name):
        return getattr(self.capture, name)


@pytest.fixture(scope="module")
def avi(tmp_path_factory):
    path = write_video(tmp_path_factory.mktemp("videos") / "moving.avi", "FMP4")
    if path is None:
        pytest.skip("this OpenCV cannot write MPEG-4 Part 2 (FMP4) .avi files")
    return path


@pytest.fixture(scope="module")
def samples():
    if not all((SAMPLES / f"{name}.avi").is_file() for name in FRAME_COUNTS):
        pytest.skip(f"the UCF-101 sample clips are not in {SAMPLES}")
    return SAMPLES


# ----------------------------------------------------------------------------------------------
# Files written here

def test_probe_and_reader_attributes(avi):
    assert probe(avi) == (96, 120, 160, 25.0)
    with VideoReader(avi) as reader:
        assert (reader.frames, reader.height, reader.width, reader.fps) == (96, 120, 160, 25.0)
        assert reader.path == os.fspath(avi)


def test_reads_equal_a_decode_from_the_start(avi):
    reference = decode_from_start(avi)
    assert len(reference) == 96 and len(video_decode._packet_index(avi)[1]) > 2  # several keyframes
    rng = np.random.default_rng(0)
    with VideoReader(avi) as reader:  # one reader for all sets: every kind of jump, back and forth
        for indices in index_sets(96, rng) * 2:
            got = reader.read(indices)
            assert got.dtype == np.uint8 and got.shape == (len(indices), 120, 160, 3)
            np.testing.assert_array_equal(got, reference[indices], err_msg=f"indices {indices}")
    for indices in index_sets(96, rng):  # a fresh reader per read: the training loader's way
        with VideoReader(avi) as reader:
            np.testing.assert_array_equal(reader.read(np.array(indices)), reference[indices])


def test_iter_frames_equals_a_decode_from_the_start(avi):
    reference = decode_from_start(avi)
    with VideoReader(avi) as reader:
        np.testing.assert_array_equal(np.stack(list(reader.iter_frames())), reference)
        np.testing.assert_array_equal(np.stack(list(reader.iter_frames(7, 90, 25))), reference[7:90:25])
        np.testing.assert_array_equal(np.stack(list(reader.iter_frames(50, 60))), reference[50:60])
        assert list(reader.iter_frames(10, 10)) == []
        with pytest.raises(ValueError):
            next(reader.iter_frames(0, 10, 0))


def test_each_frame_decoded_once_and_only_as_far_as_needed(avi):
    with VideoReader(avi) as reader:
        reader._capture = counting = CountingCapture(reader._capture)
        reader.read([5, 3, 5, 9, 3])
        assert (counting.grabs, counting.seeks) == (10, 0)  # frames 0..9, each once
        reader.read([10, 11])  # continues where the last read stopped
        assert (counting.grabs, counting.seeks) == (12, 0)


def test_consecutive_chunks_never_seek_back(avi):
    reference = decode_from_start(avi)
    with VideoReader(avi) as reader:
        first = reader.read(range(0, 40))
        reader._capture = counting = CountingCapture(reader._capture)
        second = reader.read(range(40, 80))
        third = reader.read(range(80, 96))
        assert counting.seeks == 0 and counting.grabs == 56
    np.testing.assert_array_equal(np.concatenate([first, second, third]), reference)


def test_bad_indices(avi):
    with VideoReader(avi) as reader:
        assert reader.read([]).shape == (0, 120, 160, 3)
        for bad in ([96], [-1], [3, 200]):
            with pytest.raises(IndexError, match="moving.avi"):
                reader.read(bad)
        with pytest.raises(TypeError):
            reader.read([1.5])


def test_truncated_copy(avi, tmp_path):
    truncated = truncate_copy(avi, tmp_path / "cut.avi", 0.4)
    decodable = len(decode_from_start(truncated))
    assert 0 < decodable < 96
    frames, height, width, _ = probe(truncated)
    assert (frames, height, width) == (decodable, 120, 160)
    reference = decode_from_start(truncated)
    with VideoReader(truncated) as reader:
        assert reader.frames == 96  # the header's promise
        np.testing.assert_array_equal(reader.read([decodable - 1, 0]), reference[[decodable - 1, 0]])
        with pytest.raises(VideoDecodeError, match=rf"cut\.avi.*frame {decodable}\b"):
            reader.read([decodable])
        # the reader stays usable after the failure
        np.testing.assert_array_equal(reader.read([2]), reference[[2]])
    with VideoReader(truncated, frames=frames) as reader:  # a probed count: reads stay inside
        assert reader.frames == decodable
        np.testing.assert_array_equal(np.stack(list(reader.iter_frames())), reference)


def test_mp4_written_on_the_spot(tmp_path):
    path = write_video(tmp_path / "moving.mp4", "mp4v", frames=40)
    if path is None:
        pytest.skip("this OpenCV cannot write MPEG-4 (mp4v) .mp4 files")
    reference = decode_from_start(path)
    assert probe(path)[:3] == (40, 120, 160)
    with VideoReader(path) as reader:
        assert reader.frames == 40
        np.testing.assert_array_equal(reader.read([39, 0, 20, 20]), reference[[39, 0, 20, 20]])


def test_matroska_counts_packets_not_the_duration_estimate(tmp_path):
    path = write_video(tmp_path / "moving.mkv", "FMP4", frames=33)
    if path is None:
        pytest.skip("this OpenCV cannot write MPEG-4 Part 2 into .mkv files")
    with VideoReader(path) as reader:
        assert reader.frames == 33 == probe(path)[0]
        np.testing.assert_array_equal(reader.read([32]), decode_from_start(path)[[32]])


def test_not_a_video(tmp_path):
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    text = tmp_path / "notes.avi"
    text.write_text("not a video\n" * 100)
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8).tobytes())
    for path in (empty, text, noise):
        for open_ in (probe, VideoReader):
            with pytest.raises(VideoDecodeError, match=path.name) as error:
                open_(path)
            assert "\n" not in str(error.value)
    with pytest.raises(IsADirectoryError):
        probe(tmp_path)
    with pytest.raises(IsADirectoryError):
        VideoReader(tmp_path)
    with pytest.raises(FileNotFoundError):
        probe(tmp_path / "missing.avi")
    with pytest.raises(FileNotFoundError):
        VideoReader(tmp_path / "missing.avi")


def test_closed_reader(avi):
    reader = VideoReader(avi)
    reader.close()
    reader.close()  # twice is fine
    with pytest.raises(ValueError, match="closed"):
        reader.read([1])


def test_suffixes():
    assert set(video_decode.VIDEO_SUFFIXES) == {".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v"}
    assert issubclass(VideoDecodeError, ValueError)


# ----------------------------------------------------------------------------------------------
# The real UCF-101 clips

def test_probe_counts_the_real_clips(samples):
    for name, count in FRAME_COUNTS.items():
        assert probe(samples / f"{name}.avi") == (count, 240, 320, pytest.approx(25.0 if count not in (107, 141)
                                                                                     else 30000 / 1001))


@pytest.mark.parametrize("name", REAL)
def test_real_clip_reads_equal_a_decode_from_the_start(samples, name):
    path = samples / f"{name}.avi"
    reference = decode_from_start(path)
    frames = FRAME_COUNTS[name]
    assert len(reference) == frames
    rng = np.random.default_rng(len(name))
    with VideoReader(path) as reader:
        assert reader.frames == frames
        for indices in index_sets(frames, rng):
            np.testing.assert_array_equal(reader.read(indices), reference[indices], err_msg=f"{indices}")
        np.testing.assert_array_equal(np.stack(list(reader.iter_frames())), reference)
    for _ in range(4):  # training clips, one reader each
        start = int(rng.integers(frames - 16 + 1))
        with VideoReader(path) as reader:
            np.testing.assert_array_equal(reader.read(range(start, start + 16)), reference[start:start + 16])


def test_real_truncated_clip(samples, tmp_path):
    truncated = truncate_copy(samples / "Archery" / "v_Archery_g01_c01.avi", tmp_path / "v_Archery_cut.avi")
    reference = decode_from_start(truncated)
    decodable = len(reference)
    assert 0 < decodable < 131
    assert probe(truncated)[0] == decodable
    with VideoReader(truncated) as reader:
        assert reader.frames == 131
        np.testing.assert_array_equal(reader.read(range(decodable - 3, decodable)), reference[-3:])
        with pytest.raises(VideoDecodeError, match=rf"v_Archery_cut\.avi.*frame {decodable}\b"):
            reader.read(range(decodable - 3, decodable + 13))
        with pytest.raises(VideoDecodeError, match="v_Archery_cut.avi"):
            list(reader.iter_frames())
