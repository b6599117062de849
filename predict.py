"""What do the trained models say about *my* video, and where do they look?

    python predict.py my_video.mp4 --checkpoint runs/split1/3d/checkpoint.pth
    python predict.py a.avi b.hdf5 --checkpoint runs/split1/single_frame/checkpoint.pth \\
        --checkpoint runs/split1/3d/checkpoint.pth --weights runs/split1/report/results.json --json
    python predict.py a.avi --checkpoint runs/split1/tsn/checkpoint.pth --explain explain/
    # a model with verb and noun heads (trained with --annotations): top verbs, nouns and actions
    python predict.py my_segment.mp4 --checkpoint runs/own/tsn/best.pth --explain explain/ --explain-head noun

Every video goes through every checkpoint the way its test script tests it (one view per frame or
window unless --crops; a flow model on the flow computed from the video as in its training) and gets,
per model, its top classes with probabilities (the softmax of the video score,
evaluation/scores.video_score: the mean log-softmax over the rows), plus the fusion of the models by
combine_results.py's rule. A model with label heads (verb, noun) gets its top classes per head (a
softmax each) and its top actions (a (verb, noun) pair's probability: the product of the two). Nothing
is written except the --explain maps (and a flow model's flow of the video, in a temporary folder
removed after it).
"""
import argparse
import sys

import cv2

from actionrec import guards
from actionrec.data import annotations, split_lists, video_chunks
from actionrec.engine import arg_types, devices, runner
from actionrec.evaluation import fusion as score_fusion
from actionrec.inference import fusion, prediction_run, predictor

EPILOG = """\
how each checkpoint kind is run (the way its test script tests it, one view per frame or window unless
--crops):
  single frame / TSN  every frame, or --frames N frames at the segment centres int((k + 0.5) * T / N)
                      (test_single_frame.py), --crops views each (TSN's test: --frames 25 --crops 10);
                      one row of logits per frame
  flow / RGB diff.    the same over snippets (test_single_frame.py for --modality flow / rgbdiff): L
                      stacked fields of the video's optical flow, which is computed here by
                      extract_flow.py's code with the method, size, bound and storage of the model's
                      training flow (recorded in its checkpoint; a checkpoint from before they were
                      recorded gets extract_flow.py's defaults, dis-medium 340x256 bound 20 raw, and
                      a line on stderr), in a temporary folder removed after the video; or L + 1
                      frames whose L differences the model sees. Two streams as TSN fuses them:
                      --checkpoint RGB --checkpoint FLOW --weights 1,1.5
  3D ResNet / C3D     every window of the training clip length at --stride, as test_3d.py --mode
                      sliding: windows are what the models were trained on (clips of clip_len
                      frames; --mode full shows a 3D ResNet a whole video, longer than any input it
                      saw, and C3D's fc6 takes one clip only); a video shorter than a clip is
                      looped; one row per window
  RNN                 its checkpoint names the features folder of its training run; that folder's
                      features.json says which CNN made them ("imagenet (resnet50)", an ImageNet
                      weights file or a part-1 checkpoint): that CNN is rebuilt and makes the video's
                      features here (its image size and frame stride), then the RNN runs over
                      consecutive windows of its training length, as test_rnn.py; one row per window

probabilities:
  a model's   softmax of its video score (mean log-softmax over its rows)
  --fusion logmean  softmax of the fused score sum_i w_i * s_i (weights as given: they act as a
                    temperature, so 0.5,0.5 is the geometric mean of the models' distributions)
  --fusion prob     sum_i w_i * softmax(s_i), weights normalised to sum 1 (sums to 1)
  --fusion max      max_i w_i * softmax(s_i), weights normalised to sum 1 (sums to at most 1;
                    not renormalised, as combine_results.py ranks it)
  with --weights PATH/results.json of combine_results.py --weights auto, each s_i is the model's video
  score divided by its recorded temperature T_i (temperature scaling fitted on validation videos)
  label heads  a model trained with --annotations has a verb head and a noun head side by side: each
               head's probabilities are the softmax of its own video score (the mean log-softmax of its
               outputs over the rows), fused head by head; an action (verb, noun)'s probability is the
               product of its verb's and its noun's (evaluation/head_scores.py), so the top action is
               the top verb with the top noun. The table has a block per head and one for the actions
               (their first column headed verb, noun, action instead of rank)
  Ties rank the lower class index (classInd order) first.

several checkpoints: the first one that loads sets the class list; a later checkpoint of another
class list (names or order) is left out with one line on stderr, as is an unreadable one; the others
still run, and the exit status is 1. --weights W1,W2,... gives one weight per --checkpoint in order
(a left-out checkpoint's weight is dropped); --weights PATH/results.json takes the rule, weights and
temperatures (--weights auto: each model's scores are divided by its temperature before the weights
apply) that combine_results.py recorded for a fusion of exactly the checkpoints that load. Each checkpoint is
matched to a model of the results.json by checkpoint path (model.json) or else by model name, and
among several tests of one checkpoint to the one tested as predict.py tests it: in the same mode (a
3D checkpoint: test_3d.py --mode sliding, not --mode full), and of those the one with the same frames,
stride and crops if there is one. A line on stderr says which fusion and models it took, and any
setting in which a model's test differs from predict.py's. A model's name is its checkpoint's folder
(runs/split1/3d/checkpoint.pth -> 3d; another file name: its stem), made unique with -2, -3.

--explain OUT_DIR: Grad-CAM (gradcam.py) of each model for --explain-class (default: that model's own
top class; a model with label heads: of --explain-head's classes, verb unless told), written as
OUT_DIR/<video stem>.<model>.png (frames on top, heat maps below, each titled with its frame number
and the class) and OUT_DIR/<video stem>.<model>.npy, float32 maps in [0, 1] at
the model's input size (the whole frame resized to S x S, as the model saw it):
  2D models  [n, S, S]: n = min(--explain-frames, T) frames at the segment centres; layer4
  3D models  [clips, clip_len, S, S]: --explain-clips windows of clip_len frames centred on the
             segment centres (looped when the video is shorter); the last convolutional block that
             runs (gradcam.default_layer), upsampled in time and space; the PNG shows
             --explain-frames of those frames evenly spread
  RNN        [n, S, S], explained through its CNN's frames: for n = min(--explain-frames, steps) of
             the RNN's steps at the segment centres, the gradient of the RNN's logit (of the window
             holding the step) with respect to that frame's CNN layer4 activations
  flow / RGB diff.  [n, S, S]: n = min(--explain-frames, snippets) snippets at the segment centres
             of the snippet positions, the flow computed from the video again; layer4. Each map is
             drawn on the middle frame of its snippet (snippet i: frame i + L // 2), a map of the
             motion input shown on the video's own frame

CPU: a video is read in this process (a single video is not worth forked loader workers) and the
models run with torch's default threads (every core; on cores shared with other jobs, set
OMP_NUM_THREADS to your share: spinning threads that wait on each other are slower than fewer).
exit status: 0 all predicted; 1 a video failed, its Grad-CAM could not be made or a checkpoint was
left out (one line each on stderr, the rest predicted); 2 a usage error (bad flag, no usable
checkpoint, --weights that do not fit or an unmatched results.json).
"""


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="predict.py",
        description="Predict the action in videos of your own with trained checkpoints (any kind), fuse "
                    "them, and show where they look (Grad-CAM).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="+", metavar="VIDEO",
                        help=f"video files: the course's .hdf5 or {', '.join(split_lists.VIDEO_SUFFIXES)}")
    parser.add_argument("--checkpoint", action="append", required=True, metavar="CKPT",
                        help="checkpoint.pth of any training script; repeat for several models (required)")
    parser.add_argument("--top", type=arg_types.positive_int, default=5, metavar="K",
                        help="classes listed per model and for the fusion (default: 5)")
    parser.add_argument("--json", action="store_true",
                        help='one JSON object per video and line: {"path", "frames", "models": {name: '
                             '[[class, p], ...]}, "fused": [[class, p], ...] or null}; with label heads each '
                             'list is {"verb": [...], "noun": [...], "action": [["verb noun", p], ...]} '
                             '(default: a table)')
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                        help="auto: CUDA when present, else CPU with a warning (default: auto)")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                        help="mixed precision for the predictions (Grad-CAM runs in float32) "
                             "(default: on for CUDA, off on CPU)")
    f = parser.add_argument_group("fusion (two or more checkpoints)")
    f.add_argument("--fusion", choices=tuple(score_fusion.FUSION_RULES), default=None,
                   help="combine_results.py's fusion rule (default: logmean, or the rule --weights PATH records)")
    f.add_argument("--weights", default=None,
                   metavar="W1,W2,...|RESULTS_JSON",
                   help="W1,W2,... one non-negative weight per --checkpoint, or a combine_results.py results.json "
                        "(default: equal weights)")
    t = parser.add_argument_group("how the models see the video")
    t.add_argument("--frames", type=arg_types.non_negative_int, default=0,
                   metavar="N",
                   help="single frame / TSN: N frames at the segment centres; 0 = every frame (default: 0)")
    t.add_argument("--crops", type=int, choices=video_chunks.CROPS, default=1,
                   help="single frame / TSN / motion stream: views per frame or snippet, as test_single_frame.py "
                        "(3: left, centre, right; 10: TSN's corners and centre, each mirrored) (default: 1, the "
                        "whole frame)")
    t.add_argument("--raft-weights", default=None, metavar="FILE",
                   help="a flow model trained on RAFT flow (extract_flow.py --method raft-*): the RAFT weights "
                        "file to compute the video's flow with; never downloaded (default: none)")
    t.add_argument("--stride", type=arg_types.positive_int, default=8,
                   metavar="FRAMES",
                   help="3D models: stride of the sliding windows (default: 8)")
    t.add_argument("--batch-size", type=arg_types.positive_int, default=None,
                   metavar="N",
                   help="frames, windows or RNN windows per forward pass (default: the test scripts': 100 frames, "
                        "32 clips on CUDA and 8 on the CPU, 64 RNN windows)")
    t.add_argument("--image-size", type=arg_types.positive_int, default=None,
                   metavar="PIXELS",
                   help="frame size fed to every model (default: each checkpoint's training size; the RNN's CNN: "
                        "its features.json's)")
    add_explain_flags(parser)
    return parser


def add_explain_flags(parser: argparse.ArgumentParser) -> None:
    """The Grad-CAM flags."""
    e = parser.add_argument_group("explanations (Grad-CAM)")
    e.add_argument("--explain", default=None, metavar="OUT_DIR",
                   help="write <video stem>.<model>.png and .npy Grad-CAM maps here (default: off)")
    e.add_argument("--explain-class", default=None, metavar="NAME",
                   help="class to explain, a name of the class list (label heads: of --explain-head's classes) "
                        "(default: each model's top class)")
    e.add_argument("--explain-head", choices=annotations.LABELS, default=None,
                   help="a model with label heads: explain a class of this head, its own top class unless "
                        "--explain-class (default: verb)")
    e.add_argument("--explain-frames", type=arg_types.positive_int, default=8,
                   metavar="N",
                   help="2D models and the RNN: frames explained; 3D models: frames shown (default: 8)")
    e.add_argument("--explain-clips", type=arg_types.positive_int, default=2,
                   metavar="N",
                   help="3D models: clips explained, centred on the segment centres (default: 2)")


def main(args: argparse.Namespace) -> int:
    """Predict (and explain) every video with every checkpoint; the exit status (see the epilog)."""
    fusion.check_fusion_flags(args)  # usage errors before any model loads
    results_json = [args.weights] if args.weights and fusion.is_results_path(args.weights) else []
    guards.check_output_paths({"--explain": args.explain}, {
        "VIDEO": args.videos, "--checkpoint": args.checkpoint, "--weights": results_json})
    # OpenCV logs its own warning about a file FFmpeg cannot open; the one line of the video says it.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    ranks = devices.Dist()
    device = devices.resolve_device(args.device, ranks)
    amp = devices.amp_settings(args, device)
    predictors, kept, left_out = predictor.load_predictors(args, ranks, device, prediction_run.say)
    if not predictors:
        raise guards.UserError("no checkpoint could be used (see the lines above)")
    plan = fusion.plan_fusion(args, predictors, kept)
    target = prediction_run.explain_target(args, predictors[0].sets)
    taken = fusion.taken_from_results(plan, predictors)
    if taken:
        prediction_run.say(taken)
    failed = prediction_run.predict_videos(args, predictors, plan, target, ranks, device, amp)
    return 1 if failed or left_out else 0


if __name__ == "__main__":
    sys.exit(runner.run_main(main, get_args_parser()))
