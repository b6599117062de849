"""Test the GRU/LSTM of train_rnn.py on the whole feature sequence of every test video.

    python test_rnn.py --checkpoint runs/split1/rnn/checkpoint.pth --features features/split1 \
        --predictions-dir runs/split1/rnn/predictions --output-dir runs/split1/rnn/test

Each video's sequence (every --frame-stride-th feature row, as in training) is cut into consecutive
windows of at most --max-frames steps, one row of logits each; the windows of a video are padded and
packed together, so the predictions do not depend on --batch-size. Same prediction files, results.json,
confusion_matrix.npy, model.json, resume and signals as the other test scripts.
"""
import argparse

import numpy as np
import torch

import engine
import train_rnn


def get_args_parser():
    parser = argparse.ArgumentParser(
        description="Test the recurrent model on the per-frame features of every test video.",
        parents=[engine.common_parser(), engine.test_parser({"batch_size": 64, "unit": "windows",
                                                        "chunk_frames": None, "crops": False})])
    g = parser.add_argument_group("features")
    g.add_argument("--features", default=None,
                   help="folder written by extract_features.py (default: the training run's)")
    g.add_argument("--max-frames", type=engine.positive_int, default=None,
                   help="steps per window (default: the training run's)")
    return parser


def window_plan(frame_stride):
    def plan(frames):  # one chunk per video: all of its (strided) feature rows
        return [np.arange(0, frames, frame_stride)]
    return plan


def window_logits(max_frames, batch_size):
    def rows(model, features, normalize):  # float16 (steps, dims) -> logits (windows, classes)
        windows = list(torch.split(features, max_frames))
        lengths = torch.tensor([len(w) for w in windows])
        padded = torch.nn.utils.rnn.pad_sequence(windows, batch_first=True)  # (windows, longest, dims)
        return torch.cat([model(normalize(padded[i:i + batch_size]), lengths[i:i + batch_size])
                          for i in range(0, len(windows), batch_size)])
    return rows


def load_model(checkpoint, trained, ranks, path, dims):
    """(the trained RNN of a checkpoint on the CPU, its window length, its feature stride), for features
    of `dims` values per frame (which must be what it was trained on)."""
    if dims != trained.get("input_size"):
        raise engine.UserError(f"{path}: the features hold {dims} values per frame, but the checkpoint's model reads "
                               f"{trained.get('input_size')}: use the features it was trained on")
    engine.check_trained_args(trained, train_rnn.get_args_parser(), path, (
        "cell", "layers", "hidden", "bidirectional", "dropout", "head", "max_frames", "frame_stride", "features"))
    model_args = argparse.Namespace(**{k: trained.get(k, d) for k, d in (
        ("input_size", dims), ("cell", "gru"), ("layers", 2), ("hidden", 256), ("bidirectional", False),
        ("dropout", 0.0), ("head", "last"))})
    model = engine.rebuild_model(train_rnn.build_model, model_args, len(checkpoint["class_list"]), ranks, path)
    engine.load_model_state(model, checkpoint.pop("model"), path)
    return model, trained.get("max_frames", 250), trained.get("frame_stride", 1)


def describe(trained, info, max_frames, stride):
    """model.json's identity and test settings of an RNN tested in windows of max_frames steps, reading
    every stride-th feature of features.json `info`."""
    cell = trained.get("cell", "gru")
    description = (f"whole sequence in windows of at most {max_frames} steps"
                   + (f", every {stride}th feature" if stride > 1 else "") + f" ({info['arch']} features)")
    return {"name": "rnn", "title": f"{cell.upper()} over {info['arch']} features", "kind": "features",
            "temporal": True, "arch": cell, "rows": "windows",
            "test": {"description": description, "mode": "windows", "max_frames": max_frames,
                     "frame_stride": stride, "features": info}}


def main(args):
    ranks = engine.Dist()
    checkpoint, trained = engine.load_trained(args, ranks, "features")
    engine.fill_defaults(args, trained)
    args.features = args.features or trained.get("features")
    if not args.features:
        raise engine.UserError("--features is needed: the checkpoint does not say where its features are")
    info = train_rnn.read_features_info(args.features)
    model, max_frames, stride = load_model(checkpoint, trained, ranks, args.checkpoint, info["dims"])
    args.max_frames = args.max_frames or max_frames
    return engine.test_videos(
        args, checkpoint, model, engine.FeatureInput(), window_plan(stride), None,
        window_logits(args.max_frames, args.batch_size), describe(trained, info, args.max_frames, stride),
        paths_of=train_rnn.feature_paths(args.features))


if __name__ == "__main__":
    engine.run_main(main, get_args_parser())
