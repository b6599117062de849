"""predict.py on checkpoints with a verb and a noun head (issue 26): per head the softmax of its own outputs,
actions as the product of the two, head-by-head fusion, and Grad-CAM of the chosen head's class, each
recomputed by hand from the model. CPU, tiny (the RNN's heads: tests/test_verb_noun_rnn.py)."""
import json

import numpy as np
import pytest
import torch

import make_synthetic_ucf101
import train_3d
import train_single_frame
from actionrec.data import normalization, sampling, video_chunks
from actionrec.engine import devices, model_io
from actionrec.inference import gradcam, label_sets
from actionrec.zoo import frame_nets
from test_predict import run_predict

CPU = ["--workers", "0", "--device", "cpu", "--seed", "1", "--no-tensorboard", "--image-size", "32"]
VERBS, NOUNS = ["rise", "fall", "stay"], ["red_square", "blue_disc", "green_diamond"]


# Other jobs share the cores: torch's spinning threads would only wait on each other (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ws(tmp_path_factory, one_thread):
    """A tiny verb/noun set and two head checkpoints: a single-frame ResNet-18 and a 3D ResNet-10."""
    root = tmp_path_factory.mktemp("predict_heads")
    make_synthetic_ucf101.make_verb_noun_dataset(root, recordings=4, segments=3, val_recordings=1, test_recordings=1,
                                                 frames=12, size=(32, 40), seed=0)
    dataset = ["--annotations", str(root / "annotations.csv"), "--videos", str(root / "videos")]
    train_single_frame.main(train_single_frame.get_args_parser().parse_args(
        [*dataset, "--output-dir", str(root / "frame"), "--arch", "resnet18", "--pretrained", "none",
         "--batch-size", "4", "--epochs", "1", "--max-steps", "2", *CPU]))
    train_3d.main(train_3d.get_args_parser().parse_args(
        [*dataset, "--output-dir", str(root / "r3d"), "--depth", "10", "--kinetics-checkpoint", "none",
         "--clip-len", "8", "--batch-size", "4", "--epochs", "1", "--max-steps", "1", *CPU]))
    return {"root": root, "video": str(root / "videos" / "rec01_seg02.hdf5"),
            "frame": str(root / "frame" / "checkpoint.pth"), "r3d": str(root / "r3d" / "checkpoint.pth")}


def frame_model(path):
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = frame_nets.build_model(train_single_frame.get_args_parser().parse_args(
        ["--arch", "resnet18", "--pretrained", "none"]), 6, devices.Dist(), pretrained=False)
    model.load_state_dict(checkpoint["model"])
    return model.eval()


def frame_inputs(video, indices, size=32):
    frames = torch.from_numpy(video_chunks.load_chunk(video, indices, size=size))
    return model_io.Normalize(normalization.FRAME_MEAN, normalization.FRAME_STD)(frames)


def by_hand(ws, size=32):
    """(verb, noun) probabilities of the single-frame model on every frame of the video: each head's softmax
    of the mean over the frames of its own log-softmax."""
    with torch.no_grad():
        logits = frame_model(ws["frame"])(frame_inputs(ws["video"], np.arange(12), size)).double()  # (12, 3 + 3)
    verb = torch.log_softmax(logits[:, :3], 1).mean(0).softmax(0).numpy()
    noun = torch.log_softmax(logits[:, 3:], 1).mean(0).softmax(0).numpy()
    return verb, noun


def test_each_head_has_its_own_softmax_and_actions_are_their_product(ws, capsys):
    verb, noun = by_hand(ws)
    actions = {f"{v} {n}": verb[i] * noun[j] for i, v in enumerate(VERBS) for j, n in enumerate(NOUNS)}
    status, out, err = run_predict([ws["video"], "--checkpoint", ws["frame"], "--device", "cpu", "--top", "9",
                                    "--json"], capsys)
    assert status == 0, err
    tops = json.loads(out.strip().splitlines()[-1])["models"]["frame"]
    assert list(tops) == ["verb", "noun", "action"]
    assert [c for c, _ in tops["verb"]] == [VERBS[i] for i in np.argsort(-verb, kind="stable")]
    assert dict(tops["verb"]) == pytest.approx(dict(zip(VERBS, verb)), abs=1e-5)
    assert dict(tops["noun"]) == pytest.approx(dict(zip(NOUNS, noun)), abs=1e-5)
    assert dict(tops["action"]) == pytest.approx(actions, abs=1e-5) and len(tops["action"]) == 9
    assert tops["action"][0][0] == f"{VERBS[verb.argmax()]} {NOUNS[noun.argmax()]}"

    # the table: a block per head and one for the actions, the same numbers to 4 digits
    status, text, _ = run_predict([ws["video"], "--checkpoint", ws["frame"], "--device", "cpu", "--top", "2"],
                                  capsys)
    assert status == 0
    lines = text.splitlines()
    for block, expected in (("verb", dict(zip(VERBS, verb))), ("noun", dict(zip(NOUNS, noun))),
                            ("action", actions)):
        at = next(i for i, line in enumerate(lines) if line.split()[:2] == [block, "frame"])
        best = sorted(expected.items(), key=lambda kv: -kv[1])[:2]
        for rank, (name, p) in enumerate(best, 1):
            assert lines[at + rank].split() == [str(rank), *name.split(), f"{p:6.4f}"]


@pytest.mark.parametrize("rule", ["logmean", "prob"])
def test_two_head_models_fuse_head_by_head(ws, capsys, rule):
    """Weights w: each head's fused distribution is, of that head's own probabilities (never a softmax over
    verbs and nouns together), proportional to p1^w1 p2^w2 (logmean) or w1 p1 + w2 p2 (prob); actions are
    the fused heads' product."""
    argv = [ws["video"], "--checkpoint", ws["frame"], "--checkpoint", ws["r3d"], "--device", "cpu", "--top", "9",
            "--json", "--weights", "0.3,0.7", "--stride", "4", "--fusion", rule]
    status, out, err = run_predict(argv, capsys)
    assert status == 0, err
    line = json.loads(out.strip().splitlines()[-1])
    fused = {}
    for head, classes in (("verb", VERBS), ("noun", NOUNS)):
        p1, p2 = (np.array([dict(line["models"][m][head])[c] for c in classes]) for m in ("frame", "r3d"))
        assert p1.sum() == pytest.approx(1.0) and p2.sum() == pytest.approx(1.0)
        geometric = p1 ** 0.3 * p2 ** 0.7
        fused[head] = geometric / geometric.sum() if rule == "logmean" else 0.3 * p1 + 0.7 * p2
        assert dict(line["fused"][head]) == pytest.approx(dict(zip(classes, fused[head])), abs=1e-6)
    actions = {f"{v} {n}": fused["verb"][i] * fused["noun"][j] for i, v in enumerate(VERBS)
               for j, n in enumerate(NOUNS)}
    assert dict(line["fused"]["action"]) == pytest.approx(actions, abs=1e-6)


@pytest.mark.parametrize("head", ["verb", "noun"])
def test_grad_cam_explains_the_top_class_of_the_chosen_head(ws, capsys, tmp_path, head):
    verb, noun = by_hand(ws, 96)
    column = int(verb.argmax()) if head == "verb" else 3 + int(noun.argmax())
    status, _, err = run_predict([ws["video"], "--checkpoint", ws["frame"], "--device", "cpu", "--explain",
                                  tmp_path, "--explain-frames", "3", "--explain-head", head, "--image-size", "96"],
                                 capsys)  # 96 x 96: layer4 maps of 3 x 3 (at 32, 1 x 1: every map is 1)
    assert status == 0, err
    maps = np.load(tmp_path / "rec01_seg02.frame.npy")
    x = frame_inputs(ws["video"], sampling.segment_centres(12, 3), size=96)
    model = frame_model(ws["frame"])
    expected = gradcam.upsample(gradcam.grad_cam(model, x, column)[0], (96, 96))
    np.testing.assert_allclose(maps, expected, atol=1e-5)
    other = 3 + int(noun.argmax()) if head == "verb" else int(verb.argmax())
    assert not np.allclose(gradcam.upsample(gradcam.grad_cam(model, x, other)[0], (96, 96)), expected, atol=1e-2)


def test_explain_flags_name_the_head(ws, capsys, tmp_path):
    argv = [ws["video"], "--checkpoint", ws["frame"], "--device", "cpu", "--explain", tmp_path]
    status, _, err = run_predict(argv + ["--explain-class", "red_square"], capsys)  # a noun, the verb head's default
    assert status == 2 and "not a class of the checkpoints' verb head (rise, fall, stay" in "\n".join(err)
    status, _, err = run_predict(argv + ["--explain-head", "noun", "--explain-class", "red_square"], capsys)
    assert status == 0, err
    plain = [label_sets.LabelSet(label_sets.CLASS, slice(0, 2), ["a", "b"])]
    with pytest.raises(ValueError, match="no label heads"):
        label_sets.explained_set(plain, "noun")
