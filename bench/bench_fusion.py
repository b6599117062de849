"""Fusion-weight choice on generated studies: the old rule (top-1 on the raw scores) against the calibrated
likelihood choice, scored on test videos the choice never sees.

    python bench/bench_fusion.py [--studies 200] [--val-per-class 2] [--test-per-class 8] [--seed 0]

Each study mirrors the demo's synthetic UCF-101 (``make_synthetic_ucf101.py``): 3 appearance classes that
any frame tells apart and 3 motion classes that share one appearance. Two models' video scores are drawn
(``synthetic_study``): a "single frame" model that is sure of itself everywhere (right on the appearance
classes, a random motion class on the motion ones: chance) and a "3d" model that sees every class but is
less sure (a smaller, noisy margin for the true class). Per study the fusion weights are chosen on the
validation videos (2 per class: 12) by ``evaluation/weights.choose_weights`` with criterion top1 on the raw scores
(``--weights auto-top1``) and with criterion nll on temperature-scaled scores (``--weights auto``), then
both fusions and both members are scored on the test videos. Prints a Markdown table: mean test top-1,
how often each fusion falls below its best member (by test top-1), how often the 3d model gets the larger
weight, and how often the bootstrap over the validation videos (``evaluation/bootstrap.bootstrap_fusion``) supports the
fusion over its best member.
"""
import argparse
import os
import sys

import numpy as np

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from actionrec.evaluation import bootstrap, calibration
from actionrec.evaluation import fusion as score_fusion
from actionrec.evaluation import scores as video_scores
from actionrec.evaluation import weights as weight_choice

APPEARANCE_CLASSES, MOTION_CLASSES = 3, 3
MODELS = ("single_frame", "3d")
SURE_MARGIN = 6.0  # the single-frame model's logit lead for the class it picks: p ~ 0.99 with 6 classes
UNSURE_MARGIN = (2.5, 1.0)  # mean and std of the 3d model's lead for the true class (about 85% right)
NOISE = 0.5  # std of every other logit


def synthetic_study(rng, per_class):
    """Video scores ``{model: [N, C]}`` and labels ``[N]`` for ``per_class`` videos of each of the 6 classes."""
    num_classes = APPEARANCE_CLASSES + MOTION_CLASSES
    labels = np.repeat(np.arange(num_classes), per_class)
    n = len(labels)
    rows = np.arange(n)
    single = rng.normal(0.0, NOISE, (n, num_classes))
    motion = labels >= APPEARANCE_CLASSES
    picked = np.where(motion, rng.integers(APPEARANCE_CLASSES, num_classes, n), labels)
    single[rows, picked] += SURE_MARGIN
    three_d = rng.normal(0.0, NOISE, (n, num_classes))
    three_d[rows, labels] += rng.normal(*UNSURE_MARGIN, n)
    return {
        "single_frame": video_scores.log_softmax(single, axis=1),
        "3d": video_scores.log_softmax(three_d, axis=1),
    }, labels


def top1(scores, labels):
    return float(np.mean(video_scores.top1_predictions(scores) == labels))


def run_study(rng, val_per_class, test_per_class, bootstrap_resamples=200):
    """One study: the members' and both fusions' test top-1, the weights and the bootstrap's verdicts."""
    val, val_labels = synthetic_study(rng, val_per_class)
    test, test_labels = synthetic_study(rng, test_per_class)
    val_scores, test_scores = [val[m] for m in MODELS], [test[m] for m in MODELS]
    temperatures = [calibration.fit_temperature(s, val_labels)["temperature"] for s in val_scores]
    out = {m: top1(test[m], test_labels) for m in MODELS}
    for name, criterion, temps in (("old", "top1", None), ("new", "nll", temperatures)):
        choice = weight_choice.choose_weights(
            val_scores, val_labels, "logmean", criterion=criterion, temperatures=temps
        )
        fused, _ = score_fusion.fused_log_probs(test_scores, "logmean", choice["weights"], temps)
        evidence = bootstrap.bootstrap_fusion(val_scores, val_labels, "logmean", choice["weights"], temps,
                                            resamples=bootstrap_resamples, seed=0, member_temperatures=temperatures)
        out[name] = {"top1": top1(fused, test_labels), "weights": choice["weights"], "supported": evidence["supported"]}
    out["temperatures"] = temperatures
    return out


def main(args):
    rng = np.random.default_rng(args.seed)
    studies = [run_study(rng, args.val_per_class, args.test_per_class) for _ in range(args.studies)]
    best = np.array([max(s[m] for m in MODELS) for s in studies])
    print(f"{args.studies} studies, {6 * args.val_per_class} validation and {6 * args.test_per_class} test videos "
          f"each, seed {args.seed}")
    print(f"members' test top-1: single_frame {100 * np.mean([s['single_frame'] for s in studies]):.1f}%, "
          f"3d {100 * np.mean([s['3d'] for s in studies]):.1f}%; temperatures (median): single_frame "
          f"{np.median([s['temperatures'][0] for s in studies]):.2f}, 3d "
          f"{np.median([s['temperatures'][1] for s in studies]):.2f}")
    print("| choice | fused test top-1 | below its best member | equal to it | 3d weight larger | supported |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, label in (("old", "top-1 on raw scores (auto-top1)"), ("new", "calibrated, validation NLL (auto)")):
        fused = np.array([s[name]["top1"] for s in studies])
        print(f"| {label} | {100 * fused.mean():.1f}% | {100 * np.mean(fused < best - 1e-12):.0f}% | "
              f"{100 * np.mean(np.abs(fused - best) < 1e-12):.0f}% | "
              f"{100 * np.mean([s[name]['weights'][1] > s[name]['weights'][0] for s in studies]):.0f}% | "
              f"{100 * np.mean([s[name]['supported'] for s in studies]):.0f}% |")
    return studies


def get_args_parser():
    parser = argparse.ArgumentParser(description="Fusion-weight choice on generated studies: old rule against new.")
    parser.add_argument("--studies", type=int, default=200, help="generated studies (default: 200)")
    parser.add_argument("--val-per-class", type=int, default=2, help="validation videos per class (default: 2)")
    parser.add_argument("--test-per-class", type=int, default=8, help="test videos per class (default: 8)")
    parser.add_argument("--seed", type=int, default=0, help="numpy seed of the studies (default: 0)")
    return parser


if __name__ == "__main__":
    main(get_args_parser().parse_args())
