"""Part 1 test: every frame of every test video through the single-frame model.

    python test_single_frame.py --checkpoint runs/split1/single_frame/checkpoint.pth \
        --predictions-dir runs/split1/single_frame/predictions --output-dir runs/split1/single_frame/test

Writes one prediction file per video (float32 logits [frames, classes]), then results.json and
confusion_matrix.npy. A rerun skips videos that already have their file, so a killed test resumes.
"""
import argparse

import torch

import engine
import helperFunctions as hf
import train_single_frame


def get_args_parser():
    return argparse.ArgumentParser(
        description="Test the single-frame model on every frame of every test video (part 1).",
        parents=[engine.common_parser(), engine.test_parser({"batch_size": 100, "unit": "frames",
                                                        "chunk_frames": 100})])


def frame_logits(batch_size):
    def rows(model, frames, normalize):  # uint8 frames (F, H, W, 3) -> logits (F, classes)
        return torch.cat([model(normalize(x)) for x in engine.batched(frames, batch_size)])
    return rows


def main(args):
    ranks = engine.Dist()
    checkpoint, trained = engine.load_trained(args, ranks, "frame")
    engine.fill_defaults(args, trained)
    model_args = argparse.Namespace(arch=trained.get("arch", "resnet50"), pretrained="none", weights=None)
    model = train_single_frame.build_model(model_args, len(checkpoint["class_list"]), ranks, pretrained=False)
    model.load_state_dict(checkpoint.pop("model"))  # free the copy: ~75 MB for the whole test
    return engine.test_videos(args, model, engine.Normalize(hf.FRAME_MEAN, hf.FRAME_STD),
                              lambda path: hf.video_chunk_plan(path, args.chunk_frames), args.chunk_frames,
                              frame_logits(args.batch_size), checkpoint["class_list"], "frame", args.checkpoint)


if __name__ == "__main__":
    engine.run_main(main, get_args_parser())
