"""Issue 26: a dataset of one's own with a verb and a noun per segment (annotation CSV), two heads on one
backbone, per-head and action results recomputed by hand from the written prediction files. CPU, tiny."""
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import combine_results
import make_synthetic_ucf101
import test_3d
import test_single_frame
import train_3d
import train_single_frame
from actionrec.data import annotations
from actionrec.engine import label_heads
from actionrec.evaluation import head_fusion, head_scores
from actionrec.evaluation import predictions as prediction_files
from actionrec.evaluation import scores as video_scores
from actionrec.guards import UserError
from actionrec.reporting import head_report, head_report_pdf
from helpers import run_group

FAST = ["--image-size", "32", "--workers", "0", "--device", "cpu", "--seed", "1", "--no-tensorboard"]
TSN = FAST + ["--arch", "resnet18", "--pretrained", "none", "--batch-size", "4", "--segments", "3"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("verbnoun")
    summary = make_synthetic_ucf101.make_verb_noun_dataset(out, recordings=6, segments=4, val_recordings=1,
                                                           test_recordings=1, frames=12, size=(32, 40), seed=0)
    return out, summary


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_the_synthetic_set_is_deterministic_and_its_recordings_never_straddle(data, tmp_path):
    out, summary = data
    again = make_synthetic_ucf101.make_verb_noun_dataset(tmp_path, recordings=6, segments=4, val_recordings=1,
                                                         test_recordings=1, frames=12, size=(32, 40), seed=0)
    assert summary["subsets"] == again["subsets"] == {"train": 16, "val": 4, "test": 4}
    for name in ("annotations.csv", "videos/rec03_seg02.hdf5"):
        first, second = ((folder / name).read_bytes() for folder in (out, tmp_path))
        assert hashlib.sha256(first).digest() == hashlib.sha256(second).digest()
    rows = read_csv(out / "annotations.csv")
    split_of = {}
    for row in rows:
        assert split_of.setdefault(row["group"], row["split"]) == row["split"]
        assert row["action"] == f"{row['verb']} {row['noun']}"
    read = annotations.read_annotations(out / "annotations.csv")
    assert read.verbs == {0: "rise", 1: "fall", 2: "stay"} and read.nouns == {0: "red_square", 1: "blue_disc",
                                                                            2: "green_diamond"}


def test_without_a_split_column_whole_recordings_are_drawn(data, tmp_path):
    out, _ = data
    rows = read_csv(out / "annotations.csv")
    path = tmp_path / "nosplit.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, [k for k in rows[0] if k != "split"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    for seed in range(5):
        subsets = annotations.split_segments(annotations.read_annotations(path), 0.3, seed)
        assert subsets["val"] and not {s.group for s in subsets["train"]} & {s.group for s in subsets["val"]}


def test_the_heads_loss_is_the_weighted_sum_of_their_cross_entropies():
    heads = label_heads.Heads(["verb", "noun"], {"verb": ["a", "b", "c"], "noun": ["x", "y"]}, [1.0, 0.5])
    logits = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([[0, 1], [2, 0], [1, 1], [0, 0]])
    expected = F.cross_entropy(logits[:, :3], labels[:, 0], reduction="none") + 0.5 * F.cross_entropy(
        logits[:, 3:], labels[:, 1], reduction="none")
    assert torch.allclose(heads.loss(logits, labels), expected)
    both = (logits[:, :3].argmax(1) == labels[:, 0]) & (logits[:, 3:].argmax(1) == labels[:, 1])
    assert torch.equal(heads.hits(logits, labels), both)
    assert heads.class_list == ["verb:a", "verb:b", "verb:c", "noun:x", "noun:y"]
    with pytest.raises(UserError, match="--head-weights"):
        label_heads.parse_weights("1,x", 2)
    with pytest.raises(UserError, match="2 finite weights"):
        label_heads.parse_weights("1", 2)


def test_per_head_precision_and_recall_equal_a_hand_computation():
    # 5 videos; verb scores pick 0, 0, 1, 2, 0; noun scores pick 1, 0, 0, 1, 1
    verb = np.log(np.array([[.8, .1, .1], [.6, .3, .1], [.2, .7, .1], [.1, .2, .7], [.5, .4, .1]]))
    noun = np.log(np.array([[.3, .7], [.9, .1], [.6, .4], [.2, .8], [.1, .9]]))
    labels = np.array([[0, 1], [1, 0], [1, 0], [0, 1], [0, 0]])
    counts = {"train": {"verb": [3, 2, 0], "noun": [1, 4]}, "test": {"verb": [3, 2, 0], "noun": [2, 3]}}
    results, cms = head_scores.summarize_heads({"verb": verb, "noun": noun}, labels,
                                               {"verb": ["put", "take", "move"], "noun": ["meat", "bag"]},
                                               pairs=[(0, 1), (1, 0)], counts=counts)
    v = results["heads"]["verb"]
    # verb: predicted 0,0,1,2,0 vs true 0,1,1,0,0 -> class 0: tp 2 of 3 predicted, 3 true; class 1: tp 1 of 1
    # predicted, 2 true; class 2 (move): predicted once, never true (absent)
    assert v["top1"] == pytest.approx(3 / 5)
    assert v["per_class"]["put"]["precision"] == pytest.approx(2 / 3)
    assert v["per_class"]["move"]["precision"] == 0.0
    assert v["macro_precision"] == pytest.approx((2 / 3 + 1) / 2)  # over the classes the subset has
    assert v["macro_recall"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert v["absent"] == ["move"]
    n = results["heads"]["noun"]
    # noun: predicted 1,0,0,1,1 vs true 1,0,0,1,0 -> meat tp 2 of 2 predicted (3 true); bag tp 2 of 3
    assert n["macro_precision"] == pytest.approx((1 + 2 / 3) / 2)
    assert n["macro_recall"] == pytest.approx((2 / 3 + 1) / 2)
    a = results["action"]
    assert a["top1"] == pytest.approx(2 / 5)  # videos 0 and 2: both heads right (video 1's verb is wrong)
    assert cms["action"].sum() == 5 and cms["verb"].shape == (3, 3)
    # over the pairs seen in training only, (put, meat) of video 4 is unseen: a miss at every k
    assert a["top5_seen_pairs"] == pytest.approx(4 / 5)
    assert a["unseen_in_training"] == ["put meat"]


def train(data, out, script, *extra):
    root, _ = data
    args = script.get_args_parser().parse_args(["--annotations", str(root / "annotations.csv"), "--videos",
                                                str(root / "videos"), "--output-dir", str(out), *extra])
    return script.main(args)


def hand_results(pred_dir, root, subset):
    """(verb hits, noun hits, action hits) per test segment, from the prediction files alone."""
    rows = [r for r in read_csv(root / "annotations.csv") if r["split"] == subset]
    hits = []
    for row in rows:
        logits = prediction_files.read_predictions(pred_dir / "videos" / f"{row['uid']}.hdf5")
        verb = video_scores.video_score(logits[:, :3]).argmax() == int(row["verb_class"])
        noun = video_scores.video_score(logits[:, 3:]).argmax() == int(row["noun_class"])
        hits.append((verb, noun, verb and noun))
    return np.array(hits, dtype=float).mean(0)


def test_two_heads_train_and_test_end_to_end(data, tmp_path):
    root, _ = data
    out = tmp_path / "tsn"
    train(data, out, train_single_frame, *TSN, "--epochs", "2", "--keep-best", "val_loss")
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert all({"val_loss", "val_verb_acc", "val_noun_acc", "val_acc"} <= set(e) for e in log)
    best_epoch = min(log, key=lambda e: e["val_loss"])["epoch"]
    checkpoint = torch.load(out / "checkpoint.pth", map_location="cpu", weights_only=True)
    best = torch.load(out / "best.pth", map_location="cpu", weights_only=True)
    assert best["epoch"] == best_epoch == checkpoint["best"]["epoch"]
    assert checkpoint["heads"]["classes"] == {"verb": ["rise", "fall", "stay"],
                                              "noun": ["red_square", "blue_disc", "green_diamond"]}
    assert checkpoint["model"]["fc.weight"].shape[0] == 6
    # a resumed run keeps its best checkpoint and compares against it
    train(data, out, train_single_frame, *TSN, "--epochs", "3", "--keep-best", "val_loss")
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    best = torch.load(out / "best.pth", map_location="cpu", weights_only=True)
    assert best["epoch"] == min(log, key=lambda e: e["val_loss"])["epoch"]

    pred = tmp_path / "pred"
    args = test_single_frame.get_args_parser().parse_args(
        ["--checkpoint", str(out / "checkpoint.pth"), "--frames", "4", "--predictions-dir", str(pred),
         "--output-dir", str(tmp_path / "test"), "--workers", "0", "--device", "cpu"])
    test_single_frame.main(args)
    results = json.loads((tmp_path / "test" / "results.json").read_text())
    verb, noun, action = hand_results(pred, root, "test")
    assert results["heads"]["verb"]["top1"] == pytest.approx(verb)
    assert results["heads"]["noun"]["top1"] == pytest.approx(noun)
    assert results["action"]["top1"] == pytest.approx(action)
    assert results["videos"] == 4 and set(results["heads"]["noun"]["class_counts"]) == {"train", "val", "test"}
    heads = head_scores.read_head_predictions(pred / "videos" / "rec01_seg01.hdf5")
    assert [heads[h].shape[1] for h in ("verb", "noun")] == [3, 3]
    assert np.load(tmp_path / "test" / "confusion_matrix_action.npy").shape == (9, 9)
    # the report: one row per head and the action, the numbers of the test
    args = combine_results.get_args_parser().parse_args(
        ["--heads", f"tsn={tmp_path / 'test'}", "--output-dir", str(tmp_path / "report")])
    combine_results.main(args)
    table = (tmp_path / "report" / "heads.md").read_text()
    assert f"| tsn | action | {100 * action:.2f} |" in table and f"| tsn | verb | {100 * verb:.2f} |" in table
    assert (tmp_path / "report" / "figures" / "heads_confusion.png").stat().st_size > 0
    check_heads_pdf(tmp_path / "report", [("tsn", tmp_path / "test")], tmp_path / "again.pdf")
    # another CSV tested against the checkpoint's vocabularies: an unknown class id is one line naming the line
    rows = read_csv(root / "annotations.csv")
    rows[2]["noun_class"] = "7"
    other = tmp_path / "other.csv"
    with open(other, "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    args = test_single_frame.get_args_parser().parse_args(
        ["--checkpoint", str(out / "checkpoint.pth"), "--annotations", str(other), "--predictions-dir",
         str(tmp_path / "pred2"), "--output-dir", str(tmp_path / "test2"), "--workers", "0", "--device", "cpu"])
    with pytest.raises(UserError, match=r"other.csv line 4: noun_class 7 is unknown"):
        test_single_frame.main(args)


def check_heads_pdf(report_dir, named_dirs, other_pdf):
    """heads_report.pdf is written, bookmarks its sections, and its table holds heads.json's numbers."""
    assert (report_dir / head_report_pdf.PDF_NAME).stat().st_size > 0
    models = head_report.read_head_results(named_dirs)
    tables = head_report.head_tables(models)
    built = head_report_pdf.write_heads_pdf(str(other_pdf), models, tables, head_report.figure_specs(models))
    assert built["sections"][1:] == ["Models", "What the numbers say", "The classes of the subsets",
                                     "Confusion matrices", "Class histograms", "Loss curves"]
    assert "annotations.csv" in built["sections"][0]
    assert 1 <= built["pages"] <= 4
    saved = json.loads((report_dir / "heads.json").read_text())
    expected = [[name, part, *(f"{100 * s[k]:.2f}" for k in ("top1", "top5", "macro_precision", "macro_recall")),
                 str(model["videos"])] for name, model in saved.items()
                for part, s in [*model["heads"].items(), ("action", model["action"])]]
    assert tables["parts"].rows == expected
    if shutil.which("pdftotext") is None:
        return
    text = subprocess.run(["pdftotext", "-layout", str(report_dir / head_report_pdf.PDF_NAME), "-"],
                          capture_output=True, text=True, check=True).stdout
    lines = [line.split() for line in text.splitlines()]
    assert all(row in lines for row in expected), "the PDF's table differs from heads.json"
    assert text.count("\f") == built["pages"] and "What the numbers say" in text


def test_the_heads_report_names_the_winners_and_the_missing_classes():
    def part(top1, recall, never=(), counts=None):
        return {"top1": top1, "macro_recall": recall, "never_predicted": list(never), "class_counts": counts or {}}
    counts = {"train": {"put": 3, "take": 0}, "val": {"put": 0, "take": 2}}
    unseen_action = {"top1": 0.25, "macro_recall": 0.2, "unseen_in_training": ["take bag"]}
    models = {"frozen": {"results": {"subset": "val", "heads": {"verb": part(0.5, 0.4, ["take"], counts)},
                                     "action": unseen_action}},
              "fine_tuned": {"results": {"subset": "val", "heads": {"verb": part(0.75, 0.4)},
                                         "action": {"top1": 0.25, "macro_recall": 0.3}}}}
    assert head_report_pdf.winner_sentence("verb", models) == (
        "Verb: fine_tuned wins top-1 with 75.00 % (frozen 50.00 %). On mean class recall frozen and fine_tuned tie "
        "(40.00 %).")
    assert head_report_pdf.winner_sentence("action", models).startswith("Action: frozen and fine_tuned tie at top-1")
    assert head_report_pdf.never_predicted_sentences(models) == [
        "frozen never predicts the verb take, though the validation subset has it (precision 0)."]
    assert head_report_pdf.data_sentences(models) == [
        "No validation segment has the verb put.",
        "The validation subset has the verb take, which training never has: no model can learn it.",
        "frozen's tested segments include actions (verb, noun pairs) never seen in training: take bag."]


def test_a_3d_model_gets_the_same_heads(data, tmp_path):
    out = tmp_path / "r3d"
    train(data, out, train_3d, *FAST, "--depth", "10", "--kinetics-checkpoint", "none", "--clip-len", "8",
          "--batch-size", "4", "--epochs", "1")
    args = test_3d.get_args_parser().parse_args(
        ["--checkpoint", str(out / "checkpoint.pth"), "--mode", "sliding", "--subset", "val", "--predictions-dir",
         str(tmp_path / "pred"), "--output-dir", str(tmp_path / "test"), "--workers", "0", "--device", "cpu"])
    test_3d.main(args)
    results = json.loads((tmp_path / "test" / "results.json").read_text())
    verb, noun, action = hand_results(tmp_path / "pred", data[0], "val")
    assert (results["heads"]["verb"]["top1"], results["action"]["top1"]) == pytest.approx((verb, action))


def test_user_mistakes_are_one_line(data, tmp_path):
    root, _ = data
    with pytest.raises(UserError, match="--annotations needs --videos"):
        args = train_single_frame.get_args_parser().parse_args(
            ["--annotations", str(root / "annotations.csv"), "--output-dir", str(tmp_path / "x"), *TSN])
        train_single_frame.main(args)
    with pytest.raises(UserError, match="--head-weights"):
        train(data, tmp_path / "y", train_single_frame, *TSN, "--head-weights", "1,2,3")
    bad = tmp_path / "bad.csv"
    bad.write_text("uid,verb,noun,action,verb_class\nseg1,put,meat,put meat,0\n")
    with pytest.raises(UserError, match="line 1: no column noun_class"):
        args = train_single_frame.get_args_parser().parse_args(
            ["--annotations", str(bad), "--videos", str(root / "videos"), "--output-dir", str(tmp_path / "z"), *TSN])
        train_single_frame.main(args)


def test_make_demo_verbnoun_runs_its_recipes_at_a_tiny_size(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    stamp = tmp_path / "venv-stamp"  # stands for .venv's install stamp: newer than requirements.txt
    stamp.touch()
    demo = tmp_path / "demo"
    variables = {"DEMO_VN": str(demo), "PY": sys.executable, "STAMP": str(stamp), "DEMO_SIZE": "32",
                 "DEMO_VN_DATASET": "--recordings 4 --segments-per-recording 3 --val-recordings 1 --test-recordings 1 "
                                    "--frames 12 --size 24x32 --seed 0",
                 "DEMO_VN_TRAIN": "--epochs 1 --max-steps 1 --no-tensorboard"}
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = run_group(["make", "demo-verbnoun"] + [f"{k}={v}" for k, v in variables.items()], cwd=repo,
                       env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert result.returncode == 0, f"make demo-verbnoun failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    table = (demo / "report" / "heads.md").read_text()
    for model in ("frozen", "fine_tuned", "rgbdiff", "rgb_plus_rgbdiff", "rgb_plus_rgbdiff_auto"):
        assert f"| {model} | action |" in table


@pytest.fixture(scope="module")
def members(data, tmp_path_factory):
    """An RGB TSN and an RGB-difference TSN with two heads (2 steps each), tested on the test and the val
    segments: {"root": folder, "pred": {(model, subset): predictions dir}}; test folders
    <root>/test_<model>_<subset>."""
    out = tmp_path_factory.mktemp("members")
    pred = {}
    for name, extra in (("rgb", []), ("motion", ["--modality", "rgbdiff"])):
        train(data, out / name, train_single_frame, *TSN, *extra, "--epochs", "1", "--max-steps", "2")
        for subset in ("test", "val"):
            pred[name, subset] = out / f"pred_{name}_{subset}"
            test_single_frame.main(test_single_frame.get_args_parser().parse_args(
                ["--checkpoint", str(out / name / "checkpoint.pth"), "--frames", "3", "--subset", subset,
                 "--predictions-dir", str(pred[name, subset]), "--output-dir", str(out / f"test_{name}_{subset}"),
                 "--workers", "0", "--device", "cpu"]))
    return {"root": out, "pred": pred}


def test_an_appearance_and_a_motion_model_fuse_per_head(data, members, tmp_path):
    """combine_results.py --heads-fuse: each head's fused score is the weighted sum of the members' video scores
    (mean log-softmax over rows), the action's the product of the fused heads' probabilities; recomputed here
    from the prediction files alone."""
    root, _ = data
    tested = {name: members["pred"][name, "test"] for name in ("rgb", "motion")}
    runs = members["root"]
    args = combine_results.get_args_parser().parse_args(
        ["--heads", f"rgb={runs / 'test_rgb_test'}", "--heads", f"motion={runs / 'test_motion_test'}",
         "--heads-fuse", "both=rgb+motion:1,2", "--output-dir", str(tmp_path / "report")])
    combine_results.main(args)
    saved = json.loads((tmp_path / "report" / "heads.json").read_text())
    rows = [r for r in read_csv(root / "annotations.csv") if r["split"] == "test"]
    models = head_report.read_head_results([(n, runs / f"test_{n}_test") for n in ("rgb", "motion")])
    fused = head_fusion.fuse_head_models("both", list(models.items()), [1, 2])
    assert fused["prediction_files"] == [f"videos/{row['uid']}.hdf5" for row in rows]
    hits, pair_ranks = [], []
    for i, row in enumerate(rows):
        scores = [prediction_files.read_predictions(tested[n] / "videos" / f"{row['uid']}.hdf5") for n in ("rgb",
                                                                                                         "motion")]
        verb = sum(w * video_scores.video_score(s[:, :3]) for w, s in zip((1, 2), scores))
        noun = sum(w * video_scores.video_score(s[:, 3:]) for w, s in zip((1, 2), scores))
        np.testing.assert_allclose(fused["scores"]["verb"][i], verb, rtol=1e-6)
        np.testing.assert_allclose(fused["scores"]["noun"][i], noun, rtol=1e-6)
        truth = (int(row["verb_class"]), int(row["noun_class"]))
        hits.append((verb.argmax() == truth[0], noun.argmax() == truth[1]))
        pair = (F.log_softmax(torch.from_numpy(verb), 0)[:, None] + F.log_softmax(torch.from_numpy(noun), 0)[None])
        pair_ranks.append(int((pair.flatten() > pair[truth]).sum()))
    hits = np.array(hits, dtype=float)
    both = saved["both"]
    assert both["videos"] == len(rows) and both["fusion"]["members"] == ["rgb", "motion"]
    assert both["heads"]["verb"]["top1"] == pytest.approx(hits[:, 0].mean())
    assert both["heads"]["noun"]["top1"] == pytest.approx(hits[:, 1].mean())
    assert both["action"]["top1"] == pytest.approx((hits[:, 0] * hits[:, 1]).mean())
    assert both["action"]["top5"] == pytest.approx(np.mean([r < 5 for r in pair_ranks]))
    table = (tmp_path / "report" / "heads.md").read_text()
    assert f"| both | action | {100 * both['action']['top1']:.2f} |" in table
    # the members must have tested the same segments; a name must be a --heads model's
    for fuse, heads, message in (("both=rgb+val", ["rgb=test_rgb_test", "val=test_rgb_val"],
                                  "did not test the same segments"),
                                 ("both=rgb+flow", ["rgb=test_rgb_test", "motion=test_motion_test"],
                                  "flow is not a --heads"),
                                 ("both=rgb", ["rgb=test_rgb_test", "motion=test_motion_test"], "two or more")):
        flags = [x for h in heads for x in ("--heads", h.replace("=", f"={runs}/"))]
        args = combine_results.get_args_parser().parse_args(
            [*flags, "--heads-fuse", fuse, "--output-dir", str(tmp_path / "report2")])
        with pytest.raises(UserError, match=message):
            combine_results.main(args)


def head_scores_of(pred_dir, rows, columns):
    """Each segment's video score (mean log-softmax over rows) of the head in `columns`, from its prediction file."""
    return np.stack([video_scores.video_score(prediction_files.read_predictions(
        pred_dir / "videos" / f"{row['uid']}.hdf5")[:, columns]) for row in rows])


def mean_nll(scores, labels):
    logp = F.log_softmax(torch.from_numpy(np.asarray(scores, dtype=np.float64)), 1).numpy()
    return -logp[np.arange(len(labels)), labels].mean()


def test_auto_fusion_weights_are_chosen_per_head_on_validation(data, members, tmp_path):
    """--heads-fuse NAME=A+B:auto: per head, each member's temperature fitted and the weights chosen on the
    validation tests only; the fused test scores are sum_i w_i * s_i / T_i of the test prediction files."""
    root, _ = data
    runs, pred = members["root"], members["pred"]
    heads = [x for n in ("rgb", "motion") for x in ("--heads", f"{n}={runs / f'test_{n}_test'}")]
    val = [x for n in ("rgb", "motion") for x in ("--heads-val", f"{n}={runs / f'test_{n}_val'}")]
    combine_results.main(combine_results.get_args_parser().parse_args(
        [*heads, *val, "--heads-fuse", "auto=rgb+motion:auto", "--output-dir", str(tmp_path / "report")]))
    saved = json.loads((tmp_path / "report" / "heads.json").read_text())["auto"]
    models = head_report.read_head_results([(n, runs / f"test_{n}_test") for n in ("rgb", "motion")])
    head_report.add_fusions(models, [("auto", ["rgb", "motion"], head_fusion.AUTO)],
                            {n: runs / f"test_{n}_val" for n in ("rgb", "motion")})
    rows = {subset: [r for r in read_csv(root / "annotations.csv") if r["split"] == subset]
            for subset in ("test", "val")}
    for head, columns, label in (("verb", slice(0, 3), "verb_class"), ("noun", slice(3, 6), "noun_class")):
        chosen = saved["fusion"]["weights"][head]
        weights, temperatures = chosen["weights"], chosen["temperatures"]
        assert sum(weights) == pytest.approx(1) and chosen["segments"] == len(rows["val"])
        val_labels = np.array([int(r[label]) for r in rows["val"]])
        val_scores = [head_scores_of(pred[n, "val"], rows["val"], columns) for n in ("rgb", "motion")]
        for scores, t in zip(val_scores, temperatures):  # each temperature minimises its member's validation NLL
            nll = {k: mean_nll(scores / (t * k), val_labels) for k in (0.9, 1.0, 1.1)}
            assert nll[1.0] <= min(nll[0.9], nll[1.1]) + 1e-9 or t in (0.5, 20.0)
        fused_val = sum(w * s / t for w, s, t in zip(weights, val_scores, temperatures))
        assert chosen["val_nll"] == pytest.approx(mean_nll(fused_val, val_labels))
        test_labels = np.array([int(r[label]) for r in rows["test"]])
        fused_test = sum(w * head_scores_of(pred[n, "test"], rows["test"], columns) / t
                         for n, w, t in zip(("rgb", "motion"), weights, temperatures))
        np.testing.assert_allclose(models["auto"]["scores"][head], fused_test, rtol=1e-6)
        assert saved["heads"][head]["top1"] == pytest.approx(np.mean(fused_test.argmax(1) == test_labels))
    # auto needs the validation tests, and refuses tests of the fused subset in their place
    for extra, message in (([], "give the validation test of rgb, motion with --heads-val"),
                           ([x for n in ("rgb", "motion") for x in ("--heads-val", f"{n}={runs / f'test_{n}_test'}")],
                            "fitted to the test")):
        with pytest.raises(UserError, match=message):
            combine_results.main(combine_results.get_args_parser().parse_args(
                [*heads, *extra, "--heads-fuse", "auto=rgb+motion:auto", "--output-dir", str(tmp_path / "r2")]))
