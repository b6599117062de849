"""The GRU/LSTM over a folder of per-frame features: the folder's features.json, its feature files, the model."""
import argparse
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

from actionrec import guards
from actionrec.data import feature_files
from actionrec.engine import arg_types, devices, runner
from actionrec.evaluation import predictions as prediction_files
from actionrec.models import feature_rnn


def read_features_info(features_dir: str) -> dict[str, Any]:
    """features.json of an extract_features.py folder (dims, weights, stride), or a one-line error."""
    path = os.path.join(features_dir, feature_files.FEATURES_INFO)
    if not os.path.isdir(features_dir):
        raise guards.UserError(f"--features {features_dir}: no such folder (make it with extract_features.py)")
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except FileNotFoundError:
        raise guards.UserError(
            f"--features {features_dir}: no {feature_files.FEATURES_INFO}, so not a folder written by "
            f"extract_features.py"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise guards.UserError(f"{path} is not readable JSON ({runner.one_line(e)})") from None
    if not isinstance(info, dict) or not isinstance(info.get("dims"), int) or info["dims"] <= 0:
        raise guards.UserError(f"{path} does not say the feature size (dims): extract the features again")
    return info


def feature_paths(features_dir: str, check: bool = False) -> Callable[[Sequence[str]], list[str]]:
    """Video paths -> their feature files (same <Class>/<video>.hdf5), as the loaders read them; with
    check, a file missing is a UserError (what training reads must all be there)."""
    def paths_of(paths: Sequence[str]) -> list[str]:
        found = [prediction_files.prediction_path(features_dir, p) for p in paths]
        missing = [p for p in found if check and not os.path.isfile(p)]
        if missing:
            raise guards.UserError(f"--features {features_dir}: {len(missing)} of the {len(paths)} videos have no "
                                   f"feature file (e.g. {missing[0]}): run extract_features.py for them")
        return found
    return paths_of


def build_model(
    args: argparse.Namespace, num_classes: int, ranks: devices.Dist, pretrained: bool = True
) -> feature_rnn.FeatureRNN:
    try:
        return feature_rnn.FeatureRNN(input_size=args.input_size, num_classes=num_classes, cell=args.cell,
                                      layers=args.layers, hidden=args.hidden, bidirectional=args.bidirectional,
                                      dropout=args.dropout, head=args.head)
    except ValueError as e:
        raise guards.UserError(str(e)) from None


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that define the model: the training script's, and checked again (cli_flags.flags_alone) when a
    checkpoint is read back for testing."""
    g = parser.add_argument_group("model")
    g.add_argument("--features", required=True, help="folder written by extract_features.py (required)")
    g.add_argument("--cell", choices=feature_rnn.CELLS, default="gru", help="recurrent cell (default: gru)")
    g.add_argument("--layers", type=arg_types.positive_int, default=2, help="recurrent layers (default: 2)")
    g.add_argument("--hidden", type=arg_types.positive_int, default=256, help="units per layer (default: 256)")
    g.add_argument("--bidirectional", action="store_true", help="a bidirectional RNN (default: off)")
    g.add_argument("--dropout", type=float, default=0.0,
                   help="dropout between the recurrent layers and before the classifier (default: 0)")
    g.add_argument("--max-frames", type=arg_types.positive_int, default=250,
                   help="longest sequence a sample holds, in steps (the notebook's 10 s at 25 fps) (default: 250)")
    g.add_argument("--frame-stride", type=arg_types.positive_int, default=1,
                   help="use every N-th feature row, from a random offset while training (default: 1)")
    g.add_argument("--head", choices=feature_rnn.HEADS, default="last",
                   help="last: the state at each video's own last frame; mean: the mean of its valid outputs "
                        "(default: last)")
    g.add_argument("--frame-loss", action="store_true",
                   help="add the loss of the classifier at every valid step to the video's loss (default: off)")
