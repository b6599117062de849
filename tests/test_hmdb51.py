"""HMDB-51: its real clips decode under the one decode rule, its official splits (when ../shared/data is
present, skipped when absent), and a tiny synthetic HMDB-layout set run through the scripts."""
from pathlib import Path

import cv2
import numpy as np
import pytest

import helperFunctions as hf
import video_decode
from video_decode import VideoReader, probe

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


def decode_from_start(path):
    capture, frames = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG), []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return np.stack(frames)


# ----------------------------------------------------------------------------------------------
# The real clips: one frame fewer decodes than the header declares (a dropped-frame packet)

@pytest.mark.parametrize("name", sorted(CLIPS))
def test_real_clip_decodes(name):
    path = shared("videos") / f"{name}.avi"
    frames, declared, width = CLIPS[name]
    reference = decode_from_start(path)
    assert reference.shape == (frames, 240, width, 3)
    assert probe(path, declared=True) == (frames, 240, width, pytest.approx(30.0), declared)
    assert hf.video_info(path) == (frames, 240, width, "video")
    with VideoReader(path, frames=frames) as reader:
        np.testing.assert_array_equal(np.stack(list(reader.iter_frames())), reference)
    with VideoReader(path, frames=frames) as reader:  # a fresh reader, a clip at the very end
        np.testing.assert_array_equal(reader.read(range(frames - 16, frames)), reference[-16:])
    np.testing.assert_array_equal(hf.read_frames(path, range(frames - 16, frames)), reference[-16:])
    for seed in range(3):  # the training loader's random 16-frame clips
        assert hf.loadSequenceRaw((str(path), True, seed), size=112).shape == (16, 112, 112, 3)
    assert hf.load_chunk(path, frames - 16, frames, size=112).shape == (16, 112, 112, 3)  # the last test chunk


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
    assert video_decode.MIN_DECODED_FRACTION == hf.MIN_DECODED_FRACTION
