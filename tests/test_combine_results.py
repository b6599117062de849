"""combine_results.py on hand-built prediction files with known answers."""
import json
import os
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

import combine_results
from actionrec import formatting
from actionrec.engine import runlog, runner
from actionrec.evaluation import model_info
from actionrec.evaluation import predictions as prediction_files
from actionrec.evaluation import scores as video_scores
from actionrec.evaluation import weights as weight_choice
from actionrec.reporting import confusion_figures, figure_set, pdf_layout, report_pdf, table_files
from actionrec.reporting import sentences as report_sentences
from actionrec.reporting import tables as report_tables
from helpers import run_group

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_LISTS = os.path.join(REPO_ROOT, "..", "shared", "data", "ucfTrainTestlist")
PDFTOTEXT = shutil.which("pdftotext")

# Seven classes in classInd order; the last three have no test videos. "Foo_Bar&Baz" checks escaping.
CLASSES = ["Alpha", "Foo_Bar&Baz", "Gamma", "Delta", "Epsilon", "Zeta", "Eta"]

# Per test video: (label, single-frame distribution, 3D distribution) over the first four classes;
# the other three get 0.001 each. A file's logits are log(p), so its video score is log(p) up to a
# constant, and logmean ranks classes by p2d * p3d, prob by p2d + p3d, max by max(p2d, p3d).
VIDEOS = [
    (0, [.7, .1, .1, .1], [.3, .4, .2, .1]),        # single frame right, 3D wrong; every fusion right
    (0, [.9, .05, .025, .025], [.01, .6, .2, .19]),  # logmean wrong (class 1); prob and max right
    (1, [.55, .4, .025, .025], [.05, .4, .5, .05]),  # both wrong; logmean and prob fix it, max does not
    (1, [.1, .3, .4, .2], [.05, .8, .1, .05]),       # 3D right, single frame wrong
    (2, [.1, .1, .7, .1], [.1, .1, .7, .1]),         # both right
    (2, None, None),                                 # both wrong, true class ranked last of 7 (top-5 miss)
    (3, [.1, .1, .6, .2], [.1, .1, .1, .7]),         # 3D right, single frame wrong
    (3, [.1, .1, .1, .7], [.1, .1, .1, .7]),         # both right
]
LAST_RANKED = [.2, .2, .01, .4, .07, .06, .06]  # class 2 ranks 7th
SF_PREDICTIONS = [0, 0, 0, 2, 2, 3, 2, 3]
TD_PREDICTIONS = [1, 1, 2, 1, 2, 3, 3, 3]
EXPECTED_COMBINED = {  # (rule, weights) -> top-1 prediction of each video
    ("logmean", "0.5,0.5"): [0, 1, 1, 1, 2, 3, 3, 3],
    ("prob", "0.5,0.5"): [0, 0, 1, 1, 2, 3, 3, 3],
    ("max", "0.5,0.5"): [0, 0, 0, 1, 2, 3, 3, 3],
    ("logmean", "0.8,0.2"): [0, 0, 1, 1, 2, 3, 2, 3],
    ("prob", "0.2,0.8"): [0, 1, 2, 1, 2, 3, 3, 3],
}
LABELS = [label for label, _, _ in VIDEOS]


def distribution(p):
    return np.array(LAST_RANKED if p is None else list(p) + [0.001] * 3)


def video_entries(videos=VIDEOS, classes=CLASSES):
    """(class folder, video stem, label) of each test video."""
    counters, entries = {}, []
    for label in (v[0] for v in videos):
        name = classes[label]
        counters[name] = counters.get(name, 0) + 1
        entries.append((name, f"v_{name}_g01_c{counters[name]:02d}", label))
    return entries


def write_lists(root, classes, test_entries, train_entries):
    """ucfTrainTestlist/ with CRLF lines; entries are (folder, stem[, label])."""
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    crlf = "\r\n"
    (lists / "classInd.txt").write_bytes("".join(f"{i + 1} {c}{crlf}" for i, c in enumerate(classes)).encode())
    (lists / "trainlist01.txt").write_bytes(
        "".join(f"{folder}/{stem}.avi {classes.index(folder) + 1}{crlf}" for folder, stem in train_entries).encode())
    (lists / "testlist01.txt").write_bytes("".join(f"{folder}/{stem}.avi{crlf}" for folder, stem, *_ in test_entries)
                                           .encode())


def write_dataset(root, classes=CLASSES):
    write_lists(root, classes, video_entries(), [(c, f"v_{c}_g08_c01") for c in classes])
    (root / "UCF-101-hdf5").mkdir()


NUM_CLASSES = len(CLASSES)


def write_predictions(predictions_dir, which, rows=3, num_classes=NUM_CLASSES):
    """Prediction files for the test videos; ``which`` 1 = single frame, 2 = 3D."""
    for (folder, stem, _), video in zip(video_entries(), VIDEOS):
        logits = np.log(distribution(video[which]))[:num_classes]
        prediction_files.write_predictions(
            os.path.join(predictions_dir, folder, stem + ".hdf5"), np.tile(logits, (rows, 1))
        )


def write_model_json(directory, **meta):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "model.json"), "w") as f:
        json.dump(meta, f)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The seed's two-model layout: prediction folders without model.json (older test scripts)."""
    root = tmp_path_factory.mktemp("combine")
    write_dataset(root / "data")
    sf_dir, td_dir = root / "runs" / "single_frame" / "predictions", root / "runs" / "3d" / "predictions"
    write_predictions(sf_dir, 1, rows=5)  # frames
    write_predictions(td_dir, 2, rows=2)  # clips
    with open(root / "runs" / "single_frame" / "log.jsonl", "w") as f:  # found beside the checkpoints
        for epoch in range(3):
            record = {"epoch": epoch, "train_loss": 2.0 / (epoch + 1), "train_acc": 0.3 + 0.2 * epoch}
            if epoch % 2:
                record["test_acc"], record["val_acc"] = 0.5, 0.4
            f.write(json.dumps(record) + "\n")
    return root


def cli_args(root, output_dir, *extra):
    return ["--data-dir", str(root / "data"), "--single-frame", str(root / "runs" / "single_frame" / "predictions"),
            "--3d", str(root / "runs" / "3d" / "predictions"), "--output-dir", str(output_dir), *extra]


def run_main(args):
    """combine_results.py's command line in this process, as its __main__ runs it (a user mistake: one line on
    stderr and SystemExit(2))."""
    return runner.run_main(combine_results.main, combine_results.get_args_parser(), [str(a) for a in args])


@pytest.fixture(scope="module")
def default_run(workspace):
    output_dir = workspace / "report"
    results = run_main(cli_args(workspace, output_dir))
    return output_dir, results


def run_cli(*args):
    return run_group([sys.executable, os.path.join(REPO_ROOT, "combine_results.py"), *map(str, args)],
                          cwd=REPO_ROOT, timeout=120)


def assert_refusal(result, *needles):
    """Exit status 2, one line on stderr, no traceback, every needle in the line."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if "reading the split lists only" not in line]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])


@pytest.fixture
def skip_drawing(monkeypatch):
    """Skip the figures and report.pdf (most of a run's time); drawn in default_run and the 101-class run."""
    monkeypatch.setattr(figure_set, "write_figures", lambda *args, **kwargs: [])
    monkeypatch.setattr(report_pdf, "write_report_pdf",
                        lambda *args, **kwargs: {"pages": 0, "main_pages": 0, "appendix_page": 1})


def hand_scores(predictions_dir, entries):
    """Video scores recomputed from the files with h5py, independently of actionrec.evaluation."""
    rows = []
    for folder, stem, *_ in entries:
        with h5py.File(os.path.join(predictions_dir, folder, f"{stem}.hdf5"), "r") as f:
            x = f["predictions"][()].astype(np.float64)
        rows.append((x - np.log(np.exp(x).sum(axis=1, keepdims=True))).mean(axis=0))
    return np.array(rows)


def hand_confusion(labels, predictions, num_classes):
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    for t, p in zip(labels, predictions):
        cm[t, p] += 1
    return cm


# ---------------------------------------------------------------------------
# Two models, the seed's layout
# ---------------------------------------------------------------------------
def test_default_run_top_k_and_fusion_fixes_a_video(default_run):
    output_dir, results = default_run
    n = len(VIDEOS)
    ev = results["evaluation"]
    assert results["order"] == ["single_frame", "3d", "all"]
    assert ev["single_frame"]["top1"] == pytest.approx(4 / n)
    assert ev["3d"]["top1"] == pytest.approx(4 / n)
    assert ev["all"]["top1"] == pytest.approx(6 / n)  # video 2: both wrong, fusion right
    for name in results["order"]:
        assert ev[name]["top5"] == pytest.approx(7 / n)  # video 5 ranks its class 7th
        assert ev[name]["top10"] == 1.0  # clipped to the 7 classes
        assert ev[name]["videos"] == n
    fusion = results["fusions"]["all"]
    assert fusion["rule"] == "logmean" and fusion["weights"] == [0.5, 0.5] and fusion["weights_source"] == "equal"
    assert fusion["members"] == ["single_frame", "3d"] and fusion["below_best_member"] is False
    assert fusion["gain"]["top1"] == pytest.approx(2 / n)
    for name, predictions in (("single_frame", SF_PREDICTIONS), ("3d", TD_PREDICTIONS),
                              ("all", EXPECTED_COMBINED[("logmean", "0.5,0.5")])):
        cm = np.load(output_dir / f"confusion_{name}.npy")
        assert cm.dtype == np.int64
        np.testing.assert_array_equal(cm, hand_confusion(LABELS, predictions, len(CLASSES)))


def test_models_without_model_json_are_named_from_the_folder_flag(default_run):
    _, results = default_run
    sf, td = results["models"]["single_frame"], results["models"]["3d"]
    assert (sf["title"], sf["kind"], sf["temporal"]) == ("Single frame (ResNet-50)", "frame", False)
    assert (td["title"], td["kind"], td["temporal"]) == ("3D ResNet-50", "clip", True)
    assert sf["model_json"] is None and sf["timing"] is None
    assert sf["test_description"] == "test mode not recorded (no model.json)"
    assert sf["rows_per_video"] == {"mean": 5.0, "min": 5, "max": 5} and td["rows_per_video"]["mean"] == 2.0
    avm = results["appearance_vs_motion"]
    assert (avm["appearance_model"], avm["motion_models"]) == ("single_frame", ["3d"])


@pytest.mark.parametrize("rule,weights", sorted(EXPECTED_COMBINED))
def test_fusion_rules_and_weights(workspace, tmp_path, skip_drawing, rule, weights):
    results = run_main(cli_args(workspace, tmp_path, "--fusion", rule, "--weights", weights))
    expected = EXPECTED_COMBINED[(rule, weights)]
    assert results["evaluation"]["all"]["top1"] == pytest.approx(np.mean(np.equal(expected, LABELS)))
    np.testing.assert_array_equal(np.load(tmp_path / "confusion_all.npy"),
                                  hand_confusion(LABELS, expected, len(CLASSES)))
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["fusions"]["all"]["rule"] == rule and saved["fusions"]["all"]["weights_source"] == "given"
    assert saved["fusions"]["all"]["weights"] == [float(w) for w in weights.split(",")]


def test_results_json_fields_and_recomputed_numbers(default_run, workspace):
    output_dir, _ = default_run
    results = json.loads((output_dir / "results.json").read_text())
    for name in results["order"]:
        ev = results["evaluation"][name]
        for key in ("top1", "top5", "top10", "mean_class_accuracy", "macro_precision", "macro_recall", "macro_f1",
                    "per_class_accuracy", "per_class", "never_predicted", "best_classes", "worst_classes",
                    "most_confused", "videos"):
            assert key in ev, (name, key)
        assert list(ev["per_class_accuracy"]) == CLASSES
        assert ev["per_class_accuracy"]["Eta"] is None  # no test videos
    labels = np.array(LABELS)
    scores = {m: hand_scores(workspace / "runs" / m / "predictions", video_entries()) for m in ("single_frame", "3d")}
    scores["all"] = 0.5 * scores["single_frame"] + 0.5 * scores["3d"]
    for name, s in scores.items():
        predicted = s.argmax(axis=1)
        ev = results["evaluation"][name]
        assert ev["top1"] == pytest.approx(np.mean(predicted == labels))
        ranks = (s > s[np.arange(len(labels)), labels][:, None]).sum(axis=1)  # no ties in this data
        assert ev["top5"] == pytest.approx(np.mean(ranks < 5))
        for c, class_name in enumerate(CLASSES[:4]):
            assert ev["per_class_accuracy"][class_name] == pytest.approx(np.mean(predicted[labels == c] == c))
            predicted_as = predicted == c
            precision = np.mean(labels[predicted_as] == c) if predicted_as.any() else 0.0
            assert ev["per_class"][class_name]["precision"] == pytest.approx(precision)
    # Video 2 (Foo_Bar&Baz) goes to Alpha under the single-frame model: half of its class.
    assert ["Foo_Bar&Baz", "Alpha", 0.5] in results["evaluation"]["single_frame"]["most_confused"]
    sf_acc = results["evaluation"]["single_frame"]["per_class_accuracy"]
    td_acc = results["evaluation"]["3d"]["per_class_accuracy"]
    rows = results["appearance_vs_motion"]["rows"]
    assert [r["class"] for r in rows][:4] == ["Delta", "Foo_Bar&Baz", "Gamma", "Alpha"]  # by 3D gain
    for row in rows:
        if row["best_gain"] is not None:
            expected = td_acc[row["class"]] - sf_acc[row["class"]]
            assert row["difference"]["3d"] == row["best_gain"] == pytest.approx(expected)
    assert [r["class"] for r in rows if r["best_gain"] is None] == ["Epsilon", "Eta", "Zeta"]
    assert results["dataset"]["test"]["per_class"] == {"Alpha": 2, "Foo_Bar&Baz": 2, "Gamma": 2, "Delta": 2,
                                                       "Epsilon": 0, "Zeta": 0, "Eta": 0}
    assert results["dataset"]["frames_per_video"] is None  # older files: no frames attribute
    assert results["report"]["pages"] >= 5 and results["report"]["appendix_page"] == results["report"]["main_pages"] + 1


# ---------------------------------------------------------------------------
# Three models and more
# ---------------------------------------------------------------------------
THREE_CLASSES = CLASSES[:5]


@pytest.fixture(scope="module")
def three_models(tmp_path_factory):
    """40 test videos of 5 classes, three models with random logits (seeded), one with model.json."""
    root = tmp_path_factory.mktemp("three")
    rng = np.random.default_rng(3)
    labels = [i % 5 for i in range(40)]
    entries = video_entries([(label,) for label in labels], THREE_CLASSES)
    write_lists(root / "data", THREE_CLASSES, entries, [(c, f"v_{c}_g08_c01") for c in THREE_CLASSES])
    for name, strength in (("single_frame", 1.0), ("3d", 1.5), ("tsn", 0.8)):
        for folder, stem, label in entries:
            logits = rng.normal(size=(int(rng.integers(1, 4)), 5))
            logits[:, label] += strength
            prediction_files.write_predictions(root / name / folder / f"{stem}.hdf5", logits)
    write_model_json(root / "tsn", name="tsn", title="TSN (ResNet-50)", kind="frame", temporal=False,
                     test={"description": "25 frames x 10 crops", "mode": "frames"}, subset="test", split=1,
                     timing={"device": "cpu", "batch_size": 10, "amp": "off", "views_per_video": 250.0,
                             "load_seconds_per_video": 0.5, "model_seconds_per_video": 2.0,
                             "fps_end_to_end": 80.0, "fps_model": 100.0})
    return root, entries, labels


@pytest.mark.parametrize("rule", ["logmean", "prob", "max"])
def test_fusion_of_three_models_by_hand(three_models, tmp_path, skip_drawing, rule):
    root, entries, labels = three_models
    names = ["single_frame", "3d", "tsn"]
    weights = [0.2, 0.5, 0.3]
    args = ["--data-dir", root / "data", "--output-dir", tmp_path, "--fusion", rule, "--weights", "0.2,0.5,0.3",
            "--fuse", "all"] + [a for n in names for a in ("--model", f"{n}={root / n}")]
    results = run_main(args)
    s = [hand_scores(root / n, entries) for n in names]
    p = [np.exp(x) / np.exp(x).sum(axis=1, keepdims=True) for x in s]
    fused = {"logmean": sum(w * x for w, x in zip(weights, s)),
             "prob": sum(w * x for w, x in zip(weights, p)),
             "max": np.maximum(np.maximum(weights[0] * p[0], weights[1] * p[1]), weights[2] * p[2])}[rule]
    predicted = fused.argmax(axis=1)
    assert results["evaluation"]["all"]["top1"] == pytest.approx(np.mean(predicted == np.array(labels)))
    np.testing.assert_array_equal(np.load(tmp_path / "confusion_all.npy"), hand_confusion(labels, predicted, 5))
    ranks = (fused > fused[np.arange(len(labels)), labels][:, None]).sum(axis=1)
    assert results["evaluation"]["all"]["top5"] == pytest.approx(np.mean(ranks < 5)) == 1.0
    for n, x in zip(names, s):  # every member is evaluated as well
        assert results["evaluation"][n]["top1"] == pytest.approx(np.mean(x.argmax(axis=1) == np.array(labels)))
    assert results["fusions"]["all"]["title"] == "Fusion of all 3"
    # model.json gives the title and timing; the fusion's model time adds up only when all are timed.
    assert results["models"]["tsn"]["title"] == "TSN (ResNet-50)"
    assert results["models"]["tsn"]["test_description"] == "25 frames x 10 crops"
    assert results["models"]["tsn"]["timing"]["fps_model"] == 100.0
    assert results["fusions"]["all"]["timing"] is None
    timing_rows = {row[0]: row for row in report_tables.timing_table(results).rows}
    assert timing_rows["TSN (ResNet-50)"][1:] == ["cpu", "10", "off", "250.0", "500.0", "2000.0", "80", "100"]
    assert timing_rows["3D ResNet-50"][1] == "not measured"


def test_several_fusions_and_the_appearance_motion_pair(three_models, tmp_path, skip_drawing):
    root, _, _ = three_models
    args = (["--data-dir", root / "data", "--output-dir", tmp_path, "--model", f"single_frame={root / 'single_frame'}",
             "--model", f"3d={root / '3d'}", "--model", f"tsn={root / 'tsn'}", "--fuse", "single_frame,3d",
             "--fuse", "all", "--fusion", "prob", "--fusion", "logmean", "--weights", "0.3,0.7", "--weights", "equal"])
    results = run_main(args)
    assert results["order"] == ["single_frame", "3d", "tsn", "single_frame+3d", "all"]
    # published numbers: the two-model layout's folders by name, a model.json without its arch gets none
    assert results["dataset_name"] == "ucf101"
    assert [(results["published"][n] or {}).get("text") for n in results["order"]] == [
        "77–79", "89.3", None, "85.04", None]
    assert results["fusions"]["single_frame+3d"]["rule"] == "prob"
    assert results["fusions"]["single_frame+3d"]["weights"] == [0.3, 0.7]
    assert results["fusions"]["all"]["weights"] == pytest.approx([1 / 3] * 3)
    ev = results["evaluation"]
    best_2d = max(("single_frame", "tsn"), key=lambda n: ev[n]["top1"])
    avm = results["appearance_vs_motion"]
    assert (avm["appearance_model"], avm["motion_models"]) == (best_2d, ["3d"])
    caption = report_tables.appearance_table(results).caption
    assert f"best 2D RGB model by top-1 ({best_2d}" in caption and "every motion model (3d = " in caption
    for name in results["order"]:  # every table covers every model and fusion
        assert f"best_worst_{name}" in report_tables.build_tables(results)
    assert [row[0] for row in report_tables.topk_table(results).rows] == [
        "Single frame (ResNet-50)", "3D ResNet-50", "TSN (ResNet-50)", "Fusion single_frame + 3d", "Fusion of all 3"]


# ---------------------------------------------------------------------------
# Fusion weights chosen on validation predictions
# ---------------------------------------------------------------------------
AUTO_CLASSES = ["A", "B", "C"]
# Val videos (group 8): with weights (w, 1 - w) for (single_frame, 3d), logmean ranks A over B iff
# w * dA + (1 - w) * dB > 0. Video 0 (A): right iff w > 0.778; video 1 (B): right iff w < 0.833; video 2 (A)
# always right: only w = 0.8 gets all three (weight_choice.choose_weights is tested on the same numbers).
VAL_VIDEOS = [("A", 0, 1.0, -3.5), ("B", 1, 1.0, -5.0), ("A", 0, 1.0, 2.0)]
# Test videos: 3D is right on all three, the single frame on one; the val-chosen 0.8/0.2 gets only C right
# (below its best member), while equal weights would get all three: a choice on the test set would differ.
TEST_VIDEOS = [("A", 0, -1.0, 3.0), ("B", 1, 1.0, -3.0), ("C", 2, None, None)]


def two_class_logits(difference):
    """Logits over A, B, C whose A-minus-B difference is ``difference`` (C far below); None: C wins."""
    return np.array([[-5.0, -5.0, 5.0]]) if difference is None else np.array([[difference / 2, -difference / 2, -20.0]])


@pytest.fixture(scope="module")
def auto_workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("auto")
    counters = {}

    def stem(folder, group):
        counters[(folder, group)] = counters.get((folder, group), 0) + 1
        return f"v_{folder}_g{group:02d}_c{counters[(folder, group)]:02d}"

    val = [(folder, stem(folder, 8), label, da, db) for folder, label, da, db in VAL_VIDEOS]
    test = [(folder, stem(folder, 11), label, da, db) for folder, label, da, db in TEST_VIDEOS]
    train = [(c, f"v_{c}_g01_c01") for c in AUTO_CLASSES] + [(folder, s) for folder, s, *_ in val]
    write_lists(root / "data", AUTO_CLASSES, test, train)
    for subset, videos in (("test", test), ("val", val)):
        for name, column in (("single_frame", 3), ("3d", 4)):
            directory = root / name / subset
            for video in videos:
                prediction_files.write_predictions(
                    directory / video[0] / f"{video[1]}.hdf5",
                    two_class_logits(video[column]),
                    attrs={"frames": 100 + len(video[1]), "rows": "frames", "crops": 1},
                )
            write_model_json(directory, name=name, subset=subset, split=1, val_groups=[8])
    return root


def auto_args(root, output_dir, *extra, weights="auto-top1"):
    """The old rule (--weights auto-top1: top-1 on the raw scores) unless ``weights`` says otherwise."""
    return (["--data-dir", root / "data", "--output-dir", output_dir, "--weights", weights]
            + [a for n in ("single_frame", "3d") for a in ("--model", f"{n}={root / n / 'test'}",
                                                          "--val", f"{n}={root / n / 'val'}")] + list(extra))


def test_auto_weights_are_chosen_on_validation_and_never_read_the_test_folder(auto_workspace, tmp_path,
                                                                              skip_drawing, monkeypatch):
    reads, at_choice = [], []
    read, choose = prediction_files.read_prediction_file, weight_choice.choose_weights

    def recording_read(path):
        reads.append(os.fspath(path))
        return read(path)

    def recording_choose(*args, **kwargs):
        at_choice.append(list(reads))
        return choose(*args, **kwargs)

    monkeypatch.setattr(prediction_files, "read_prediction_file", recording_read)
    monkeypatch.setattr(weight_choice, "choose_weights", recording_choose)
    results = run_main(auto_args(auto_workspace, tmp_path))

    test_dirs = [str(auto_workspace / n / "test") for n in ("single_frame", "3d")]
    assert len(at_choice) == 1
    assert not [p for p in at_choice[0] if any(p.startswith(d) for d in test_dirs)]  # no test file before the choice
    assert len(at_choice[0]) == 2 * len(VAL_VIDEOS)
    assert len([p for p in reads if any(p.startswith(d) for d in test_dirs)]) == 2 * len(TEST_VIDEOS)

    fusion = results["fusions"]["all"]
    assert fusion["weights"] == [0.8, 0.2] and fusion["weights_source"] == "auto-top1"
    assert fusion["calibration"] == "none" and fusion["temperatures"] == [1.0, 1.0]
    assert fusion["validation"]["top1"] == 1.0 and fusion["validation"]["val_groups"] == [8]
    assert fusion["validation"]["equal_weights_top1"] == pytest.approx(2 / 3)
    assert fusion["validation"]["grid_points"] == 21 and fusion["validation"]["videos"] == 3
    ev = results["evaluation"]
    assert ev["3d"]["top1"] == 1.0 and ev["single_frame"]["top1"] == pytest.approx(1 / 3)
    assert ev["all"]["top1"] == pytest.approx(1 / 3)  # 0.8/0.2 applied to the test predictions
    # The fusion stays below its best member: said plainly in results.json, the tables and the summary.
    assert fusion["below_best_member"] is True and fusion["best_member"] == "3d"
    assert fusion["verdict"].startswith("stays below its best member, 3D ResNet-50, on test top-1 (-66.67 points)")
    assert "stays below its best member" in results["answers"]["fusion"][0]
    assert "Below its best member on test top-1: all." in (tmp_path / "tables.md").read_text()
    assert results["models"]["3d"]["val_top1"] == pytest.approx(2 / 3)
    assert results["dataset"]["val"]["videos"] == 3 and results["dataset"]["val_groups"] == [8]
    assert results["dataset"]["train"]["videos"] == 3  # the training list less group 8
    assert results["dataset"]["frames_per_video"]["source"] == "single_frame"


def test_auto_weights_do_not_depend_on_the_test_predictions(auto_workspace, tmp_path, skip_drawing):
    # Turn the test predictions round (single frame now right, 3D wrong): the chosen weights stay.
    root = tmp_path / "copy"
    shutil.copytree(auto_workspace, root)
    for folder, s in (("A", "v_A_g11_c01"), ("B", "v_B_g11_c01")):
        for name in ("single_frame", "3d"):
            path = root / name / "test" / folder / f"{s}.hdf5"
            prediction_files.write_predictions(path, -prediction_files.read_predictions(path))
    results = run_main(auto_args(root, tmp_path / "out"))
    assert results["fusions"]["all"]["weights"] == [0.8, 0.2]


def test_val_groups_flag_for_val_folders_without_model_json(auto_workspace, tmp_path, skip_drawing):
    root = tmp_path / "copy"
    shutil.copytree(auto_workspace, root)
    for name in ("single_frame", "3d"):
        os.remove(root / name / "val" / "model.json")
    result = run_cli(*auto_args(root, tmp_path / "out"))
    assert_refusal(result, "--val-groups")
    results = run_main(auto_args(root, tmp_path / "out", "--val-groups", "8"))
    assert results["fusions"]["all"]["weights"] == [0.8, 0.2]


# ---------------------------------------------------------------------------
# --weights auto: calibrated members, weights by validation NLL, the bootstrap's evidence (issue 25)
# ---------------------------------------------------------------------------
def write_study(root, classes, val, test):
    """Data lists and prediction folders root/<model>/{val,test} of a generated study: ``val`` and ``test``
    are ({model: video scores [N, C]}, labels [N]); validation videos are group 8 of the training list."""
    entries = {}
    for subset, (scores, labels), group in (("val", val, 8), ("test", test, 11)):
        counters = {}
        entries[subset] = []
        for label in labels:
            folder = classes[label]
            counters[folder] = counters.get(folder, 0) + 1
            entries[subset].append((folder, f"v_{folder}_g{group:02d}_c{counters[folder]:02d}", int(label)))
        for name, model_scores in scores.items():
            directory = root / name / subset
            for (folder, stem, _), row in zip(entries[subset], model_scores):
                prediction_files.write_predictions(directory / folder / f"{stem}.hdf5", row[None])
            write_model_json(directory, name=name, subset=subset, split=1, val_groups=[8])
    train = [(c, f"v_{c}_g01_c01") for c in classes] + [(folder, stem) for folder, stem, _ in entries["val"]]
    write_lists(root / "data", classes, entries["test"], train)
    return root


@pytest.fixture(scope="module")
def sure_and_wrong_workspace(tmp_path_factory):
    """bench_fusion's study (seed 12): a single-frame model sure everywhere and at chance on the 3 motion
    classes, a 3D model right more often but less sure; 12 validation and 48 test videos."""
    from bench import bench_fusion
    rng = np.random.default_rng(12)
    val, test = bench_fusion.synthetic_study(rng, 2), bench_fusion.synthetic_study(rng, 8)
    classes = ["AppearanceA", "AppearanceB", "AppearanceC", "MotionUp", "MotionDown", "MotionGrow"]
    return write_study(tmp_path_factory.mktemp("sure"), classes, val, test)


def test_auto_calibrates_and_does_not_fall_below_the_better_model(sure_and_wrong_workspace, tmp_path, skip_drawing):
    root = sure_and_wrong_workspace
    results = run_main(auto_args(root, tmp_path / "new", weights="auto"))
    fusion, ev, models = results["fusions"]["all"], results["evaluation"], results["models"]
    assert fusion["weights_source"] == "auto" and fusion["calibration"] == "temperature"
    assert fusion["temperatures"] == [models["single_frame"]["temperature"], models["3d"]["temperature"]]
    assert models["single_frame"]["temperature"] > 2.0 and models["3d"]["temperature"] == 0.5  # 3d at the bound
    assert models["3d"]["temperature_at_bound"] == "lower"
    assert fusion["weights"][1] > fusion["weights"][0]  # the better model weighs more
    assert fusion["effective_weights"][1] > 0.9
    assert ev["3d"]["top1"] == pytest.approx(46 / 48) and ev["single_frame"]["top1"] == pytest.approx(30 / 48)
    assert ev["all"]["top1"] >= ev["3d"]["top1"]
    # Test scores recomputed from the files: the temperatures and weights applied as recorded.
    labels = [results["class_list"].index(p.parent.name) for p in sorted((root / "3d" / "test").glob("*/*.hdf5"))]
    entries = [(p.parent.name, p.stem) for p in sorted((root / "3d" / "test").glob("*/*.hdf5"))]
    scores = [hand_scores(root / m / "test", entries) for m in ("single_frame", "3d")]
    fused = sum(w * s / t for w, s, t in zip(fusion["weights"], scores, fusion["temperatures"]))
    assert ev["all"]["top1"] == pytest.approx(np.mean(np.argmax(fused, axis=1) == labels))
    # The evidence: the validation videos, each model's and the fusion's NLL and top-1, the bootstrap.
    v = fusion["validation"]
    assert v["videos"] == 12 and len(results["dataset"]["val"]["video_names"]) == 12
    assert set(v["members"]) == {"single_frame", "3d"} and v["nll"] < v["members"]["single_frame"]["nll"]
    assert models["3d"]["val_nll_calibrated"] <= models["3d"]["val_nll"]
    b = v["bootstrap"]
    assert b["best_member"] == "3d" and b["resamples"] == 1000 and b["seed"] == 0
    assert not b["supported"] and not fusion["supported_by_validation"] and fusion["recommendation"] == "3d"
    answers = results["answers"]["fusion"]
    assert [a for a in answers if a.startswith(report_sentences.NOT_SUPPORTED)] == [
        f"{report_sentences.NOT_SUPPORTED} Fusion single_frame + 3d over its best member, 3D ResNet-50 (the interval "
        "of the top-1 gain reaches 0, and the fusion's validation top-1 is lower or the interval of the NLL gain "
        "reaches 0). Recommendation: 3D ResNet-50 alone; the tables keep the numbers of both."]
    tables = (tmp_path / "new" / "tables.md").read_text()
    assert "## Validation evidence" in tables and "no: 3d" in tables

    # The same seed gives the same bootstrap; another seed other numbers.
    again = run_main(auto_args(root, tmp_path / "again", weights="auto"))
    assert again["fusions"]["all"]["validation"]["bootstrap"] == b
    other = run_main(auto_args(root, tmp_path / "other", "--bootstrap-seed", "1", weights="auto"))
    assert other["fusions"]["all"]["validation"]["bootstrap"]["gain_nll"] != b["gain_nll"]

    # The old rule, still available: top-1 on the raw scores falls below the 3D model here.
    old = run_main(auto_args(root, tmp_path / "old"))
    assert old["fusions"]["all"]["weights_source"] == "auto-top1"
    assert old["evaluation"]["all"]["top1"] < old["evaluation"]["3d"]["top1"]


def test_the_not_supported_sentence_appears_exactly_when_validation_does_not_support(tmp_path, skip_drawing):
    # Two models each sure and right on half the classes and unsure on the other half, 160 validation
    # videos: the fusion's NLL gain is clearly positive, the report recommends the fusion.
    rng = np.random.default_rng(0)
    classes = ["A", "B", "C", "D"]

    def study(per_class):
        labels = np.repeat(np.arange(4), per_class)
        rows = np.arange(len(labels))
        scores = {}
        for name, strong in (("single_frame", labels < 2), ("3d", labels >= 2)):
            logits = rng.normal(0.0, 0.5, (len(labels), 4))
            logits[rows, labels] += np.where(strong, 3.0, 0.5)
            scores[name] = video_scores.log_softmax(logits, axis=1)
        return scores, labels

    root = write_study(tmp_path / "study", classes, study(40), study(10))
    for weights in ("auto", "equal", "auto-top1"):
        results = run_main(auto_args(root, tmp_path / weights, weights=weights))
        fusion = results["fusions"]["all"]
        assert fusion["validation"]["bootstrap"]["supported"] and fusion["recommendation"] == "all"
        answers = results["answers"]["fusion"]
        assert not [a for a in answers if report_sentences.NOT_SUPPORTED in a]
        assert [a for a in answers if a.startswith("Validation supports Fusion single_frame + 3d over its best member")]


# ---------------------------------------------------------------------------
# Tables, figures and the PDF report
# ---------------------------------------------------------------------------
def test_latex_tables_are_valid_and_escaped(default_run):
    output_dir, _ = default_run
    tex_files = sorted((output_dir / "tables").glob("*.tex"))
    names = {p.stem for p in tex_files}
    assert {"topk", "fusions", "macro", "timing", "best_worst", "most_confused", "appearance_vs_motion", "dataset",
            "per_class_recall", "per_class_precision", "per_class_f1", "summary", "best_worst_all",
            "most_confused_single_frame"} <= names
    for path in tex_files:
        text = path.read_text()
        if path.stem == "summary":
            assert r"\paragraph" in text and "Foo_Bar&Baz" not in text
            continue
        assert text.count(r"\begin{tabular}") + text.count(r"\begin{longtable}") >= 1, path.name
        for spec in re.findall(r"\\begin\{(?:tabular|longtable)\}\{([lrc|]+)\}", text):
            columns = len(spec.replace("|", ""))
            assert columns >= 1
        rows = [line for line in text.splitlines() if line.rstrip().endswith(r"\\") and "multicolumn" not in line]
        for line in rows:
            assert not re.search(r"(?<!\\)[%#_^~]", line.replace(r"$\rightarrow$", "")), (path.name, line)
        assert "Foo_Bar&Baz" not in text
    assert r"Foo\_Bar\&Baz" in (output_dir / "tables" / "best_worst.tex").read_text()
    topk = (output_dir / "tables" / "topk.tex").read_text()
    columns = len(re.search(r"\\begin\{tabular\}\{([lrc]+)\}", topk).group(1))
    for line in topk.splitlines():
        if line.endswith(r"\\"):
            assert len(re.findall(r"(?<!\\)&", line)) == columns - 1, line


def test_one_checkpoint_in_two_test_modes_gets_two_titles():
    models = {"3d": {"title": "3D ResNet-50", "test": {"mode": "sliding"}},
              "3d_full": {"title": "3D ResNet-50", "test": {"mode": "full"}},
              "a": {"title": "C3D", "test": {"mode": "sliding"}}, "b": {"title": "C3D", "test": {"mode": "sliding"}},
              "single_frame": {"title": "Single frame (ResNet-50)", "test": None}}
    model_info.distinguish_titles(models)
    assert [m["title"] for m in models.values()] == ["3D ResNet-50 (sliding)", "3D ResNet-50 (full)", "C3D (a)",
                                                      "C3D (b)", "Single frame (ResNet-50)"]


def test_latex_escape():
    assert table_files.latex_escape(r"a_b&c%d#e$f{g}h~i^j\k") == \
        r"a\_b\&c\%d\#e\$f\{g\}h\textasciitilde{}i\textasciicircum{}j\textbackslash{}k"
    assert table_files.latex_escape("A → B ± 1") == r"A $\rightarrow$ B $\pm$ 1"


def test_markdown_tables(default_run):
    output_dir, _ = default_run
    text = (output_dir / "tables.md").read_text()
    assert r"Foo\_Bar&Baz" in text and "1. Did fusion improve" in text
    for line in text.splitlines():
        if line.startswith("|"):
            assert line.endswith("|")


def test_empty_tables_say_so(tmp_path, skip_drawing):
    # Both models right on every video (as in the demo): no empty "the 0 ..." captions.
    root = tmp_path / "perfect"
    write_dataset(root / "data")
    for which in ("single_frame", "3d"):
        for folder, stem, label in video_entries():
            logits = np.full((2, len(CLASSES)), -5.0)
            logits[:, label] = 5.0 if which == "3d" else 0.0
            prediction_files.write_predictions(
                str(root / "runs" / which / "predictions" / folder / f"{stem}.hdf5"), logits
            )
    results = run_main(cli_args(root, root / "report"))
    text = (root / "report" / "tables.md").read_text()
    assert "the 0" not in text
    assert "No confused pair: every test video was classified correctly." in text
    assert "every class with test videos" in text  # 4 of them: all listed, none of the "the 0 classes where ..."
    assert "3d is better than single\\_frame on 0, worse on 0, equal on 4 (mean +0.00 points)" in text
    assert "(none)" in text
    assert results["answers"]["confusions"] == [
        "Single frame (ResNet-50) classifies every test video correctly: no confused pair."]
    assert formatting.counted(1, "the class", "classes") == "the class"


def test_figures_and_pdf_report(default_run):
    output_dir, results = default_run
    for name in ("topk", "precision_recall", "speed_accuracy", "learning_curves", "dataset", "accuracy_difference",
                 "per_class_accuracy", "confusion_single_frame", "confusion_3d", "confusion_all", "confusion_best"):
        for ext in ("png", "pdf"):
            assert (output_dir / "figures" / f"{name}.{ext}").stat().st_size > 0, (name, ext)
    data = (output_dir / "report.pdf").read_bytes()
    assert data.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data)) == results["report"]["pages"]


def test_learning_curves_use_val_acc(default_run):
    _, results = default_run
    assert results["models"]["single_frame"]["log"].endswith(os.path.join("single_frame", "log.jsonl"))
    assert results["models"]["3d"]["log"] is None
    records = runlog.read_log(results["models"]["single_frame"]["log"])
    assert [r.get("val_acc") for r in records] == [None, 0.4, None]


def test_log_flags(workspace, tmp_path, skip_drawing, capsys):
    log = tmp_path / "3d_log.jsonl"
    log.write_text('{"epoch": 0, "train_loss": 1.0, "train_acc": 0.5}\nnot json\n')
    results = run_main(cli_args(workspace, tmp_path / "a", "--logs", f",{log}"))
    assert results["inputs"]["logs"]["3d"] == str(log)
    results = run_main(cli_args(workspace, tmp_path / "b", "--log", f"3d={log}"))
    assert results["models"]["3d"]["log"] == str(log)
    out = capsys.readouterr().out
    assert "all (Fusion single_frame + 3d)" in out and "report.pdf" in out


# ---------------------------------------------------------------------------
# --summarize: the mean over the splits
# ---------------------------------------------------------------------------
def write_split(directory, split, entries):
    """A results.json of the current layout: entries = {name: (title, top1, top5, top10, mca)}."""
    os.makedirs(directory, exist_ok=True)
    data = {"split": split, "order": list(entries), "models": {}, "fusions": {}, "evaluation": {}}
    for name, (title, *values) in entries.items():
        (data["fusions"] if name == "all" else data["models"])[name] = {"title": title}
        data["evaluation"][name] = dict(zip(("top1", "top5", "top10", "mean_class_accuracy"), values))
    with open(os.path.join(directory, "results.json"), "w") as f:
        json.dump(data, f)


def test_summarize_three_splits(tmp_path):
    write_split(tmp_path / "s1", 1, {"sf": ("Single frame", .70, .90, .95, .69), "3d": ("3D", .80, .94, .97, .79),
                                     "all": ("Fusion", .84, .96, .98, .83)})
    write_split(tmp_path / "s2", 2, {"sf": ("Single frame", .72, .91, .96, .71), "3d": ("3D", .82, .95, .98, .81)})
    write_split(tmp_path / "s3", 3, {"sf": ("Single frame", .74, .92, .97, .73), "3d": ("3D", .78, .93, .96, .77),
                                     "all": ("Fusion", .86, .97, .99, .85)})
    out = tmp_path / "summary"
    result = run_cli("--summarize", tmp_path / "s3", tmp_path / "s1", tmp_path / "s2", "--output-dir", out)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["splits"] == [1, 2, 3]
    sf = summary["entries"]["sf"]
    assert sf["top1"]["mean"] == pytest.approx(0.72) and sf["top1"]["std"] == pytest.approx(0.02)  # n - 1
    assert sf["top10"]["mean"] == pytest.approx(0.96) and sf["mean_class_accuracy"]["mean"] == pytest.approx(0.71)
    assert summary["entries"]["3d"]["top5"]["std"] == pytest.approx(np.std([.94, .95, .93], ddof=1))
    fusion = summary["entries"]["all"]
    assert fusion["missing_from"] == [2] and fusion["splits"] == [1, 3]
    assert all(fusion[k] is None for k in ("top1", "top5", "top10", "mean_class_accuracy"))  # not averaged over 2
    markdown = (out / "summary.md").read_text()
    assert "72.00 ± 2.00" in markdown and "missing from split 2" in markdown
    fusion_row = [line for line in markdown.splitlines() if line.startswith("| all ")][0]
    assert "n/a" in fusion_row and "84.00" in fusion_row and "missing |" in fusion_row
    assert r"72.00 $\pm$ 2.00" in (out / "summary.tex").read_text()
    for path in ("summary.pdf", "figures/summary.png", "figures/summary.pdf"):
        assert (out / path).stat().st_size > 0
    if PDFTOTEXT:
        text = subprocess.run([PDFTOTEXT, str(out / "summary.pdf"), "-"], capture_output=True, text=True).stdout
        assert "72.00 ± 2.00" in text and "missing from split 2" in text


def test_summarize_reads_the_older_layout_and_refuses_a_split_twice(tmp_path):
    for split in (1, 2):
        os.makedirs(tmp_path / f"s{split}")
        (tmp_path / f"s{split}" / "results.json").write_text(json.dumps(
            {"split": split, "single_frame": {"top1": 0.7 + split / 100}, "3d": {"top1": 0.8},
             "combined": {"top1": 0.85}}))
    summary = run_main(["--summarize", tmp_path / "s1", tmp_path / "s2", "--output-dir", tmp_path / "out"])
    assert summary["entries"]["single_frame"]["top1"]["mean"] == pytest.approx(0.715)
    assert summary["entries"]["combined"]["top5"] is None  # not recorded: no mean
    assert_refusal(run_cli("--summarize", tmp_path / "s1", tmp_path / "s1", "--output-dir", tmp_path / "o"),
                   "split 1 is given twice")
    assert_refusal(run_cli("--summarize", tmp_path / "s1", tmp_path / "nowhere", "--output-dir", tmp_path / "o"),
                   "nowhere", "no results.json")


# ---------------------------------------------------------------------------
# Refusals: one line, exit status 2, no traceback
# ---------------------------------------------------------------------------
def copy_predictions(workspace, tmp_path):
    """A writable copy of both prediction folders, so a test can break one."""
    shutil.copytree(workspace / "runs", tmp_path / "runs")
    (tmp_path / "data").symlink_to(workspace / "data")
    return tmp_path


def test_refuses_missing_videos(workspace, tmp_path):
    root = copy_predictions(workspace, tmp_path)
    (root / "runs" / "3d" / "predictions" / "Gamma" / "v_Gamma_g01_c02.hdf5").unlink()
    assert_refusal(run_cli(*cli_args(root, tmp_path / "out")), "Gamma/v_Gamma_g01_c02", "1 of 8", "--3d")
    assert not (tmp_path / "out" / "results.json").exists()


def test_refuses_many_missing_videos_naming_the_first_few(workspace, tmp_path):
    root = copy_predictions(workspace, tmp_path)
    folder = root / "runs" / "single_frame" / "predictions"
    for path in sorted(folder.rglob("*.hdf5"))[:7]:
        path.unlink()
    (folder / "Gamma" / "v_Gamma_g01_c02.hdf5").write_bytes(b"corrupt")  # a broken file counts as missing
    assert_refusal(run_cli(*cli_args(root, tmp_path / "out")), "8 of 8", "and 5 more", "--single-frame")


def test_refuses_wrong_class_count(workspace, tmp_path):
    root = tmp_path
    (root / "data").symlink_to(workspace / "data")
    (root / "runs" / "single_frame").mkdir(parents=True)
    (root / "runs" / "single_frame" / "predictions").symlink_to(workspace / "runs" / "single_frame" / "predictions")
    write_predictions(root / "runs" / "3d" / "predictions", 2, rows=1, num_classes=6)
    assert_refusal(run_cli(*cli_args(root, tmp_path / "out")), "6 classes", "lists 7")


def test_refuses_non_finite_values_naming_the_file(workspace, tmp_path):
    root = copy_predictions(workspace, tmp_path)
    path = root / "runs" / "3d" / "predictions" / "Delta" / "v_Delta_g01_c01.hdf5"
    logits = prediction_files.read_predictions(path)
    logits[1, 2] = np.nan
    prediction_files.write_predictions(path, logits)
    assert_refusal(run_cli(*cli_args(root, tmp_path / "out")), f"non-finite values in {path}")


def test_refuses_a_file_of_the_wrong_shape_naming_it(workspace, tmp_path):
    root = copy_predictions(workspace, tmp_path)
    path = root / "runs" / "single_frame" / "predictions" / "Alpha" / "v_Alpha_g01_c01.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("predictions", data=np.zeros(7, dtype=np.float32))
    assert_refusal(run_cli(*cli_args(root, tmp_path / "out")), f"{path} has shape (7,)")


def test_refuses_a_folder_that_is_not_a_prediction_folder(workspace, tmp_path):
    run_dir = workspace / "runs" / "3d"
    args = cli_args(workspace, tmp_path / "out")
    args[args.index("--3d") + 1] = str(run_dir)
    assert_refusal(run_cli(*args), "--3d", "not a prediction folder", f"did you mean {run_dir / 'predictions'}")


def test_refuses_an_unreadable_model_json(workspace, tmp_path):
    root = copy_predictions(workspace, tmp_path)
    path = root / "runs" / "3d" / "predictions" / "model.json"
    path.write_text('{"name": "3d", ')
    assert_refusal(run_cli(*cli_args(root, tmp_path / "out")), str(path), "not valid JSON")
    path.write_text("[1, 2]")
    assert_refusal(run_cli(*cli_args(root, tmp_path / "out")), "must hold a JSON object")


def test_refuses_auto_weights_without_validation_predictions(workspace, tmp_path):
    assert_refusal(run_cli(*cli_args(workspace, tmp_path / "out", "--weights", "auto")), "--val", "test-set tuning")


def test_refuses_val_folders_that_do_not_match(auto_workspace, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(auto_workspace, root)
    # A val folder missing one of the val videos.
    missing = root / "3d" / "val" / "B" / "v_B_g08_c01.hdf5"
    missing.rename(tmp_path / "kept.hdf5")
    assert_refusal(run_cli(*auto_args(root, tmp_path / "out")), "--val 3d=", "1 of 3 val videos", "B/v_B_g08_c01")
    (tmp_path / "kept.hdf5").rename(missing)
    # Val folders written for different groups.
    write_model_json(root / "3d" / "val", name="3d", subset="val", split=1, val_groups=[9])
    assert_refusal(run_cli(*auto_args(root, tmp_path / "out")), "different validation groups", "single_frame: 8",
                   "3d: 9")
    # A test folder given as --val, and groups the training list does not have.
    write_model_json(root / "3d" / "val", name="3d", subset="test", split=1, val_groups=[8])
    assert_refusal(run_cli(*auto_args(root, tmp_path / "out")), "--val 3d=", "subset 'test'")
    for name in ("single_frame", "3d"):
        write_model_json(root / name / "val", name=name, subset="val", split=1, val_groups=[30])
    assert_refusal(run_cli(*auto_args(root, tmp_path / "out")), "--val", "g30")
    # A val folder given as a test folder.
    write_model_json(root / "3d" / "val", name="3d", subset="val", split=1, val_groups=[8])
    args = auto_args(root, tmp_path / "out")
    args[args.index(f"3d={root / '3d' / 'test'}")] = f"3d={root / '3d' / 'val'}"
    assert_refusal(run_cli(*args), "--model 3d=", "subset 'val'", "--subset test")


@pytest.mark.parametrize("extra,message", [
    (["--weights", "1"], "--weights"),
    (["--weights", "a,b"], "--weights"),
    (["--weights", "0,0"], "--weights"),
    (["--weights", "0.5,0.5", "--weights", "1,1", "--weights", "1,2"], "given 3 times for 1 fusions"),
    (["--logs", "only_one.jsonl"], "--logs"),
    (["--logs", ",does_not_exist.jsonl"], "does_not_exist.jsonl"),
    (["--fuse", "single_frame,c3d"], "'c3d' is not one of the models"),
    (["--fuse", "single_frame"], "two or more"),
    (["--model", "3d=elsewhere"], "given twice"),
    (["--model", "a b=x"], "letters, digits"),
    (["--val", "tsn=x"], "'tsn' is not one of the models"),
    (["--weight-step", "0.3"], "--weight-step"),
])
def test_user_errors_exit_2_with_one_line(workspace, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as info:
        run_main(cli_args(workspace, tmp_path, *extra))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_missing_directories_exit_2(workspace, tmp_path):
    assert_refusal(run_cli("--data-dir", tmp_path / "nowhere", "--single-frame", tmp_path, "--3d", tmp_path,
                           "--output-dir", tmp_path / "out"), "classInd.txt")
    args = cli_args(workspace, tmp_path / "out")
    args[args.index("--3d") + 1] = str(tmp_path / "nope")
    assert_refusal(run_cli(*args), "nope", "no such directory")
    assert_refusal(run_cli("--data-dir", workspace / "data"), "at least one model")


def test_help_states_defaults():
    text = combine_results.get_args_parser().format_help()
    for default in ("default: 1", "default: report/", "default: logmean", "default: equal", "default: one fusion",
                    "default: 0.05 for 2-3 models"):
        assert default in " ".join(text.split()), default


# ---------------------------------------------------------------------------
# A 101-class report on the real split-1 test list
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ucf101_report(tmp_path_factory):
    if not os.path.isfile(os.path.join(SHARED_LISTS, "classInd.txt")):
        pytest.skip("../shared/data/ucfTrainTestlist not found (the real split lists)")
    root = tmp_path_factory.mktemp("ucf101")
    (root / "data").mkdir()
    (root / "data" / "ucfTrainTestlist").symlink_to(os.path.abspath(SHARED_LISTS))
    from actionrec.data import split_lists
    class_list, _, (paths, labels) = split_lists.getUCF101(str(root / "data"), 1)
    rng = np.random.default_rng(101)
    num_classes = len(class_list)
    difficulty = rng.random(num_classes)
    frames = rng.integers(30, 900, size=len(paths))
    models = {"single_frame": (2.5, False), "3d": (3.0, True), "c3d": (2.0, True)}
    for name, (strength, temporal) in models.items():
        bias = rng.normal(0, 0.7, num_classes) * (1 if temporal else -1)
        logits = rng.normal(size=(len(paths), num_classes)).astype(np.float32)
        logits[np.arange(len(paths)), labels] += strength * (1.2 - difficulty[labels]) + bias[labels]
        logits[np.arange(len(paths)), (labels + 1) % num_classes] += difficulty[labels]
        for i, path in enumerate(paths):  # h5py directly: the fastest way to write 3,783 files
            target = prediction_files.prediction_path(root / name, path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with h5py.File(target, "w") as f:
                dataset = f.create_dataset("predictions", data=logits[i:i + 1])
                if name == "single_frame":
                    dataset.attrs["frames"] = int(frames[i])
    write_model_json(root / "single_frame", name="single_frame", title="Single frame (ResNet-50)", kind="frame",
                     temporal=False, test={"description": "every frame, 1 crop", "mode": "frames"}, subset="test",
                     split=1, timing={"device": "cuda (NVIDIA H100 80GB HBM3)", "batch_size": 100, "amp": "bfloat16",
                                      "views_per_video": 184.0, "load_seconds_per_video": 0.05,
                                      "model_seconds_per_video": 0.2, "fps_end_to_end": 773.0, "fps_model": 950.0})
    write_model_json(root / "3d", name="3d", title="3D ResNet-50", kind="clip", temporal=True, subset="test", split=1,
                     test={"description": "sliding 16-frame windows, stride 8", "mode": "sliding"})
    out = root / "report"
    results = run_main(["--data-dir", root / "data", "--output-dir", out, "--fuse", "single_frame,3d", "--fuse", "all"]
                       + [a for n in models for a in ("--model", f"{n}={root / n}")])
    return out, results


def pdf_text(path, first, last):
    return subprocess.run([PDFTOTEXT, "-f", str(first), "-l", str(last), str(path), "-"], capture_output=True,
                          text=True, check=True).stdout


def test_101_class_report_pages(ucf101_report):
    out, results = ucf101_report
    report = results["report"]
    assert results["classes"] == 101 and results["videos"] == 3783
    assert report["main_pages"] <= report_pdf.MAIN_PAGES_MAX_101
    assert report["appendix_page"] == report["main_pages"] + 1 < report["pages"]
    data = (out / "report.pdf").read_bytes()
    assert len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data)) == report["pages"]
    assert (out / "figures" / "confusion_most_confused.png").stat().st_size > 0
    indices = confusion_figures.most_confused_classes(np.load(out / f"confusion_{results['reference']}.npy"))
    assert len(indices) == confusion_figures.NUM_CONFUSED_CLASSES == len(set(indices))
    if PDFTOTEXT:
        appendix = pdf_text(out / "report.pdf", report["appendix_page"], report["appendix_page"])
        assert "Appendix: per-class results" in appendix
        assert "Appendix: per-class results" not in pdf_text(out / "report.pdf", 1, report["main_pages"])
        main = pdf_text(out / "report.pdf", 1, report["main_pages"])
        for name in ("BreastStroke", "YoYo", "the 20 most confused classes"):  # every class name is on a page
            assert name in main


def test_101_class_summary_page_numbers_come_from_results_json(ucf101_report):
    out, _ = ucf101_report
    results = json.loads((out / "results.json").read_text())
    blocks = report_pdf.summary_blocks(results, report_tables.build_tables(results))
    [table] = [b[1] for b in blocks if b[0] == "table"]
    ev = results["evaluation"]
    assert [row[2:5] for row in table.rows] == [[formatting.pct(ev[n][f"top{k}"]) for k in (1, 5, 10)]
                                                for n in results["order"]]
    assert report_sentences.build_answers(results) == results["answers"]  # the sentences are computed from it
    sentences = [b[1] for b in blocks if b[0] == "paragraph" and b[2]]
    for key in ("fusion", "classes", "confusions"):
        for sentence in results["answers"][key]:
            assert sentence in sentences
    fusion = results["fusions"]["single_frame+3d"]
    assert f"top-1 {formatting.pct(ev['single_frame+3d']['top1'])}%" in results["answers"]["fusion"][0]
    assert formatting.pct(fusion["gain"]["top1"], signed=True) in results["answers"]["fusion"][0]
    assert "3d: 3D ResNet-50 (temporal). Test: sliding 16-frame windows, stride 8" in " ".join(sentences)
    if PDFTOTEXT:
        text = "".join(pdf_text(out / "report.pdf", 1, 2).split())
        for row in table.rows:
            for cell in row:
                assert "".join(cell.split()) in text, cell
        for sentence in sentences[:len(results["models"]) + len(results["fusions"]) + 3]:
            assert "".join(sentence.split()) in text, sentence


# ---------------------------------------------------------------------------
# report.pdf (reportlab): pages, bookmarks, the tables' text
# ---------------------------------------------------------------------------
REPORT_SECTIONS = ("UCF-101 action recognition: results", "Accuracy and fusion", "Best and worst classes",
                   "Most confused pairs", "Confusion matrices", "Appearance vs motion",
                   "Precision and recall per class", "Speed", "Learning curves", "Dataset",
                   "Appendix: per-class results")


def test_report_pdf_has_a_bookmark_per_section_and_fits_its_pages(default_run):
    out, results = default_run
    data = (out / "report.pdf").read_bytes()
    assert data.startswith(b"%PDF") and b"/Outlines" in data
    titles = re.findall(rb"/Title \((.*?)\)\s", data)
    for section in REPORT_SECTIONS:
        assert section.encode() in titles, section
    report = results["report"]
    assert len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data)) == report["pages"] <= 8  # 7 classes, 3 entries
    assert report["appendix_page"] == report["main_pages"] + 1 <= report["pages"]


@pytest.mark.skipif(PDFTOTEXT is None, reason="pdftotext (poppler-utils) not installed")
def test_report_pdf_holds_every_table_cell(default_run):
    out, results = default_run
    text = "".join(pdf_text(out / "report.pdf", 1, results["report"]["pages"]).split())
    tables = report_tables.build_tables(results)
    for name, table in tables.items():
        for cell in [c for row in table.rows for c in row] + table.header:
            assert "".join(str(cell).split()) in text, (name, cell)
    assert "Foo_Bar&Baz" in text  # the class names in the figures are text too (laid invisibly over the images)


def test_pdf_tables_repeat_their_header_on_every_page(tmp_path):
    table = report_tables.Table("A long table.", ["Class", "Accuracy"], "lr",
                                [[f"class {i}", f"{i % 100}.00"] for i in range(300)], "a note")
    doc = pdf_layout.ReportDocument(str(tmp_path / "t.pdf"), "footer", "title")
    story = pdf_layout.heading("Long", 0) + pdf_layout.table(doc, table)
    grid = next(f for f in story if isinstance(f, pdf_layout.GridTable))
    assert grid.repeatRows == 1
    pages = doc.render(story)
    assert pages >= 4
    if PDFTOTEXT:
        for page in range(1, pages + 1):
            assert "Accuracy" in pdf_text(tmp_path / "t.pdf", page, page)
        assert "class 299" in pdf_text(tmp_path / "t.pdf", pages, pages)
