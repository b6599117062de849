"""Evaluate and fuse any number of models' per-video predictions; write the report.

Reads the prediction folders written by the test scripts (one HDF5 file per video, ``predictions``
float32 [rows, classes] of logits, and ``model.json`` beside them when the test script is new enough),
scores each video with ``actionrec.evaluation.scores.video_score`` (mean log-softmax over rows), fuses models
(``--fuse``; weights given, equal, or chosen on validation predictions with ``--weights auto``: each
model calibrated by temperature scaling on its validation predictions, the weights chosen by the
validation NLL of the fused distribution, a bootstrap over the validation videos as evidence) and
writes into ``--output-dir``:

    results.json                 every model and fusion: top-1/5/10, mean class accuracy, macro
                                 precision/recall/F1, per-class precision/recall/F1/support, best/worst
                                 classes, most confused pairs; models (test mode, timing), fusions (rule,
                                 weights, temperatures, how they were chosen, validation NLL and top-1,
                                 the bootstrap, gain over the best member), appearance vs motion, dataset
                                 statistics, the summary's sentences, the report's pages
    confusion_<name>.npy         int64 [C, C] counts (rows = true class) of each model and fusion
    tables.md, tables/*.tex      the tables in Markdown and LaTeX (report/report.tex inputs them)
    figures/*.png, figures/*.pdf the figures
    report.pdf                   all of it, typeset with reportlab (no LaTeX needed)

``--summarize DIR1 DIR2 DIR3`` instead reads three splits' report folders and writes the mean and
standard deviation over the splits (summary.md, summary.tex, summary.json, summary.pdf, figures/).
``--heads NAME=TEST_DIR ...`` instead reads the tests of models with verb and noun heads and writes heads.md,
heads.json, figures/heads_*.png and heads_report.pdf (``actionrec.reporting.head_report``).

The work is done by the library: actionrec/evaluation (reading, scoring, fusing: ``combiner``) and
actionrec/reporting (tables, sentences, figures, the PDF, ``split_summary``). A user mistake is one line
on stderr and exit status 2 (``engine.run_main``).

Example (five models, fusion weights chosen on the validation groups 8-10):
    python combine_results.py --data-dir data --split 1 \\
        --model single_frame=runs/split1/single_frame/predictions --model tsn=runs/split1/tsn/predictions \\
        --model 3d=runs/split1/3d/predictions --model c3d=runs/split1/c3d/predictions \\
        --model rnn=runs/split1/rnn/predictions \\
        --val single_frame=runs/split1/single_frame/val_predictions --val 3d=runs/split1/3d/val_predictions \\
        --fuse single_frame,3d --fuse all --weights auto --output-dir runs/split1/report
"""
import argparse

from actionrec import guards
from actionrec.data import datasets, video_groups
from actionrec.engine import runner
from actionrec.evaluation import bootstrap, calibration, combiner, head_fusion, inputs
from actionrec.evaluation import fusion as score_fusion
from actionrec.reporting import console, head_report, outputs, split_summary


def summarize(args):
    """--summarize: the mean over the splits of finished reports."""
    given = [flag for flag, value in (("--model", args.model), ("--single-frame", args.single_frame),
                                      ("--3d", args.three_d), ("--val", args.val), ("--fuse", args.fuse)) if value]
    if given:
        raise guards.UserError(f"--summarize reads finished report folders; it takes no {', '.join(given)}")
    if len(args.summarize) < 2:
        raise guards.UserError("--summarize needs the report folders of two splits or more (e.g. three: split 1, 2 "
                               "and 3)")
    guards.check_output_paths({"--output-dir": args.output_dir}, {"--summarize": args.summarize})
    summary = split_summary.summarize_splits(args.summarize)
    split_summary.write_summary(summary, args.output_dir)
    return summary


def heads(args):
    """--heads: the verb / noun / action report of models trained on an annotation CSV."""
    given = [flag for flag, value in (("--model", args.model), ("--single-frame", args.single_frame),
                                      ("--3d", args.three_d), ("--fuse", args.fuse), ("--summarize", args.summarize))
             if value]
    if given:
        raise guards.UserError(f"--heads reads the test folders of models with label heads; it takes no "
                               f"{', '.join(given)}")
    named = [inputs.parse_named(text, "--heads") for text in args.heads]
    fusions = [head_fusion.parse_fusion(text, [name for name, _ in named]) for text in args.heads_fuse or []]
    val_dirs = dict(inputs.parse_named(text, "--heads-val") for text in args.heads_val or [])
    unknown = sorted(set(val_dirs) - {name for name, _ in named})
    if unknown:
        raise guards.UserError(f"--heads-val {', '.join(unknown)}: not a --heads name")
    guards.check_output_paths({"--output-dir": args.output_dir},
                              {"--heads": [folder for _, folder in named], "--heads-val": list(val_dirs.values())})
    return head_report.write_head_report(named, args.output_dir, fusions, val_dirs)


def main(args):
    print("arguments: " + " ".join(f"{k}={v}" for k, v in sorted(vars(args).items())), flush=True)
    inputs.check_output_folder(args.output_dir)
    if (args.heads_fuse or args.heads_val) and not args.heads:
        raise guards.UserError("--heads-fuse and --heads-val go with --heads models: give them with --heads "
                               "NAME=TEST_DIR")
    if args.heads:
        return heads(args)
    if args.summarize:
        return summarize(args)
    if not args.data_dir:
        raise guards.UserError("--data-dir is required (the dataset root holding ucfTrainTestlist/)")
    results, cms, logs = combiner.evaluate_split(args)
    results_path, report_path = outputs.write_outputs(results, cms, logs, args.output_dir)
    console.print_results(results)
    print(f"\nResults: {results_path}")
    print(f"Report:  {report_path} ({results['report']['pages']} pages, appendix from page "
          f"{results['report']['appendix_page']})")
    return results


def get_args_parser(add_help=True):
    parser = argparse.ArgumentParser(
        description="Evaluate and fuse the models' per-video predictions and write the report (results.json, "
                    "tables, figures, report.pdf); or, with --summarize, average finished reports over the splits.",
        add_help=add_help)
    parser.add_argument("--data-dir", default=None,
                        help="dataset root holding ucfTrainTestlist/ or testTrainMulti_7030_splits/ (the video folders "
                             "are not needed) (required unless --summarize)")
    parser.add_argument("--dataset", choices=datasets.DATASETS, default="auto", help=datasets.DATASET_HELP)
    parser.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="official split (default: 1)")
    parser.add_argument("--model", action="append", metavar="NAME=DIR",
                        help="a model's test prediction folder; repeat for each model; NAME is letters, digits, _ "
                             "and - (e.g. single_frame, tsn, 3d, c3d, rnn) (default: none)")
    parser.add_argument("--single-frame", metavar="DIR", help="shorthand for --model single_frame=DIR (default: none)")
    parser.add_argument("--3d", dest="three_d", metavar="DIR", help="shorthand for --model 3d=DIR (default: none)")
    add_fusion_flags(parser)
    add_report_flags(parser)
    return parser


def add_fusion_flags(parser: argparse.ArgumentParser) -> None:
    """Which fusions, by which rule and weights, chosen on which validation predictions."""
    parser.add_argument("--fuse", action="append", metavar="NAME,NAME,...|all",
                        help="a fusion to report, e.g. single_frame,3d or all; repeatable (default: one fusion of all "
                             "models when there are two or more)")
    parser.add_argument(
        "--fusion",
        action="append",
        choices=tuple(score_fusion.FUSION_RULES),
        help="fusion rule, once for every fusion or once per --fuse: logmean = weighted sum of the mean "
        "log-softmax scores, prob = weighted mean of the softmax distributions, max = element-wise "
        "max of the weighted distributions (default: logmean)",
    )
    parser.add_argument("--weights", action="append", metavar="W1,W2,...|auto|auto-top1|equal",
                        help="fusion weights in the order of the fusion's models, once for every fusion or once per "
                             "--fuse. auto: each model's scores calibrated by temperature scaling on its --val "
                             f"predictions (one temperature, fitted by NLL, in [{calibration.TEMPERATURE_RANGE[0]:g}, "
                             f"{calibration.TEMPERATURE_RANGE[1]:g}]), the weights chosen by the "
                             "validation NLL of the fused distribution (among weightings within one standard error "
                             "of the best NLL, which validation cannot tell apart: the highest top-1, then the "
                             "closest to equal weights): top-1 on a few "
                             "dozen videos cannot tell weightings apart and lets a sure, wrong model outvote a right "
                             "one. auto-top1: the rule before that (highest validation top-1 on the raw scores, ties "
                             "to equal weights), to reproduce older reports. Numbers and equal fuse the raw scores "
                             "as given, e.g. TSN's 1,1.5 (default: equal)")
    parser.add_argument("--val", action="append", metavar="NAME=DIR",
                        help="a model's validation prediction folder (test script with --subset val), for --weights "
                             "auto and the validation accuracy (default: none)")
    parser.add_argument("--val-groups", default=None,
                        help="the validation groups, e.g. 8-10, when the --val folders have no model.json. "
                             + video_groups.GROUPS_HELP.replace("%", "%%") + " (default: from their model.json)")
    parser.add_argument("--weight-step", type=float, default=None,
                        help="grid step of --weights auto/auto-top1 over the simplex of weights (default: 0.05 for "
                             "2-3 models, "
                             "0.1 for 4-6, 0.2 beyond)")
    parser.add_argument("--bootstrap", type=int, default=bootstrap.BOOTSTRAP_RESAMPLES,
                        help="resamples of the validation videos for the evidence of each fusion whose models all "
                             f"have --val predictions (default: {bootstrap.BOOTSTRAP_RESAMPLES})")
    parser.add_argument("--bootstrap-seed", type=int, default=0,
                        help="seed of the bootstrap: the same seed gives the same numbers (default: 0)")


def add_report_flags(parser: argparse.ArgumentParser) -> None:
    """The training logs of the learning curves, where the report goes, --summarize."""
    parser.add_argument("--log", action="append", metavar="NAME=PATH",
                        help="a model's training log.jsonl for the learning curves (default: model.json \"log\", "
                             "else <predictions dir>/../log.jsonl)")
    parser.add_argument("--logs", default=None,
                        help="older form: SF_LOG,3D_LOG for the single_frame and 3d models, either may be empty "
                             "(default: none)")
    parser.add_argument("--output-dir", default="report/", help="where to write the results (default: report/)")
    parser.add_argument("--heads", action="append", metavar="NAME=TEST_DIR",
                        help="instead of evaluating: the verb / noun / action report (heads.md, heads.json, "
                             "figures/heads_*.png, heads_report.pdf) of models trained with --annotations, from "
                             "the --output-dir of their test script; repeat per model, e.g. baseline=... "
                             "finetuned=... (default: none)")
    parser.add_argument("--heads-fuse", action="append", metavar="NAME=A+B[:W1,W2|:auto]",
                        help="with --heads: also report the fusion of the --heads models A, B, ... per head (the "
                             "weighted sum of their video scores, mean log-softmax; an action's score the product "
                             "of the fused heads' probabilities), e.g. both=rgb+motion; weights one per member "
                             "(default: equal), or auto: per head, each member's temperature and the weights of "
                             "lowest validation NLL, from --heads-val; repeatable")
    parser.add_argument("--heads-val", action="append", metavar="NAME=TEST_DIR",
                        help="the validation test (--subset val) of a --heads model, for --heads-fuse ...:auto "
                             "(default: none)")
    parser.add_argument("--summarize", nargs="+", metavar="REPORT_DIR", default=None,
                        help="instead of evaluating: read these report folders (one per split, each with its "
                             "results.json) and write the mean ± std over the splits to --output-dir (default: off)")


if __name__ == "__main__":
    runner.run_main(main, get_args_parser())
