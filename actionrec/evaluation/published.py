"""The numbers the papers and public runs report for each recipe (published.json), matched to the models
and fusions of a combiner run, so a report shows at once where a run falls short of its recipe.

A model is matched by what its model.json says it is (kind, architecture, modality of the input, TSN
segments); a fusion by the recipes of its members. A model no recipe describes (a ResNet-18 3D model, a
C3D at another width, an RGB-difference stream without segments) gets no number rather than a wrong one.
"""
import functools
import json
import os
from typing import Any, Dict, Optional, Sequence

DATA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "published.json")
DATASET_TITLES = {"ucf101": "UCF-101", "hmdb51": "HMDB-51"}


@functools.lru_cache(maxsize=1)
def recipes() -> Dict[str, Any]:
    with open(DATA_FILE, encoding="utf-8") as f:
        return json.load(f)["recipes"]


# Prediction folders without model.json (the assignment's two-model layout) are known by their name only.
LEGACY_NAMES = {"single_frame": "single_frame", "3d": "hara_3d_resnet50"}


def model_recipe(model: Dict[str, Any], name: str = "") -> Optional[str]:
    """The recipe a model of results['models'] follows, or None (also when its architecture is not recorded)."""
    kind, arch = model.get("kind"), str(model.get("arch") or "")
    if not arch:
        return LEGACY_NAMES.get(name) if not model.get("model_json") else None
    test = model.get("test") if isinstance(model.get("test"), dict) else {}
    modality = test.get("modality") or "rgb"
    if kind == "frame":
        tsn = arch.startswith("tsn-")
        if modality == "rgb":
            return "tsn_rgb" if tsn else "single_frame"
        if modality == "flow":
            return "tsn_flow" if tsn else "two_stream_temporal"
        return "tsn_rgbdiff" if modality == "rgbdiff" and tsn else None
    if kind == "clip":
        return {"resnet3d-50": "hara_3d_resnet50", "c3d": "c3d"}.get(arch)
    if kind == "features":
        return "feature_rnn"
    return None


def fusion_recipe(member_recipes: Sequence[Optional[str]]) -> Optional[str]:
    """The recipe of a fusion of members following these recipes (each once), or None."""
    if None in member_recipes or len(set(member_recipes)) != len(member_recipes):
        return None
    key = "+".join(sorted(member_recipes))
    return key if key in recipes() else None


def reference(recipe: Optional[str], dataset: str) -> Optional[Dict[str, Any]]:
    """{recipe, title, text ('85.7' or '77-79'), top1 (the middle of a range), scope, source, note} of a
    recipe on a dataset, or None when nothing is published for it."""
    entry = recipes().get(recipe) if recipe else None
    number = entry.get(dataset) if entry else None
    if not number:
        return None
    if "top1" in number:
        top1, text = number["top1"], f"{number['top1']:g}"
    else:
        top1, text = (number["low"] + number["high"]) / 2, f"{number['low']:g}–{number['high']:g}"
    return {"recipe": recipe, "title": entry["title"], "text": text, "top1": top1, "scope": number["scope"],
            "source": number["source"], "note": number.get("note")}


def published_numbers(results: Dict[str, Any], dataset: str) -> Dict[str, Optional[Dict[str, Any]]]:
    """{model or fusion name: reference(...) or None} for every entry of results['order']."""
    model_recipes = {name: model_recipe(model, name) for name, model in results["models"].items()}
    out = {}
    for name in results["order"]:
        if name in model_recipes:
            recipe = model_recipes[name]
        else:
            recipe = fusion_recipe([model_recipes.get(m) for m in results["fusions"][name]["members"]])
        out[name] = reference(recipe, dataset)
    return out
