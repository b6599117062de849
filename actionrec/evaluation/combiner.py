"""The combiner's evaluation of one split (combine_results.py): read and check every prediction folder,
calibrate the models and choose fusion weights on the validation videos (before any test file is
read), fuse, score, and gather everything into one results dict (results.json)."""
import argparse
import datetime
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from actionrec import formatting, guards
from actionrec.data import datasets, video_groups
from actionrec.engine import runlog
from actionrec.evaluation import (
    accuracy,
    bootstrap,
    calibration,
    comparison,
    folders,
    inputs,
    model_info,
    predictions,
    published,
)
from actionrec.evaluation import fusion as score_fusion
from actionrec.evaluation import scores as video_scores
from actionrec.evaluation import weights as weight_choice
from actionrec.evaluation.inputs import Spec


def warn(message: str) -> None:
    """A warning line on stderr, named like argparse's errors (``PROG: warning: ...``)."""
    print(f"{os.path.basename(sys.argv[0])}: warning: {message}", file=sys.stderr)


class Split:
    """The split's class list and videos: ``train`` and ``test`` are (paths, labels)."""

    def __init__(self, args: argparse.Namespace) -> None:
        try:
            self.dataset = datasets.resolve_dataset(args.data_dir, args.dataset)
            class_list, self.train, self.test = datasets.get_split(args.data_dir, args.split, dataset=self.dataset)
        except (FileNotFoundError, ValueError) as e:
            raise guards.UserError(str(e)) from None
        if args.dataset == "auto":
            print(f"dataset: {self.dataset} (detected from the contents of --data-dir {args.data_dir}; --dataset "
                  f"chooses)")
        self.class_list = [str(c) for c in class_list]
        if len(self.test[0]) == 0:
            raise guards.UserError(f"split {args.split}'s test list under {args.data_dir} lists no videos")


class Validation:
    """The validation videos and what was fitted on them: ``scans`` {name: PredictionScan}, ``labels``,
    ``temperatures`` {name: fit_temperature's dict}, ``choices`` {fusion name: choose_weights' dict}.
    Empty (``groups`` None) without --val folders."""

    def __init__(self) -> None:
        self.groups, self.paths, self.labels = None, None, None
        self.scans, self.temperatures, self.choices, self.folders = {}, {}, {}, {}


def evaluate_split(args: argparse.Namespace) -> Tuple[Dict[str, Any], Dict[str, np.ndarray], Dict[str, list]]:
    """Evaluate and fuse the models of one split: ``(results, {name: confusion matrix}, {name: log records})``.

    The fusion weights are chosen from the --val folders alone, before any test file is read."""
    specs = inputs.model_specs(args)
    names = [name for name, _, _ in specs]
    plans = inputs.plan_fusions(args, names)
    given_logs = inputs.log_paths(args, names)
    val_specs = inputs.val_specs(args, names)
    given_groups = inputs.check_validation_flags(args, plans, val_specs)
    split = Split(args)
    guards.check_output_paths({"--output-dir": args.output_dir}, {
        "--data-dir": guards.dataset_inputs(args.data_dir), "--model": [d for _, d, _ in specs],
        "--val": [d for _, d, _ in val_specs]})
    metas, val_metas = check_folders(args, specs, val_specs, split.class_list)
    validation = validate(args, split, plans, val_specs, val_metas, given_groups)
    test_scans = folders.scan_folders(specs, split.test[0], len(split.class_list),
                                      f"test videos of split {args.split}", "the test scripts resume: rerun them to "
                                      "finish; or check --data-dir and --split")
    results = new_results(args, split, specs, val_specs, validation, [p["name"] for p in plans])
    logs = describe_models(results, specs, metas, test_scans, given_logs, validation)
    scores = {name: test_scans[name].scores for name in names}
    for plan in plans:
        scores[plan["name"]] = fuse(results, plan, scores, validation, args)
    cms = {}
    for name in results["order"]:
        results["evaluation"][name], cms[name] = accuracy.summarize(scores[name], split.test[1], split.class_list,
                                                                    num_listed=comparison.NUM_LISTED)
    for name in results["fusions"]:
        comparison.compare_fusion(results, name)
        results["fusions"][name]["timing"] = comparison.fusion_timing(results, name)
    results["reference"] = model_info.best_of(results, results["order"])
    results["appearance_vs_motion"] = comparison.appearance_vs_motion(results)
    results["dataset"] = split_statistics(split, validation, names, test_scans)
    results["dataset_name"] = split.dataset  # ucf101 or hmdb51: the class list's source and order
    results["published"] = published.published_numbers(results, split.dataset)
    return results, cms, logs


def check_folders(args: argparse.Namespace, specs: Sequence[Spec], val_specs: Sequence[Spec],
                  class_list: List[str]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Each folder's model.json (None without one), checked against the subset, split and class list:
    ``(test metas, val metas)`` by model name."""
    metas = {name: folders.read_model_json(d, label) for name, d, label in specs}
    for name, directory, label in specs:
        folders.check_meta(label, metas[name], "test", args.split)
        folders.check_classes(label, directory, metas[name], class_list)
    val_metas = {name: folders.read_model_json(d, label) for name, d, label in val_specs}
    for name, directory, label in val_specs:
        folders.check_meta(label, val_metas[name], "val", args.split)
        folders.check_classes(label, directory, val_metas[name], class_list)
        test_ckpt, val_ckpt = (metas[name] or {}).get("checkpoint"), (val_metas[name] or {}).get("checkpoint")
        if test_ckpt and val_ckpt and test_ckpt != val_ckpt:
            warn(f"{label}: written with checkpoint {val_ckpt}, the test folder with {test_ckpt}")
    return metas, val_metas


def validate(args: argparse.Namespace, split: Split, plans: Sequence[Dict[str, Any]], val_specs: Sequence[Spec],
             val_metas: Dict[str, Any], given_groups: Optional[Tuple[int, ...]]) -> Validation:
    """Read the --val folders, fit each model's temperature and choose the weights of every --weights auto
    fusion on them."""
    validation = Validation()
    if not val_specs:
        return validation
    validation.folders = {n: d for n, d, _ in val_specs}
    validation.groups = folders.validation_groups(val_specs, val_metas, given_groups)
    try:
        _, validation.paths, validation.labels = datasets.subset_videos(
            args.data_dir, args.split, "val", validation.groups, dataset=split.dataset
        )
    except (FileNotFoundError, ValueError) as e:
        raise guards.UserError(f"--val: {e}") from None
    validation.scans = folders.scan_folders(
        val_specs, validation.paths, len(split.class_list),
        f"val videos (groups {formatting.groups_text(validation.groups)} of trainlist0{args.split}.txt)",
        "write them with the test script's --subset val and the validation groups the model was trained with")
    for name, scan in validation.scans.items():
        validation.temperatures[name] = calibration.fit_temperature(scan.scores, validation.labels)
    for plan in plans:
        if isinstance(plan["weights"], str):  # auto or auto-top1
            validation.choices[plan["name"]] = choose_weights(plan, validation, args.weight_step)
    return validation


def choose_weights(plan: Dict[str, Any], validation: Validation, step: Optional[float]) -> Dict[str, Any]:
    """``weights.choose_weights`` for one fusion on the validation videos, and the line that says it."""
    members = plan["members"]
    temps = ([validation.temperatures[m]["temperature"] for m in members] if plan["weights"] == "auto" else None)
    c = weight_choice.choose_weights([validation.scans[m].scores for m in members], validation.labels, plan["rule"],
                                     step, score_fusion.AUTO_CRITERIA[plan["weights"]], temps)
    print(f"fusion {plan['name']}: weights {', '.join(f'{m} {w:g}' for m, w in zip(members, c['weights']))} "
          + (f"on scores divided by the temperatures {', '.join(f'{t:.3g}' for t in temps)} " if temps else "")
          + f"chosen by validation {'NLL' if c['criterion'] == 'nll' else 'top-1'} on {len(validation.labels)} "
          f"videos (val top-1 {formatting.pct(c['top1'])}%, NLL {c['nll']:.3f}; equal weights "
          f"{formatting.pct(c['equal_weights_top1'])}%, {c['equal_weights_nll']:.3f}; grid step {c['step']:g}, "
          f"{c['grid_points']} points)", flush=True)
    return c


def new_results(args: argparse.Namespace, split: Split, specs: Sequence[Spec], val_specs: Sequence[Spec],
                validation: Validation, fusion_names: List[str]) -> Dict[str, Any]:
    """The results dict before any model is described or scored."""
    return {
        "split": args.split,
        "subset": "test",
        "videos": len(split.test[0]),
        "classes": len(split.class_list),
        "class_list": split.class_list,
        "generated": datetime.datetime.now().isoformat(timespec="seconds"),
        "inputs": {
            "data_dir": args.data_dir,
            "models": {n: d for n, d, _ in specs},
            "val": {n: d for n, d, _ in val_specs},
            "val_groups": list(validation.groups) if validation.groups else None,
        },
        "order": [n for n, _, _ in specs] + fusion_names,
        "models": {},
        "fusions": {},
        "evaluation": {},
    }


def describe_models(results: Dict[str, Any], specs: Sequence[Spec], metas: Dict[str, Any],
                    test_scans: Dict[str, predictions.PredictionScan], given_logs: Dict[str, str],
                    validation: Validation) -> Dict[str, list]:
    """Fill ``results["models"]`` (with the validation numbers where there are --val folders); returns
    the training log records by model name (models without a log left out)."""
    logs = {}
    for name, directory, _ in specs:
        log_path = model_info.find_log(name, directory, metas[name], given_logs)
        model = model_info.describe_model(name, directory, metas[name], test_scans[name], log_path,
                                          os.path.join(directory, "model.json"))
        results["models"][name] = model
        if name in validation.scans:
            fit = validation.temperatures[name]
            model["val_predictions_dir"] = validation.folders[name]
            model["val_top1"] = accuracy.topk_accuracy(validation.scans[name].scores, validation.labels, (1,))["top1"]
            model.update({"val_nll": fit["nll_before"], "temperature": fit["temperature"],
                          "temperature_at_bound": fit["at_bound"], "val_nll_calibrated": fit["nll_after"],
                          "temperature_range": list(calibration.TEMPERATURE_RANGE)})
        records = read_log(log_path) if log_path else []
        if records:
            logs[name] = records
    model_info.distinguish_titles(results["models"])
    results["inputs"]["logs"] = {n: results["models"][n]["log"] for n, _, _ in specs}
    return logs


def read_log(path: str) -> List[Dict[str, Any]]:
    """A training log's whole records for the learning curves; an unreadable log is a warning, not an error."""
    try:
        return runlog.read_log(path, skip_damaged=True)
    except guards.UserError:
        warn(f"cannot read training log {path}; no learning curves from it")
        return []


def fuse(results: Dict[str, Any], plan: Dict[str, Any], scores: Dict[str, np.ndarray], validation: Validation,
         args: argparse.Namespace) -> np.ndarray:
    """One fusion's test scores; its entry (weights, temperatures, validation evidence) goes into
    ``results["fusions"]``."""
    name, members = plan["name"], plan["members"]
    calibrated = plan["weights"] == "auto"
    temps = [validation.temperatures[m]["temperature"] for m in members] if calibrated else [1.0] * len(members)
    if isinstance(plan["weights"], str):
        weights, source = validation.choices[name]["weights"], plan["weights"]
    else:
        weights = plan["weights"] or [1.0 / len(members)] * len(members)
        source = "given" if plan["weights"] else "equal"
    evidence = None
    if all(m in validation.scans for m in members):
        evidence = fusion_validation([validation.scans[m].scores for m in members], validation.labels, plan, weights,
                                     temps, [validation.temperatures[m]["temperature"] for m in members],
                                     validation.choices.get(name), args)
        evidence.update({"videos": int(len(validation.labels)), "val_groups": list(validation.groups)})
    results["fusions"][name] = {"title": model_info.fusion_title(name, members), "members": members,
                                "rule": plan["rule"], "rule_description": score_fusion.FUSION_RULES[plan["rule"]],
                                "weights": [float(w) for w in weights], "weights_source": source,
                                "calibration": "temperature" if calibrated else "none",
                                "temperatures": [float(t) for t in temps],
                                "effective_weights": score_fusion.effective_weights(plan["rule"], weights, temps),
                                "validation": evidence}
    return score_fusion.fuse_scores(calibration.calibrate([scores[m] for m in members], temps), plan["rule"], weights)


def split_statistics(split: Split, validation: Validation, names: Sequence[str],
                     test_scans: Dict[str, predictions.PredictionScan]) -> Dict[str, Any]:
    """``comparison.dataset_statistics`` of the split (the training list without the validation groups)."""
    train_paths, kept_labels = split.train
    if validation.groups:
        try:
            (_, kept_labels), _ = video_groups.split_by_groups(train_paths, kept_labels, validation.groups)
        except ValueError as e:
            raise guards.UserError(f"--val: {e}") from None

    def frames_from(scans):
        source = next((n for n in names if n in scans and scans[n].attr_values("frames") is not None), None)
        return (scans[source].attr_values("frames"), source) if source else None

    stats = comparison.dataset_statistics(split.class_list, kept_labels, split.test[1], validation.labels,
                                          validation.groups, frames_from(test_scans), frames_from(validation.scans))
    if validation.groups:
        stats["val"]["video_names"] = [predictions.video_name(p) for p in validation.paths]
    return stats


def fusion_validation(val_scores: Sequence[np.ndarray], val_labels: np.ndarray, plan: Dict[str, Any],
                      weights: Sequence[float], temperatures: Sequence[float], member_temperatures: Sequence[float],
                      choice: Optional[Dict[str, Any]], args: argparse.Namespace) -> Dict[str, Any]:
    """A fusion's validation evidence: its NLL and top-1, each member's (temperature-scaled by
    ``member_temperatures``, the fitted ones: every fusion is held to the bar of a calibrated member), the
    weight search's numbers (``choice``, for --weights auto and auto-top1) and the bootstrap."""
    members = plan["members"]
    fused, log_probs = score_fusion.fused_log_probs(val_scores, plan["rule"], weights, temperatures)
    out = {"top1": float(np.mean(np.argmax(fused, axis=1) == val_labels)),
           "nll": float(np.mean(video_scores.per_video_nll(log_probs, val_labels))),
           "members": {}}
    for m, s, t in zip(members, val_scores, member_temperatures):
        nll, correct = score_fusion.member_losses(s, val_labels, t)
        out["members"][m] = {"nll": float(nll.mean()), "top1": float(correct.mean()), "temperature": float(t)}
    if choice:
        out.update({k: v for k, v in choice.items() if k not in ("weights", "top1", "nll")})
    criterion = score_fusion.AUTO_CRITERIA.get(plan["weights"]) if isinstance(plan["weights"], str) else None
    evidence = bootstrap.bootstrap_fusion(val_scores, val_labels, plan["rule"], weights, temperatures, criterion,
                                          args.weight_step, args.bootstrap, args.bootstrap_seed,
                                          member_temperatures=member_temperatures)
    evidence["best_member"] = members[evidence["best_member"]]
    out["bootstrap"] = evidence
    return out
