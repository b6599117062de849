"""Tests for optical flow: the 8-bit codec and its flip, each method's accuracy on known motion, and
extract_flow.py (resume after a kill, shards, failures, the real clips in ../shared, skipped without).
"""
import os
import signal
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import extract_flow
from actionrec.bulk import parse_shard, shard
from actionrec.data.video_files import write_video_hdf5
from actionrec.flow import codec
from actionrec.flow.extract import FlowSettings, flow_attrs, read_flow
from actionrec.flow.known_motion import affine_pair, endpoint_error, textured_image
from actionrec.flow.methods import CV_METHODS, create_estimator, load_raft_state
from helpers import run_group, start_group

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
REAL_CLIPS = sorted((SHARED / "ucf101-samples").glob("*/*.avi")) + sorted((SHARED / "ucf101-more").glob("*/*.avi"))
SCRIPT = [sys.executable, str(REPO / "extract_flow.py")]
TIMEOUT = 120

# Mean end-point error (px) on a 128x96 texture, measured 0.006-0.015 (tvl1), <= 0.20 (dis-ultrafast),
# 0.12 (dis-fast), 0.09 (dis-medium), 0.06 (farneback); the limits leave room, and stay under one
# 8-bit level (0.157 px) for the accurate methods.
EPE_LIMITS = {"tvl1": 0.05, "dis-ultrafast": 0.3, "dis-fast": 0.2, "dis-medium": 0.15, "farneback": 0.12}


# --- the 8-bit form and the flip -------------------------------------------------------------

def test_quantize_round_trip_within_half_a_level_and_clipping():
    flow = np.random.default_rng(0).uniform(-19.9, 19.9, (50, 60, 2)).astype(np.float32)
    levels = codec.quantize(flow)
    assert levels.dtype == np.uint8
    assert np.abs(codec.dequantize(levels) - flow).max() <= 20 / 255 + 1e-5  # half of 40/255
    beyond = np.array([[-20.0, 20.0], [-100.0, 100.0], [0.0, 0.0]], np.float32)
    assert codec.quantize(beyond).tolist() == [[0, 255], [0, 255], [128, 128]]  # 127.5 rounds up
    assert codec.quantize(np.full(2, 3.0), bound=5.0).tolist() == [204, 204]  # (3 + 5) * 255 / 10 = 204


def test_hflip_negates_x_and_mirrors_columns():
    flow = np.zeros((2, 3, 2), np.float32)
    flow[..., 0] = [[1, 2, 3], [4, 5, 6]]       # x
    flow[..., 1] = [[-1, -2, -3], [-4, -5, -6]]  # y
    flipped = codec.hflip(flow)
    assert flipped[..., 0].tolist() == [[-3, -2, -1], [-6, -5, -4]]
    assert flipped[..., 1].tolist() == [[-3, -2, -1], [-6, -5, -4]]
    assert np.array_equal(codec.hflip(flipped), flow)
    levels = codec.quantize(flow)
    flipped_levels = codec.hflip(levels)
    assert flipped_levels[..., 0].tolist() == (255 - levels[:, ::-1, 0]).tolist()
    assert np.array_equal(flipped_levels[..., 1], levels[:, ::-1, 1])
    # Exact in the dequantized values, zero (level 128, +0.078 px) included: 128 -> 127.
    assert np.allclose(codec.dequantize(flipped_levels), codec.hflip(codec.dequantize(levels)), atol=1e-5)
    assert codec.hflip(codec.quantize(np.zeros((1, 1, 2))))[0, 0].tolist() == [127, 128]


def test_flow_of_mirrored_frames_is_the_flipped_flow():
    frames, _ = affine_pair(textured_image(96, 128), shift=(1.5, 0.5))
    estimator = create_estimator("dis-medium")
    direct = codec.hflip(estimator.flows(frames)[0])
    mirrored = estimator.flows(np.ascontiguousarray(frames[:, :, ::-1]))[0]
    assert endpoint_error(mirrored, direct) < 0.15
    assert mirrored[16:-16, 16:-16, 0].mean() == pytest.approx(-1.5, abs=0.1)


# --- accuracy on known motion ----------------------------------------------------------------

@pytest.mark.parametrize("method", CV_METHODS)
@pytest.mark.parametrize("shift, degrees", [((1.5, -0.75), 0.0), ((0.0, 0.0), 2.0)], ids=["subpixel-shift", "rotation"])
def test_flow_of_known_motion(method, shift, degrees):
    frames, truth = affine_pair(textured_image(96, 128), shift, degrees)
    flow = create_estimator(method).flows(frames)
    assert flow.shape == (1, 96, 128, 2) and flow.dtype == np.float32
    assert endpoint_error(flow[0], truth) < EPE_LIMITS[method]


def test_raft_from_a_weights_file_without_download(tmp_path):
    import torch
    from torchvision.models.optical_flow import raft_small
    weights = tmp_path / "raft_small.pth"
    torch.save(raft_small(weights=None).state_dict(), weights)  # random weights: shapes, not accuracy
    # 60x70 is padded to RAFT's 128x128 minimum and the flow cropped back.
    flow = create_estimator("raft-small", str(weights), device="cpu").flows(np.zeros((3, 60, 70, 3), np.uint8))
    assert flow.shape == (2, 60, 70, 2) and flow.dtype == np.float32
    torch.save({"fc.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="does not hold raft_small's weights"):
        load_raft_state(str(tmp_path / "other.pth"), "raft-small")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.pth: not a weights-only PyTorch checkpoint"):
        load_raft_state(str(tmp_path / "junk.pth"), "raft-small")
    with pytest.raises(ValueError, match="needs --raft-weights"):
        load_raft_state(None, "raft-small")


# --- extraction ------------------------------------------------------------------------------

def make_videos(root, videos, frames=6, size=(48, 64)):
    """`root/UCF-101-hdf5/<Class>/<name>.hdf5` of moving textures; videos: [(class, name)]."""
    texture = textured_image(size[0] + 40, size[1] + 40)
    for i, (folder, name) in enumerate(videos):
        offsets = [(i + t) % 20 for t in range(frames)]
        clip = np.stack([texture[o:o + size[0], o:o + size[1]] for o in offsets])
        write_video_hdf5(str(root / "UCF-101-hdf5" / folder / f"{name}.hdf5"), clip)


def flow_args(data_dir, *extra):
    return extract_flow.get_args_parser().parse_args(["--data-dir", str(data_dir), "--workers", "0", *extra])


def outputs(out_dir):
    return sorted(p.relative_to(out_dir).as_posix() for p in Path(out_dir).rglob("*") if p.is_file())


def test_extract_writes_attributes_and_reads_back(tmp_path, capsys):
    make_videos(tmp_path, [("Walk", "v_a"), ("Run", "v_b")], frames=5)
    extract_flow.main(flow_args(tmp_path, "--size", "native", "--method", "farneback"))
    path = tmp_path / "UCF-101-flow" / "Walk" / "v_a.hdf5"
    attrs = flow_attrs(path)
    assert attrs["method"] == "farneback" and attrs["pairs"] == 4 and attrs["source_frames"] == 5
    assert (attrs["width"], attrs["height"], attrs["bound"], attrs["storage"]) == (64, 48, 20.0, "raw")
    fields = codec.dequantize(read_flow(path, range(4)))
    # The window moves 1 px right and down per frame over the texture: the texture moves (-1, -1).
    assert np.abs(np.median(fields[:, 12:-12, 12:-12], axis=(1, 2)) + 1).max() < 0.2
    extract_flow.main(flow_args(tmp_path, "--size", "native", "--method", "farneback"))
    assert "extracted 0, skipped 2" in capsys.readouterr().out
    with pytest.raises(extract_flow.UserError, match="other settings.*differing: method"):
        extract_flow.main(flow_args(tmp_path, "--size", "native"))
    extract_flow.main(flow_args(tmp_path, "--size", "native", "--no-resume", "--storage", "jpeg"))
    assert flow_attrs(path)["method"] == "dis-medium"
    jpeg = read_flow(path, [3, 0])
    assert jpeg.shape == (2, 48, 64, 2) and np.abs(codec.dequantize(jpeg) - fields[[3, 0]]).mean() < 0.3


def test_shards_cover_every_video_exactly_once(tmp_path, capsys):
    names = [f"C{i % 3}/v_{i:02d}" for i in range(11)]
    assert sorted(sum((shard(reversed(names), i, 4) for i in range(4)), [])) == sorted(names)
    assert parse_shard("3/4") == (3, 4)
    for bad in ("4/4", "1", "a/2", "0/0"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)
    make_videos(tmp_path, [tuple(name.split("/")) for name in names[:7]], frames=2)
    seen = []
    for i in range(3):
        out = tmp_path / f"shard{i}"
        extract_flow.main(flow_args(tmp_path, "--shard", f"{i}/3", "--out", str(out), "--method", "dis-ultrafast"))
        seen += outputs(out)
    assert sorted(seen) == sorted(f"{name}.hdf5" for name in names[:7])
    assert "3 of 7 videos (shard 0/3)" in capsys.readouterr().out


def test_bad_videos_are_named_and_exit_1(tmp_path, capsys):
    make_videos(tmp_path, [("Walk", "v_good")], frames=3)
    make_videos(tmp_path, [("Walk", "v_single")], frames=1)
    (tmp_path / "UCF-101-hdf5" / "Walk" / "v_broken.hdf5").write_bytes(b"not hdf5")
    (tmp_path / "UCF-101" / "Run").mkdir(parents=True)
    (tmp_path / "UCF-101" / "Run" / "v_garbage.avi").write_bytes(os.urandom(2000))
    with pytest.raises(SystemExit) as exit_info:
        extract_flow.main(flow_args(tmp_path, "--size", "native"))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "3 videos failed" in err and "Walk/v_single: has 1 frame: flow needs two" in err
    assert "Walk/v_broken:" in err and "Run/v_garbage:" in err
    assert outputs(tmp_path / "UCF-101-flow") == ["Walk/v_good.hdf5"]


def test_killed_extraction_leaves_no_half_file_and_resumes(tmp_path):
    make_videos(tmp_path, [("Walk", f"v_{i}") for i in range(3)], frames=60)
    out = tmp_path / "UCF-101-flow"
    cmd = [*SCRIPT, "--data-dir", str(tmp_path), "--workers", "0", "--size", "320x240"]
    with start_group(cmd, stdout=open(os.devnull, "w"), stderr=open(os.devnull, "w")) as proc:
        deadline = time.monotonic() + TIMEOUT
        while not any(".tmp-" in p.name for p in out.rglob("*")) and time.monotonic() < deadline:
            assert proc.poll() is None, "finished before it could be killed"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    left = outputs(out)
    temporaries = [name for name in left if ".tmp-" in name]
    assert len(temporaries) == 1
    for name in left:
        if name not in temporaries:  # a finished name is a whole file
            assert flow_attrs(out / name)["pairs"] == 59
    result = run_group(cmd, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert "removed 1 stale temporary files" in result.stdout
    assert f"skipped {len(left) - 1} (already done)" in result.stdout
    assert outputs(out) == [f"Walk/v_{i}.hdf5" for i in range(3)]
    assert all(flow_attrs(out / f"Walk/v_{i}.hdf5")["pairs"] == 59 for i in range(3))


@pytest.mark.skipif(not REAL_CLIPS, reason=f"real UCF-101 clips not found under {SHARED} (no ../shared)")
def test_real_clips_extract(tmp_path):
    videos = tmp_path / "videos"
    for clip in REAL_CLIPS:
        (videos / clip.parent.name).mkdir(parents=True, exist_ok=True)
        (videos / clip.parent.name / clip.name).symlink_to(clip)
    out = tmp_path / "flow"
    result = run_group([*SCRIPT, "--data-dir", str(tmp_path), "--videos", str(videos), "--out", str(out),
                        "--workers", "2", "--size", "64x48", "--method", "dis-ultrafast"], timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert f"extracted {len(REAL_CLIPS)}, skipped 0" in result.stdout
    archery = flow_attrs(out / "Archery" / "v_Archery_g01_c01.hdf5")
    # 131 frames decode (FACTS.md): 130 fields.
    assert (archery["source_frames"], archery["pairs"], archery["width"], archery["height"]) == (131, 130, 64, 48)
    for clip in REAL_CLIPS:
        attrs = flow_attrs(out / clip.parent.name / (clip.stem + ".hdf5"))
        assert attrs["source"] == str(videos / clip.parent.name / clip.name)
        with h5py.File(out / clip.parent.name / (clip.stem + ".hdf5"), "r") as f:
            assert f["flow"].shape == (attrs["pairs"], 48, 64, 2)


def test_usage_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        extract_flow.run_main(extract_flow.main, extract_flow.get_args_parser(),
                              ["--data-dir", str(tmp_path), "--size", "big"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.strip().count("\n") == 0
    assert "extract_flow.py: error: --size must be WIDTHxHEIGHT" in err
    with pytest.raises(extract_flow.UserError, match="no videos found"):
        extract_flow.main(flow_args(tmp_path))
    with pytest.raises(extract_flow.UserError, match="needs --raft-weights"):
        extract_flow.main(flow_args(tmp_path, "--method", "raft-small"))
    settings = extract_flow.check_args(flow_args(tmp_path, "--size", "native"))
    assert settings == FlowSettings(method=extract_flow.DEFAULT_METHOD, size=None)
