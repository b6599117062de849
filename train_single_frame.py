"""Part 1: fine-tune an ImageNet ResNet-50 on single frames of UCF-101; with --segments K, TSN.

    python train_single_frame.py --data-dir data --output-dir runs/split1/single_frame
    torchrun --nproc_per_node 4 train_single_frame.py --data-dir data --output-dir ...
    # TSN (Wang et al. 2016), RGB, the tsn-pytorch recipe on a ResNet-50:
    python train_single_frame.py --segments 3 --dropout 0.8 --partial-bn --trainable all \
        --optimizer sgd --lr 1e-3 --weight-decay 5e-4 --lr-schedule step --lr-steps 30,60 --epochs 80 \
        --clip-grad-norm 20 --output-dir runs/split1/tsn
    # The motion stream (after extract_flow.py): TSN flow, tsn-pytorch's recipe on a ResNet-50
    python train_single_frame.py --modality flow --new-length 5 --segments 3 --dropout 0.7 --partial-bn \
        --trainable all --optimizer sgd --lr 1e-3 --weight-decay 5e-4 --lr-schedule step --lr-steps 190,300 \
        --epochs 340 --batch-size 128 --clip-grad-norm 20 --output-dir runs/split1/tsn_flow
    # RGB difference (TSN's README: 7 segments), frames differenced on the fly
    python train_single_frame.py --modality rgbdiff --segments 7 --dropout 0.8 --partial-bn ... \
        --output-dir runs/split1/tsn_rgbdiff

A TSN training sample is K frames of one video, one at a random offset in each of K equal segments,
all with the same augmentation; the backbone runs on all of them and the K logit vectors are averaged
before the loss (segmental consensus). With --modality flow (or rgbdiff) each frame is a snippet: L
consecutive flow fields (L + 1 frames) stacked as channels (actionrec/data/motion.py). Either way the
checkpoint holds a per-frame model, tested by test_single_frame.py. Runs again on the same --output-dir
continue from its checkpoint.pth (also after SIGTERM/SIGUSR1).
"""

import argparse

from actionrec import guards
from actionrec.data import motion
from actionrec.engine import cli_flags, model_io, runner, training
from actionrec.zoo import frame_nets


def get_args_parser():
    parser = argparse.ArgumentParser(
        description="Fine-tune an ImageNet ResNet-50 on single UCF-101 frames (part 1).",
        parents=[cli_flags.common_parser(), cli_flags.flow_parser(), cli_flags.annotation_parser(),
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
    try:
        args.new_length = motion.resolve_new_length(args.modality, args.new_length)
    except ValueError as e:
        raise guards.UserError(str(e)) from None
    if args.modality == "flow" and args.flow_dir is None:
        args.flow_dir = motion.default_flow_dir(args)
    normalize = model_io.modality_input(args.modality, args.new_length)
    kind = motion.sample_kind(args.modality, args.segments)
    return training.train(
        args,
        frame_nets.build_model,
        kind,
        normalize,
        loader_kwargs=motion.loader_kwargs(args.modality, args.segments, args.new_length),
        eval_kwargs=None if kind == "frame" else {"centres": True},
        forward=model_io.Forward(normalize, segments=args.segments),
        paths_of=motion.input_paths(args.modality, args.flow_dir, args),
    )


if __name__ == "__main__":
    runner.run_main(main, get_args_parser())
