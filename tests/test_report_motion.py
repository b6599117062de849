"""The report's appearance-versus-motion section with the motion stream (issue 22): a single-frame, a 3D and a flow
model, each trained for two steps on the synthetic set and tested on every test video, go through
combine_results.py; the section compares the 2D RGB model with every motion model (3D and flow, told from their
model.json), and its per-class gains equal a hand computation from the prediction files."""
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch

import combine_results
import extract_flow
import make_synthetic_ucf101
import test_3d
import test_single_frame
import train_3d
import train_single_frame
from actionrec.data import split_lists
from actionrec.engine import runner
from actionrec.evaluation import predictions as prediction_files
from actionrec.reporting import tables as report_tables

FAST = ["--image-size", "32", "--workers", "0", "--device", "cpu", "--seed", "3", "--epochs", "1", "--max-steps", "2",
        "--batch-size", "4", "--no-tensorboard"]
FRAME = ["--arch", "resnet18", "--pretrained", "none", "--trainable", "all"]
MODELS = {  # name: (train script, its flags, test script, its flags)
    "single_frame": (train_single_frame, FRAME, test_single_frame, []),
    "3d": (train_3d, ["--depth", "10", "--kinetics-checkpoint", "none", "--clip-len", "8"], test_3d,
           ["--mode", "sliding", "--stride", "8"]),
    "flow": (train_single_frame, FRAME + ["--modality", "flow", "--new-length", "3", "--segments", "2"],
             test_single_frame, []),
}
PDFTOPPM = shutil.which("pdftoppm")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the cores are shared
    root = tmp_path_factory.mktemp("report_motion")
    data = str(root / "data")
    make_synthetic_ucf101.make_dataset(data, classes=4, train_per_class=3, test_per_class=2, frames=16,
                                       size=(32, 40), seed=0)
    extract_flow.main(extract_flow.get_args_parser().parse_args(
        ["--data-dir", data, "--method", "dis-ultrafast", "--size", "40x32", "--workers", "0"]))
    for name, (train, train_flags, test, test_flags) in MODELS.items():
        run = root / "runs" / name
        train.main(train.get_args_parser().parse_args(["--data-dir", data, "--output-dir", str(run), *FAST,
                                                       *train_flags]))
        test.main(test.get_args_parser().parse_args(
            ["--checkpoint", str(run / "checkpoint.pth"), "--predictions-dir", str(run / "predictions"),
             "--output-dir", str(run / "test"), "--workers", "0", "--device", "cpu", *test_flags]))
    torch.set_num_threads(threads)
    out = root / "report"
    results = runner.run_main(combine_results.main, combine_results.get_args_parser(), [
        "--data-dir", data, "--output-dir", str(out), "--fuse", "single_frame,flow", "--weights", "1,1.5",
        *[a for name in MODELS for a in ("--model", f"{name}={root / 'runs' / name / 'predictions'}")]])
    return root, data, out, results


def hand_class_accuracy(root, data, name):
    """Per-class video accuracy of a model from its prediction files: argmax of the mean log-softmax."""
    class_list, _, (paths, labels) = split_lists.getUCF101(data, 1)
    right = {c: [] for c in class_list}
    for path, label in zip(paths, labels):
        logits = prediction_files.read_predictions(
            prediction_files.prediction_path(root / "runs" / name / "predictions", path)).astype(np.float64)
        log_probs = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) \
            - logits.max(1, keepdims=True)
        right[class_list[label]].append(int(np.argmax(log_probs.mean(0))) == label)
    return {c: float(np.mean(v)) for c, v in right.items()}


def test_every_motion_model_is_compared_with_the_2d_model(report):
    root, data, _, results = report
    models = results["models"]
    assert (models["flow"]["modality"], models["flow"]["temporal"], models["3d"]["kind"]) == ("flow", True, "clip")
    avm = results["appearance_vs_motion"]
    assert avm["appearance_model"] == "single_frame" and avm["motion_models"] == ["3d", "flow"]
    hand = {name: hand_class_accuracy(root, data, name) for name in MODELS}
    assert len(avm["rows"]) == 4
    for row in avm["rows"]:
        c = row["class"]
        assert row["appearance"] == pytest.approx(hand["single_frame"][c])
        for m in ("3d", "flow"):
            assert row["motion"][m] == pytest.approx(hand[m][c])
            assert row["difference"][m] == pytest.approx(hand[m][c] - hand["single_frame"][c])
        assert row["best_gain"] == pytest.approx(max(hand[m][c] - hand["single_frame"][c] for m in ("3d", "flow")))
    gains = [r["best_gain"] for r in avm["rows"]]
    assert gains == sorted(gains, reverse=True)
    for m in ("3d", "flow"):
        diffs = [hand[m][c] - hand["single_frame"][c] for c in hand[m]]
        assert avm["per_model"][m] == {
            "motion_better": sum(d > 0 for d in diffs), "appearance_better": sum(d < 0 for d in diffs),
            "equal": sum(d == 0 for d in diffs), "mean_difference": pytest.approx(np.mean(diffs))}


def test_the_section_names_each_motion_model(report):
    _, _, out, results = report
    table = report_tables.appearance_table(results)
    assert table.header == ["Class", "single_frame", "3d", "flow"]
    for m in ("3d", "flow"):
        assert f"{m} = {results['models'][m]['title']}" in table.caption
        better = results["appearance_vs_motion"]["per_model"][m]["motion_better"]
        assert f"{m} is better than single_frame on {better}," in table.note
    row = next(r for r in results["appearance_vs_motion"]["rows"] if r["class"] == table.rows[0][0])
    assert table.rows[0][3] == f"{100 * row['motion']['flow']:.2f} ({100 * row['difference']['flow']:+.2f})"
    text = (out / "tables.md").read_text()
    assert "every motion model (3d = " in text and "flow = TSN flow" in text
    answers = " ".join(results["answers"]["classes"])
    assert "against the 2D single\\_frame" in answers or "against the 2D single_frame" in answers
    assert "3d beats it on" in answers and "flow beats it on" in answers
    assert (out / "figures" / "accuracy_difference.png").stat().st_size > 0
    assert results["fusions"]["single_frame+flow"]["weights"] == [1.0, 1.5]


MAIN_PAGES_BEFORE = 6  # this run's main pages with the section as it was (best temporal model only, main a35da71)


@pytest.mark.skipif(PDFTOPPM is None, reason="pdftoppm (poppler-utils) not installed")
def test_the_report_keeps_its_pages(report, tmp_path):
    """Every motion model adds a column and a series of markers, not pages: this 4-class run of three models
    and a fusion keeps the main pages it had when the section showed only the best temporal model."""
    _, _, out, results = report
    assert results["report"]["main_pages"] <= MAIN_PAGES_BEFORE
    done = subprocess.run([PDFTOPPM, "-r", "50", "-png", str(out / "report.pdf"), str(tmp_path / "page")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(os.listdir(tmp_path)) == results["report"]["pages"]
