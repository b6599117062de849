"""actionrec.evaluation and actionrec.reporting.console: prediction files, video scores, top-k, confusion matrix,
fusion and its weights, summaries."""
import json
import math
import os

import h5py
import numpy as np
import pytest

from actionrec import atomic
from actionrec.evaluation import accuracy, bootstrap, calibration, jsonfile
from actionrec.evaluation import fusion as score_fusion
from actionrec.evaluation import predictions as prediction_files
from actionrec.evaluation import scores as video_scores
from actionrec.evaluation import weights as weight_choice
from actionrec.reporting import console


# ---------------------------------------------------------------------------
# Prediction files
# ---------------------------------------------------------------------------
def test_prediction_path_keeps_class_folder_and_stem():
    expected = os.path.join("preds", "ApplyEyeMakeup", "v_ApplyEyeMakeup_g01_c01.hdf5")
    assert (
        prediction_files.prediction_path("preds", "/d/UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi") == expected
    )
    assert (
        prediction_files.prediction_path("preds", "/d/UCF-101-hdf5/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.hdf5")
        == expected
    )
    # The class comes from the folder, not the file name (HandstandPushups quirk).
    assert prediction_files.prediction_path("p", "x/HandstandPushups/v_HandStandPushups_g01_c01.hdf5") == \
        os.path.join("p", "HandstandPushups", "v_HandStandPushups_g01_c01.hdf5")


def test_write_read_round_trip_creates_dirs_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "preds" / "ClassA" / "v_a.hdf5"
    logits = np.arange(12, dtype=np.float64).reshape(3, 4)
    prediction_files.write_predictions(str(path), logits)
    prediction_files.write_predictions(str(path), logits + 1)  # overwriting works too
    assert os.listdir(path.parent) == ["v_a.hdf5"]
    read = prediction_files.read_predictions(str(path))
    assert read.dtype == np.float32 and read.shape == (3, 4)
    np.testing.assert_array_equal(read, (logits + 1).astype(np.float32))
    with h5py.File(path, "r") as f:
        assert f["predictions"].dtype == np.float32


def test_write_predictions_one_row_from_1d(tmp_path):
    path = str(tmp_path / "C" / "v.hdf5")
    prediction_files.write_predictions(path, [1.0, 2.0, 3.0])
    assert prediction_files.read_predictions(path).shape == (1, 3)


def test_failed_write_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    path = tmp_path / "C" / "v.hdf5"
    prediction_files.write_predictions(str(path), np.zeros((2, 3)))

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", broken_replace)
    with pytest.raises(OSError):
        prediction_files.write_predictions(str(path), np.ones((2, 3)))
    assert os.listdir(path.parent) == ["v.hdf5"]
    np.testing.assert_array_equal(prediction_files.read_predictions(str(path)), np.zeros((2, 3)))


@pytest.mark.parametrize("bad", [np.zeros((0, 3)), np.zeros((2, 3, 4)), np.zeros((2, 0))])
def test_write_predictions_rejects_bad_shapes(tmp_path, bad):
    with pytest.raises(ValueError):
        prediction_files.write_predictions(str(tmp_path / "C" / "v.hdf5"), bad)


def test_predictions_complete(tmp_path):
    good = tmp_path / "good.hdf5"
    prediction_files.write_predictions(str(good), np.zeros((5, 4)))
    assert prediction_files.predictions_complete(str(good), 4)
    assert not prediction_files.predictions_complete(str(good), 3)  # wrong class count
    assert not prediction_files.predictions_complete(str(tmp_path / "missing.hdf5"), 4)

    corrupt = tmp_path / "corrupt.hdf5"
    corrupt.write_bytes(b"not an hdf5 file" * 10)
    assert not prediction_files.predictions_complete(str(corrupt), 4)

    truncated = tmp_path / "truncated.hdf5"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    assert not prediction_files.predictions_complete(str(truncated), 4)

    empty = tmp_path / "empty.hdf5"
    empty.write_bytes(b"")
    assert not prediction_files.predictions_complete(str(empty), 4)

    cases = {"other_name": ("logits", np.zeros((5, 4))), "one_d": ("predictions", np.zeros(4)),
             "no_rows": ("predictions", np.zeros((0, 4))), "three_d": ("predictions", np.zeros((2, 4, 1)))}
    for name, (key, value) in cases.items():
        path = tmp_path / f"{name}.hdf5"
        with h5py.File(path, "w") as f:
            f.create_dataset(key, data=value)
        assert not prediction_files.predictions_complete(str(path), 4), name

    group = tmp_path / "group.hdf5"
    with h5py.File(group, "w") as f:
        f.create_group("predictions")
    assert not prediction_files.predictions_complete(str(group), 4)


def test_missing_predictions_lists_incomplete_videos(tmp_path):
    videos = [f"/d/UCF-101-hdf5/C/v_{i}.hdf5" for i in range(3)]
    prediction_files.write_predictions(prediction_files.prediction_path(tmp_path, videos[1]), np.zeros((1, 2)))
    assert prediction_files.missing_predictions(tmp_path, videos, 2) == [videos[0], videos[2]]


# ---------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------
def test_video_score_equals_direct_computation():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(7, 5)).astype(np.float32)
    x = logits.astype(np.float64)
    direct = np.log(np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)).mean(axis=0)
    score = video_scores.video_score(logits)
    assert score.dtype == np.float64 and score.shape == (5,)
    np.testing.assert_allclose(score, direct, rtol=1e-12, atol=1e-12)


def test_video_score_is_stable_and_shift_invariant():
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 0.0]])
    score = video_scores.video_score(logits)
    assert np.all(np.isfinite(score))
    np.testing.assert_allclose(score, video_scores.video_score(logits - 1000.0))
    np.testing.assert_allclose(score, [-500.0, -500.0, -1500.0])
    np.testing.assert_allclose(video_scores.video_score([0.0, 0.0]), [-math.log(2)] * 2)  # 1-D: one row


def test_topk_accuracy_known_answers():
    scores = np.array([
        [0.9, 0.05, 0.03, 0.02],  # label 0: top-1
        [0.1, 0.2, 0.3, 0.4],     # label 1: rank 3
        [0.4, 0.3, 0.2, 0.1],     # label 3: rank 4
    ])
    labels = [0, 1, 3]
    assert accuracy.topk_accuracy(scores, labels, ks=(1, 2, 3, 4)) == {
        "top1": pytest.approx(1 / 3), "top2": pytest.approx(1 / 3), "top3": pytest.approx(2 / 3), "top4": 1.0}
    # k is clipped to the number of classes.
    assert accuracy.topk_accuracy(scores, labels) == {"top1": pytest.approx(1 / 3), "top5": 1.0, "top10": 1.0}


def test_topk_ties_rank_lower_class_index_first():
    scores = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    labels = [0, 1, 2, 1]
    result = accuracy.topk_accuracy(scores, labels, ks=(1, 2))
    # Row 0: class 0 wins the tie; row 1: class 1 ranks second; row 2: class 2 ranks third
    # of an all-equal row; row 3: class 1 ranks second.
    assert result == {"top1": 0.25, "top2": 0.75}
    np.testing.assert_array_equal(video_scores.top1_predictions(scores), [0, 0, 0, 0])
    np.testing.assert_array_equal(video_scores.rank_classes(scores)[2], [0, 1, 2])


def test_confusion_matrix():
    cm = accuracy.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 0], 3)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 1, 0], [2, 0, 1]])
    with pytest.raises(ValueError):
        accuracy.confusion_matrix([0, 3], [0, 0], 3)


# ---------------------------------------------------------------------------
# Summaries
# ---------------------------------------------------------------------------
def one_hot_scores(predictions, num_classes):
    scores = np.zeros((len(predictions), num_classes))
    scores[np.arange(len(predictions)), predictions] = 1.0
    return scores


def test_summarize_fields_and_known_values():
    class_list = ["Delta", "Alpha", "Charlie", "Bravo", "Echo"]  # classInd order, not sorted
    labels = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3]
    predictions = [0, 0, 1, 2, 1, 1, 2, 0, 3, 3]
    summary, cm = accuracy.summarize(one_hot_scores(predictions, 5), labels, class_list)
    np.testing.assert_array_equal(cm, accuracy.confusion_matrix(labels, predictions, 5))
    assert summary["videos"] == 10
    assert summary["top1"] == pytest.approx(0.7)
    assert list(summary["per_class_accuracy"]) == class_list
    assert summary["per_class_accuracy"] == {"Delta": 0.5, "Alpha": 1.0, "Charlie": 0.5, "Bravo": 1.0, "Echo": None}
    assert summary["mean_class_accuracy"] == pytest.approx(0.75)  # Echo has no test videos: left out
    # Ties broken by name; Echo (no videos) is in neither list.
    assert summary["best_classes"] == [["Alpha", 1.0], ["Bravo", 1.0], ["Charlie", 0.5], ["Delta", 0.5]]
    assert summary["worst_classes"] == [["Charlie", 0.5], ["Delta", 0.5], ["Alpha", 1.0], ["Bravo", 1.0]]
    # Charlie->Delta is 1/2 of Charlie; Delta->Alpha and Delta->Charlie are 1/4 each (ordered by
    # predicted name); zero entries are not listed.
    assert summary["most_confused"] == [["Charlie", "Delta", 0.5], ["Delta", "Alpha", 0.25],
                                        ["Delta", "Charlie", 0.25]]
    json.dumps(summary, allow_nan=False)  # JSON-ready as returned


def test_most_confused_tie_order_and_limit():
    # Five classes, each confused once with one other class out of two videos (fraction 0.5).
    names = ["E", "D", "C", "B", "A"]
    labels = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    predictions = [0, 4, 1, 2, 2, 0, 3, 4, 4, 3]
    summary, _ = accuracy.summarize(one_hot_scores(predictions, 5), labels, names, num_listed=3)
    # Equal fractions: by true class name, then predicted name.
    assert summary["most_confused"] == [["A", "B", 0.5], ["B", "A", 0.5], ["C", "E", 0.5]]
    assert len(summary["best_classes"]) == len(summary["worst_classes"]) == 3


def test_most_confused_fraction_is_of_the_true_class():
    cm = np.array([[8, 2, 0], [1, 1, 0], [0, 0, 5]])
    assert accuracy.most_confused_pairs(cm, ["a", "b", "c"]) == [["b", "a", 0.5], ["a", "b", 0.2]]


def test_summarize_checks_class_count():
    with pytest.raises(ValueError):
        accuracy.summarize(np.zeros((2, 3)), [0, 1], ["a", "b"])


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------
def test_write_json_atomic_and_nan_to_null(tmp_path):
    path = tmp_path / "out" / "results.json"
    jsonfile.write_json(str(path), {"a": float("nan"), "b": np.float32(0.5), "c": np.arange(3),
                                   "d": [np.int64(4), float("inf")], "e": None})
    assert os.listdir(path.parent) == ["results.json"]
    assert json.loads(path.read_text()) == {"a": None, "b": 0.5, "c": [0, 1, 2], "d": [4, None], "e": None}


def test_format_class_table_worst_first():
    table = console.format_class_table({"Bravo": 0.5, "Alpha": 0.5, "Charlie": 0.25, "Delta": None, "Echo": 1.0})
    names = [line.split()[1] for line in table.splitlines()[3:]]
    assert names == ["Charlie", "Alpha", "Bravo", "Echo", "Delta"]
    assert "25.00%" in table and "n/a" in table


def test_format_topk_table():
    text = console.format_topk_table({"combined": {"top1": 0.85, "top5": 0.97, "top10": 0.99}})
    assert "combined" in text and "85.00%" in text and "99.00%" in text


# ---------------------------------------------------------------------------
# Attributes and scanning a folder
# ---------------------------------------------------------------------------
def test_prediction_attrs_round_trip(tmp_path):
    path = str(tmp_path / "C" / "v.hdf5")
    prediction_files.write_predictions(
        path, np.zeros((2, 3)), attrs={"frames": 164, "rows": "frames", "crops": 1, "x": None}
    )
    logits, attrs = prediction_files.read_prediction_file(path)
    assert logits.shape == (2, 3) and attrs == {"frames": 164, "rows": "frames", "crops": 1}
    assert isinstance(attrs["frames"], int) and isinstance(attrs["rows"], str)
    prediction_files.write_predictions(path, np.zeros((2, 3)))  # older files: no attributes
    assert prediction_files.read_prediction_file(path)[1] == {}


def test_scan_predictions_sorts_problems(tmp_path):
    videos = [f"/d/UCF-101-hdf5/C/v_{i}.hdf5" for i in range(6)]
    paths = [prediction_files.prediction_path(tmp_path, v) for v in videos]
    prediction_files.write_predictions(paths[0], [[0.0, 1.0, 2.0]], attrs={"frames": 10})
    prediction_files.write_predictions(paths[1], [[0.0, 1.0]])                      # wrong class count
    prediction_files.write_predictions(paths[2], [[0.0, np.nan, 1.0]])               # NaN
    prediction_files.write_predictions(paths[3], [[0.0, np.inf, 1.0], [0, 0, 0]])    # inf
    with h5py.File(paths[4], "w") as f:
        f.create_dataset("predictions", data=np.zeros(3))                   # 1-D
    # paths[5] missing
    scan = prediction_files.scan_predictions(tmp_path, videos, 3)
    assert not scan.ok and scan.scores is None
    assert scan.missing == [videos[5]]
    assert scan.wrong_columns == {videos[1]: 2}
    assert scan.non_finite == [videos[2], videos[3]]
    assert scan.wrong_shape == {videos[4]: (3,)}
    assert scan.attrs[0] == {"frames": 10} and scan.attr_values("frames") is None  # not every file has it
    good = prediction_files.scan_predictions(tmp_path, videos[:1], 3)
    assert good.ok and good.rows.tolist() == [1] and good.attr_values("frames") == [10]
    np.testing.assert_allclose(good.scores[0], video_scores.video_score([[0.0, 1.0, 2.0]]))


# ---------------------------------------------------------------------------
# Precision, recall, F1
# ---------------------------------------------------------------------------
def test_macro_precision_recall_f1_by_hand_with_a_class_never_predicted():
    # Classes a, b, c, d: d has test videos but is never predicted; e has neither videos nor predictions.
    labels = [0, 0, 0, 1, 1, 2, 3, 3]
    predictions = [0, 0, 1, 1, 0, 2, 2, 1]
    cm = accuracy.confusion_matrix(labels, predictions, 5)
    report = accuracy.classification_report(cm)
    # By hand: a: tp 2, predicted 3, support 3; b: tp 1, predicted 3, support 2; c: tp 1, predicted 2,
    # support 1; d: tp 0, predicted 0, support 2.
    precision = [2 / 3, 1 / 3, 1 / 2, 0.0, 0.0]
    recall = [2 / 3, 1 / 2, 1.0, 0.0]
    f1 = [2 / 3, 2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2), 2 * 0.5 / 1.5, 0.0]
    np.testing.assert_allclose(report["precision"], precision)
    np.testing.assert_allclose(report["recall"][:4], recall)
    assert math.isnan(report["recall"][4]) and math.isnan(report["f1"][4])
    np.testing.assert_allclose(report["f1"][:4], f1)
    assert report["support"].tolist() == [3, 2, 1, 2, 0] and report["predicted"].tolist() == [3, 3, 2, 0, 0]
    macro = accuracy.macro_averages(report)  # over the four classes with test videos
    assert macro["macro_precision"] == pytest.approx(np.mean(precision[:4]))
    assert macro["macro_recall"] == pytest.approx(np.mean(recall))
    assert macro["macro_f1"] == pytest.approx(np.mean(f1))

    names = ["a", "b", "c", "d", "e"]
    summary, _ = accuracy.summarize(one_hot_scores(predictions, 5), labels, names)
    assert summary["mean_class_accuracy"] == summary["macro_recall"] == pytest.approx(np.mean(recall))
    assert summary["macro_f1"] == pytest.approx(np.mean(f1))
    assert summary["never_predicted"] == ["d"]  # e has no videos: not counted as never predicted
    assert summary["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2, "predicted": 0}
    assert summary["per_class"]["e"]["recall"] is None
    json.dumps(summary, allow_nan=False)


# ---------------------------------------------------------------------------
# Fusion and the choice of weights
# ---------------------------------------------------------------------------
def test_fuse_scores_three_models_by_hand():
    rng = np.random.default_rng(1)
    s = [np.log(rng.dirichlet(np.ones(4), size=5)) for _ in range(3)]
    w = [0.2, 0.5, 0.3]
    p = [np.exp(x) / np.exp(x).sum(axis=1, keepdims=True) for x in s]
    np.testing.assert_allclose(score_fusion.fuse_scores(s, "logmean", w), 0.2 * s[0] + 0.5 * s[1] + 0.3 * s[2])
    np.testing.assert_allclose(score_fusion.fuse_scores(s, "logmean"), (s[0] + s[1] + s[2]) / 3)
    np.testing.assert_allclose(score_fusion.fuse_scores(s, "prob", [2, 5, 3]), 0.2 * p[0] + 0.5 * p[1] + 0.3 * p[2])
    np.testing.assert_allclose(score_fusion.fuse_scores(s, "max", [2, 5, 3]),
                               np.maximum(np.maximum(0.2 * p[0], 0.5 * p[1]), 0.3 * p[2]))
    with pytest.raises(ValueError):
        score_fusion.fuse_scores(s, "median")
    with pytest.raises(ValueError):
        score_fusion.fuse_scores(s, "logmean", [0.5, 0.5])


def test_simplex_grid():
    grid = weight_choice.simplex_grid(2, 0.05)
    assert grid.shape == (21, 2) and grid[0].tolist() == [1.0, 0.0] and grid[-1].tolist() == [0.0, 1.0]
    for m, step, size in ((3, 0.05, 231), (4, 0.1, 286), (5, 0.1, 1001)):
        grid = weight_choice.simplex_grid(m, step)
        assert grid.shape == (size, m)
        np.testing.assert_allclose(grid.sum(axis=1), 1.0)
        assert len({tuple(r) for r in np.round(grid, 9)}) == size
    assert [weight_choice.default_weight_step(m) for m in (2, 3, 4, 6, 7)] == [0.05, 0.05, 0.1, 0.1, 0.2]
    with pytest.raises(ValueError):
        weight_choice.simplex_grid(2, 0.3)


def two_class_scores(differences):
    """Scores [N, 2] whose class-0-minus-class-1 difference is each of ``differences``."""
    d = np.asarray(differences, dtype=np.float64)
    return np.stack([d / 2, -d / 2], axis=1)


def test_choose_weights_finds_the_only_best_grid_point():
    # Logmean with weights (w, 1 - w) ranks class 0 first iff w * dA + (1 - w) * dB > 0.
    # Video 0 (label 0): dA = 1, dB = -3.5 -> right iff w > 0.778; video 1 (label 1): dA = 1, dB = -5 ->
    # right iff w < 0.833; video 2 (label 0) is right for every w. Only w = 0.8 gets all three.
    a, b = two_class_scores([1, 1, 1]), two_class_scores([-3.5, -5, 2])
    choice = weight_choice.choose_weights([a, b], [0, 1, 0], "logmean")
    assert choice["weights"] == [0.8, 0.2] and choice["top1"] == 1.0 and choice["tied"] == 1
    assert choice["equal_weights_top1"] == pytest.approx(2 / 3)
    assert choice["step"] == 0.05 and choice["grid_points"] == 21


def test_choose_weights_breaks_ties_towards_equal_weights():
    a, b = two_class_scores([1, -1]), two_class_scores([1, -1])  # every weight gets both right
    for rule in ("logmean", "prob", "max"):
        choice = weight_choice.choose_weights([a, b], [0, 1], rule)
        assert choice["weights"] == [0.5, 0.5] and choice["tied"] == 21
    # Three models, a coarse grid: equal thirds are not on the 0.5 grid; the nearest points tie at equal
    # distance and the first in grid order wins.
    s = [two_class_scores([1])] * 3
    choice = weight_choice.choose_weights(s, [0], "logmean", step=0.5)
    assert choice["weights"] == [0.5, 0.5, 0.0] and choice["grid_points"] == 6


def test_choose_weights_max_rule():
    # max rule, weights (wa, wb): video 0 is right iff 0.7 * wb > 0.9 * wa, i.e. wb > 0.5625; video 1 is
    # right for every weight. The accurate weights closest to equal: wb = 0.6.
    a = np.log([[0.1, 0.9], [0.9, 0.1]])
    b = np.log([[0.7, 0.3], [0.6, 0.4]])
    choice = weight_choice.choose_weights([a, b], [0, 0], "max")
    assert choice["weights"] == [0.4, 0.6] and choice["top1"] == 1.0
    assert choice["tied"] == 9  # wb = 0.6, 0.65, ..., 1.0
    assert choice["equal_weights_top1"] == 0.5


# ---------------------------------------------------------------------------
# Calibration, the likelihood choice of fusion weights and its bootstrap
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("true_temperature", [0.7, 1.0, 2.5, 6.0])
def test_fit_temperature_recovers_a_known_temperature(true_temperature):
    # Labels drawn from softmax(z / T): the NLL of softmax(log_softmax(z) / T') is lowest near T' = T.
    rng = np.random.default_rng(1)
    logits = rng.normal(0.0, 3.0, (4000, 10))
    probs = video_scores.softmax(logits / true_temperature, axis=1)
    labels = np.array([rng.choice(10, p=p) for p in probs])
    fit = calibration.fit_temperature(video_scores.log_softmax(logits, axis=1), labels)
    assert fit["temperature"] == pytest.approx(true_temperature, rel=0.08)
    assert fit["at_bound"] is None and fit["nll_after"] <= fit["nll_before"] + 1e-12


def test_fit_temperature_is_bounded():
    # Right on every video: the NLL falls without limit as T -> 0; the fit stops at the lower bound.
    scores = video_scores.log_softmax(np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), axis=1)
    fit = calibration.fit_temperature(scores, [0, 1])
    assert fit["temperature"] == pytest.approx(calibration.TEMPERATURE_RANGE[0]) and fit["at_bound"] == "lower"
    # Sure and wrong on every video: flattened as far as the upper bound allows.
    fit = calibration.fit_temperature(scores, [1, 0])
    assert fit["temperature"] == pytest.approx(calibration.TEMPERATURE_RANGE[1]) and fit["at_bound"] == "upper"


def test_nll_choice_prefers_equal_weights_when_validation_cannot_tell():
    # Two identical models: every weighting has the same NLL and top-1, so the prior picks equal weights.
    a = video_scores.log_softmax(np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]]), axis=1)
    choice = weight_choice.choose_weights([a, a], [0, 1, 1], "logmean", criterion="nll")
    assert choice["weights"] == [0.5, 0.5] and choice["tied"] == 21


def sure_and_wrong_study(seed):
    """bench_fusion's generated study: a single-frame model sure everywhere and at chance on the motion
    classes, a 3D model right more often but less sure; 12 validation and 48 test videos."""
    from bench import bench_fusion
    rng = np.random.default_rng(seed)
    return bench_fusion.synthetic_study(rng, 2), bench_fusion.synthetic_study(rng, 8)


def test_calibrated_likelihood_choice_on_a_sure_and_wrong_model():
    (val, val_labels), (test, test_labels) = sure_and_wrong_study(12)
    names = ["single_frame", "3d"]
    val_scores, test_scores = [val[n] for n in names], [test[n] for n in names]
    temperatures = [calibration.fit_temperature(s, val_labels)["temperature"] for s in val_scores]
    assert temperatures[0] > 2.0 and temperatures[1] < 1.0  # the sure one softened, the unsure one sharpened
    new = weight_choice.choose_weights(val_scores, val_labels, criterion="nll", temperatures=temperatures)
    old = weight_choice.choose_weights(val_scores, val_labels, criterion="top1")
    assert new["weights"][1] > new["weights"][0]

    def test_top1(weights, temps):
        fused, _ = score_fusion.fused_log_probs(test_scores, "logmean", weights, temps)
        return float(np.mean(np.argmax(fused, axis=1) == test_labels))

    members = [float(np.mean(np.argmax(s, axis=1) == test_labels)) for s in test_scores]
    assert members == pytest.approx([30 / 48, 46 / 48])
    assert test_top1(new["weights"], temperatures) >= max(members)
    assert test_top1(old["weights"], None) < max(members)  # the old rule falls below the 3D model


def test_bootstrap_is_reproducible_for_a_seed_and_says_whether_validation_supports_the_fusion():
    (val, val_labels), _ = sure_and_wrong_study(12)
    scores = [val["single_frame"], val["3d"]]
    temperatures = [calibration.fit_temperature(s, val_labels)["temperature"] for s in scores]
    choice = weight_choice.choose_weights(scores, val_labels, criterion="nll", temperatures=temperatures)

    def run(seed):
        return bootstrap.bootstrap_fusion(scores, val_labels, "logmean", choice["weights"], temperatures,
                                        criterion="nll", resamples=300, seed=seed)

    first = run(3)
    assert first == run(3) and first != run(4)
    assert first["best_member"] == 1 and first["resamples"] == 300 and 0.0 <= first["chosen_again"] <= 1.0
    low, high = first["gain_nll"]["interval"]
    assert low <= high and not first["supported"]  # 12 videos cannot show the fusion beats the 3D model
    # Two models each right on half the classes, 300 validation videos: the fusion is clearly better.
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 75)
    a, b = rng.normal(0, 0.5, (300, 4)), rng.normal(0, 0.5, (300, 4))
    a[np.arange(300), labels] += np.where(labels < 2, 3.0, 0.5)
    b[np.arange(300), labels] += np.where(labels < 2, 0.5, 3.0)
    scores = [video_scores.log_softmax(a, axis=1), video_scores.log_softmax(b, axis=1)]
    evidence = bootstrap.bootstrap_fusion(scores, labels, "logmean", [0.5, 0.5], resamples=300, seed=0)
    assert evidence["supported"] and evidence["gain_nll"]["interval"][0] > 0
    assert evidence["beats_best_member_top1"] > 0.95
