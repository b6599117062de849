"""Part 1: fine-tune an ImageNet ResNet-50 on single frames of UCF-101; with --segments K, TSN.

    python train_single_frame.py --data-dir data --output-dir runs/split1/single_frame
    torchrun --nproc_per_node 4 train_single_frame.py --data-dir data --output-dir ...
    # TSN (Wang et al. 2016), RGB, the tsn-pytorch recipe on a ResNet-50:
    python train_single_frame.py --segments 3 --dropout 0.8 --partial-bn --trainable all \
        --optimizer sgd --lr 1e-3 --weight-decay 5e-4 --lr-schedule step --lr-steps 30,60 --epochs 80 \
        --clip-grad-norm 20 --output-dir runs/split1/tsn

A TSN training sample is K frames of one video, one at a random offset in each of K equal segments,
all with the same augmentation; the backbone runs on all of them and the K logit vectors are averaged
before the loss (segmental consensus). Either way the checkpoint holds a per-frame model, tested by
test_single_frame.py. Runs again on the same --output-dir continue from its checkpoint.pth (also
after SIGTERM/SIGUSR1).
"""

import argparse

from actionrec import guards
from actionrec.data import normalization
from actionrec.engine import cli_flags, model_io, runner, training
from actionrec.zoo import frame_nets


def get_args_parser():
    parser = argparse.ArgumentParser(
        description="Fine-tune an ImageNet ResNet-50 on single UCF-101 frames (part 1).",
        parents=[cli_flags.common_parser(),
                 cli_flags.train_parser({"output_dir": "runs/split1/single_frame", "batch_size": 100,
                                      "trainable": None,
                                      "trainable_help": "layer4.2,fc: the last block of layer4 and the classifier"})])
    frame_nets.add_model_flags(parser)
    return parser


def main(args):
    cli_flags.fill_defaults(args)
    if args.trainable is None:  # the assignment's: the last block of layer4 and the classifier
        args.trainable = "layer4.1,fc" if args.arch == "resnet18" else "layer4.2,fc"
    if not 0 <= args.dropout < 1:
        raise guards.UserError(f"--dropout must be in [0, 1), not {args.dropout}")
    normalize = model_io.Normalize(normalization.FRAME_MEAN, normalization.FRAME_STD)
    if args.segments == 1:
        return training.train(args, frame_nets.build_model, "frame", normalize)
    return training.train(
        args,
        frame_nets.build_model,
        "segments",
        normalize,
        loader_kwargs={"segments": args.segments},
        eval_kwargs={"centres": True},
        forward=model_io.Forward(normalize, segments=args.segments),
    )


if __name__ == "__main__":
    runner.run_main(main, get_args_parser())
