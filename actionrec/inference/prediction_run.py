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
from actionrec.inference import explanations, fusion, label_sets, prediction_table, predictor, video_logits

Scores = dict[str, np.ndarray]  # {label set: a model's video score of it} (label_sets.video_scores_of)
Target = tuple[label_sets.LabelSet, int | None]  # what Grad-CAM explains: a label set, a class index in it or None


def say(message: str) -> None:
    """One line on stderr, in predict.py's name, that leaves the progress bars whole."""
    tqdm.write(f"predict.py: {message}", file=sys.stderr)


def explain_target(args: argparse.Namespace, sets: list[label_sets.LabelSet]) -> Target:
    """(the label set Grad-CAM explains: --explain-head's, else the first head or the one class list; the
    index in it of --explain-class, None: each model's own top class of that set), or a UserError line."""
    try:
        chosen = label_sets.explained_set(sets, args.explain_head)
    except ValueError as e:
        raise guards.UserError(str(e)) from None
    if args.explain_class is None:
        return chosen, None
    if args.explain_class not in chosen.classes:
        of = "the checkpoints" if chosen.name == label_sets.CLASS else f"the checkpoints' {chosen.name} head"
        raise guards.UserError(f"--explain-class {args.explain_class!r} is not a class of {of} "
                               f"({', '.join(chosen.classes[:5])}, ...)")
    return chosen, chosen.classes.index(args.explain_class)


def show(path: str, frames: int, scores: dict[str, Scores], sets: list[label_sets.LabelSet],
         plan: fusion.Fusion | None, args: argparse.Namespace) -> None:
    """Print one video's top classes per model (per label set, and the actions of two heads) and, with a
    fusion plan, fused (each label set fused on its own): a table or a JSON line."""
    def tops_of(per_set: dict[str, np.ndarray]) -> prediction_table.Tops:
        return {name: prediction_table.top_classes(distribution, classes, args.top)
                for name, (distribution, classes) in label_sets.distributions(per_set, sets).items()}

    tops = {name: tops_of({s: video_scores.softmax(v) for s, v in model_scores.items()})
            for name, model_scores in scores.items()}
    fused = None
    if plan is not None:
        fused = tops_of({s.name: fusion.fused_distribution([m[s.name] for m in scores.values()], plan.rule,
                                                           plan.weights, plan.temperatures) for s in sets})
    if args.json:
        tqdm.write(prediction_table.json_line(path, frames, tops, fused), file=sys.stdout)
    else:
        tqdm.write(prediction_table.format_table(path, frames, tops, fused, plan.rule if plan else None),
                   file=sys.stdout)


def explain_video(predictors: list[predictor.Predictor], path: str, frames: int, scores: dict[str, Scores],
                  target: Target, stem: str, args: argparse.Namespace, device: torch.device) -> int:
    """Every predictor's Grad-CAM of one video, for the class of `target` (its index None: the model's top
    class of that label set); returns the number that could not be made (each one line on stderr)."""
    failed = 0
    chosen_set, index = target
    for p in predictors:
        within = index if index is not None else int(np.argmax(scores[p.name][chosen_set.name]))
        try:
            explanations.explain(p, path, frames, chosen_set.columns.start + within, stem, args, device)
        except (OSError, ValueError, video_logits.VideoFailed) as e:
            say(f"{path}: no Grad-CAM of {p.name}: {runner.one_line(e)}")
            failed += 1
    return failed


def predict_videos(args: argparse.Namespace, predictors: list[predictor.Predictor], plan: fusion.Fusion | None,
                   target: Target, ranks: devices.Dist, device: torch.device,
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
            scores = {p.name: label_sets.video_scores_of(video_logits.video_logits(p, path, device, amp), p.sets)
                      for p in predictors}
        except video_logits.VideoFailed as e:
            say(str(e))
            failed += 1
            continue
        show(path, frames, scores, predictors[0].sets, plan, args)
        if args.explain:
            failed += explain_video(predictors, path, frames, scores, target, stem, args, device)
        sys.stdout.flush()
    return failed
