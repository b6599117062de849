"""Part 2 test: whole test videos through the 3D model (3D ResNet or C3D).

    python test_3d.py --checkpoint runs/split1/3d/checkpoint.pth --mode full \
        --predictions-dir runs/split1/3d/predictions --output-dir runs/split1/3d/test

--mode full (3D ResNet): the whole video in one pass, one row of logits: layer4's output averaged over
all its time steps, then fc. Computed exactly in temporal tiles (temporal_tiles.py): the video streams
through the network --tile-frames frames at a time, each stage keeping the few steps its temporal window
needs, so memory is set by the tile, not the video's length, and the logits equal one forward pass over
the whole video. --max-frames N instead cuts the video into pieces of at most N frames, one row each:
the older approximation, not the whole-video pass (also the only full mode of an adaptive-pool C3D).
--mode sliding: every --clip-len window at --stride, one row each (the only mode for C3D, whose fc6
takes one 16-frame clip).
Videos shorter than the clip are looped. With --crops 3 or 10 every window (piece) is tested on each
crop and the logits averaged. Same files, resume and summary as test_single_frame.py.
"""
import argparse
import math

import torch

import engine
import train_3d
from actionrec.data import sampling
from actionrec.models import temporal_tiles

BATCH_CUDA = 32  # sliding windows per forward pass on CUDA
BATCH_CPU = 8  # on the CPU a pass's activations are host memory: 8 windows keep it flat in video length
TILE_FRAMES = 96  # exact full mode: frames per forward pass (bench/README.md: memory and speed)
SLIDING_MAX_FRAMES = 512  # what older versions recorded as max_frames of a sliding test (unused there)


def windows_per_pass(args):
    """--batch-size, else the default for the device: on the CPU the windows of a pass are the memory
    bound, not the speed."""
    return args.batch_size or (BATCH_CUDA if engine.uses_cuda(args) else BATCH_CPU)


def stream_plan(clip_len, chunk_frames):
    """The whole video (looped to clip_len frames when shorter) in consecutive chunks of chunk_frames."""
    def plan(frames):
        total = max(frames, clip_len)
        return [(a, min(a + chunk_frames, total)) for a in range(0, total, chunk_frames)]
    return plan


class TiledFull:
    """The exact full mode for engine.test_videos: rows(model, frames, normalize) feeds a video's chunks
    (F, H, W, 3) or (F, crops, H, W, 3) to one temporal_tiles.ResNetStream per crop, tile by tile, and
    returns no rows; end(model) -> (1, classes), the whole video's logits averaged over the crops."""

    def __init__(self, tile_frames, crops):
        self.tile_frames, self.crops = tile_frames, crops
        self.streams = None

    def start(self):
        self.streams = None  # built on the model of the video's first chunk

    def rows(self, model, frames, normalize):
        views = frames[:, None] if self.crops == 1 else frames
        if self.streams is None:
            self.streams = [temporal_tiles.ResNetStream(model, self.tile_frames) for _ in range(views.shape[1])]
        for c, stream in enumerate(self.streams):
            for start in range(0, len(views), self.tile_frames):
                stream.feed(normalize(views[start:start + self.tile_frames, c][None]))  # (1, 3, tile, H, W)
        return torch.zeros(0, model.fc.out_features, device=frames.device)

    def end(self, model):
        logits = torch.stack([stream.finish() for stream in self.streams]).mean(0)  # (1, classes)
        self.streams = None
        return logits


def full_plan(clip_len, max_frames):
    """--max-frames (the approximation): pieces of about equal length, each at most max_frames and at
    least clip_len (looped) frames."""
    def plan(frames):
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

    def plan(frames):
        starts = window_starts(frames, clip_len, stride)
        aligned = [s for s in starts if s % stride == 0]
        ranges = [(group[0], group[-1] + clip_len)
                  for group in (aligned[i:i + per_chunk] for i in range(0, len(aligned), per_chunk))]
        ranges += [(s, s + clip_len) for s in starts if s % stride]
        return ranges
    return plan


def clip_logits(mode, clip_len, stride, batch_size, crops):
    def rows(model, frames, normalize):  # uint8 frames (F, H, W, 3), or (F, crops, H, W, 3)
        views = frames[:, None] if crops == 1 else frames
        logits = []
        for c in range(views.shape[1]):
            clip = views[:, c]  # (F, H, W, 3)
            if mode == "full":
                logits.append(model(normalize(clip[None])))  # (1, 3, F, H, W) -> (1, classes)
                continue
            windows = clip.unfold(0, clip_len, stride).permute(0, 4, 1, 2, 3)  # (windows, clip_len, H, W, 3)
            logits.append(torch.cat([model(normalize(x)) for x in engine.batched(windows, batch_size)]))
        return torch.stack(logits).mean(0)  # averaged over the crops
    return rows


def get_args_parser():
    parser = argparse.ArgumentParser(
        description="Test the 3D model (3D ResNet or C3D) on whole test videos (part 2).",
        parents=[engine.common_parser(), engine.test_parser({"batch_size": BATCH_CUDA, "batch_size_cpu": BATCH_CPU,
                                                             "unit": "clips (sliding mode)", "chunk_frames": 200})])
    g = parser.add_argument_group("3D testing")
    g.add_argument("--mode", choices=("full", "sliding"), default=None,
                   help="full: whole video in one pass (exact, in tiles); sliding: every window at --stride "
                        "(default: full for the 3D ResNet, sliding for C3D)")
    g.add_argument("--stride", type=engine.positive_int, default=8, help="sliding-window stride (default: 8)")
    g.add_argument("--tile-frames", type=engine.positive_int, default=TILE_FRAMES,
                   help="full mode: frames per forward pass; any size gives the same logits, memory grows with "
                        f"it, and smaller tiles redo more steps at their edges (default: {TILE_FRAMES})")
    g.add_argument("--max-frames", type=engine.positive_int, default=None,
                   help="full mode: an approximation instead of the whole-video pass: videos are cut into "
                        "pieces of at most this many frames, each run alone, one row each (default: off)")
    g.add_argument("--layer4-blocks", type=int, choices=(1, 2, 3), default=None,
                   help="3D ResNet: layer4 blocks to run (default: the training run's)")
    return parser


def describe(trained, args, clip_len):
    is_c3d = trained.get("arch") == "c3d"
    max_frames = args.max_frames if args.mode == "full" else SLIDING_MAX_FRAMES
    exact = args.mode == "full" and args.max_frames is None
    if exact:
        test = (f"full video in one pass, exact: layer4 averaged over all its time steps, computed in tiles "
                f"of {args.tile_frames} frames")
    elif args.mode == "full":
        test = f"full video approximated by pieces of at most {args.max_frames} frames, each run alone"
    else:
        test = f"sliding {clip_len}-frame windows, stride {args.stride}"
    if args.crops > 1:
        test += f", {args.crops} crops"
    depth = trained.get("depth", 50)
    return {"name": "c3d" if is_c3d else "3d", "title": "C3D" if is_c3d else f"3D ResNet-{depth}",
            "kind": "clip", "temporal": True, "arch": "c3d" if is_c3d else f"resnet3d-{depth}",
            "rows": "video" if exact else "pieces" if args.mode == "full" else "windows",
            "test": {"description": test, "mode": args.mode, "clip_len": clip_len, "stride": args.stride,
                     "max_frames": max_frames, "crops": args.crops}}


def load_model(checkpoint, trained, ranks, path, image_size):
    """(the trained 3D ResNet or C3D of a checkpoint on the CPU, its clip length, its normalisation name).
    A C3D with the released fixed fc6 takes only the image size it was trained at."""
    engine.check_trained_args(trained, train_3d.get_args_parser(), path, (
        "arch", "depth", "layer4_blocks", "clip_len", "norm", "c3d_dropout", "c3d_width", "c3d_adaptive_pool"))
    if trained.get("arch") == "c3d":
        model_args = argparse.Namespace(arch="c3d", c3d_dropout=trained.get("c3d_dropout", 0.5),
                                        c3d_width=trained.get("c3d_width", 1.0),
                                        c3d_adaptive_pool=trained.get("c3d_adaptive_pool", False))
        if image_size != trained.get("image_size") and not model_args.c3d_adaptive_pool:
            size = trained.get("image_size")
            raise engine.UserError(f"{path}: C3D was trained at {size}x{size}; its fc6 takes no other --image-size")
    else:
        model_args = argparse.Namespace(arch="resnet", depth=trained.get("depth", 50),
                                        layer4_blocks=trained.get("layer4_blocks", 1))
    model = engine.rebuild_model(train_3d.build_model, model_args, len(checkpoint["class_list"]), ranks, path)
    engine.load_model_state(model, checkpoint.pop("model"), path)  # and free the copy
    norm = trained.get("norm") or ("c3d" if model_args.arch == "c3d" else "assignment")
    return model, trained.get("clip_len") or sampling.CLIP_LEN, norm


def main(args):
    ranks = engine.Dist()
    checkpoint, trained = engine.load_trained(args, ranks, "clip")
    engine.fill_defaults(args, trained)
    args.batch_size = windows_per_pass(args)
    if trained.get("arch") == "c3d":
        if args.layer4_blocks:
            raise engine.UserError("--layer4-blocks is for the 3D ResNet; this checkpoint holds a C3D")
        args.mode = args.mode or "sliding"
        if args.mode == "full" and not trained.get("c3d_adaptive_pool", False):
            raise engine.UserError("C3D's fc6 takes one 16-frame 112x112 clip, not a whole video: use --mode sliding")
        if args.mode == "full" and args.max_frames is None:
            raise engine.UserError("the exact full mode is for the 3D ResNet (C3D pools to 1x4x4 before fc6): use "
                                   "--mode sliding, or --max-frames N for the pieces approximation")
    else:
        args.mode = args.mode or "full"
    model, clip_len, norm = load_model(checkpoint, trained, ranks, args.checkpoint, args.image_size)
    if args.layer4_blocks:
        if args.layer4_blocks > len(model.layer4):
            raise engine.UserError(f"--layer4-blocks {args.layer4_blocks}: {args.checkpoint} holds a 3D ResNet-"
                                   f"{model.depth}, which has {len(model.layer4)} block(s) in layer4")
        model.layer4_blocks = args.layer4_blocks
    if args.max_frames is not None and args.max_frames < clip_len:
        raise engine.UserError(f"--max-frames must be at least the clip length {clip_len}")
    hooks = {}
    if args.mode == "full" and args.max_frames is None:
        tiled = TiledFull(args.tile_frames, args.crops)
        plan, max_chunk, rows = stream_plan(clip_len, args.chunk_frames), args.chunk_frames, tiled.rows
        hooks = {"video_start": tiled.start, "video_end": tiled.end}
    elif args.mode == "full":
        plan, max_chunk = full_plan(clip_len, args.max_frames), args.max_frames
        rows = clip_logits(args.mode, clip_len, args.stride, args.batch_size, args.crops)
    else:
        plan, max_chunk = sliding_plan(clip_len, args.stride, args.chunk_frames), max(args.chunk_frames, clip_len)
        rows = clip_logits(args.mode, clip_len, args.stride, args.batch_size, args.crops)
    return engine.test_videos(args, checkpoint, model, train_3d.normalizer(norm), plan, max_chunk, rows,
                              describe(trained, args, clip_len), fixed_shapes=args.mode != "full", **hooks)


if __name__ == "__main__":
    engine.run_main(main, get_args_parser())
