"""A GRU/LSTM over per-frame CNN features (Ng et al. 2015; the course notebook), trained by the engine.

    python extract_features.py --data-dir data --split 1 --subsets train,test --output-dir features/split1
    python train_rnn.py --features features/split1 --data-dir data --split 1 --output-dir runs/split1/rnn

No CNN runs during training: a step reads a batch of feature sequences (float16 [frames, 2048] per video,
from extract_features.py) through the loader pool, pads them to the batch's longest and packs them, so
padding never changes a prediction. A training sample is a random window of up to --max-frames steps
at a random offset of --frame-stride; the evaluation uses each video's middle window. Defaults are the
course notebook's (GRU, 2 x 256, Adam 1e-3, gradient norm clipped at 1, batch 256), without its fault:
it classified from the output at the last padded step, which is zero for every video shorter than its
window, and stayed near 24% training accuracy. A batch costs batch x longest window x dims x 2 bytes:
256 x 250 x 2048 x 2 = 262 MB at most, once in /dev/shm and once in the training process.
Same output folder, resume, signal, DDP and TensorBoard behaviour as the other training scripts.
"""
import argparse
import json
import os

import engine
import feature_rnn
import helperFunctions as hf
from actionrec.evaluation import predictions as prediction_files

FEATURES_INFO = "features.json"


def read_features_info(features_dir):
    """features.json of an extract_features.py folder (dims, weights, stride), or a one-line error."""
    path = os.path.join(features_dir, FEATURES_INFO)
    if not os.path.isdir(features_dir):
        raise engine.UserError(f"--features {features_dir}: no such folder (make it with extract_features.py)")
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except FileNotFoundError:
        raise engine.UserError(f"--features {features_dir}: no {FEATURES_INFO}, so not a folder written by "
                               f"extract_features.py") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise engine.UserError(f"{path} is not readable JSON ({engine.one_line(e)})") from None
    if not isinstance(info, dict) or not isinstance(info.get("dims"), int) or info["dims"] <= 0:
        raise engine.UserError(f"{path} does not say the feature size (dims): extract the features again")
    return info


def feature_paths(features_dir):
    """Video paths -> their feature files (same <Class>/<video>.hdf5), as the loaders read them."""
    def paths_of(paths):
        return [prediction_files.prediction_path(features_dir, p) for p in paths]
    return paths_of


def check_features_exist(features_dir, paths, what):
    missing = [p for p in feature_paths(features_dir)(paths) if not os.path.isfile(p)]
    if missing:
        raise engine.UserError(f"--features {features_dir}: {len(missing)} of the {len(paths)} {what} videos have no "
                               f"feature file (e.g. {missing[0]}): run extract_features.py for them")


def build_model(args, num_classes, ranks, pretrained=True):
    try:
        return feature_rnn.FeatureRNN(input_size=args.input_size, num_classes=num_classes, cell=args.cell,
                                      layers=args.layers, hidden=args.hidden, bidirectional=args.bidirectional,
                                      dropout=args.dropout, head=args.head)
    except ValueError as e:
        raise engine.UserError(str(e)) from None


def get_args_parser():
    parser = argparse.ArgumentParser(
        description="Train a GRU/LSTM on per-frame CNN features of UCF-101 videos (extract_features.py).",
        parents=[engine.common_parser(),
                 engine.train_parser({"output_dir": "runs/split1/rnn", "batch_size": 256, "trainable": "all",
                                      "lr": 1e-3, "clip_grad_norm": 1.0})])
    g = parser.add_argument_group("model")
    g.add_argument("--features", required=True, help="folder written by extract_features.py (required)")
    g.add_argument("--cell", choices=feature_rnn.CELLS, default="gru", help="recurrent cell (default: gru)")
    g.add_argument("--layers", type=engine.positive_int, default=2, help="recurrent layers (default: 2)")
    g.add_argument("--hidden", type=engine.positive_int, default=256, help="units per layer (default: 256)")
    g.add_argument("--bidirectional", action="store_true", help="a bidirectional RNN (default: off)")
    g.add_argument("--dropout", type=float, default=0.0,
                   help="dropout between the recurrent layers and before the classifier (default: 0)")
    g.add_argument("--max-frames", type=engine.positive_int, default=250,
                   help="longest sequence a sample holds, in steps (the notebook's 10 s at 25 fps) (default: 250)")
    g.add_argument("--frame-stride", type=engine.positive_int, default=1,
                   help="use every N-th feature row, from a random offset while training (default: 1)")
    g.add_argument("--head", choices=feature_rnn.HEADS, default="last",
                   help="last: the state at each video's own last frame; mean: the mean of its valid outputs "
                        "(default: last)")
    g.add_argument("--frame-loss", action="store_true",
                   help="add the loss of the classifier at every valid step to the video's loss (default: off)")
    return parser


def main(args):
    engine.fill_defaults(args)
    info = read_features_info(args.features)
    args.input_size = info["dims"]
    try:
        _, train, test = hf.get_split(args.data_dir, args.split, "hdf5", args.dataset)
    except (FileNotFoundError, ValueError) as e:
        raise engine.UserError(str(e)) from None
    check_features_exist(args.features, train[0], "training")
    if not args.val_groups:
        check_features_exist(args.features, test[0], "test")
    return engine.train(args, build_model, "features", engine.FeatureInput(),
                        loader_kwargs={"max_frames": args.max_frames, "frame_stride": args.frame_stride},
                        head=feature_rnn.HEAD, paths_of=feature_paths(args.features),
                        forward=engine.Forward(engine.FeatureInput(), frame_loss=args.frame_loss))


if __name__ == "__main__":
    engine.run_main(main, get_args_parser())
