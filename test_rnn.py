"""Test the GRU/LSTM of train_rnn.py on the whole feature sequence of every test video.

    python test_rnn.py --checkpoint runs/split1/rnn/checkpoint.pth --features features/split1 \
        --predictions-dir runs/split1/rnn/predictions --output-dir runs/split1/rnn/test
    # a GRU with verb and noun heads (train_rnn.py --annotations): the CSV, videos and split are the checkpoint's
    python test_rnn.py --checkpoint runs/own/rnn/best.pth --subset val \
        --predictions-dir runs/own/rnn/predictions --output-dir runs/own/rnn/test

Each video's sequence (every --frame-stride-th feature row, as in training) is cut into consecutive
windows of at most --max-frames steps, one row of logits each; the windows of a video are padded and
packed together, so the predictions do not depend on --batch-size. Same prediction files, results.json,
confusion_matrix.npy, model.json, resume and signals as the other test scripts (with label heads: both
heads' logits side by side, results.json per head and for actions, confusion_matrix_<head>.npy).
"""

import argparse

from actionrec import guards
from actionrec.engine import arg_types, cli_flags, devices, model_io, runner, trained_model, video_test
from actionrec.inference import rnn_views
from actionrec.zoo import rnn_nets


def get_args_parser():
    parser = argparse.ArgumentParser(
        description="Test the recurrent model on the per-frame features of every test video.",
        parents=[cli_flags.common_parser(), cli_flags.annotation_parser(test=True),
                 cli_flags.test_parser({"batch_size": 64, "unit": "windows", "chunk_frames": None, "crops": False})])
    g = parser.add_argument_group("features")
    g.add_argument("--features", default=None,
                   help="folder written by extract_features.py (default: the training run's)")
    g.add_argument("--max-frames", type=arg_types.positive_int, default=None,
                   help="steps per window (default: the training run's)")
    return parser


def main(args):
    ranks = devices.Dist()
    checkpoint, trained = trained_model.load_trained(args, ranks, "features")
    cli_flags.fill_defaults(args, trained)
    args.features = args.features or trained.get("features")
    if not args.features:
        raise guards.UserError("--features is needed: the checkpoint does not say where its features are")
    info = rnn_nets.read_features_info(args.features)
    model, max_frames, stride = rnn_views.load_model(checkpoint, trained, ranks, args.checkpoint, info["dims"])
    args.max_frames = args.max_frames or max_frames
    return video_test.test_videos(
        args,
        checkpoint,
        model,
        model_io.FeatureInput(),
        rnn_views.window_plan(stride),
        None,
        rnn_views.window_logits(args.max_frames, args.batch_size),
        rnn_views.describe(trained, info, args.max_frames, stride),
        paths_of=rnn_nets.feature_paths(args.features),
    )


if __name__ == "__main__":
    runner.run_main(main, get_args_parser())
