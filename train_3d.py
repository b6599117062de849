"""Part 2: fine-tune the Kinetics 3D ResNet-50 (Hara et al.) on 16-frame UCF-101 clips.

    python train_3d.py --data-dir data --output-dir runs/split1/3d
        (reads data/resnet-50-kinetics.pth, the released checkpoint, by default)

Same output folder, resume, signal and DDP behaviour as train_single_frame.py.
"""
import argparse
import os

import engine
import helperFunctions as hf
import resnet_3d

NORMS = {"assignment": (hf.CLIP_MEAN, hf.CLIP_STD), "kinetics": (hf.KINETICS_MEAN, hf.KINETICS_STD)}


def kinetics_path(args):
    if args.kinetics_checkpoint is None:
        return os.path.join(args.data_dir, "resnet-50-kinetics.pth")
    return None if args.kinetics_checkpoint == "none" else args.kinetics_checkpoint


def build_model(args, num_classes, ranks, pretrained=True):
    model = resnet_3d.generate_model(args.depth, shortcut_type="B" if args.depth >= 50 else "A",
                                     num_classes=num_classes, layer4_blocks=args.layer4_blocks)
    path = kinetics_path(args) if pretrained else None
    if path is not None:
        if not os.path.isfile(path):
            raise engine.UserError(
                f"Kinetics checkpoint {path} not found: put resnet-50-kinetics.pth (Hara et al., "
                f"3D-ResNets-PyTorch) there, pass --kinetics-checkpoint PATH, or --kinetics-checkpoint none")
        try:
            info = resnet_3d.load_pretrained(model, path)
        except ValueError as e:
            raise engine.UserError(str(e))
        if ranks.main:
            print(f"loaded {info['loaded']} tensors from {path} (arch {info['arch']}, epoch {info['epoch']})"
                  + ("; new classifier" if info["dropped_fc"] else ""), flush=True)
    return model


def freeze_unused_blocks(model):
    """Blocks of layer4 past --layer4-blocks never run: freeze them so DDP sees no unused gradients."""
    for block in model.layer4[model.layer4_blocks or len(model.layer4):]:
        for p in block.parameters():
            p.requires_grad = False


def get_args_parser():
    parser = argparse.ArgumentParser(
        description="Fine-tune a Kinetics 3D ResNet-50 on 16-frame UCF-101 clips (part 2).",
        parents=[engine.common_parser(),
                 engine.train_parser({"output_dir": "runs/split1/3d", "batch_size": 32,
                                      "trainable": "layer4.0,fc"})])
    g = parser.add_argument_group("model")
    g.add_argument("--kinetics-checkpoint", default=None,
                   help="Hara et al.'s released checkpoint, or 'none' to train from scratch "
                        "(default: DATA_DIR/resnet-50-kinetics.pth)")
    g.add_argument("--depth", type=int, choices=(10, 18, 34, 50, 101, 152, 200), default=50,
                   help="3D ResNet depth (default: 50, the released Kinetics model)")
    g.add_argument("--clip-len", type=engine.positive_int, default=16, help="frames per clip (default: 16)")
    g.add_argument("--layer4-blocks", type=int, choices=(1, 2, 3), default=1,
                   help="run only the first k blocks of layer4; 1 is the assignment's truncation for a small "
                        "GPU, 3 the whole network (default: 1)")
    g.add_argument("--norm", choices=tuple(NORMS), default="assignment",
                   help="assignment: its mean/std on [0,1]; kinetics: Hara's 0-255 minus mean (default: assignment)")
    return parser


def main(args):
    engine.fill_defaults(args)
    return engine.train(args, build_model, "clip", NORMS[args.norm], loader_kwargs={"clip_len": args.clip_len},
                        after_trainable=freeze_unused_blocks)


if __name__ == "__main__":
    engine.run_main(main, get_args_parser())
