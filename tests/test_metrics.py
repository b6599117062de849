"""metrics.py: prediction files, video scores, top-k, confusion matrix and summaries."""
import json
import math
import os

import h5py
import numpy as np
import pytest

import metrics


# ---------------------------------------------------------------------------
# Prediction files
# ---------------------------------------------------------------------------
def test_prediction_path_keeps_class_folder_and_stem():
    expected = os.path.join("preds", "ApplyEyeMakeup", "v_ApplyEyeMakeup_g01_c01.hdf5")
    assert metrics.prediction_path("preds", "/d/UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi") == expected
    assert metrics.prediction_path("preds", "/d/UCF-101-hdf5/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.hdf5") == expected
    # The class comes from the folder, not the file name (HandstandPushups quirk).
    assert metrics.prediction_path("p", "x/HandstandPushups/v_HandStandPushups_g01_c01.hdf5") == \
        os.path.join("p", "HandstandPushups", "v_HandStandPushups_g01_c01.hdf5")


def test_write_read_round_trip_creates_dirs_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "preds" / "ClassA" / "v_a.hdf5"
    logits = np.arange(12, dtype=np.float64).reshape(3, 4)
    metrics.write_predictions(str(path), logits)
    metrics.write_predictions(str(path), logits + 1)  # overwriting works too
    assert os.listdir(path.parent) == ["v_a.hdf5"]
    read = metrics.read_predictions(str(path))
    assert read.dtype == np.float32 and read.shape == (3, 4)
    np.testing.assert_array_equal(read, (logits + 1).astype(np.float32))
    with h5py.File(path, "r") as f:
        assert f["predictions"].dtype == np.float32


def test_write_predictions_one_row_from_1d(tmp_path):
    path = str(tmp_path / "C" / "v.hdf5")
    metrics.write_predictions(path, [1.0, 2.0, 3.0])
    assert metrics.read_predictions(path).shape == (1, 3)


def test_failed_write_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    path = tmp_path / "C" / "v.hdf5"
    metrics.write_predictions(str(path), np.zeros((2, 3)))

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(metrics.os, "replace", broken_replace)
    with pytest.raises(OSError):
        metrics.write_predictions(str(path), np.ones((2, 3)))
    assert os.listdir(path.parent) == ["v.hdf5"]
    np.testing.assert_array_equal(metrics.read_predictions(str(path)), np.zeros((2, 3)))


@pytest.mark.parametrize("bad", [np.zeros((0, 3)), np.zeros((2, 3, 4)), np.zeros((2, 0))])
def test_write_predictions_rejects_bad_shapes(tmp_path, bad):
    with pytest.raises(ValueError):
        metrics.write_predictions(str(tmp_path / "C" / "v.hdf5"), bad)


def test_predictions_complete(tmp_path):
    good = tmp_path / "good.hdf5"
    metrics.write_predictions(str(good), np.zeros((5, 4)))
    assert metrics.predictions_complete(str(good), 4)
    assert not metrics.predictions_complete(str(good), 3)  # wrong class count
    assert not metrics.predictions_complete(str(tmp_path / "missing.hdf5"), 4)

    corrupt = tmp_path / "corrupt.hdf5"
    corrupt.write_bytes(b"not an hdf5 file" * 10)
    assert not metrics.predictions_complete(str(corrupt), 4)

    truncated = tmp_path / "truncated.hdf5"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    assert not metrics.predictions_complete(str(truncated), 4)

    empty = tmp_path / "empty.hdf5"
    empty.write_bytes(b"")
    assert not metrics.predictions_complete(str(empty), 4)

    cases = {"other_name": ("logits", np.zeros((5, 4))), "one_d": ("predictions", np.zeros(4)),
             "no_rows": ("predictions", np.zeros((0, 4))), "three_d": ("predictions", np.zeros((2, 4, 1)))}
    for name, (key, value) in cases.items():
        path = tmp_path / f"{name}.hdf5"
        with h5py.File(path, "w") as f:
            f.create_dataset(key, data=value)
        assert not metrics.predictions_complete(str(path), 4), name

    group = tmp_path / "group.hdf5"
    with h5py.File(group, "w") as f:
        f.create_group("predictions")
    assert not metrics.predictions_complete(str(group), 4)


def test_missing_predictions_lists_incomplete_videos(tmp_path):
    videos = [f"/d/UCF-101-hdf5/C/v_{i}.hdf5" for i in range(3)]
    metrics.write_predictions(metrics.prediction_path(tmp_path, videos[1]), np.zeros((1, 2)))
    assert metrics.missing_predictions(tmp_path, videos, 2) == [videos[0], videos[2]]


# ---------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------
def test_video_score_equals_direct_computation():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(7, 5)).astype(np.float32)
    x = logits.astype(np.float64)
    direct = np.log(np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)).mean(axis=0)
    score = metrics.video_score(logits)
    assert score.dtype == np.float64 and score.shape == (5,)
    np.testing.assert_allclose(score, direct, rtol=1e-12, atol=1e-12)


def test_video_score_is_stable_and_shift_invariant():
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 0.0]])
    score = metrics.video_score(logits)
    assert np.all(np.isfinite(score))
    np.testing.assert_allclose(score, metrics.video_score(logits - 1000.0))
    np.testing.assert_allclose(score, [-500.0, -500.0, -1500.0])
    np.testing.assert_allclose(metrics.video_score([0.0, 0.0]), [-math.log(2)] * 2)  # 1-D: one row


def test_topk_accuracy_known_answers():
    scores = np.array([
        [0.9, 0.05, 0.03, 0.02],  # label 0: top-1
        [0.1, 0.2, 0.3, 0.4],     # label 1: rank 3
        [0.4, 0.3, 0.2, 0.1],     # label 3: rank 4
    ])
    labels = [0, 1, 3]
    assert metrics.topk_accuracy(scores, labels, ks=(1, 2, 3, 4)) == {
        "top1": pytest.approx(1 / 3), "top2": pytest.approx(1 / 3), "top3": pytest.approx(2 / 3), "top4": 1.0}
    # k is clipped to the number of classes.
    assert metrics.topk_accuracy(scores, labels) == {"top1": pytest.approx(1 / 3), "top5": 1.0, "top10": 1.0}


def test_topk_ties_rank_lower_class_index_first():
    scores = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    labels = [0, 1, 2, 1]
    result = metrics.topk_accuracy(scores, labels, ks=(1, 2))
    # Row 0: class 0 wins the tie; row 1: class 1 ranks second; row 2: class 2 ranks third
    # of an all-equal row; row 3: class 1 ranks second.
    assert result == {"top1": 0.25, "top2": 0.75}
    np.testing.assert_array_equal(metrics.top1_predictions(scores), [0, 0, 0, 0])
    np.testing.assert_array_equal(metrics.rank_classes(scores)[2], [0, 1, 2])


def test_confusion_matrix():
    cm = metrics.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 0], 3)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 1, 0], [2, 0, 1]])
    with pytest.raises(ValueError):
        metrics.confusion_matrix([0, 3], [0, 0], 3)


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
    summary, cm = metrics.summarize(one_hot_scores(predictions, 5), labels, class_list)
    np.testing.assert_array_equal(cm, metrics.confusion_matrix(labels, predictions, 5))
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
    summary, _ = metrics.summarize(one_hot_scores(predictions, 5), labels, names, num_listed=3)
    # Equal fractions: by true class name, then predicted name.
    assert summary["most_confused"] == [["A", "B", 0.5], ["B", "A", 0.5], ["C", "E", 0.5]]
    assert len(summary["best_classes"]) == len(summary["worst_classes"]) == 3


def test_most_confused_fraction_is_of_the_true_class():
    cm = np.array([[8, 2, 0], [1, 1, 0], [0, 0, 5]])
    assert metrics.most_confused_pairs(cm, ["a", "b", "c"]) == [["b", "a", 0.5], ["a", "b", 0.2]]


def test_summarize_checks_class_count():
    with pytest.raises(ValueError):
        metrics.summarize(np.zeros((2, 3)), [0, 1], ["a", "b"])


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------
def test_write_json_atomic_and_nan_to_null(tmp_path):
    path = tmp_path / "out" / "results.json"
    metrics.write_json(str(path), {"a": float("nan"), "b": np.float32(0.5), "c": np.arange(3),
                                   "d": [np.int64(4), float("inf")], "e": None})
    assert os.listdir(path.parent) == ["results.json"]
    assert json.loads(path.read_text()) == {"a": None, "b": 0.5, "c": [0, 1, 2], "d": [4, None], "e": None}


def test_format_class_table_worst_first():
    table = metrics.format_class_table({"Bravo": 0.5, "Alpha": 0.5, "Charlie": 0.25, "Delta": None, "Echo": 1.0})
    names = [line.split()[1] for line in table.splitlines()[3:]]
    assert names == ["Charlie", "Alpha", "Bravo", "Echo", "Delta"]
    assert "25.00%" in table and "n/a" in table


def test_format_topk_table():
    text = metrics.format_topk_table({"combined": {"top1": 0.85, "top5": 0.97, "top10": 0.99}})
    assert "combined" in text and "85.00%" in text and "99.00%" in text
