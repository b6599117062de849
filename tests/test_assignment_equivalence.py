"""Our loaders against a transcription of the assignment's (bench/assignment_reference.py).

Without augmentation our float output equals the assignment's for the same frames, with augmentation
it does too once both use the same crop/flip/brightness, and each of the assignment's faults is
fixed: files are closed by the loader, every frame can be drawn, short and small videos load, errors
are logged with their path, and a clip shares one augmentation.
"""
import logging
import sys

import cv2
import h5py
import numpy as np
import pytest

from actionrec.data import normalization, sampling, video_files
from bench import assignment_reference as ref

HEIGHT, WIDTH = 240, 320
SIZE = sampling.IMAGE_SIZE
ATOL = 1e-5


def write(path, frames):
    video_files.write_video_hdf5(str(path), np.asarray(frames, dtype=np.uint8))
    return str(path)


def gray_levels(count, height=48, width=64, step=20):
    """`count` frames, frame k a constant gray level step*k + 10: the level identifies the frame."""
    levels = 10 + step * np.arange(count)
    return np.broadcast_to(levels[:, None, None, None], (count, height, width, 3)).astype(np.uint8)


def frame_number(frame, step=20):
    """Which gray_levels frame an output frame (uint8 [H, W, 3], no brightness change) came from."""
    assert frame.min() == frame.max(), "a gray frame stays one level through resize"
    return (int(frame[0, 0, 0]) - 10) // step


def coordinate_frame(height=HEIGHT, width=WIDTH):
    """Channel 0 encodes x, channel 1 encodes y (both 20..235), channel 2 is a constant 128.

    After crop/flip/resize/brightness: channel 2 - 128 is the brightness offset, and channels 0 and 1
    minus that offset give the source coordinates each output pixel came from. 20..235 +/- 15 never
    saturates.
    """
    y, x = np.mgrid[0:height, 0:width]
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[..., 0] = np.round(20 + 215 * x / (width - 1))
    frame[..., 1] = np.round(20 + 215 * y / (height - 1))
    frame[..., 2] = 128
    return frame


def decode_view(out):
    """(brightness, x span, y span, flipped) of a transformed coordinate_frame; spans in [0, 1]."""
    out = out.astype(np.int64)
    brightness = out[..., 2] - 128
    assert brightness.min() == brightness.max(), "one brightness offset for the whole frame"
    b = int(brightness[0, 0])
    x, y = out[..., 0] - b, out[..., 1] - b
    flipped = bool(x[:, 0].mean() > x[:, -1].mean())
    return b, (x.max() - x.min()) / 215, (y.max() - y.min()) / 215, flipped


def normalized_frame(frame):
    return normalization.normalize_numpy(frame, normalization.FRAME_MEAN, normalization.FRAME_STD).transpose(2, 0, 1)


def normalized_clip(clip):
    return normalization.normalize_numpy(clip, normalization.CLIP_MEAN, normalization.CLIP_STD).transpose(3, 0, 1, 2)


def assignment_to_uint8(out, mean, std):
    """Undo the assignment's normalisation: float32 [3, ..., H, W] -> uint8 [..., H, W, 3]."""
    out = np.moveaxis(out, 0, -1) * (np.asarray(std) * 255) + np.asarray(mean) * 255
    return np.round(out).astype(np.uint8)


def open_files():
    """Names of the HDF5 files this process has open."""
    return [fid.name.decode() for fid in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE)]


def assignment(loader, path, augment, seed=0):
    np.random.seed(seed)  # the assignment draws from numpy's global generator
    return loader((path, augment), rewrite_paths=False)


@pytest.fixture(scope="module")
def noise(tmp_path_factory):
    """18 distinct random 240x320 frames written as 1-, 2-, 16- and 18-frame videos."""
    frames = np.random.default_rng(0).integers(0, 256, (18, HEIGHT, WIDTH, 3), dtype=np.uint8)
    base = tmp_path_factory.mktemp("noise")
    paths = {n: write(base / f"noise_{n}.hdf5", frames[:n]) for n in (1, 2, 16, 18)}
    return frames, paths


# ----------------------------------------------------------------------------------------------
# Same output as the assignment

def test_frame_without_augmentation_equals_the_assignment(noise):
    _, paths = noise
    # On a 2-frame video the assignment always takes frame 0 (randint(2 - 1) == 0).
    theirs = assignment(ref.loadFrame, paths[2], False)
    assert theirs.shape == (3, SIZE, SIZE) and theirs.dtype == np.float32
    # Our public loader draws from all frames; on the 1-frame copy its draw is forced to frame 0 too.
    # The assignment cannot read that file (randint(1 - 1) raises), hence two files.
    assert assignment(ref.loadFrame, paths[1], False).size == 0
    for seed in range(3):
        ours = sampling.loadFrame((paths[1], False, seed))
        assert ours.shape == (3, SIZE, SIZE) and ours.dtype == np.float32
        np.testing.assert_allclose(ours, theirs, atol=ATOL, rtol=0)
    # The same file, frame 0 asked for explicitly.
    ours = normalized_frame(sampling._frame_raw(paths[2], False, np.random.default_rng(0), size=SIZE, frame_index=0))
    np.testing.assert_allclose(ours, theirs, atol=ATOL, rtol=0)


def test_clip_without_augmentation_equals_the_assignment(noise):
    _, paths = noise
    # On an 18-frame video the assignment's clip always starts at 0 (randint(17 - 16) == 0).
    theirs = assignment(ref.loadSequence, paths[18], False)
    assert theirs.shape == (3, 16, SIZE, SIZE) and theirs.dtype == np.float32
    # Our start is drawn from 0..frames-16; on the 16-frame copy it is forced to 0. The assignment
    # cannot read that file (randint(15 - 16) raises), hence two files.
    assert assignment(ref.loadSequence, paths[16], False).size == 0
    for seed in range(2):
        ours = sampling.loadSequence((paths[16], False, seed))
        assert ours.shape == (3, 16, SIZE, SIZE) and ours.dtype == np.float32
        np.testing.assert_allclose(ours, theirs, atol=ATOL, rtol=0)
    ours = normalized_clip(sampling._clip_raw(paths[18], False, np.random.default_rng(0), start=0))
    np.testing.assert_allclose(ours, theirs, atol=ATOL, rtol=0)


def assignment_frame_draws(seed, num_frames):
    """The crop/flip/brightness the assignment's loadFrame draws after np.random.seed(seed)."""
    r = np.random.RandomState(seed)  # the stream np.random.seed(seed) gives the global functions
    r.randint(num_frames - 1)  # frame index
    crop = None
    if r.randint(2) == 0:
        w1, h1 = int(WIDTH * (0.3 * r.rand() + 0.7)), int(HEIGHT * (0.3 * r.rand() + 0.7))
        w, h = r.randint(WIDTH - w1), r.randint(HEIGHT - h1)
        crop = (h, h + h1, w, w + w1)
    flip = r.randint(2) == 0
    return crop, flip, r.randint(31) - 15


def assignment_clip_draws(seed, num_frames):
    """The same for loadSequence, which draws the crop before deciding whether to use it."""
    r = np.random.RandomState(seed)
    r.randint(num_frames - 1 - 16)  # start frame
    w1, h1 = int(WIDTH * (0.3 * r.rand() + 0.7)), int(HEIGHT * (0.3 * r.rand() + 0.7))
    w, h = r.randint(WIDTH - w1), r.randint(HEIGHT - h1)
    crop = (h, h + h1, w, w + w1) if r.randint(2) else None
    flip = r.randint(2) == 1
    return crop, flip, r.randint(31) - 15


@pytest.mark.parametrize("kind", ["frame", "clip"])
def test_augmentation_equals_the_assignment_given_the_same_draws(noise, monkeypatch, kind):
    """Crop window, flip and saturating brightness are the assignment's, to float precision."""
    _, paths = noise
    seen = set()
    for seed in range(24 if kind == "frame" else 16):
        if kind == "frame":
            draws = assignment_frame_draws(seed, 2)
            theirs = assignment(ref.loadFrame, paths[2], True, seed)
        else:
            draws = assignment_clip_draws(seed, 18)
            theirs = assignment(ref.loadSequence, paths[18], True, seed)
        monkeypatch.setattr(sampling, "_augment_params", lambda rng, height, width, d=draws: d)
        rng = np.random.default_rng(seed)
        if kind == "frame":
            ours = normalized_frame(sampling._frame_raw(paths[2], True, rng, frame_index=0))
        else:
            ours = normalized_clip(sampling._clip_raw(paths[18], True, rng, start=0))
        np.testing.assert_allclose(ours, theirs, atol=ATOL, rtol=0, err_msg=f"seed {seed}, draws {draws}")
        seen.add((draws[0] is not None, bool(draws[1]), int(np.sign(draws[2]))))
    assert {(c, f) for c, f, _ in seen} == {(False, False), (False, True), (True, False), (True, True)}
    assert {-1, 1} <= {b for _, _, b in seen}


def test_the_transcription_rewrites_avi_paths_as_the_assignment_does(tmp_path):
    # The benchmark switches the rewriting off; with it, the assignment's .avi list paths resolve.
    frames = gray_levels(2)
    write(tmp_path / "UCF-101-hdf5" / "Archery" / "v_Archery_g01_c01.hdf5", frames)
    avi = str(tmp_path / "UCF-101" / "Archery" / "v_Archery_g01_c01.avi")
    out = ref.loadFrame((avi, False))
    assert out.shape == (3, SIZE, SIZE)


# ----------------------------------------------------------------------------------------------
# The assignment's faults, fixed

class KeepFrames:
    """Keeps the frames of the named functions alive after they return, as a debugger, a profiler
    or a stored traceback does. A file whose only closing is its handle's refcount stays open."""

    def __init__(self, *names):
        self.names, self.frames = set(names), []

    def _hook(self, frame, event, arg):
        if event == "call" and frame.f_code.co_name in self.names:
            self.frames.append(frame)

    def __enter__(self):
        sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc):
        sys.setprofile(None)


@pytest.mark.parametrize("augment", [False, True])
def test_files_are_closed_by_the_loaders(noise, tmp_path, augment):
    _, paths = noise
    no_video = str(tmp_path / "no_video.hdf5")
    with h5py.File(no_video, "w") as f:
        f.create_dataset("not_video", data=np.zeros(3))
    with KeepFrames("loadFrame", "loadSequence", "_frame_raw", "_clip_raw", "_safe") as kept:
        calls = [sampling.loadFrame((paths[18], augment)), sampling.loadSequence((paths[18], augment)),
                 sampling.loadFrameRaw((paths[18], augment)), sampling.loadSequenceRaw((paths[18], augment)),
                 sampling.loadFrame((no_video, augment))]
        assert [c.size > 0 for c in calls] == [True, True, True, True, False]
        assert kept.frames, "the hook saw our loaders run"
        assert paths[18] not in open_files() and no_video not in open_files()
        with h5py.File(paths[18], "r+"):  # HDF5 refuses r+ on a file this process holds read-only
            pass
    # The assignment never closes its file: here only the end of its frame did, and a kept frame
    # (augment=False: `h` is not rebound to a crop offset) keeps the file open.
    with KeepFrames("loadFrame") as kept:
        assert assignment(ref.loadFrame, paths[18], False).size > 0
    assert paths[18] in open_files()
    kept.frames.clear()
    assert paths[18] not in open_files()


def test_every_frame_can_be_drawn(tmp_path):
    path = write(tmp_path / "five.hdf5", gray_levels(5))
    ours = [frame_number(sampling.loadFrameRaw((path, False, seed))) for seed in range(200)]
    counts = np.bincount(ours, minlength=5)
    assert counts.min() >= 20, counts  # uniform over all 5 (expected 40 each)
    np.random.seed(0)
    theirs = {frame_number(assignment_to_uint8(ref.loadFrame((path, False), rewrite_paths=False),
                                               ref.FRAME_MEAN, ref.FRAME_STD))
              for _ in range(100)}
    assert theirs == {0, 1, 2, 3}  # the assignment never draws the last frame


def test_every_clip_start_can_be_drawn(tmp_path):
    path = write(tmp_path / "twenty.hdf5", gray_levels(20, step=10))
    starts = {frame_number(sampling.loadSequenceRaw((path, False, seed))[0], step=10) for seed in range(60)}
    assert starts == {0, 1, 2, 3, 4}  # the clip of frames 4..19 holds the last frame
    np.random.seed(0)
    theirs = {frame_number(assignment_to_uint8(ref.loadSequence((path, False), rewrite_paths=False)[:, 0],
                                               ref.CLIP_MEAN, ref.CLIP_STD), step=10)
              for _ in range(30)}
    assert theirs == {0, 1, 2}  # randint(19 - 16): frame 19 never appears


def test_short_video_gives_a_full_looped_clip(tmp_path, capsys):
    path = write(tmp_path / "ten.hdf5", gray_levels(10))
    raw = sampling.loadSequenceRaw((path, False, 0))
    assert raw.shape == (16, SIZE, SIZE, 3)
    assert [frame_number(f) for f in raw] == list(range(10)) + list(range(6))
    clip = sampling.loadSequence((path, True, 0))
    assert clip.shape == (3, 16, SIZE, SIZE) and clip.dtype == np.float32
    # The assignment: randint(9 - 16) raises, the bare except prints and returns an empty array.
    theirs = assignment(ref.loadSequence, path, False)
    assert theirs.size == 0
    assert f"Exception: {path}" in capsys.readouterr().out


def test_small_video_loads_with_its_own_size(tmp_path):
    frame = coordinate_frame(120, 160)
    path = write(tmp_path / "small.hdf5", frame[None])
    np.testing.assert_array_equal(sampling.loadFrameRaw((path, False, 0)), cv2.resize(frame, (SIZE, SIZE)))
    clip = sampling.loadSequenceRaw((path, True, 0))
    assert clip.shape == (16, SIZE, SIZE, 3)
    ours = [decode_view(sampling.loadFrameRaw((path, True, seed))) for seed in range(200)]
    spans = np.array([(x, y) for _, x, y, _ in ours])
    assert spans.min() >= 0.69, spans.min()  # every crop keeps 70-100% of the real frame
    assert (spans < 0.95).any(axis=1).mean() > 0.3  # and crops do happen
    # The assignment crops a 160x120 frame with offsets meant for 320x240: much less than 70% can
    # remain (as little as 40% of the width).
    write(tmp_path / "small2.hdf5", np.stack([frame, frame]))  # its draw needs 2 frames
    np.random.seed(0)
    theirs = []
    for _ in range(200):
        out = ref.loadFrame((str(tmp_path / "small2.hdf5"), True), rewrite_paths=False)
        theirs.append(decode_view(assignment_to_uint8(out, ref.FRAME_MEAN, ref.FRAME_STD)))
    assert min(min(x, y) for _, x, y, _ in theirs) < 0.6


def test_missing_file_gives_an_empty_array_and_logs_the_path(tmp_path, caplog):
    path = str(tmp_path / "missing.hdf5")
    with caplog.at_level(logging.WARNING, logger="ucf101"):
        for loader in (sampling.loadFrame, sampling.loadSequence, sampling.loadFrameRaw, sampling.loadSequenceRaw):
            caplog.clear()
            out = loader((path, True))
            assert isinstance(out, np.ndarray) and out.size == 0
            assert any(path in record.getMessage() for record in caplog.records), loader.__name__


def test_augmentation_statistics_of_frames(tmp_path):
    path = write(tmp_path / "coords.hdf5", coordinate_frame()[None])
    draws = [decode_view(sampling.loadFrameRaw((path, True, seed))) for seed in range(400)]
    brightness = np.array([b for b, _, _, _ in draws])
    flips = np.array([f for _, _, _, f in draws])
    spans = np.array([(x, y) for _, x, y, _ in draws])
    cropped = (spans < 0.99).any(axis=1)
    # 400 draws: a fair coin stays within 0.5 +/- 0.1 (4 standard deviations)
    assert 0.4 <= flips.mean() <= 0.6, flips.mean()
    assert 0.4 <= cropped.mean() <= 0.6, cropped.mean()
    assert spans.min() >= 0.69
    assert brightness.min() == -15 and brightness.max() == 15
    assert set(brightness) == set(range(-15, 16))
    assert abs(brightness.mean()) < 2


def test_a_clip_shares_one_augmentation(tmp_path):
    path = write(tmp_path / "still.hdf5", np.stack([coordinate_frame()] * 16))
    views = set()
    for seed in range(40):
        clip = sampling.loadSequenceRaw((path, True, seed))
        assert clip.shape == (16, SIZE, SIZE, 3)
        for frame in clip[1:]:  # identical input frames: any per-frame draw would show here
            np.testing.assert_array_equal(frame, clip[0])
        b, x, y, flipped = decode_view(clip[0])
        views.add((b, round(x, 2), round(y, 2), flipped))
    assert len(views) > 30 and {f for *_, f in views} == {False, True}  # and it does vary per clip
