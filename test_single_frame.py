"""Part 1 test: every frame (or N frames) of every test video through the single-frame or TSN model.

    python test_single_frame.py --checkpoint runs/split1/single_frame/checkpoint.pth \
        --predictions-dir runs/split1/single_frame/predictions --output-dir runs/split1/single_frame/test
    # TSN's test: 25 frames at the segment centres, 10 crops each
    python test_single_frame.py --checkpoint runs/split1/tsn/checkpoint.pth --frames 25 --crops 10 ...

Writes one prediction file per video (float32 logits [frames, classes], averaged over the crops),
then results.json, confusion_matrix.npy and model.json. A rerun skips videos that already have
their file, so a killed test resumes.
"""
import argparse

import torch

import engine
import train_single_frame
from actionrec.data import normalization, sampling, video_chunks


def get_args_parser():
    parser = argparse.ArgumentParser(
        description="Test the single-frame (or TSN) model on the frames of every test video (part 1).",
        parents=[engine.common_parser(), engine.test_parser({"batch_size": 100, "unit": "frames",
                                                        "chunk_frames": 100})])
    g = parser.add_argument_group("frames")
    g.add_argument("--frames", type=engine.non_negative_int, default=0,
                   help="N frames per video at the segment centres, int((k + 0.5) * T / N) (TSN's test: 25); "
                        "0 = every frame, as does a video of at most N frames (default: 0, the assignment's test)")
    return parser


def frame_plan(num_frames, chunk_frames):
    """The frames to test for a video, in chunks of at most chunk_frames: all, or N segment centres."""
    def plan(frames):
        if num_frames and num_frames < frames:
            indices = sampling.segment_centres(frames, num_frames)
            return [indices[i:i + chunk_frames] for i in range(0, len(indices), chunk_frames)]
        return video_chunks.video_chunk_plan(frames, chunk_frames)
    return plan


def frame_logits(batch_size, crops):
    def rows(model, frames, normalize):  # uint8 (F, H, W, 3), or (F, crops, H, W, 3) -> logits (F, classes)
        views = frames.reshape((-1,) + frames.shape[-3:])
        logits = torch.cat([model(normalize(x)) for x in engine.batched(views, batch_size * crops)])
        return engine.crop_mean(logits, crops)
    return rows


def describe(trained, args):
    segments = trained.get("segments", 1)
    arch = trained.get("arch", "resnet50")
    family = f"{arch.replace('resnet', 'ResNet-')}"
    frames = "every frame" if not args.frames else f"{args.frames} frames at segment centres"
    return {"name": "tsn" if segments > 1 else "single_frame",
            "title": f"TSN ({family}, {segments} segments)" if segments > 1 else f"Single frame ({family})",
            "kind": "frame", "temporal": False, "arch": ("tsn-" if segments > 1 else "") + arch, "rows": "frames",
            "test": {"description": f"{frames}, {args.crops} crop{'s' if args.crops > 1 else ''}",
                     "mode": "frames", "frames": args.frames, "crops": args.crops}}


def load_model(checkpoint, trained, ranks, path):
    """The trained frame model (single frame or TSN) of a checkpoint, on the CPU. The checkpoint's copy
    of the weights is dropped once loaded (~100 MB for a ResNet-50)."""
    engine.check_trained_args(trained, train_single_frame.get_args_parser(), path, ("arch", "dropout", "segments"))
    model_args = argparse.Namespace(arch=trained.get("arch", "resnet50"), pretrained="none", weights=None,
                                    dropout=trained.get("dropout", 0.0), segments=trained.get("segments", 1))
    model = engine.rebuild_model(train_single_frame.build_model, model_args, len(checkpoint["class_list"]), ranks, path)
    engine.load_model_state(model, checkpoint.pop("model"), path)
    return model


def main(args):
    ranks = engine.Dist()
    checkpoint, trained = engine.load_trained(args, ranks, "frame")
    engine.fill_defaults(args, trained)
    if args.frames < 0:
        raise engine.UserError(f"--frames must be 0 (every frame) or a positive count, not {args.frames}")
    model = load_model(checkpoint, trained, ranks, args.checkpoint)
    return engine.test_videos(
        args,
        checkpoint,
        model,
        engine.Normalize(normalization.FRAME_MEAN, normalization.FRAME_STD),
        frame_plan(args.frames, args.chunk_frames),
        args.chunk_frames,
        frame_logits(args.batch_size, args.crops),
        describe(trained, args),
    )


if __name__ == "__main__":
    engine.run_main(main, get_args_parser())
