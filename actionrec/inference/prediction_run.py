"""predict.py's run over its videos: every video through every predictor, printed as soon as it is
predicted (a table, or a JSON line), explained with --explain; a video (or an explanation) that fails is
one line on stderr and the others go on."""
import argparse
import sys

import numpy as np
import torch
from tqdm import tqdm

from actionrec import guards
from actionrec.engine import devices, runlog, runner
from actionrec.evaluation import scores as video_scores
from actionrec.inference import explanations, fusion, prediction_table, predictor, video_logits


def say(message: str) -> None:
    """One line on stderr, in predict.py's name, that leaves the progress bars whole."""
    tqdm.write(f"predict.py: {message}", file=sys.stderr)


def explain_target(args: argparse.Namespace, class_list: list[str]) -> int | None:
    """The class index of --explain-class (None: each model's own top class), or a UserError line."""
    if args.explain_class is None:
        return None
    if args.explain_class not in class_list:
        raise guards.UserError(f"--explain-class {args.explain_class!r} is not a class of the checkpoints "
                               f"({', '.join(class_list[:5])}, ...)")
    return class_list.index(args.explain_class)


def show(path: str, frames: int, scores: dict[str, np.ndarray], class_list: list[str],
         plan: fusion.Fusion | None, args: argparse.Namespace) -> None:
    """Print one video's top classes per model and, with a fusion plan, fused: a table or a JSON line."""
    tops = {name: prediction_table.top_classes(video_scores.softmax(s), class_list, args.top)
            for name, s in scores.items()}
    fused = None
    if plan is not None:
        distribution = fusion.fused_distribution(list(scores.values()), plan.rule, plan.weights, plan.temperatures)
        fused = prediction_table.top_classes(distribution, class_list, args.top)
    if args.json:
        tqdm.write(prediction_table.json_line(path, frames, tops, fused), file=sys.stdout)
    else:
        tqdm.write(prediction_table.format_table(path, frames, tops, fused, plan.rule if plan else None),
                   file=sys.stdout)


def explain_video(predictors: list[predictor.Predictor], path: str, frames: int, scores: dict[str, np.ndarray],
                  target: int | None, stem: str, args: argparse.Namespace, device: torch.device) -> int:
    """Every predictor's Grad-CAM of one video, for class `target` (None: the model's top class); returns
    the number that could not be made (each one line on stderr)."""
    failed = 0
    for p in predictors:
        chosen = target if target is not None else int(np.argmax(scores[p.name]))
        try:
            explanations.explain(p, path, frames, chosen, stem, args, device)
        except (OSError, ValueError, video_logits.VideoFailed) as e:
            say(f"{path}: no Grad-CAM of {p.name}: {runner.one_line(e)}")
            failed += 1
    return failed


def predict_videos(args: argparse.Namespace, predictors: list[predictor.Predictor], plan: fusion.Fusion | None,
                   target: int | None, ranks: devices.Dist, device: torch.device,
                   amp: video_logits.Amp) -> int:
    """Predict (and with --explain, explain) every video of args.videos; returns the number of failures
    (videos that could not be predicted, Grad-CAMs that could not be made)."""
    if not args.json:
        for p in predictors:
            tqdm.write(f"{p.name}: {p.title} ({p.path})", file=sys.stdout)
    failed = 0
    stems = explanations.explain_stems(args.videos)
    for path, stem in zip(runlog.progress(args.videos, ranks, desc="videos", unit="video"), stems):
        try:
            frames, _, _ = video_logits.check_video(path)
            scores = {p.name: video_scores.video_score(video_logits.video_logits(p, path, device, amp))
                      for p in predictors}
        except video_logits.VideoFailed as e:
            say(str(e))
            failed += 1
            continue
        show(path, frames, scores, predictors[0].class_list, plan, args)
        if args.explain:
            failed += explain_video(predictors, path, frames, scores, target, stem, args, device)
        sys.stdout.flush()
    return failed
