"""Part 2 test: whole test videos through the 3D model (3D ResNet or C3D).

    python test_3d.py --checkpoint runs/split1/3d/checkpoint.pth --mode full \
        --predictions-dir runs/split1/3d/predictions --output-dir runs/split1/3d/test

--mode full (3D ResNet): the whole video in one pass, one row of logits: layer4's output averaged over
all its time steps, then fc. Computed exactly in temporal tiles (temporal_tiles.py): the video streams
through the network --tile-frames frames at a time, each convolution and pool keeping the few input
steps its next output needs, so memory is set by the tile, not the video's length, each step is computed
once, and the logits equal one forward pass over the whole video. --max-frames N instead cuts the video
into pieces of at most N frames, one row each: the older approximation, not the whole-video pass (also
the only full mode of an adaptive-pool C3D).
--mode sliding: every --clip-len window at --stride, one row each (the only mode for C3D, whose fc6
takes one 16-frame clip).
Videos shorter than the clip are looped. With --crops 3 or 10 every window (piece) is tested on each
crop and the logits averaged. Same files, resume and summary as test_single_frame.py.
"""

import argparse

from actionrec import guards
from actionrec.engine import arg_types, cli_flags, devices, runner, trained_model, video_test
from actionrec.inference import clip_views
from actionrec.zoo import clip_nets


def get_args_parser():
    parser = argparse.ArgumentParser(
        description="Test the 3D model (3D ResNet or C3D) on whole test videos (part 2).",
        parents=[
            cli_flags.common_parser(),
            cli_flags.annotation_parser(test=True),
            cli_flags.test_parser(
                {
                    "batch_size": clip_views.BATCH_CUDA,
                    "batch_size_cpu": clip_views.BATCH_CPU,
                    "unit": "clips (sliding mode)",
                    "chunk_frames": 200,
                }
            ),
        ],
    )
    g = parser.add_argument_group("3D testing")
    g.add_argument("--mode", choices=("full", "sliding"), default=None,
                   help="full: whole video in one pass (exact, in tiles); sliding: every window at --stride "
                        "(default: full for the 3D ResNet, sliding for C3D)")
    g.add_argument("--stride", type=arg_types.positive_int, default=8, help="sliding-window stride (default: 8)")
    g.add_argument("--tile-frames", type=arg_types.positive_int, default=clip_views.TILE_FRAMES,
                   help="full mode: frames per pass of the stem (and per loaded chunk: --chunk-frames is for the "
                        "other modes); any size gives the same logits, memory grows with it, smaller tiles make "
                        f"more, smaller calls (default: {clip_views.TILE_FRAMES})")
    g.add_argument("--max-frames", type=arg_types.positive_int, default=None,
                   help="full mode: an approximation instead of the whole-video pass: videos are cut into "
                        "pieces of at most this many frames, each run alone, one row each (default: off)")
    g.add_argument("--layer4-blocks", type=int, choices=(1, 2, 3), default=None,
                   help="3D ResNet: layer4 blocks to run (default: the training run's)")
    return parser


def main(args):
    ranks = devices.Dist()
    checkpoint, trained = trained_model.load_trained(args, ranks, "clip")
    cli_flags.fill_defaults(args, trained)
    args.batch_size = clip_views.windows_per_pass(args)
    if trained.get("arch") == "c3d":
        if args.layer4_blocks:
            raise guards.UserError("--layer4-blocks is for the 3D ResNet; this checkpoint holds a C3D")
        args.mode = args.mode or "sliding"
        if args.mode == "full" and not trained.get("c3d_adaptive_pool", False):
            raise guards.UserError("C3D's fc6 takes one 16-frame 112x112 clip, not a whole video: use --mode sliding")
        if args.mode == "full" and args.max_frames is None:
            raise guards.UserError("the exact full mode is for the 3D ResNet (C3D pools to 1x4x4 before fc6): use "
                                   "--mode sliding, or --max-frames N for the pieces approximation")
    else:
        args.mode = args.mode or "full"
    model, clip_len, norm = clip_views.load_model(checkpoint, trained, ranks, args.checkpoint, args.image_size)
    if args.layer4_blocks:
        if args.layer4_blocks > len(model.layer4):
            raise guards.UserError(f"--layer4-blocks {args.layer4_blocks}: {args.checkpoint} holds a 3D ResNet-"
                                   f"{model.depth}, which has {len(model.layer4)} block(s) in layer4")
        model.layer4_blocks = args.layer4_blocks
    if args.max_frames is not None and args.max_frames < clip_len:
        raise guards.UserError(f"--max-frames must be at least the clip length {clip_len}")
    hooks = {}
    if args.mode == "full" and args.max_frames is None:
        tiled = clip_views.TiledFull(args.tile_frames, args.crops)
        # One tile per chunk: the stream then runs on whole tiles as they arrive (nothing of a chunk waits
        # for the next one), and a short video's chunks in /dev/shm are a long one's.
        plan, max_chunk, rows = clip_views.stream_plan(clip_len, args.tile_frames), args.tile_frames, tiled.rows
        hooks = {"video_start": tiled.start, "video_end": tiled.end}
    elif args.mode == "full":
        plan, max_chunk = clip_views.full_plan(clip_len, args.max_frames), args.max_frames
        rows = clip_views.clip_logits(args.mode, clip_len, args.stride, args.batch_size, args.crops)
    else:
        plan, max_chunk = (
            clip_views.sliding_plan(clip_len, args.stride, args.chunk_frames),
            max(args.chunk_frames, clip_len),
        )
        rows = clip_views.clip_logits(args.mode, clip_len, args.stride, args.batch_size, args.crops)
    return video_test.test_videos(args, checkpoint, model, clip_nets.normalizer(norm), plan, max_chunk, rows,
                              clip_views.describe(trained, args, clip_len), fixed_shapes=args.mode != "full", **hooks)


if __name__ == "__main__":
    runner.run_main(main, get_args_parser())
