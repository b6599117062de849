"""Part 2: fine-tune the Kinetics 3D ResNet-50 (Hara et al.) on 16-frame UCF-101 clips; or C3D.

    python train_3d.py --data-dir data --output-dir runs/split1/3d
        (reads data/resnet-50-kinetics.pth, the released checkpoint, by default)
    # C3D from its released Sports-1M weights (data/c3d-pretrained.pth), the released repository's recipe:
    python train_3d.py --arch c3d --optimizer sgd --lr 1e-3 --momentum 0.9 --weight-decay 5e-4 \\
        --head-lr-mult 10 --lr-schedule step --lr-steps every:10 --epochs 100 --batch-size 20 \\
        --output-dir runs/split1/c3d

Same output folder, resume, signal and DDP behaviour as train_single_frame.py.
"""

import argparse

from actionrec.engine import cli_flags, runner, training
from actionrec.models import c3d
from actionrec.zoo import clip_nets


def get_args_parser():
    parser = argparse.ArgumentParser(
        description="Fine-tune a Kinetics 3D ResNet-50 (or C3D) on 16-frame UCF-101 clips (part 2).",
        parents=[cli_flags.common_parser(), cli_flags.annotation_parser(),
                 cli_flags.train_parser({"output_dir": "runs/split1/3d", "batch_size": 32, "trainable": None,
                                      "trainable_help": "layer4.0,fc for the 3D ResNet (the first block of layer4 and "
                                                        "the classifier); all for C3D"})])
    clip_nets.add_model_flags(parser)
    return parser


def main(args):
    clip_nets.resolve_arch_defaults(args)
    cli_flags.fill_defaults(args)
    return training.train(
        args,
        clip_nets.build_model,
        "clip",
        clip_nets.normalizer(args.norm),
        loader_kwargs={"clip_len": args.clip_len},
        after_trainable=clip_nets.freeze_unused_blocks,
        head=c3d.HEAD if args.arch == "c3d" else "fc",
    )


if __name__ == "__main__":
    runner.run_main(main, get_args_parser())
