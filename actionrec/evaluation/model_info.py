"""What the combiner knows about each model and fusion: its title, kind (frame, clip, features) and
whether it sees time, how it was tested, its timing and training log, from model.json or its name."""
import os
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from actionrec.evaluation import predictions

# Display title, kind and temporal flag of models without model.json, by name (or name prefix).
KNOWN_MODELS = {
    "single_frame": ("Single frame (ResNet-50)", "frame", False),
    "tsn": ("TSN (ResNet-50)", "frame", False),
    "3d": ("3D ResNet-50", "clip", True),
    "c3d": ("C3D", "clip", True),
    "rnn": ("RNN over frame features", "features", True),
    "flow": ("Flow stream (ResNet-50)", "frame", True),
    "tsn_flow": ("TSN flow (ResNet-50)", "frame", True),
    "rgbdiff": ("RGB difference (ResNet-50)", "frame", True),
    "tsn_rgbdiff": ("TSN RGB difference (ResNet-50)", "frame", True),
    "gru": ("GRU over frame features", "features", True),
    "lstm": ("LSTM over frame features", "features", True),
}
KIND_TEMPORAL = {"frame": False, "clip": True, "features": True}
MOTION_MODALITIES = ("flow", "rgbdiff")  # the motion stream's inputs (test_single_frame.py's model.json "test")
ALL = "all"


def known_model(name: str) -> Optional[Tuple[str, str, bool]]:
    key = name.lower().replace("-", "_")
    for known in sorted(KNOWN_MODELS, key=len, reverse=True):
        if key == known or key.startswith(known + "_"):
            return KNOWN_MODELS[known]
    return None


def model_identity(name: str, meta: Optional[Dict[str, Any]]) -> Tuple[str, str, Optional[bool]]:
    """(title, kind, temporal) from model.json, else from the name (temporal None when unknown)."""
    meta = meta or {}
    title, kind, temporal = known_model(name) or (name, "unknown", None)
    title = meta.get("title") if isinstance(meta.get("title"), str) and meta.get("title") else title
    if isinstance(meta.get("kind"), str):
        kind = meta["kind"]
        temporal = KIND_TEMPORAL.get(kind, temporal)
    if isinstance(meta.get("temporal"), bool):
        temporal = meta["temporal"]
    return title, kind, temporal


def modality_of(name: str, meta: Optional[Dict[str, Any]]) -> Optional[str]:
    """A frame model's input: model.json's test modality, else from the name (flow, tsn_flow, rgbdiff, ...),
    else "rgb" for a frame model; None for other kinds."""
    test = (meta or {}).get("test")
    if isinstance(test, dict) and test.get("modality") in ("rgb",) + MOTION_MODALITIES:
        return test["modality"]
    key = name.lower().replace("-", "_")
    for modality in MOTION_MODALITIES:
        if key in (modality, f"tsn_{modality}") or key.startswith((f"{modality}_", f"tsn_{modality}_")):
            return modality
    return "rgb" if model_identity(name, meta)[1] == "frame" else None


def sees_motion(model: Dict[str, Any]) -> bool:
    """Whether a described model's input carries motion: clips (3D ResNet, C3D) or the motion stream
    (flow, RGB difference). The RNN over per-frame features is temporal but sees no motion input."""
    return model["kind"] == "clip" or model.get("modality") in MOTION_MODALITIES


def find_log(name: str, predictions_dir: str, meta: Optional[Dict[str, Any]], given: Any) -> Optional[str]:
    """The training log: --log, else model.json "log" when it exists, else ``PRED_DIR/../log.jsonl``."""
    if name in given:
        return given[name]
    recorded = (meta or {}).get("log")
    if isinstance(recorded, str) and os.path.isfile(recorded):
        return recorded
    path = os.path.join(os.path.dirname(os.path.abspath(os.path.normpath(predictions_dir))), "log.jsonl")
    return path if os.path.isfile(path) else None


def rows_stats(rows: Sequence[int]) -> Dict[str, float]:
    rows = np.asarray(rows, dtype=np.float64)
    return {"mean": float(rows.mean()), "min": int(rows.min()), "max": int(rows.max())}


def test_description(meta: Optional[Dict[str, Any]], scan: predictions.PredictionScan) -> str:
    """How a model was tested, in words: model.json's test description, else the files' attributes."""
    test = (meta or {}).get("test")
    if isinstance(test, dict) and isinstance(test.get("description"), str):
        return test["description"]
    kinds, crops = scan.attr_values("rows"), scan.attr_values("crops")
    if kinds:
        text = f"one row per {'/'.join(sorted(set(map(str, kinds)))).rstrip('s')}"
        if crops:
            text += f", {'/'.join(str(c) for c in sorted(set(crops)))} crop(s) per row"
        return text
    return "test mode not recorded (no model.json)"


def timing_of(meta: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    timing = (meta or {}).get("timing")
    return timing if isinstance(timing, dict) and timing else None


def distinguish_titles(models: Dict[str, Dict[str, Any]]) -> None:
    """Models of one title (one checkpoint tested in two 3D modes, say) get their test mode, else their
    name, after the title, so that no two rows of a table read alike."""
    keys = {name: (m["title"], (m.get("test") or {}).get("mode")) for name, m in models.items()}
    titles = [title for title, _ in keys.values()]
    for name, (title, mode) in keys.items():
        if titles.count(title) > 1:
            unique_mode = isinstance(mode, str) and list(keys.values()).count((title, mode)) == 1
            models[name]["title"] = f"{title} ({mode if unique_mode else name})"


def describe_model(name: str, directory: str, meta: Optional[Dict[str, Any]], scan: predictions.PredictionScan,
                   log_path: Optional[str], json_path: str) -> Dict[str, Any]:
    title, kind, temporal = model_identity(name, meta)
    meta = meta or {}
    crops = scan.attr_values("crops")
    return {
        "title": title, "kind": kind, "temporal": temporal, "arch": meta.get("arch"),
        "modality": modality_of(name, meta),
        "predictions_dir": directory, "model_json": json_path if meta else None,
        "test": meta.get("test") if isinstance(meta.get("test"), dict) else None,
        "test_description": test_description(meta, scan),
        "rows_per_video": rows_stats(scan.rows),
        "crops": sorted(set(crops)) if crops else None,
        "checkpoint": meta.get("checkpoint"), "timing": timing_of(meta), "log": log_path,
        "val_predictions_dir": None, "val_top1": None,
    }


def fusion_title(name: str, members: Sequence[str]) -> str:
    return f"Fusion of all {len(members)}" if name == ALL and len(members) > 2 else "Fusion " + " + ".join(members)


def entry_title(results: Dict[str, Any], name: str) -> str:
    return (results["models"].get(name) or results["fusions"][name])["title"]


def entry_type(results: Dict[str, Any], name: str) -> str:
    if name in results["fusions"]:
        return f"fusion ({results['fusions'][name]['rule']})"
    temporal = results["models"][name]["temporal"]
    return "unknown" if temporal is None else "temporal" if temporal else "2D"


def best_of(results: Dict[str, Any], names: Sequence[str], key: str = "top1") -> Optional[str]:
    """The name with the highest ``key`` (first in order on ties), or None."""
    names = [n for n in names if results["evaluation"][n].get(key) is not None]
    return max(names, key=lambda n: results["evaluation"][n][key]) if names else None
