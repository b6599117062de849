"""Comparisons in a combiner's results: each fusion against its members, the best 2D model against every
motion model per class, each fusion's cost, and the statistics of the split's data."""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from actionrec import formatting
from actionrec.evaluation import model_info

TOPK = (1, 5, 10)
NUM_LISTED = 10  # best/worst classes and confused pairs, as the assignment asks


def compare_fusion(results: Dict[str, Any], name: str) -> None:
    """Gain of a fusion over its members: the best member by top-1, the gain at each k over the best
    member at that k, and whether it stays below its best member on top-1."""
    fusion, ev = results["fusions"][name], results["evaluation"]
    members = fusion["members"]
    best = model_info.best_of(results, members)
    fusion["best_member"] = best
    fusion["members_best"] = {}
    fusion["gain"] = {}
    for k in TOPK:
        member = model_info.best_of(results, members, f"top{k}")
        fusion["members_best"][f"top{k}"] = [member, ev[member][f"top{k}"]]
        fusion["gain"][f"top{k}"] = ev[name][f"top{k}"] - ev[member][f"top{k}"]
    fusion["below_best_member"] = bool(ev[name]["top1"] < ev[best]["top1"])
    if fusion["below_best_member"]:
        fusion["verdict"] = (f"stays below its best member, {model_info.entry_title(results, best)}, on test top-1 "
                             f"({formatting.points(ev[name]['top1'] - ev[best]['top1'])})")
    elif ev[name]["top1"] == ev[best]["top1"]:
        fusion["verdict"] = f"equals its best member, {model_info.entry_title(results, best)}, on test top-1"
    else:
        fusion["verdict"] = (f"beats its best member, {model_info.entry_title(results, best)}, on test top-1 "
                             f"({formatting.points(ev[name]['top1'] - ev[best]['top1'])})")
    evidence = (fusion.get("validation") or {}).get("bootstrap")
    fusion["supported_by_validation"] = evidence["supported"] if evidence else None
    fusion["recommendation"] = (None if evidence is None else name if evidence["supported"]
                                else evidence["best_member"])


def appearance_vs_motion(results: Dict[str, Any]) -> Dict[str, Any]:
    """Per class: the best 2D RGB model's accuracy (by top-1) against every motion model's (model_info.
    sees_motion: 3D ResNet, C3D, flow, RGB difference; in results order) and each one's difference
    (motion minus 2D). Rows sorted by the largest gain of any motion model, ties by name, unrated classes
    last; per motion model the classes it is better, worse and equal on."""
    models = results["models"]
    appearance = model_info.best_of(results, [n for n, m in models.items()
                                              if m["temporal"] is False and m.get("modality") in (None, "rgb")])
    motion = [n for n in results["order"] if n in models and model_info.sees_motion(models[n])]
    if appearance is None or not motion:
        missing = "2D RGB" if appearance is None else "motion (3D, C3D, flow or RGB-difference)"
        return {"appearance_model": appearance, "motion_models": motion,
                "reason": f"no {missing} model among the models given", "rows": [], "per_model": {}}
    ev = results["evaluation"]
    rows = []
    for name in results["class_list"]:
        a = ev[appearance]["per_class_accuracy"][name]
        accuracy = {m: ev[m]["per_class_accuracy"][name] for m in motion}
        difference = {m: None if a is None or v is None else v - a for m, v in accuracy.items()}
        rated = [d for d in difference.values() if d is not None]
        rows.append({"class": name, "appearance": a, "motion": accuracy, "difference": difference,
                     "best_gain": max(rated) if rated else None})
    rows.sort(key=lambda r: (r["best_gain"] is None, -(r["best_gain"] or 0.0), r["class"]))
    per_model = {}
    for m in motion:
        diffs = [r["difference"][m] for r in rows if r["difference"][m] is not None]
        per_model[m] = {"motion_better": sum(d > 0 for d in diffs), "appearance_better": sum(d < 0 for d in diffs),
                        "equal": sum(d == 0 for d in diffs),
                        "mean_difference": float(np.mean(diffs)) if diffs else None}
    left_out = [n for n in results["order"] if n in models and models[n]["temporal"] and n not in motion]
    return {"appearance_model": appearance, "motion_models": motion, "rows": rows, "per_model": per_model,
            "temporal_left_out": left_out}


def fusion_timing(results: Dict[str, Any], name: str) -> Optional[Dict[str, Any]]:
    """A fusion's cost when its members run one after another: times add up, frame rates combine
    harmonically. None unless every member was timed."""
    timings = [results["models"][m]["timing"] for m in results["fusions"][name]["members"]]
    if not all(timings):
        return None
    out = {"device": "sum of members", "batch_size": "-", "amp": "-"}
    for key in ("views_per_video", "load_seconds_per_video", "model_seconds_per_video"):
        values = [t.get(key) for t in timings]
        if all(isinstance(v, (int, float)) for v in values):
            out[key] = float(sum(values))
    for key in ("fps_end_to_end", "fps_model"):
        values = [t.get(key) for t in timings]
        if all(isinstance(v, (int, float)) and v > 0 for v in values):
            out[key] = 1.0 / sum(1.0 / v for v in values)
    return out


def describe_stats(values: Sequence[float]) -> Dict[str, float]:
    values = np.asarray(values, dtype=np.float64)
    return {"min": float(values.min()), "median": float(np.median(values)), "mean": float(values.mean()),
            "max": float(values.max())}


def dataset_statistics(class_list: Sequence[str], train_labels: Sequence[int], test_labels: Sequence[int],
                       val_labels: Optional[Sequence[int]], val_groups: Optional[Sequence[int]],
                       test_frames: Optional[Tuple[List[int], str]] = None,
                       val_frames: Optional[Tuple[List[int], str]] = None) -> Dict[str, Any]:
    """Videos per class of each subset and frames per video; ``test_frames``/``val_frames`` are
    ``(frames per video, source model)`` from the prediction files' ``frames`` attribute, or None."""
    num_classes = len(class_list)

    def per_class(labels):
        counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
        return {name: int(c) for name, c in zip(class_list, counts)}

    stats = {"train": {"videos": int(len(train_labels)), "per_class": per_class(train_labels),
                       "note": "training list without the validation groups" if val_groups else "training list"},
             "val": None, "test": {"videos": int(len(test_labels)), "per_class": per_class(test_labels)},
             "val_groups": list(val_groups) if val_groups else None, "frames_per_video": None,
             "val_frames_per_video": None}
    if val_labels is not None:
        stats["val"] = {"videos": int(len(val_labels)), "per_class": per_class(val_labels)}
    for key, found, labels in (("frames_per_video", test_frames, test_labels),
                               ("val_frames_per_video", val_frames, val_labels)):
        if found is None:
            continue
        frames, labels = np.asarray(found[0], dtype=np.float64), np.asarray(labels)
        per_class_mean = {name: (float(frames[labels == c].mean()) if (labels == c).any() else None)
                          for c, name in enumerate(class_list)}
        stats[key] = {"source": found[1], **describe_stats(frames), "per_class_mean": per_class_mean,
                      "values": [int(f) for f in frames]}
    return stats
