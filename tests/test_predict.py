"""predict.py on tiny checkpoints of every kind (single frame, 3D ResNet, RNN over part-1 features) trained
on the synthetic set, and on the real UCF-101 sample clips when ../shared is present: top-k lists,
the fusion against evaluation/fusion.fuse_scores of the test scripts' own predictions, --weights from a
results.json, one line per failure with the others still predicted, exit statuses, Grad-CAM files."""
import json
import os
import sys

import cv2
import h5py
import numpy as np
import pytest
import torch
import torchvision

import extract_features
import make_synthetic_ucf101
import predict
import test_3d
import test_single_frame
import train_3d
import train_rnn
import train_single_frame
from actionrec import guards
from actionrec.data import feature_files, split_lists, video_chunks, video_files
from actionrec.engine import devices, runner
from actionrec.evaluation import fusion as score_fusion
from actionrec.evaluation import predictions as prediction_files
from actionrec.evaluation import scores as video_scores
from actionrec.inference import explanations, gradcam, predictor, video_logits
from actionrec.zoo import frame_nets
from helpers import run_group

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(REPO, "..", "shared", "data", "ucf101-samples")
SAMPLE_FRAMES = {"v_ApplyEyeMakeup_g01_c01": 164, "v_BaseballPitch_g01_c01": 107, "v_Basketball_g01_c01": 141,
                 "v_Archery_g01_c01": 131, "v_PlayingGuitar_g16_c02": 250, "v_PushUps_g02_c03": 79}
FAST = ["--image-size", "32", "--workers", "0", "--device", "cpu", "--seed", "3", "--epochs", "1", "--no-tensorboard"]
CLIP_LEN = 8


# Other jobs share the cores: torch's spinning threads would only wait on each other (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ws(tmp_path_factory, one_thread):
    """Synthetic set, three checkpoints (single frame, 3D ResNet-10, GRU over the single-frame model's
    features), one of another class list, and the test scripts' predictions of the first two."""
    root = tmp_path_factory.mktemp("predict")
    data = str(root / "data")
    make_synthetic_ucf101.make_dataset(data, classes=4, train_per_class=3, test_per_class=2, frames=16,
                                       size=(32, 40), seed=0)
    runs = root / "runs"
    ckpt = {name: str(runs / name / "checkpoint.pth") for name in ("single_frame", "3d", "rnn", "other")}
    train_single_frame.main(train_single_frame.get_args_parser().parse_args(
        ["--data-dir", data, "--output-dir", str(runs / "single_frame"), "--arch", "resnet18", "--pretrained", "none",
         "--batch-size", "8"] + FAST))
    train_3d.main(train_3d.get_args_parser().parse_args(
        ["--data-dir", data, "--output-dir", str(runs / "3d"), "--depth", "10", "--kinetics-checkpoint", "none",
         "--batch-size", "4", "--clip-len", str(CLIP_LEN)] + FAST))
    features = str(root / "features")
    extract_features.main(extract_features.get_args_parser().parse_args(
        ["--data-dir", data, "--output-dir", features, "--checkpoint", ckpt["single_frame"], "--workers", "0",
         "--device", "cpu"]))
    train_rnn.main(train_rnn.get_args_parser().parse_args(
        ["--data-dir", data, "--features", features, "--output-dir", str(runs / "rnn"), "--hidden", "16",
         "--layers", "1", "--batch-size", "8", "--max-frames", "6"] + FAST))
    # Same model, classes in another order: another class list.
    other = torch.load(ckpt["single_frame"], map_location="cpu", weights_only=True)
    other["class_list"] = list(reversed(other["class_list"]))
    os.makedirs(os.path.dirname(ckpt["other"]))
    torch.save(other, ckpt["other"])

    class_list, _, (test_paths, _) = split_lists.getUCF101(data, 1)
    scripts = {}
    for name, script, extra in (("single_frame", test_single_frame, []),
                                ("3d", test_3d, ["--mode", "sliding", "--stride", "8"])):
        predictions = str(root / "predictions" / name)
        script.main(script.get_args_parser().parse_args(
            ["--checkpoint", ckpt[name], "--predictions-dir", predictions, "--output-dir", str(root / "test" / name),
             "--workers", "0", "--device", "cpu", "--limit", "3"] + extra))
        scripts[name] = predictions
    return {"root": root, "data": data, "ckpt": ckpt, "features": features, "class_list": [str(c) for c in class_list],
            "videos": [str(p) for p in test_paths[:3]], "predictions": scripts}


def run_predict(argv, capsys):
    """predict.py in this process: (exit status, stdout, stderr lines)."""
    try:
        status = runner.run_main(predict.main, predict.get_args_parser(), [str(a) for a in argv])
    except SystemExit as e:
        status = e.code
    out, err = capsys.readouterr()
    return status, out, [line for line in err.splitlines() if line.strip()]


def json_lines(out):
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def check_top(entries, k, class_list):
    assert len(entries) == k
    probabilities = [p for _, p in entries]
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(0 <= p <= 1 for p in probabilities) and sum(probabilities) <= 1 + 1e-9
    assert len({c for c, _ in entries}) == k and all(c in class_list for c, _ in entries)


def script_score(ws, name, video):
    return video_scores.video_score(
        prediction_files.read_predictions(prediction_files.prediction_path(ws["predictions"][name], video))
    )


# ----------------------------------------------------------------------------------------------
# Predictions and fusion

@pytest.mark.parametrize("rule,weights", [("logmean", "0.3,0.7"), ("prob", None), ("max", "2,1")])
def test_fusion_equals_metrics_fusion_of_the_test_scripts_scores(ws, capsys, rule, weights):
    argv = ws["videos"] + ["--checkpoint", ws["ckpt"]["single_frame"], "--checkpoint", ws["ckpt"]["3d"],
                           "--json", "--device", "cpu", "--top", "4", "--fusion", rule]
    status, out, err = run_predict(argv + (["--weights", weights] if weights else []), capsys)
    assert status == 0 and err == []
    lines = json_lines(out)
    assert [line["path"] for line in lines] == ws["videos"]
    w = [float(x) for x in weights.split(",")] if weights else [0.5, 0.5]
    classes = ws["class_list"]
    for line in lines:
        assert line["frames"] == 16
        scores = [script_score(ws, "single_frame", line["path"]), script_score(ws, "3d", line["path"])]
        for name, score in zip(("single_frame", "3d"), scores):  # each model as its test script scores it
            check_top(line["models"][name], 4, classes)
            expected = video_scores.softmax(score)
            assert {c: p for c, p in line["models"][name]} == pytest.approx(
                {c: expected[classes.index(c)] for c in classes}, abs=1e-6)
        fused = score_fusion.fuse_scores([s[None] for s in scores], rule, w)[0]
        fused = video_scores.softmax(fused) if rule == "logmean" else fused
        assert [c for c, _ in line["fused"]] == [classes[i] for i in video_scores.rank_classes(fused[None])[0]]
        assert [p for _, p in line["fused"]] == pytest.approx(sorted(fused, reverse=True), abs=1e-6)
        check_top(line["fused"], 4, classes)
        if rule != "max":
            assert sum(p for _, p in line["fused"]) == pytest.approx(1.0)


def test_every_kind_in_text_and_json(ws, capsys):
    videos = ws["videos"][:2]
    argv = videos + ["--device", "cpu", "--top", "2", "--stride", "4", "--frames", "5"]
    for name in ("single_frame", "3d", "rnn"):
        argv += ["--checkpoint", ws["ckpt"][name]]
    status, out, err = run_predict(argv + ["--json"], capsys)
    assert status == 0 and err == []
    lines = json_lines(out)
    assert len(lines) == 2
    for line in lines:
        assert list(line["models"]) == ["single_frame", "3d", "rnn"]
        for entries in list(line["models"].values()) + [line["fused"]]:
            check_top(entries, 2, ws["class_list"])
    status, text, err = run_predict(argv, capsys)
    assert status == 0
    assert text.count("(16 frames)") == 2 and "fused (logmean)" in text
    for line in lines:  # the table shows the same classes and probabilities, to 4 digits
        for c, p in line["models"]["rnn"] + line["fused"]:
            assert f"{c}" in text and f"{p:6.4f}" in text


def test_rnn_rebuilds_its_cnn_and_matches_its_features(ws):
    """The features made on the spot equal extract_features.py's files, so the RNN sees what it was tested on."""
    args = predict.get_args_parser().parse_args(["v", "--checkpoint", ws["ckpt"]["rnn"], "--device", "cpu"])
    p = predictor.load_predictor(ws["ckpt"]["rnn"], "rnn", args, devices.Dist(), torch.device("cpu"))
    assert p.kind == "features" and p.cnn_size == 32
    video = ws["videos"][0]
    made = video_logits.video_features(p, video, torch.device("cpu"), (False, torch.float32))
    stored = feature_files.read_features(prediction_files.prediction_path(ws["features"], video), np.arange(16))
    np.testing.assert_allclose(made.astype(np.float32), stored.astype(np.float32), atol=2e-3)


@pytest.mark.skipif(not os.path.isdir(SAMPLES), reason="../shared/data/ucf101-samples not present")
def test_real_clips(ws, capsys):
    videos = sorted(os.path.join(SAMPLES, c, f) for c in os.listdir(SAMPLES)
                    for f in os.listdir(os.path.join(SAMPLES, c)))
    argv = videos + ["--checkpoint", ws["ckpt"]["single_frame"], "--checkpoint", ws["ckpt"]["3d"], "--json",
                     "--device", "cpu", "--top", "3", "--frames", "4", "--stride", "32"]
    status, out, err = run_predict(argv, capsys)
    assert status == 0 and err == []
    lines = json_lines(out)
    assert {os.path.splitext(os.path.basename(line["path"]))[0]: line["frames"] for line in lines} == SAMPLE_FRAMES
    for line in lines:
        for entries in list(line["models"].values()) + [line["fused"]]:
            check_top(entries, 3, ws["class_list"])


# ----------------------------------------------------------------------------------------------
# --weights from combine_results.py's results.json

def write_results(path, models, fusions):
    with open(path, "w") as f:
        json.dump({"models": models, "fusions": fusions}, f)


def test_weights_from_results_json(ws, capsys, tmp_path):
    sf, td = ws["ckpt"]["single_frame"], ws["ckpt"]["3d"]
    results = tmp_path / "results.json"
    # Matched by checkpoint path under other names; members in the other order; two rules recorded.
    write_results(results, {"a": {"checkpoint": os.path.abspath(td)}, "b": {"checkpoint": os.path.abspath(sf)}},
                  {"a+b": {"members": ["a", "b"], "rule": "logmean", "weights": [0.8, 0.2]},
                   "a+b_prob": {"members": ["a", "b"], "rule": "prob", "weights": [0.9, 0.1]}})
    video = ws["videos"][0]
    scores = [script_score(ws, "single_frame", video), script_score(ws, "3d", video)]
    for extra, rule, weights in (([], "logmean", [0.2, 0.8]), (["--fusion", "prob"], "prob", [0.1, 0.9])):
        status, out, err = run_predict([video, "--checkpoint", sf, "--checkpoint", td, "--json", "--device", "cpu",
                                        "--weights", results] + extra, capsys)
        assert status == 0 and len(err) == 1 and "fusion a+b" in err[0]  # says which fusion it took
        fused = score_fusion.fuse_scores([s[None] for s in scores], rule, weights)[0]
        fused = video_scores.softmax(fused) if rule == "logmean" else fused
        assert json_lines(out)[0]["fused"][0][1] == pytest.approx(fused.max(), abs=1e-6)
    # Matched by name when the results record no checkpoint.
    write_results(results, {"single_frame": {}, "3d": {}}, {"all": {"members": ["single_frame", "3d"],
                                                                   "rule": "max", "weights": [0.5, 0.5]}})
    status, out, err = run_predict([video, "--checkpoint", sf, "--checkpoint", td, "--json", "--device", "cpu",
                                    "--weights", results], capsys)
    fused = score_fusion.fuse_scores([s[None] for s in scores], "max", [0.5, 0.5])[0]
    assert status == 0 and json_lines(out)[0]["fused"][0][1] == pytest.approx(fused.max(), abs=1e-6)
    # A fusion of --weights auto: each score divided by its recorded temperature before the weights apply.
    write_results(results, {"single_frame": {}, "3d": {}}, {"all": {
        "members": ["3d", "single_frame"], "rule": "logmean", "weights": [0.75, 0.25], "temperatures": [0.5, 2.5]}})
    status, out, err = run_predict([video, "--checkpoint", sf, "--checkpoint", td, "--json", "--device", "cpu",
                                    "--weights", results], capsys)
    fused = video_scores.softmax(0.25 * scores[0] / 2.5 + 0.75 * scores[1] / 0.5)
    assert status == 0 and json_lines(out)[0]["fused"][0][1] == pytest.approx(fused.max(), abs=1e-6)
    assert "weights single_frame 0.25, 3d 0.75, temperatures single_frame 2.5, 3d 0.5" in err[0]
    # Cannot be matched: one line, usage error.
    for models, fusions in (({"x": {}, "3d": {}}, {"all": {"members": ["x", "3d"], "rule": "max", "weights": [1, 1]}}),
                            ({"single_frame": {}, "3d": {}}, {})):
        write_results(results, models, fusions)
        status, out, err = run_predict([video, "--checkpoint", sf, "--checkpoint", td, "--device", "cpu",
                                        "--weights", results], capsys)
        assert status == 2 and out == "" and len(err) == 1 and "cannot be matched" in err[0]


def test_results_json_model_is_the_test_of_predicts_mode(ws, capsys, tmp_path):
    """One checkpoint tested in two modes is two models of a results.json (the demo's 3d and 3d_full):
    predict.py takes the one tested as it tests (sliding windows), whichever is listed last, and says so."""
    sf, td = os.path.abspath(ws["ckpt"]["single_frame"]), os.path.abspath(ws["ckpt"]["3d"])
    frames = {"checkpoint": sf, "test": {"mode": "frames", "frames": 0, "crops": 1, "description": "every frame"}}

    def clip_test(mode, stride=8):
        return {"checkpoint": td, "test": {"mode": mode, "clip_len": CLIP_LEN, "stride": stride, "max_frames": 512,
                                           "crops": 1, "description": f"{mode} at {stride}"}}

    def fusion(*members, weights=(0.3, 0.7)):
        return {"members": list(members), "rule": "logmean", "weights": list(weights)}

    results = tmp_path / "results.json"
    video = ws["videos"][0]
    scores = [script_score(ws, "single_frame", video), script_score(ws, "3d", video)]

    def predict(models, fusions, *extra):
        write_results(results, models, fusions)
        return run_predict([video, "--checkpoint", sf, "--checkpoint", td, "--json", "--device", "cpu",
                            "--weights", results, *extra], capsys)

    # The sliding model, listed before the full one, with the fusion it is in.
    status, out, err = predict({"sf": frames, "3d": clip_test("sliding"), "3d_full": clip_test("full")},
                               {"sf+3d_full": fusion("sf", "3d_full", weights=(0.9, 0.1)), "sf+3d": fusion("sf", "3d")})
    assert status == 0 and len(err) == 1
    assert "fusion sf+3d of" in err[0] and "3d as its 3d (sliding at 8), not 3d_full (full at 8)" in err[0]
    fused = video_scores.softmax(score_fusion.fuse_scores([s[None] for s in scores], "logmean", [0.3, 0.7])[0])
    assert json_lines(out)[0]["fused"][0][1] == pytest.approx(fused.max(), abs=1e-6)
    # Of two sliding tests the one at predict.py's stride; with none at it, the one sliding test, the
    # difference said.
    status, _, err = predict({"sf": frames, "3d": clip_test("sliding"), "3d_s4": clip_test("sliding", 4)},
                             {"sf+3d": fusion("sf", "3d"), "sf+3d_s4": fusion("sf", "3d_s4")}, "--stride", "4")
    assert status == 0 and "fusion sf+3d_s4 of" in err[0] and "not 3d (sliding at 8)" in err[0]
    status, _, err = predict({"sf": frames, "3d": clip_test("sliding")}, {"sf+3d": fusion("sf", "3d")}, "--stride", "4")
    said = f"3d as its 3d (sliding at 8; predict.py: sliding {CLIP_LEN}-frame windows, stride 4)"
    assert status == 0 and said in err[0]
    # Only a full-mode test of the checkpoint, or two sliding tests at strides it does not use: one line, exit 2.
    status, out, err = predict({"sf": frames, "3d_full": clip_test("full")}, {"sf+3d_full": fusion("sf", "3d_full")})
    assert status == 2 and out == "" and len(err) == 1
    assert "cannot be matched" in err[0] and "only as 3d_full (full at 8)" in err[0] and "sliding mode" in err[0]
    status, out, err = predict({"sf": frames, "a": clip_test("sliding", 2), "b": clip_test("sliding", 4)},
                               {"sf+a": fusion("sf", "a")})
    assert status == 2 and len(err) == 1 and "several of its models" in err[0] and "a (sliding at 2)" in err[0]


# ----------------------------------------------------------------------------------------------
# Failures and usage errors

def test_failures_are_one_line_each_and_the_rest_is_predicted(ws, tmp_path):
    missing = tmp_path / "missing.avi"
    text = tmp_path / "notes.avi"
    text.write_text("not a video\n")
    empty = tmp_path / "empty.hdf5"
    with h5py.File(empty, "w") as f:
        f.create_dataset("video", shape=(0, 32, 40, 3), dtype=np.uint8)
    with pytest.raises(video_files.VideoReadError, match="no frames"):  # what the loader says of it
        video_files.video_info(str(empty))
    good = ws["videos"][:2]
    argv = [sys.executable, os.path.join(REPO, "predict.py"), good[0], missing, text, empty, good[1],
            "--checkpoint", ws["ckpt"]["single_frame"], "--checkpoint", ws["ckpt"]["other"],
            "--checkpoint", tmp_path / "no.pth", "--checkpoint", text, "--checkpoint", ws["ckpt"]["3d"],
            "--json", "--device", "cpu", "--frames", "4"]
    done = run_group([str(a) for a in argv], cwd=REPO, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 1
    err = done.stderr.splitlines()
    assert "Traceback" not in done.stderr and len(err) == 6, done.stderr
    assert all(line.startswith("predict.py: ") for line in err)
    assert "other" in err[0] and "class list" in err[0] and "left out" in err[0]
    assert str(tmp_path / "no.pth") in err[1] and "left out" in err[2]
    assert f"{missing}: no such file" in err[3]
    assert str(text) in err[4] and "not a readable video" in err[4]
    assert str(empty) in err[5] and "no frames" in err[5]
    lines = json_lines(done.stdout)
    assert [line["path"] for line in lines] == good
    assert all(list(line["models"]) == ["single_frame", "3d"] and line["fused"] for line in lines)


def test_rnn_without_its_features_json_or_cnn_is_left_out(ws, capsys, tmp_path):
    state = torch.load(ws["ckpt"]["rnn"], map_location="cpu", weights_only=True)
    cases = {}
    state["args"]["features"] = str(tmp_path / "gone")
    cases["gone"] = tmp_path / "gone_rnn.pth"
    torch.save(state, cases["gone"])
    moved = tmp_path / "moved"
    moved.mkdir()
    with open(os.path.join(ws["features"], feature_files.FEATURES_INFO)) as f:
        info = json.load(f)
    (moved / feature_files.FEATURES_INFO).write_text(json.dumps({**info, "weights": str(tmp_path / "cnn.pth")}))
    state["args"]["features"] = str(moved)
    cases["moved"] = tmp_path / "moved_rnn.pth"
    torch.save(state, cases["moved"])
    status, out, err = run_predict([ws["videos"][0], "--checkpoint", cases["gone"], "--checkpoint", cases["moved"],
                                    "--checkpoint", ws["ckpt"]["3d"], "--json", "--device", "cpu"], capsys)
    assert status == 1 and len(err) == 2
    assert "features.json" in err[0] and "gone" in err[0]
    assert str(tmp_path / "cnn.pth") in err[1] and "not found" in err[1]
    line = json_lines(out)[0]
    assert list(line["models"]) == ["3d"] and line["fused"] is None


@pytest.mark.parametrize("argv,message", [
    (["--top", "0"], "--top"),
    (["--bogus"], "unrecognized"),
    (["--weights", "1,2"], "nothing to fuse"),
    (["--checkpoint", "{3d}", "--weights", "1,x"], "expected 2"),
    (["--explain-class", "NoSuchClass", "--explain", "{tmp}"], "NoSuchClass"),
])
def test_usage_errors_exit_2(ws, capsys, tmp_path, argv, message):
    argv = [a.format(**{"3d": ws["ckpt"]["3d"], "tmp": tmp_path}) for a in argv]
    status, out, err = run_predict([ws["videos"][0], "--checkpoint", ws["ckpt"]["single_frame"], "--device", "cpu"]
                                   + argv, capsys)
    assert status == 2 and out == ""
    assert message in err[-1] and "Traceback" not in "".join(err)


def test_no_usable_checkpoint_exits_2(ws, capsys, tmp_path):
    # One checkpoint that does not load: that is the usage error, in one line naming it.
    status, out, err = run_predict([ws["videos"][0], "--checkpoint", tmp_path / "no.pth", "--device", "cpu"], capsys)
    assert status == 2 and out == "" and len(err) == 1 and str(tmp_path / "no.pth") in err[0]
    # Several, none usable: each left out by name, then the usage error.
    status, out, err = run_predict([ws["videos"][0], "--checkpoint", tmp_path / "no.pth", "--checkpoint",
                                    tmp_path / "neither.pth", "--device", "cpu"], capsys)
    assert status == 2 and out == "" and len(err) == 3 and "no checkpoint could be used" in err[2]
    assert str(tmp_path / "neither.pth") in err[1]


# ----------------------------------------------------------------------------------------------
# Grad-CAM

def read_png(path):
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return image


def test_explain_writes_maps_of_every_model(ws, capsys, tmp_path):
    video = ws["videos"][0]
    real = os.path.join(SAMPLES, "PushUps", "v_PushUps_g02_c03.avi")
    videos = [video] + ([real] if os.path.isfile(real) else [])
    out_dir = tmp_path / "explain"
    argv = videos + ["--device", "cpu", "--explain", out_dir, "--explain-frames", "5", "--explain-clips", "3",
                     "--image-size", "64", "--explain-class", ws["class_list"][1]]
    for name in ("single_frame", "3d", "rnn"):
        argv += ["--checkpoint", ws["ckpt"][name]]
    status, out, err = run_predict(argv, capsys)
    assert status == 0 and err == []
    for path in videos:
        stem = os.path.splitext(os.path.basename(path))[0]
        shapes = {"single_frame": (5, 64, 64), "3d": (3, CLIP_LEN, 64, 64), "rnn": (5, 64, 64)}
        for name, shape in shapes.items():
            maps = np.load(out_dir / f"{stem}.{name}.npy")
            assert maps.shape == shape and maps.dtype == np.float32
            assert 0 <= maps.min() and maps.max() <= 1
            _, height, width = video_logits.check_video(path)
            scale = min(1.0, gradcam.MAX_TILE_HEIGHT / height)
            tile_h, tile_w = round(height * scale), round(width * scale)  # 5 tiles, titled
            assert read_png(out_dir / f"{stem}.{name}.png").shape == (
                gradcam.TITLE_HEIGHT + 2 * tile_h + gradcam.TILE_GAP, 5 * tile_w + 4 * gradcam.TILE_GAP, 3)


def test_rnn_explanation_rows_are_the_rnn_windows(ws):
    """Row k of the explained function is the RNN's logit of the window holding step k: with the frame's own
    features it equals the prediction's row of that window."""
    args = predict.get_args_parser().parse_args(["v", "--checkpoint", ws["ckpt"]["rnn"], "--device", "cpu"])
    p = predictor.load_predictor(ws["ckpt"]["rnn"], "rnn", args, devices.Dist(), torch.device("cpu"))
    video = ws["videos"][1]
    logits = video_logits.video_logits(p, video, torch.device("cpu"), (False, torch.float32))  # (3 windows of 6, 4)
    features = torch.from_numpy(p.last_features[1]).float()
    steps = [0, 7, 15]
    x = p.cnn_normalize(devices.to_device(video_chunks.load_chunk(video, steps, size=p.cnn_size), torch.device("cpu")))
    with torch.no_grad():
        rows = explanations.ThroughCNN(p.cnn, p.model, features, steps, p.max_frames).eval()(x)
    np.testing.assert_allclose(rows.numpy(), logits[[0, 1, 2]], atol=1e-3)


def test_feature_cnn_from_each_source_features_json_names(ws, monkeypatch, tmp_path):
    """extract_features.py records "imagenet (arch)", an ImageNet weights file, or a part-1 checkpoint."""
    args = predict.get_args_parser().parse_args(["v", "--checkpoint", "c"])
    ranks = devices.Dist()
    state = torchvision.models.resnet18(weights=None).state_dict()
    monkeypatch.setattr(frame_nets, "imagenet_state_dict", lambda arch, ranks: state)
    weights = tmp_path / "resnet18.pth"
    torch.save(state, weights)
    x = torch.randn(2, 3, 32, 32)
    for source, size in (("imagenet (resnet18)", 48), (str(weights), 48), (ws["ckpt"]["single_frame"], None)):
        cnn, cnn_size = predictor.feature_cnn({"arch": "resnet18", "weights": source, "image_size": size}, "f", args,
                                            ranks)
        assert cnn_size == (size or 32)  # a part-1 checkpoint without a recorded size: its training size
        with torch.no_grad():
            assert cnn.eval()(x).shape == (2, 512)
        if source == str(weights):
            assert torch.equal(cnn.conv1.weight, state["conv1.weight"])
    with pytest.raises(guards.UserError, match="randomly initialised"):
        predictor.feature_cnn({"arch": "resnet18", "weights": "none (resnet18)"}, "f", args, ranks)

