"""Part 2 test: whole test videos through the 3D model.

    python test_3d.py --checkpoint runs/split1/3d/checkpoint.pth --mode full \
        --predictions-dir runs/split1/3d/predictions --output-dir runs/split1/3d/test

--mode full: the whole video in one pass (adaptive pooling), one row of logits; videos longer than
--max-frames are cut into consecutive pieces of about equal length, one row each.
--mode sliding: every --clip-len window at --stride, one row each.
Videos shorter than the clip are looped. Same files, resume and summary as test_single_frame.py.
"""
import argparse
import math

import torch

import engine
import helperFunctions as hf
import train_3d


def full_plan(clip_len, max_frames):
    """Pieces of about equal length, each at most max_frames and at least clip_len (looped) frames."""
    def plan(path):
        frames = hf.video_info(path)[0]
        pieces = math.ceil(frames / max_frames)
        bounds = [round(i * frames / pieces) for i in range(pieces + 1)]
        return [(a, max(b, a + clip_len)) for a, b in zip(bounds[:-1], bounds[1:])]
    return plan


def window_starts(frames, clip_len, stride):
    """Every window at `stride`, plus one ending at the last frame so the tail is covered."""
    if frames <= clip_len:
        return [0]
    starts = list(range(0, frames - clip_len + 1, stride))
    if starts[-1] != frames - clip_len:
        starts.append(frames - clip_len)
    return starts


def sliding_plan(clip_len, stride, chunk_frames):
    """Chunks of whole windows at `stride`; an unaligned last window is a chunk of its own."""
    per_chunk = max(1, (chunk_frames - clip_len) // stride + 1)

    def plan(path):
        starts = window_starts(hf.video_info(path)[0], clip_len, stride)
        aligned = [s for s in starts if s % stride == 0]
        ranges = [(group[0], group[-1] + clip_len)
                  for group in (aligned[i:i + per_chunk] for i in range(0, len(aligned), per_chunk))]
        ranges += [(s, s + clip_len) for s in starts if s % stride]
        return ranges
    return plan


def clip_logits(mode, clip_len, stride, batch_size):
    def rows(model, frames, normalize):  # uint8 frames (F, H, W, 3)
        if mode == "full":
            return model(normalize(frames[None]))  # (1, 3, F, H, W) -> (1, classes)
        windows = frames.unfold(0, clip_len, stride).permute(0, 4, 1, 2, 3)  # (windows, clip_len, H, W, 3)
        return torch.cat([model(normalize(x)) for x in engine.batched(windows, batch_size)])
    return rows


def get_args_parser():
    parser = argparse.ArgumentParser(
        description="Test the 3D model on whole test videos (part 2).",
        parents=[engine.common_parser(), engine.test_parser({"batch_size": 32, "unit": "clips (sliding mode)",
                                                        "chunk_frames": 200})])
    g = parser.add_argument_group("3D testing")
    g.add_argument("--mode", choices=("full", "sliding"), default="full",
                   help="full: whole video in one pass; sliding: every window at --stride (default: full)")
    g.add_argument("--stride", type=engine.positive_int, default=8, help="sliding-window stride (default: 8)")
    g.add_argument("--max-frames", type=engine.positive_int, default=512,
                   help="full mode: longer videos are cut into pieces of at most this many frames (default: 512)")
    g.add_argument("--layer4-blocks", type=int, choices=(1, 2, 3), default=None,
                   help="layer4 blocks to run (default: the training run's)")
    return parser


def main(args):
    ranks = engine.Dist()
    checkpoint, trained = engine.load_trained(args, ranks, "clip")
    engine.fill_defaults(args, trained)
    model_args = argparse.Namespace(depth=trained.get("depth", 50), layer4_blocks=trained.get("layer4_blocks", 1))
    model = train_3d.build_model(model_args, len(checkpoint["class_list"]), ranks, pretrained=False)
    model.load_state_dict(checkpoint.pop("model"))  # free the copy: ~75 MB for the whole test
    if args.layer4_blocks:
        model.layer4_blocks = args.layer4_blocks
    clip_len = trained.get("clip_len", hf.CLIP_LEN)
    if args.max_frames < clip_len:
        raise engine.UserError(f"--max-frames must be at least the clip length {clip_len}")
    if args.mode == "full":
        plan, max_chunk = full_plan(clip_len, args.max_frames), args.max_frames
    else:
        plan, max_chunk = sliding_plan(clip_len, args.stride, args.chunk_frames), max(args.chunk_frames, clip_len)
    return engine.test_videos(args, model, engine.Normalize(*train_3d.NORMS[trained.get("norm", "assignment")]),
                              plan, max_chunk, clip_logits(args.mode, clip_len, args.stride, args.batch_size),
                              checkpoint["class_list"], "clip", args.checkpoint)


if __name__ == "__main__":
    engine.run_main(main, get_args_parser())
