"""The test driver of every test script: the subset's videos through stream_videos, then results.json,
the confusion matrix and model.json, recomputed from the prediction files alone."""

import argparse
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from actionrec.data import datasets, video_groups
from actionrec.engine import cli_flags, devices, label_heads, output_provenance, runlog, video_stream
from actionrec.evaluation import accuracy, head_scores, jsonfile
from actionrec.evaluation import predictions as prediction_files
from actionrec.evaluation import scores as video_scores
from actionrec.guards import UserError, check_output_paths, script_inputs
from actionrec.reporting import console


def test_subset(args: argparse.Namespace, trained: dict) -> tuple[list[str], list[str], list[int], list[int]]:
    """(class_list, paths, labels) of the subset to test: the split's test list, the groups the training
    run held out (val), or its training videos (train)."""
    val_groups = trained.get("val_groups") or ()
    if isinstance(val_groups, str):
        val_groups = video_groups.parse_groups(val_groups)
    try:
        class_list, paths, labels = datasets.subset_videos(args.data_dir, args.split, args.subset, val_groups,
                                                     getattr(args, "storage", "auto"), cli_flags.resolve_dataset(args))
    except (FileNotFoundError, ValueError) as e:
        raise UserError(f"--subset {args.subset}: {e}" if args.subset == "val" else str(e)) from None
    if args.limit:
        paths, labels = paths[:args.limit], labels[:args.limit]
    return [str(c) for c in class_list], paths, labels, list(val_groups)


def test_videos(
    args: argparse.Namespace,
    checkpoint: dict,
    model: nn.Module,
    normalize: nn.Module,
    plan: Callable[[int], list],
    max_chunk: int,
    rows_fn: Callable[..., Callable],
    info: dict,
    paths_of: Callable[[list], list] | None = None,
    fixed_shapes: bool = True,
    video_start: Callable[[], None] | None = None,
    video_end: Callable[[nn.Module], torch.Tensor] | None = None,
    reader: Callable[[str], Any] | None = None,
) -> video_stream.VideoPass:
    """The test driver of every test script: predictions of every video of --subset, then (rank 0)
    results.json, confusion_matrix.npy and PREDICTIONS_DIR/model.json.

    rows_fn(model, frames, normalize) -> logits rows of one uint8 chunk on the device (normalised batch
    by batch, so memory follows the batch size, not the chunk); info: what the model is and how it is
    tested (name, title, kind, temporal, arch, rows: "frames" | "windows" | "pieces" | "video", test: {...});
    paths_of(video paths) -> what the loader reads instead (the RNN's feature files, the flow files); the
    prediction files are named after the videos all the same;
    video_start, video_end, reader: see stream_videos. The prediction files say how they were computed (attribute
    test: info["test"]["description"]).
    """
    check_output_paths({"--predictions-dir": args.predictions_dir, "--output-dir": args.output_dir},
                       script_inputs(args))
    trained = checkpoint.get("args", {})
    heads = counts = None
    if checkpoint.get("heads"):  # trained on an annotation CSV: one label per head
        heads, paths, labels, counts = label_heads.test_subset(args, checkpoint)
        class_list, val_groups = heads.class_list, []
    else:
        class_list, paths, labels, val_groups = test_subset(args, {**trained, "val_groups": checkpoint.get(
            "val_groups") or trained.get("val_groups")})
    if [str(c) for c in checkpoint["class_list"]] != class_list:
        raise UserError(f"{args.checkpoint} was trained on {len(checkpoint['class_list'])} classes, but "
                        f"the {args.dataset} split lists of {args.data_dir} give {len(class_list)} (or other names): "
                        f"use the --data-dir it was trained on")
    if devices.Dist().main:
        cli_flags.print_args(args)
    normalize_on = [None]

    def rows(model, frames):
        if normalize_on[0] is None:
            normalize_on[0] = normalize.to(frames.device)
        return rows_fn(model, frames, normalize_on[0])

    num_classes = len(class_list)
    crops = getattr(args, "crops", 1)
    heads_attr = None if heads is None else head_scores.heads_attr(heads.names, heads.sizes)
    # A video's prediction file is named after the video, whatever the loader reads (flow, features).
    read_paths = paths if paths_of is None else paths_of(paths)
    video_of = dict(zip(read_paths, paths))
    result = video_stream.stream_videos(
        args, model, read_paths, plan=plan, max_chunk=max_chunk, rows_fn=rows,
        output_path=lambda p: prediction_files.prediction_path(args.predictions_dir, video_of[p]),
        write=lambda target, logits, attrs: prediction_files.write_predictions(
            target, logits, {**attrs, "rows": info["rows"], "test": info.get("test", {}).get("description"),
                             head_scores.HEADS_ATTR: heads_attr}),
        complete=lambda target: prediction_files.predictions_complete(target, num_classes), crops=crops,
        features=info["kind"] == "features", unit="feature rows" if info["kind"] == "features" else "frames",
        fixed_shapes=fixed_shapes, provenance=test_provenance(args, info, class_list, val_groups, crops,
                                                             annotated=heads is not None),
        video_start=video_start, video_end=video_end, reader=reader)
    if not result.ranks.main:
        video_stream.exit_if_unreadable(result.failed, "not tested")
        return None
    model_info = model_record(args, info, class_list, val_groups, test_timing(args, result, crops))
    row_name = "frame" if info["rows"] == "frames" else "clip"
    if heads is not None:
        results = summarize_head_predictions(args, paths, labels, heads, counts, row_name, result.failed, model_info)
    else:
        results = summarize_predictions(args, paths, labels, class_list, row_name, args.checkpoint, result.failed,
                                        model_info)
    jsonfile.write_json(os.path.join(args.predictions_dir, "model.json"), model_info)
    video_stream.exit_if_unreadable(result.failed, "not tested")
    return results


def test_provenance(args: argparse.Namespace, info: dict, class_list: list[str], val_groups: list[int],
                    crops: int, annotated: bool = False) -> output_provenance.Provenance:
    """What makes a predictions folder: the checkpoint's hash, the classes, subset and split (annotated: and
    the annotation CSV and videos folder), and how the model was tested; a folder of older versions is
    compared through its model.json."""
    annotation = {"annotations": os.path.abspath(args.annotations), "videos": os.path.abspath(args.videos)} \
        if annotated else {}
    identity = {"checkpoint_sha256": output_provenance.file_sha256(args.checkpoint), "class_list": class_list,
                "split": args.split, "subset": args.subset, "val_groups": val_groups, "image_size": args.image_size,
                "crops": crops, "model": {k: info.get(k) for k in ("name", "kind", "arch", "rows")},
                "test": {k: v for k, v in info.get("test", {}).items() if k != "description"}, **annotation}
    legacy = {"checkpoint": os.path.abspath(args.checkpoint), "test": info.get("test"), "rows": info["rows"],
              "subset": args.subset, "split": args.split}
    return output_provenance.Provenance(
        args.predictions_dir, "--predictions-dir", identity,
        {"checkpoint": os.path.abspath(args.checkpoint), "data_dir": os.path.abspath(args.data_dir)},
        ("model.json", legacy))


def test_timing(args: argparse.Namespace, result: video_stream.VideoPass, crops: int) -> dict | None:
    """model.json's timing of a test pass (None when no video was computed: all were done before)."""
    t = result.timing
    if not t["videos"]:
        return None
    return {"device": devices.device_name(result.device), "batch_size": args.batch_size,
            "amp": str(result.amp[1]).replace("torch.", "") if result.amp[0] else "off",
            "workers": args.workers, "processes": result.ranks.world_size, "crops": crops,
            "videos": t["videos"], "frames": t["frames"],
            # rows (frames, windows, pieces, video) x crops
            "views_per_video": t["rows"] * crops / t["videos"],
            "load_seconds_per_video": t["load_seconds"] / t["videos"],
            "model_seconds_per_video": t["model_seconds"] / t["videos"],
            "wall_seconds": t["wall_seconds"],
            "fps_end_to_end": t["frames"] / max(t["wall_seconds"], 1e-9),
            "fps_model": t["frames"] / max(t["model_seconds"], 1e-9)}


def model_record(args: argparse.Namespace, info: dict, class_list: list[str], val_groups: list[int],
                 timing: dict | None) -> dict:
    """PREDICTIONS_DIR/model.json: what the model is, how and on what it was tested, its log and timing."""
    log_path = os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), runlog.LOG_NAME)
    return {**{k: v for k, v in info.items() if k != "rows"}, "rows": info["rows"], "subset": args.subset,
            "split": args.split, "val_groups": val_groups, "class_list": class_list,
            "checkpoint": os.path.abspath(args.checkpoint),
            "log": log_path if os.path.isfile(log_path) else None, "timing": timing}


def summarize_predictions(
    args: argparse.Namespace,
    paths: Sequence[str],
    labels: Sequence[int],
    class_list: list[str],
    row_name: str,
    checkpoint_path: str,
    failed: dict[str, str],
    model_info: dict | None = None,
) -> dict:
    """results.json and confusion_matrix.npy, recomputed from the prediction files alone."""
    num_classes = len(class_list)
    scored = [
        i
        for i, p in enumerate(paths)
        if prediction_files.predictions_complete(prediction_files.prediction_path(args.predictions_dir, p), num_classes)
    ]
    if not scored:
        raise UserError(f"no video could be tested; see the warnings above ({len(failed)} unreadable)")
    scores, row_correct, row_count = [], 0, 0
    for i in scored:
        logits = prediction_files.read_predictions(prediction_files.prediction_path(args.predictions_dir, paths[i]))
        scores.append(video_scores.video_score(logits))
        row_correct += int((logits.argmax(1) == labels[i]).sum())
        row_count += len(logits)
    summary, cm = accuracy.summarize(np.stack(scores), labels[scored], class_list)
    results = {
        "top1": summary["top1"],
        "top5": summary["top5"],
        "top10": summary["top10"],
        "mean_class_accuracy": summary["mean_class_accuracy"],
        f"{row_name}_accuracy": row_correct / max(row_count, 1),
        "videos": len(scored),
        "failed_videos": sorted(failed),
        "failed": len(failed),
        "split": args.split,
        "subset": getattr(args, "subset", "test"),
        "checkpoint": os.path.abspath(checkpoint_path),
        "predictions_dir": os.path.abspath(args.predictions_dir),
        **{k: v for k, v in summary.items() if k not in ("top1", "top5", "top10", "mean_class_accuracy", "videos")},
    }
    if model_info is not None:
        results["model"] = model_info
    os.makedirs(args.output_dir, exist_ok=True)
    jsonfile.write_json(os.path.join(args.output_dir, "results.json"), results)
    np.save(os.path.join(args.output_dir, "confusion_matrix.npy"), cm)
    print(console.format_class_table(summary["per_class_accuracy"]))
    print(f"videos {len(scored)} (unreadable {len(failed)}), {row_name} accuracy {results[f'{row_name}_accuracy']:.4f}")
    print(f"top1 {results['top1']:.4f}  top5 {results['top5']:.4f}  top10 {results['top10']:.4f}  "
          f"mean class {results['mean_class_accuracy']:.4f}")
    print(f"wrote {os.path.join(args.output_dir, 'results.json')}")
    return results


def tested_record(predictions_dir: str, paths: Sequence[str], labels: np.ndarray, pairs) -> dict:
    """What results.json keeps of the tested segments for a fusion (evaluation/head_fusion.py): each one's
    prediction file relative to the predictions folder, its labels [heads], and the (verb, noun) pairs of
    the training subset."""
    return {"prediction_files": [os.path.relpath(prediction_files.prediction_path(predictions_dir, p), predictions_dir)
                                 for p in paths],
            "labels": np.asarray(labels).tolist(), "training_pairs": [list(map(int, p)) for p in pairs]}


def summarize_head_predictions(
    args: argparse.Namespace,
    paths: Sequence[str],
    labels: np.ndarray,
    heads: label_heads.Heads,
    counts: dict,
    row_name: str,
    failed: dict[str, str],
    model_info: dict,
) -> dict:
    """results.json (per head and for actions: head_scores.summarize_heads) and confusion_matrix_<head>.npy
    of a model with label heads, recomputed from the prediction files alone."""
    scored = [i for i, p in enumerate(paths) if prediction_files.predictions_complete(
        prediction_files.prediction_path(args.predictions_dir, p), sum(heads.sizes))]
    if not scored:
        raise UserError(f"no video could be tested; see the warnings above ({len(failed)} unreadable)")
    per_video = [head_scores.read_head_predictions(prediction_files.prediction_path(args.predictions_dir, paths[i]))
                 for i in scored]
    labels = np.asarray(labels)[scored]
    scores = {name: np.stack([video_scores.video_score(v[name]) for v in per_video]) for name in heads.names}
    summary, cms = head_scores.summarize_heads(scores, labels, heads.classes, heads.pairs, counts)
    for i, name in enumerate(heads.names):
        summary["heads"][name][f"{row_name}_accuracy"] = head_scores.mean_row_accuracy(
            [v[name] for v in per_video], labels, i)
    results = {**summary, "videos": len(scored), "failed_videos": sorted(failed), "failed": len(failed),
               "subset": args.subset, "annotations": os.path.abspath(args.annotations),
               "checkpoint": os.path.abspath(args.checkpoint), "predictions_dir": os.path.abspath(args.predictions_dir),
               "model": model_info, "tested": tested_record(args.predictions_dir, [paths[i] for i in scored], labels,
                                                             heads.pairs)}
    os.makedirs(args.output_dir, exist_ok=True)
    jsonfile.write_json(os.path.join(args.output_dir, "results.json"), results)
    for name, cm in cms.items():
        np.save(os.path.join(args.output_dir, f"confusion_matrix_{name}.npy"), cm)
    for name, part in [*summary["heads"].items(), *([(head_scores.ACTION, summary[head_scores.ACTION])]
                                                      if head_scores.ACTION in summary else [])]:
        print(f"{name:>8}: top1 {part['top1']:.4f}  top5 {part['top5']:.4f}  mean class precision "
              f"{part['macro_precision']:.4f}  recall {part['macro_recall']:.4f}")
    print(f"videos {len(scored)} (unreadable {len(failed)}); wrote {os.path.join(args.output_dir, 'results.json')}")
    return results
