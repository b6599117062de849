"""The fusion of the predictors of predict.py: its plan (the rule, one weight and temperature per
predictor: equal weights, --weights W1,W2,... or the fusion combine_results.py recorded in a results.json)
and the fused distribution of a video's scores, by combine_results.py's rule (evaluation/fusion.fuse_scores)."""
import argparse
import os
from typing import NamedTuple

import numpy as np

from actionrec import guards
from actionrec.evaluation import calibration
from actionrec.evaluation import fusion as score_fusion
from actionrec.evaluation import scores as video_scores
from actionrec.inference import predictor, recorded_fusion


class Fusion(NamedTuple):
    """How the predictors' video scores are fused: each score is divided by its temperature, then the
    rule applies the weights. `description` says where they come from ("equal weights", "weights given",
    or "fusion <name> of <results.json>; <which models>")."""
    rule: str
    weights: list[float]
    description: str
    temperatures: list[float]


def is_results_path(text: str) -> bool:
    """Whether --weights names a results.json (else it is W1,W2,...)."""
    return text.lower().endswith(".json") or os.path.isfile(text)


def parse_weights(text: str, count: int) -> list[float]:
    """'W1,W2,...' -> one weight per --checkpoint (evaluation's rule), or a UserError line."""
    return score_fusion.parse_weights(text, count, "one per --checkpoint in order", "a combine_results.py results.json")


def check_fusion_flags(args: argparse.Namespace) -> None:
    """The usage errors of --fusion/--weights that need no model loaded: nothing to fuse, bad W1,W2,..."""
    if (args.weights or args.fusion) and len(args.checkpoint) < 2:
        raise guards.UserError("--fusion/--weights: there is nothing to fuse with one --checkpoint")
    if args.weights and not is_results_path(args.weights):
        parse_weights(args.weights, len(args.checkpoint))


def plan_fusion(args: argparse.Namespace, predictors: list[predictor.Predictor], kept: list[int]) -> Fusion | None:
    """The Fusion of the predictors that loaded, or None for a single model. `kept`: the index in
    --checkpoint of each predictor (for numeric weights)."""
    if len(predictors) < 2:
        return None
    if args.weights and is_results_path(args.weights):
        return Fusion(*recorded_fusion.recorded_fusion(args.weights, predictors, args.fusion))
    rule = args.fusion or "logmean"
    if args.weights:
        weights = parse_weights(args.weights, len(args.checkpoint))
        weights = [weights[i] for i in kept]
        if sum(weights) == 0:
            raise guards.UserError("--weights: every checkpoint that loaded has weight 0")
        return Fusion(rule, weights, "weights given", [1.0] * len(predictors))
    return Fusion(rule, [1.0 / len(predictors)] * len(predictors), "equal weights", [1.0] * len(predictors))


def taken_from_results(plan: Fusion | None, predictors: list[predictor.Predictor]) -> str | None:
    """The line that says what was taken from a results.json (rule, weights, temperatures when calibrated,
    which fusion and models), or None for a fusion that is not from one."""
    if plan is None or not plan.description.startswith("fusion "):
        return None
    weights = ", ".join(f"{p.name} {w:g}" for p, w in zip(predictors, plan.weights))
    calibrated = any(t != 1.0 for t in plan.temperatures)
    temperatures = ", ".join(f"{p.name} {t:.4g}" for p, t in zip(predictors, plan.temperatures))
    return (f"fusion: {plan.rule}, weights {weights}" + (f", temperatures {temperatures}" if calibrated else "")
            + f" ({plan.description})")


def fused_distribution(scores: list[np.ndarray], rule: str, weights: list[float],
                       temperatures: list[float] | None = None) -> np.ndarray:
    """combine_results.py's fusion of video scores [C] each, each divided by its temperature first (None:
    1), as a distribution: softmax of the fused score for logmean, the fused score itself for prob and max
    (already in [0, 1])."""
    fused = score_fusion.fuse_scores(calibration.calibrate([s[None] for s in scores], temperatures), rule, weights)[0]
    return video_scores.softmax(fused) if rule == "logmean" else fused
