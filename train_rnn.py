"""A GRU/LSTM over per-frame CNN features (Ng et al. 2015; the course notebook), trained by the engine.

    python extract_features.py --data-dir data --split 1 --subsets train,test --output-dir features/split1
    python train_rnn.py --features features/split1 --data-dir data --split 1 --output-dir runs/split1/rnn
    # a dataset of one's own (verb and noun heads): features of every segment of the CSV first
    python extract_features.py --annotations mydata/annotations.csv --videos mydata/videos --output-dir features/own
    python train_rnn.py --features features/own --annotations mydata/annotations.csv --videos mydata/videos \
        --keep-best val_loss --output-dir runs/own/rnn

No CNN runs during training: a step reads a batch of feature sequences (float16 [frames, 2048] per video,
from extract_features.py) through the loader pool, pads them to the batch's longest and packs them, so
padding never changes a prediction. A training sample is a random window of up to --max-frames steps
at a random offset of --frame-stride; the evaluation uses each video's middle window. Defaults are the
course notebook's (GRU, 2 x 256, Adam 1e-3, gradient norm clipped at 1, batch 256), without its fault:
it classified from the output at the last padded step, which is zero for every video shorter than its
window, and stayed near 24% training accuracy. A batch costs batch x longest window x dims x 2 bytes:
256 x 250 x 2048 x 2 = 262 MB at most, once in /dev/shm and once in the training process.
Same output folder, resume, signal, DDP and TensorBoard behaviour as the other training scripts.
With --annotations the GRU gets a verb and a noun head (engine/label_heads.py), split, trained and
checkpointed as every other model with heads; --frame-loss then adds both heads' loss at every step.
"""

import argparse

from actionrec.engine import cli_flags, model_io, runner, training
from actionrec.models import feature_rnn
from actionrec.zoo import rnn_nets


def get_args_parser():
    parser = argparse.ArgumentParser(
        description="Train a GRU/LSTM on per-frame CNN features (extract_features.py) of UCF-101 videos, or of the "
                    "segments of an annotation CSV with a verb and a noun head.",
        parents=[cli_flags.common_parser(), cli_flags.annotation_parser(),
                 cli_flags.train_parser({"output_dir": "runs/split1/rnn", "batch_size": 256, "trainable": "all",
                                      "lr": 1e-3, "clip_grad_norm": 1.0})])
    rnn_nets.add_model_flags(parser)
    return parser


def main(args):
    cli_flags.fill_defaults(args)
    info = rnn_nets.read_features_info(args.features)
    args.input_size = info["dims"]
    return training.train(args, rnn_nets.build_model, "features", model_io.FeatureInput(),
                        loader_kwargs={"max_frames": args.max_frames, "frame_stride": args.frame_stride},
                        head=feature_rnn.HEAD, paths_of=rnn_nets.feature_paths(args.features, check=True),
                        forward=model_io.Forward(model_io.FeatureInput(), frame_loss=args.frame_loss))


if __name__ == "__main__":
    runner.run_main(main, get_args_parser())
