"""Part 1 test: every frame (or N frames) of every test video through the single-frame or TSN model.

    python test_single_frame.py --checkpoint runs/split1/single_frame/checkpoint.pth \
        --predictions-dir runs/split1/single_frame/predictions --output-dir runs/split1/single_frame/test
    # TSN's test: 25 frames at the segment centres, 10 crops each
    python test_single_frame.py --checkpoint runs/split1/tsn/checkpoint.pth --frames 25 --crops 10 ...
    # the motion stream: the modality and L come from the checkpoint; 25 snippets x 10 crops as TSN
    python test_single_frame.py --checkpoint runs/split1/tsn_flow/checkpoint.pth --frames 25 --crops 10 ...

Writes one prediction file per video (float32 logits [frames, classes], averaged over the crops),
then results.json, confusion_matrix.npy and model.json. A rerun skips videos that already have
their file, so a killed test resumes.
"""

import argparse

from actionrec import guards
from actionrec.data import motion
from actionrec.engine import arg_types, cli_flags, devices, model_io, runner, trained_model, video_test
from actionrec.flow import recorded
from actionrec.inference import frame_views


def get_args_parser():
    parser = argparse.ArgumentParser(
        description="Test the single-frame (or TSN) model on the frames of every test video (part 1).",
        parents=[cli_flags.common_parser(), cli_flags.flow_parser(), cli_flags.annotation_parser(test=True),
                 cli_flags.test_parser({"batch_size": 100, "unit": "frames", "chunk_frames": 100})])
    g = parser.add_argument_group("frames")
    g.add_argument("--frames", type=arg_types.non_negative_int, default=0,
                   help="N frames per video at the segment centres, int((k + 0.5) * T / N) (TSN's test: 25); "
                        "0 = every frame, as does a video of at most N frames (default: 0, the assignment's test); "
                        "a flow or rgbdiff model: N snippets, centres of the snippet positions")
    return parser


def main(args):
    ranks = devices.Dist()
    checkpoint, trained = trained_model.load_trained(args, ranks, "frame")
    cli_flags.fill_defaults(args, trained)
    if args.frames < 0:
        raise guards.UserError(f"--frames must be 0 (every frame) or a positive count, not {args.frames}")
    model = frame_views.load_model(checkpoint, trained, ranks, args.checkpoint)
    modality, new_length = frame_views.modality_of(trained)
    if args.flow_dir is None:
        args.flow_dir = motion.flow_dir_of_test(args, trained)
    for key in recorded.ARG_KEYS:  # the training flow's settings: the test's flow files must have them
        setattr(args, key, trained.get(key))
    chunk = motion.chunk_snippets(args.chunk_frames, modality, new_length)
    return video_test.test_videos(
        args,
        checkpoint,
        model,
        model_io.modality_input(modality, new_length),
        frame_views.frame_plan(args.frames, chunk),
        chunk,
        frame_views.frame_logits(args.batch_size, args.crops),
        frame_views.describe(trained, args),
        paths_of=motion.input_paths(modality, args.flow_dir, args),
        reader=motion.snippet_reader(modality, new_length),
    )


if __name__ == "__main__":
    runner.run_main(main, get_args_parser())
