"""The 'Published' column: every recipe's number has a source, the models the test scripts describe are
matched to their recipe (and a model no recipe describes to none), fusions by their members, and the
combiner writes the numbers into results.json and the top-k table with their sources."""
import argparse
import json

import pytest

from actionrec.evaluation import published
from actionrec.inference import clip_views, frame_views, rnn_views
from actionrec.reporting import tables as report_tables


def test_every_recipe_has_a_number_a_scope_and_a_source():
    with open(published.DATA_FILE, encoding="utf-8") as f:
        data = json.load(f)
    assert data["about"] and data["recipes"]
    for recipe, entry in data["recipes"].items():
        assert entry["title"], recipe
        numbers = {k: v for k, v in entry.items() if k != "title"}
        assert numbers and set(numbers) <= set(published.DATASET_TITLES), recipe
        for dataset, number in numbers.items():
            assert number["source"] and number["scope"], (recipe, dataset)
            if "top1" in number:
                assert 0 < number["top1"] < 100
            else:
                assert 0 < number["low"] < number["high"] < 100
            ref = published.reference(recipe, dataset)
            assert ref["recipe"] == recipe and ref["source"] == number["source"]
        if "+" in recipe:  # a fusion's key is its members' recipes, sorted
            members = recipe.split("+")
            assert members == sorted(members) and all(m in data["recipes"] for m in members), recipe


def described(kind, **trained):
    """model.json's identity as the test script of that kind writes it (describe() of the views)."""
    if kind == "frame":
        info = frame_views.describe(trained, argparse.Namespace(frames=0, crops=1))
    elif kind == "clip":
        info = clip_views.describe(trained, argparse.Namespace(mode="sliding", max_frames=None, stride=8, crops=1), 16)
    else:
        info = rnn_views.describe(trained, {"arch": "resnet50", "dims": 2048}, 250, 1)
    return {**info, "model_json": "model.json"}


@pytest.mark.parametrize("kind, trained, recipe", [
    ("frame", {"arch": "resnet50"}, "single_frame"),
    ("frame", {"arch": "resnet50", "segments": 3}, "tsn_rgb"),
    ("frame", {"arch": "resnet50", "segments": 3, "modality": "flow", "new_length": 5}, "tsn_flow"),
    ("frame", {"arch": "resnet50", "modality": "flow", "new_length": 10}, "two_stream_temporal"),
    ("frame", {"arch": "resnet50", "segments": 7, "modality": "rgbdiff", "new_length": 5}, "tsn_rgbdiff"),
    ("frame", {"arch": "resnet50", "modality": "rgbdiff", "new_length": 5}, None),
    ("clip", {"arch": "resnet", "depth": 50}, "hara_3d_resnet50"),
    ("clip", {"arch": "resnet", "depth": 18}, None),  # no published ResNet-18 from Kinetics in the recipes
    ("clip", {"arch": "c3d"}, "c3d"),
    ("features", {"cell": "gru"}, "feature_rnn"),
])
def test_the_test_scripts_models_are_matched_to_their_recipe(kind, trained, recipe):
    assert published.model_recipe(described(kind, **trained)) == recipe


def test_models_of_unknown_architecture_get_no_number():
    assert published.model_recipe({"kind": "frame", "arch": None, "model_json": "model.json"}) is None
    # the assignment's two-model layout (no model.json): known by the folder's name
    assert published.model_recipe({"kind": "frame", "arch": None, "model_json": None}, "single_frame") == "single_frame"
    assert published.model_recipe({"kind": "clip", "arch": None, "model_json": None}, "3d") == "hara_3d_resnet50"


def test_fusions_are_matched_by_their_members():
    assert published.fusion_recipe(["tsn_rgb", "tsn_flow"]) == "tsn_flow+tsn_rgb"
    assert published.fusion_recipe(["single_frame", "hara_3d_resnet50"]) == "hara_3d_resnet50+single_frame"
    assert published.fusion_recipe(["single_frame", None]) is None
    assert published.fusion_recipe(["tsn_rgb", "tsn_rgb"]) is None
    assert published.fusion_recipe(["c3d", "feature_rnn"]) is None  # nobody published that pair


def results_of(models, fusions, dataset="ucf101"):
    order = list(models) + list(fusions)
    results = {"models": models, "fusions": {n: {"members": m} for n, m in fusions.items()}, "order": order,
               "dataset_name": dataset, "videos": 10, "split": 1,
               "evaluation": {n: {"top1": 0.5, "top5": 0.9, "top10": 1.0, "mean_class_accuracy": 0.5, "macro_f1": 0.4}
                              for n in order}}
    for name, model in models.items():
        model.setdefault("title", name)
        model.setdefault("temporal", model.get("kind") != "frame")
    for name in fusions:
        results["fusions"][name].update({"title": name, "rule": "logmean", "weights": [0.5, 0.5]})
    results["published"] = published.published_numbers(results, dataset)
    return results


def test_the_top_k_table_shows_the_numbers_and_their_sources():
    results = results_of({"sf": described("frame", arch="resnet50"), "3d": described("clip", arch="resnet", depth=50),
                          "r18": described("clip", arch="resnet", depth=18)}, {"sf+3d": ["sf", "3d"]})
    assert results["published"]["sf"]["text"] == "77–79" and results["published"]["r18"] is None
    assert results["published"]["3d"]["top1"] == 89.3 and results["published"]["sf+3d"]["top1"] == 85.04
    table = report_tables.topk_table(results)
    assert table.header[-1] == "Published top-1" and "UCF-101" in table.caption
    assert [row[-1] for row in table.rows] == ["77–79", "89.3", "–", "85.04"]
    assert "Hara et al. 2018" in table.note and "3-split mean" in table.note and "the assignment" in table.note


def test_hmdb51_numbers_and_title():
    results = results_of({"tsn": described("frame", arch="resnet50", segments=3), "sf": described("frame")}, {},
                         dataset="hmdb51")
    assert results["published"]["tsn"]["top1"] == 56.08 and results["published"]["sf"] is None
    table = report_tables.topk_table(results)
    assert "HMDB-51" in table.caption and table.rows[0][-1] == "56.08"


def test_no_column_when_nothing_is_published():
    results = results_of({"r18": described("clip", arch="resnet", depth=18)}, {})
    assert "Published top-1" not in report_tables.topk_table(results).header
