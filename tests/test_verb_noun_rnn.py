"""Issue 26 for the recurrent model: features of every segment of an annotation CSV (extract_features.py
--annotations), a GRU with a verb and a noun head (train_rnn.py), its test (test_rnn.py) and report
(combine_results.py --heads), and predict.py on its checkpoint; numbers recomputed by hand from the
written files and from the model. CPU, tiny."""
import argparse
import csv
import json
import shutil

import h5py
import numpy as np
import pytest
import torch

import combine_results
import extract_features
import make_synthetic_ucf101
import predict
import test_rnn
import train_rnn
import train_single_frame
from actionrec.data import feature_files
from actionrec.engine import devices, label_heads, model_io
from actionrec.evaluation import predictions as prediction_files
from actionrec.evaluation import scores as video_scores
from actionrec.guards import UserError
from actionrec.zoo import rnn_nets

CPU = ["--workers", "0", "--device", "cpu"]
RNN = CPU + ["--seed", "2", "--batch-size", "4", "--hidden", "8", "--max-frames", "5", "--no-tensorboard"]
VERBS, NOUNS = ["rise", "fall", "stay"], ["red_square", "blue_disc", "green_diamond"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("verbnoun")
    make_synthetic_ucf101.make_verb_noun_dataset(out, recordings=6, segments=4, val_recordings=1, test_recordings=1,
                                                 frames=12, size=(32, 40), seed=0)
    return out


def dataset_flags(root):
    return ["--annotations", str(root / "annotations.csv"), "--videos", str(root / "videos")]


def segments(root, subset=None):
    with open(root / "annotations.csv", newline="") as f:
        return [r for r in csv.DictReader(f) if subset in (None, r["split"])]


@pytest.fixture(scope="module")
def cnn(data, tmp_path_factory):
    """A two-head ResNet-18 trained for one step: the CNN of the features (predict.py rebuilds it)."""
    out = tmp_path_factory.mktemp("cnn")
    train_single_frame.main(train_single_frame.get_args_parser().parse_args(
        [*dataset_flags(data), "--output-dir", str(out), "--arch", "resnet18", "--pretrained", "none",
         "--image-size", "32", "--batch-size", "4", "--epochs", "1", "--max-steps", "1", "--no-tensorboard", *CPU]))
    return out / "checkpoint.pth"


@pytest.fixture(scope="module")
def features(data, cnn, tmp_path_factory):
    out = tmp_path_factory.mktemp("features")
    extract_features.main(extract_features.get_args_parser().parse_args(
        [*dataset_flags(data), "--checkpoint", str(cnn), "--output-dir", str(out), "--chunk-frames", "6", *CPU]))
    return out


@pytest.fixture(scope="module")
def rnn_run(data, features, tmp_path_factory):
    out = tmp_path_factory.mktemp("rnn")
    train_rnn.main(train_rnn.get_args_parser().parse_args(
        [*dataset_flags(data), "--features", str(features), "--output-dir", str(out), "--epochs", "2",
         "--frame-loss", "--keep-best", "val_loss", *RNN]))
    return out


def test_features_of_every_segment_whatever_its_split(data, features):
    rows = segments(data)
    assert {r["split"] for r in rows} == {"train", "val", "test"} and len(rows) == 24
    for row in rows:
        path = features / "videos" / f"{row['uid']}.hdf5"
        assert feature_files.feature_info(path) == (12, 512)
        with h5py.File(path) as f:
            assert f["features"].attrs["source"] == "checkpoint" and f["features"].attrs["arch"] == "resnet18"
    info = json.loads((features / "features.json").read_text())
    assert info["annotations"].endswith("annotations.csv") and info["dims"] == 512 and "split" not in info


def test_extraction_user_mistakes_are_one_line(data, tmp_path):
    with pytest.raises(UserError, match="leave out --subsets"):
        extract_features.main(extract_features.get_args_parser().parse_args(
            [*dataset_flags(data), "--subsets", "train", "--output-dir", str(tmp_path / "f"), *CPU]))
    with pytest.raises(UserError, match="--annotations needs --videos"):
        extract_features.main(extract_features.get_args_parser().parse_args(
            ["--annotations", str(data / "annotations.csv"), "--output-dir", str(tmp_path / "f"), *CPU]))


def test_the_step_loss_of_heads_is_each_steps_heads_loss():
    heads = label_heads.Heads(["verb", "noun"], {"verb": VERBS, "noun": NOUNS[:2]}, [1.0, 0.5])
    forward = model_io.Forward(model_io.FeatureInput(), frame_loss=True)
    forward.heads = heads
    step_logits = torch.randn(2, 4, 5, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([[2, 0], [1, 1]])
    got = forward.step_losses(step_logits, labels)
    for n in range(2):
        for t in range(4):
            row = step_logits[n, t]
            verb, noun = torch.log_softmax(row[:3], 0), torch.log_softmax(row[3:], 0)
            expected = -verb[labels[n, 0]] - 0.5 * noun[labels[n, 1]]
            assert got[n, t].item() == pytest.approx(expected.item(), rel=1e-5)


def rnn_model(checkpoint):
    model = rnn_nets.build_model(argparse.Namespace(**checkpoint["args"]), len(checkpoint["class_list"]),
                                 devices.Dist(), pretrained=False)
    model.load_state_dict(checkpoint["model"])
    return model.eval()


def test_a_two_head_gru_trains_tests_and_reports(data, features, rnn_run, tmp_path):
    log = [json.loads(line) for line in (rnn_run / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == [1, 2] and all(e["samples"] == 16 for e in log)
    assert all({"val_loss", "val_verb_acc", "val_noun_acc", "val_acc"} <= set(e) for e in log)
    checkpoint = torch.load(rnn_run / "checkpoint.pth", map_location="cpu", weights_only=True)
    assert checkpoint["kind"] == "features" and checkpoint["heads"]["classes"] == {"verb": VERBS, "noun": NOUNS}
    assert checkpoint["class_list"] == [f"verb:{v}" for v in VERBS] + [f"noun:{n}" for n in NOUNS]
    assert checkpoint["model"]["fc.weight"].shape[0] == 6
    best = torch.load(rnn_run / "best.pth", map_location="cpu", weights_only=True)
    assert best["epoch"] == min(log, key=lambda e: e["val_loss"])["epoch"]

    pred, test_dir = tmp_path / "pred", tmp_path / "test"
    results = test_rnn.main(test_rnn.get_args_parser().parse_args(
        ["--checkpoint", str(rnn_run / "checkpoint.pth"), "--predictions-dir", str(pred), "--output-dir",
         str(test_dir), *CPU]))
    model, rows, hits = rnn_model(checkpoint), segments(data, "test"), []
    for i, row in enumerate(rows):
        logits, attrs = prediction_files.read_prediction_file(pred / "videos" / f"{row['uid']}.hdf5")
        assert json.loads(attrs["heads"]) == {"names": ["verb", "noun"], "sizes": [3, 3]}
        if i == 0:  # windows of 5, 5 and 2 steps, one row each, both heads side by side
            feats = torch.from_numpy(feature_files.read_features(features / "videos" / f"{row['uid']}.hdf5",
                                                                 np.arange(12))).float()
            with torch.no_grad():
                expected = torch.cat([model(feats[a:a + 5][None], torch.tensor([len(feats[a:a + 5])]))
                                      for a in range(0, 12, 5)]).numpy()
            np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
        verb = video_scores.video_score(logits[:, :3]).argmax() == int(row["verb_class"])
        noun = video_scores.video_score(logits[:, 3:]).argmax() == int(row["noun_class"])
        hits.append((verb, noun, verb and noun))
    verb, noun, action = np.array(hits, dtype=float).mean(0)
    saved = json.loads((test_dir / "results.json").read_text())
    assert saved == json.loads(json.dumps(results)) and saved["videos"] == 4 and saved["subset"] == "test"
    assert (saved["heads"]["verb"]["top1"], saved["heads"]["noun"]["top1"], saved["action"]["top1"]) == \
        pytest.approx((verb, noun, action))
    assert np.load(test_dir / "confusion_matrix_action.npy").sum() == 4
    assert saved["model"]["kind"] == "features" and saved["model"]["rows"] == "windows"

    combine_results.main(combine_results.get_args_parser().parse_args(
        ["--heads", f"gru={test_dir}", "--output-dir", str(tmp_path / "report")]))
    table = (tmp_path / "report" / "heads.md").read_text()
    assert f"| gru | verb | {100 * verb:.2f} |" in table and f"| gru | action | {100 * action:.2f} |" in table


def test_predict_on_a_two_head_gru_equals_its_heads_by_hand(data, features, rnn_run, capsys, tmp_path):
    """predict.py rebuilds the features' CNN, runs the GRU over windows of its training length: its verb,
    noun and action probabilities equal softmax per head of the mean log-softmax over the windows of
    the GRU on the stored features, and their products."""
    row = segments(data, "test")[1]
    video = str(data / "videos" / f"{row['uid']}.hdf5")
    checkpoint = torch.load(rnn_run / "checkpoint.pth", map_location="cpu", weights_only=True)
    feats = torch.from_numpy(feature_files.read_features(features / "videos" / f"{row['uid']}.hdf5",
                                                         np.arange(12))).float()
    with torch.no_grad():
        logits = torch.cat([rnn_model(checkpoint)(feats[a:a + 5][None], torch.tensor([len(feats[a:a + 5])]))
                            for a in range(0, 12, 5)]).double()
    verb = torch.log_softmax(logits[:, :3], 1).mean(0).softmax(0).numpy()
    noun = torch.log_softmax(logits[:, 3:], 1).mean(0).softmax(0).numpy()
    assert predict.main(predict.get_args_parser().parse_args(
        [video, "--checkpoint", str(rnn_run / "checkpoint.pth"), "--device", "cpu", "--top", "9", "--json"])) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    tops = line["models"][rnn_run.name]
    # the stored features are float16 of the same CNN: the probabilities agree to float16's precision
    assert {c: p for c, p in tops["verb"]} == pytest.approx(dict(zip(VERBS, verb)), abs=2e-3)
    assert {c: p for c, p in tops["noun"]} == pytest.approx(dict(zip(NOUNS, noun)), abs=2e-3)
    actions = {f"{v} {n}": verb[i] * noun[j] for i, v in enumerate(VERBS) for j, n in enumerate(NOUNS)}
    assert {c: p for c, p in tops["action"]} == pytest.approx(actions, abs=2e-3)
    assert [c for c, _ in tops["action"]][0] == f"{VERBS[verb.argmax()]} {NOUNS[noun.argmax()]}"
    # Grad-CAM through the CNN of the GRU's noun head: maps of 3 of its steps
    assert predict.main(predict.get_args_parser().parse_args(
        [video, "--checkpoint", str(rnn_run / "checkpoint.pth"), "--device", "cpu", "--explain", str(tmp_path),
         "--explain-frames", "3", "--explain-head", "noun"])) == 0
    assert np.load(tmp_path / f"{row['uid']}.{rnn_run.name}.npy").shape == (3, 32, 32)


def test_training_without_the_features_of_a_segment_is_one_line(data, features, tmp_path):
    copy = tmp_path / "features"
    shutil.copytree(features, copy)
    (copy / "videos" / f"{segments(data, 'val')[0]['uid']}.hdf5").unlink()
    with pytest.raises(UserError, match="1 of the 4 videos have no feature file"):
        train_rnn.main(train_rnn.get_args_parser().parse_args(
            [*dataset_flags(data), "--features", str(copy), "--output-dir", str(tmp_path / "run"), *RNN]))
