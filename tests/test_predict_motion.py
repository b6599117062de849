"""predict.py on the motion stream (issue 22): a flow checkpoint and an RGB-difference checkpoint, each trained
for two steps on the synthetic set, predict a video of one's own end to end; the flow computed on the fly is
extract_flow.py's stored flow byte for byte (the same code, extract.write_flow, with the settings recorded in
the checkpoint); each model's probabilities are those of test_single_frame.py's predictions; RGB + flow fuse
with TSN's 1 : 1.5; an older checkpoint without the recorded settings gets the documented defaults and a line;
Grad-CAM of a motion model explains its input, drawn on the video's frames."""
import json
import os

import cv2
import h5py
import numpy as np
import pytest
import torch

import extract_flow
import make_synthetic_ucf101
import predict
import test_single_frame
import train_single_frame
from actionrec import guards
from actionrec.data import split_lists, video_files
from actionrec.engine import checkpoints, devices
from actionrec.evaluation import fusion as score_fusion
from actionrec.evaluation import predictions as prediction_files
from actionrec.evaluation import scores as video_scores
from actionrec.flow import extract, recorded
from actionrec.inference import explanations, predictor, video_logits
from test_predict import run_predict

FAST = ["--image-size", "32", "--workers", "0", "--device", "cpu", "--seed", "3", "--arch", "resnet18",
        "--pretrained", "none", "--trainable", "all", "--batch-size", "4", "--no-tensorboard", "--epochs", "1",
        "--max-steps", "2"]
FLOW = ["--method", "dis-ultrafast", "--size", "40x32", "--workers", "0"]


# Other jobs share the cores: torch's spinning threads would only wait on each other (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")


def write_avi(path, frames):
    """uint8 RGB frames [T, H, W, 3] as an MJPG .avi (a user's own video, not the dataset's HDF5)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (frames.shape[2], frames.shape[1]))
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


@pytest.fixture(scope="module")
def ws(tmp_path_factory, one_thread):
    """Synthetic set with its flow; flow, RGB-difference and single-frame checkpoints; the test script's
    predictions of each (every frame or snippet, one crop); one test video also as an .avi with its flow."""
    root = tmp_path_factory.mktemp("predict_motion")
    data = str(root / "data")
    make_synthetic_ucf101.make_dataset(data, classes=4, train_per_class=3, test_per_class=2, frames=14,
                                       size=(32, 40), seed=0)
    extract_flow.main(extract_flow.get_args_parser().parse_args(["--data-dir", data, *FLOW]))
    runs, ckpt, scripts = root / "runs", {}, {}
    for name, flags in (("flow", ["--modality", "flow", "--new-length", "3", "--segments", "2"]),
                        ("rgbdiff", ["--modality", "rgbdiff", "--new-length", "2"]),
                        ("single_frame", [])):
        train_single_frame.main(train_single_frame.get_args_parser().parse_args(
            ["--data-dir", data, "--output-dir", str(runs / name), *FAST, *flags]))
        ckpt[name] = str(runs / name / "checkpoint.pth")
        scripts[name] = str(root / "predictions" / name)
        test_single_frame.main(test_single_frame.get_args_parser().parse_args(
            ["--checkpoint", ckpt[name], "--predictions-dir", scripts[name], "--output-dir",
             str(root / "test" / name), "--workers", "0", "--device", "cpu", "--limit", "2"]))
    class_list, _, (test_paths, _) = split_lists.getUCF101(data, 1)
    videos = [str(p) for p in test_paths[:2]]
    own = root / "own" / "Mine"
    os.makedirs(own)
    with video_files.open_video(videos[0]) as video:
        write_avi(own / "my_video.avi", video.read(np.arange(video.frames)))
    extract_flow.main(extract_flow.get_args_parser().parse_args(
        ["--videos", str(root / "own"), "--out", str(root / "own_flow"), *FLOW]))
    return {"root": root, "data": data, "ckpt": ckpt, "predictions": scripts, "videos": videos,
            "classes": [str(c) for c in class_list], "avi": str(own / "my_video.avi"),
            "avi_flow": str(root / "own_flow" / "Mine" / "my_video.hdf5")}


def load(ws, name, *flags):
    args = predict.get_args_parser().parse_args(["v", "--checkpoint", ws["ckpt"][name], "--device", "cpu", *flags])
    return predictor.load_predictor(ws["ckpt"][name], name, args, devices.Dist(), torch.device("cpu"))


def script_probabilities(ws, name, video):
    rows = prediction_files.read_predictions(prediction_files.prediction_path(ws["predictions"][name], video))
    return video_scores.softmax(video_scores.video_score(rows))


def test_training_records_the_flow_extraction_in_the_checkpoint_and_model_json(ws):
    trained = checkpoints.load_checkpoint(ws["ckpt"]["flow"], what="test")["args"]
    assert {k: trained[k] for k in recorded.ARG_KEYS} == {
        "flow_method": "dis-ultrafast", "flow_size": "40x32", "flow_bound": 20.0, "flow_storage": "raw",
        "flow_quality": 95}
    info = json.loads(open(os.path.join(ws["predictions"]["flow"], "model.json")).read())
    assert info["flow_extraction"] == {"method": "dis-ultrafast", "size": "40x32", "bound": 20.0, "storage": "raw",
                                       "quality": 95}
    rgbdiff = checkpoints.load_checkpoint(ws["ckpt"]["rgbdiff"], what="test")["args"]
    assert all(rgbdiff.get(k) is None for k in recorded.ARG_KEYS)


@pytest.mark.parametrize("which", ["hdf5", "avi"])
def test_the_flow_computed_for_a_video_is_extract_flows_byte_for_byte(ws, which):
    """Byte for byte, not within a quantisation step: predict.py runs extract_flow.py's own code
    (extract.write_flow: same resize, estimator, clipping and rounding) on the same decoded frames."""
    p = load(ws, "flow")
    assert p.flow == extract.FlowSettings(method="dis-ultrafast", size=(40, 32))
    video = ws["videos"][0] if which == "hdf5" else ws["avi"]
    stored_path = (os.path.join(ws["data"], "UCF-101-flow", *video.split(os.sep)[-2:])
                   if which == "hdf5" else ws["avi_flow"])
    with h5py.File(stored_path, "r") as f:
        stored = f["flow"][:]
    with video_logits.model_input(p, video) as made_path:
        with h5py.File(made_path, "r") as f:
            made = f["flow"][:]
        folder = os.path.dirname(made_path)
    assert not os.path.exists(folder)  # the temporary folder is gone
    assert made.dtype == np.uint8 and made.shape == stored.shape == (13, 32, 40, 2)
    assert np.array_equal(made, stored)


@pytest.mark.parametrize("name", ["flow", "rgbdiff"])
def test_a_motion_checkpoint_predicts_as_its_test_script_tests(ws, capsys, name):
    status, out, err = run_predict(ws["videos"] + ["--checkpoint", ws["ckpt"][name], "--device", "cpu", "--json",
                                                   "--top", "4"], capsys)
    assert status == 0 and err == []
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["path"] for line in lines] == ws["videos"]
    for line in lines:
        expected = script_probabilities(ws, name, line["path"])
        assert {c: p for c, p in line["models"][name]} == pytest.approx(
            {c: expected[ws["classes"].index(c)] for c in ws["classes"]}, abs=1e-6)


def test_rgb_and_flow_fuse_one_to_one_and_a_half_on_ones_own_video(ws, capsys):
    argv = [ws["avi"], ws["videos"][0], "--checkpoint", ws["ckpt"]["single_frame"], "--checkpoint",
            ws["ckpt"]["flow"], "--weights", "1,1.5", "--device", "cpu", "--json", "--top", "4"]
    status, out, err = run_predict(argv, capsys)
    assert status == 0 and err == []
    avi, hdf5 = [json.loads(line) for line in out.splitlines()]
    assert avi["frames"] == 14 and list(avi["models"]) == ["single_frame", "flow"]
    scores = [video_scores.video_score(
        prediction_files.read_predictions(prediction_files.prediction_path(ws["predictions"][n], ws["videos"][0])))
        for n in ("single_frame", "flow")]
    fused = video_scores.softmax(score_fusion.fuse_scores([s[None] for s in scores], "logmean", [1, 1.5])[0])
    assert {c: p for c, p in hdf5["fused"]} == pytest.approx(
        {c: fused[ws["classes"].index(c)] for c in ws["classes"]}, abs=1e-6)
    # The .avi (MJPG) decodes to other pixels than the HDF5 copy: a prediction, not the same numbers.
    assert len(avi["fused"]) == 4 and sum(p for _, p in avi["fused"]) == pytest.approx(1.0)


def test_crops_and_frames_give_test_single_frames_views(ws, capsys, tmp_path):
    preds = tmp_path / "p"
    test_single_frame.main(test_single_frame.get_args_parser().parse_args(
        ["--checkpoint", ws["ckpt"]["flow"], "--predictions-dir", str(preds), "--output-dir", str(tmp_path / "o"),
         "--workers", "0", "--device", "cpu", "--limit", "1", "--frames", "4", "--crops", "10"]))
    p = load(ws, "flow", "--frames", "4", "--crops", "10")
    assert p.test["crops"] == 10 and p.test["frames"] == 4
    rows = video_logits.video_logits(p, ws["videos"][0], torch.device("cpu"), (False, torch.float32))
    stored = prediction_files.read_predictions(prediction_files.prediction_path(preds, ws["videos"][0]))
    assert rows.shape == stored.shape == (4, 4)
    np.testing.assert_allclose(rows, stored, atol=1e-5)


def test_an_older_flow_checkpoint_gets_the_defaults_and_one_line(ws, capsys, tmp_path):
    old = torch.load(ws["ckpt"]["flow"], map_location="cpu", weights_only=True)
    for key in recorded.ARG_KEYS:
        del old["args"][key]
    path = tmp_path / "old" / "checkpoint.pth"
    os.makedirs(path.parent)
    torch.save(old, path)
    status, out, err = run_predict([ws["videos"][0], "--checkpoint", path, "--device", "cpu", "--json"], capsys)
    assert status == 0 and len(err) == 1
    assert "does not record how its training flow was extracted" in err[0]
    assert "dis-medium, 340x256, bound 20, raw" in err[0]
    assert len(json.loads(out)["models"]["old"]) == 4
    args = predict.get_args_parser().parse_args(["v", "--checkpoint", str(path), "--device", "cpu"])
    p = predictor.load_predictor(str(path), "old", args, devices.Dist(), torch.device("cpu"))
    assert p.flow == recorded.DEFAULT == extract.FlowSettings(method=extract_flow.DEFAULT_METHOD, size=(340, 256))


def test_grad_cam_of_motion_models_on_the_videos_frames(ws, capsys, tmp_path):
    out_dir = tmp_path / "explain"
    status, out, err = run_predict([ws["videos"][0], "--checkpoint", ws["ckpt"]["flow"], "--checkpoint",
                                    ws["ckpt"]["rgbdiff"], "--device", "cpu", "--explain", out_dir,
                                    "--explain-frames", "4", "--image-size", "48"], capsys)
    assert status == 0 and err == [], err
    stem = os.path.splitext(os.path.basename(ws["videos"][0]))[0]
    for name in ("flow", "rgbdiff"):
        maps = np.load(out_dir / f"{stem}.{name}.npy")
        assert maps.shape == (4, 48, 48) and maps.dtype == np.float32 and 0 <= maps.min() <= maps.max() <= 1
        assert cv2.imread(str(out_dir / f"{stem}.{name}.png")) is not None
    # The maps are drawn on the middle frame of each snippet: 14 frames, flow L = 3 -> 11 snippet positions.
    p = load(ws, "flow", "--explain-frames", "4")
    args = predict.get_args_parser().parse_args(["v", "--checkpoint", "c", "--explain-frames", "4"])
    maps, indices = explanations.explain_frames_2d(p, ws["videos"][0], 14, 0, args, torch.device("cpu"))
    starts = [int((k + 0.5) * 11 / 4) for k in range(4)]  # the segment centres of the positions
    assert list(indices) == [s + 1 for s in starts] and maps.shape == (4, 32, 32)


def test_flow_of_other_settings_or_mixed_settings_is_one_line(ws, tmp_path):
    other = tmp_path / "flow_other"
    extract_flow.main(extract_flow.get_args_parser().parse_args(
        ["--data-dir", ws["data"], "--out", str(other), "--method", "farneback", "--size", "40x32", "--workers", "0"]))
    with pytest.raises(guards.UserError, match="farneback.*trained on flow made with dis-ultrafast"):
        test_single_frame.main(test_single_frame.get_args_parser().parse_args(
            ["--checkpoint", ws["ckpt"]["flow"], "--predictions-dir", str(tmp_path / "p"), "--output-dir",
             str(tmp_path / "o"), "--workers", "0", "--device", "cpu", "--flow-dir", str(other)]))
    one = next(iter(sorted(other.glob("*/*.hdf5"))))
    with h5py.File(one, "a") as f:
        f.attrs["bound"] = 15.0
    with pytest.raises(guards.UserError, match=r"different settings.*bound (20.0 / 15.0|15.0 / 20.0)"):
        train_single_frame.main(train_single_frame.get_args_parser().parse_args(
            ["--data-dir", ws["data"], "--output-dir", str(tmp_path / "r"), *FAST, "--modality", "flow",
             "--flow-dir", str(other)]))


def test_recorded_settings_of_each_storage_and_of_older_files(ws, tmp_path):
    video = ws["videos"][0]
    jpeg = tmp_path / "jpeg.hdf5"
    extract.write_flow(jpeg, video, extract.FlowSettings(method="farneback", size=None, storage="jpeg", quality=80))
    assert recorded.file_settings(str(jpeg)) == {"flow_method": "farneback", "flow_size": "native", "flow_bound": 20.0,
                                                 "flow_storage": "jpeg", "flow_quality": 80}
    settings, was_recorded = recorded.settings_of(recorded.file_settings(str(jpeg)))
    assert was_recorded and settings == extract.FlowSettings(method="farneback", size=None, storage="jpeg", quality=80)
    assert recorded.describe(settings) == "farneback, native, bound 20, jpeg (quality 80)"
    older = tmp_path / "older.hdf5"  # written before the resize attribute: its frame size is the setting
    extract.write_flow(older, video, extract.FlowSettings(method="dis-fast", size=(24, 16)))
    with h5py.File(older, "a") as f:
        del f.attrs["resize"]
    assert recorded.file_settings(str(older))["flow_size"] == "24x16"
    with pytest.raises(ValueError, match="not a finished flow file"):
        recorded.file_settings(video)  # a video, not flow
