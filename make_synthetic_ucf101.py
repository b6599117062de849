"""A small synthetic dataset in UCF-101's layout, built so that half of the classes need motion.

    python make_synthetic_ucf101.py --out synthetic/ [--classes 6] [--frames 40] [--size 64x80] [--seed 0]

writes
    DIR/ucfTrainTestlist/{classInd,trainlist01,testlist01}.txt   (the official format, CRLF)
    DIR/UCF-101-hdf5/<Class>/v_<Class>_gNN_cNN.hdf5               (helperFunctions.write_video_hdf5)
    DIR/synthetic_classes.json                                    ({"appearance": [...], "motion": [...]})
so `getUCF101(DIR)` and the training scripts use it as they use UCF-101.

Every video shows one bright object over a textured background.
- APPEARANCE classes (the first ceil(classes / 2)) each have their own object shape and colour and
  background colour: any single frame tells the class. Their motion is drawn at random from all the
  motions below, so motion tells nothing about them.
- MOTION classes (the rest) share one appearance exactly (a light disc on a grey background, drawn
  from the same distributions) and differ only by motion: moving up or down, growing or shrinking,
  slow or fast (3x). The motion is periodic (the object wraps around vertically, the size is a
  sawtooth) with a uniformly random phase, and the horizontal position, size, background texture,
  brightness and object tone are random per video: at any single frame the object's position and
  size, and the frame's statistics, have the same distribution in every motion class. A frame model
  is at chance on them; a clip model is not.
The motions survive the training augmentation: a horizontal flip changes neither the vertical
direction nor the size, a 70-100% crop scales the apparent speed by at most 1/0.7 (slow and fast are
apart by at least 2x with the per-video speed jitter), and brightness +/-15 is within the data's
own +/-20 jitter.

Like UCF-101, clips come in groups (gNN, CLIPS_PER_GROUP clips each) that share a background
texture; the test videos are the lowest groups and train and test never share a group. Every class's
videos depend only on (seed, class name, group, clip, frames, size), so the bytes are the same for
the same arguments.
"""
import argparse
import json
import math
import os
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from actionrec import atomic
from actionrec.data.video_files import write_video_hdf5

PROG = "make_synthetic_ucf101.py"
CLIPS_PER_GROUP = 4
MAX_GROUPS = 99            # gNN has two digits
MIN_SIZE = 16
PERIOD = 40                # frames for one slow cycle: crossing the frame height, or min -> max size
FAST = 3.0                 # fast classes move this many times faster
SPEED_JITTER = (0.8, 1.2)  # per-video speed factor; fast/slow stays >= 2 > the crop's 1/0.7
RADIUS = (0.08, 0.30)      # object radius range, fraction of min(height, width): wide, so growing shows
TEXTURE_AMPLITUDE = 12.0   # background texture, grey levels per unit of (clipped) normal noise
BRIGHTNESS_JITTER = 20.0   # per-video offset, +/- grey levels
TONE_JITTER = 10.0         # per-video object tone offset, +/- grey levels
NOISE_STD = 3.0            # per-pixel, per-frame sensor noise

# Motion classes, in the order they are used: (kind, direction, speed). Image y grows downwards,
# so "up" is direction -1. Every motion is unchanged by a horizontal flip.
MOTIONS = {
    "MotionUp": ("move", -1, 1.0),
    "MotionDown": ("move", +1, 1.0),
    "MotionGrow": ("scale", +1, 1.0),
    "MotionUpFast": ("move", -1, FAST),
    "MotionShrink": ("scale", -1, 1.0),
    "MotionDownFast": ("move", +1, FAST),
    "MotionGrowFast": ("scale", +1, FAST),
    "MotionShrinkFast": ("scale", -1, FAST),
}
MOTION_LOOK = ("disc", (230, 230, 230), (110, 110, 110))  # shape, object RGB, background RGB
# Appearance classes: (name, shape, object RGB, background RGB), in the order they are used.
APPEARANCES = [
    ("AppearanceRed", "square", (220, 40, 40), (70, 100, 70)),
    ("AppearanceBlue", "disc", (40, 80, 230), (125, 110, 75)),
    ("AppearanceGreen", "diamond", (40, 200, 70), (100, 65, 110)),
    ("AppearanceYellow", "ring", (240, 210, 40), (55, 70, 120)),
    ("AppearanceCyan", "cross", (40, 210, 220), (120, 70, 60)),
    ("AppearanceMagenta", "square", (220, 50, 210), (70, 110, 110)),
    ("AppearanceOrange", "diamond", (245, 140, 30), (60, 60, 90)),
    ("AppearanceBlack", "ring", (15, 15, 15), (170, 170, 150)),
]
MAX_CLASSES = 2 * min(len(APPEARANCES), len(MOTIONS))


def class_specs(num_classes):
    """Class descriptions in classInd order: ceil(n / 2) appearance classes, then the motion classes.

    Each is a dict: name, category ("appearance" | "motion"), shape, object_rgb, background_rgb,
    motion ((kind, direction, speed), or None for an appearance class: random per video).
    """
    if not 2 <= num_classes <= MAX_CLASSES:
        raise ValueError(f"classes must be in 2..{MAX_CLASSES}, not {num_classes}")
    num_appearance = (num_classes + 1) // 2
    specs = [dict(name=name, category="appearance", shape=shape, object_rgb=obj, background_rgb=bg,
                  motion=None) for name, shape, obj, bg in APPEARANCES[:num_appearance]]
    shape, obj, bg = MOTION_LOOK
    specs += [dict(name=name, category="motion", shape=shape, object_rgb=obj, background_rgb=bg,
                   motion=motion) for name, motion in list(MOTIONS.items())[:num_classes - num_appearance]]
    return specs


def describe(spec):
    if spec["category"] == "appearance":
        return (f"{spec['shape']} of RGB {spec['object_rgb']} on RGB {spec['background_rgb']}, "
                "random motion")
    kind, direction, speed = spec["motion"]
    what = {("move", -1): "moves up", ("move", 1): "moves down",
            ("scale", 1): "grows", ("scale", -1): "shrinks"}[kind, direction]
    return f"shared look (light disc on grey); the object {what}, {'fast' if speed > 1 else 'slow'}"


def signed_distance(shape, dx, dy, r):
    """Distance to the shape's edge (negative inside), about one unit per pixel."""
    ax, ay = np.abs(dx), np.abs(dy)
    if shape == "disc":
        return np.sqrt(dx * dx + dy * dy) - r
    if shape == "square":
        return np.maximum(ax, ay) - 0.85 * r
    if shape == "diamond":
        return (ax + ay - 1.2 * r) / math.sqrt(2)
    if shape == "ring":
        return np.abs(np.sqrt(dx * dx + dy * dy) - 0.7 * r) - 0.3 * r
    if shape == "cross":
        return np.minimum(np.maximum(ax - r, ay - 0.35 * r), np.maximum(ax - 0.35 * r, ay - r))
    raise ValueError(f"unknown shape {shape!r}")


def make_background(spec, height, width, rng):
    """float32 [H, W, 3]: the class's background colour plus a smooth grey texture."""
    grid = np.clip(rng.standard_normal((max(height // 8, 2), max(width // 8, 2))), -2.5, 2.5)
    texture = cv2.resize(grid.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    return np.asarray(spec["background_rgb"], np.float32) + TEXTURE_AMPLITUDE * texture[:, :, None]


def render_video(spec, background, frames, rng):
    """uint8 [frames, H, W, 3] RGB of one video of class `spec` over `background` [H, W, 3]."""
    height, width = background.shape[:2]
    r_min, r_max = (f * min(height, width) for f in RADIUS)
    kind, direction, speed = spec["motion"] or list(MOTIONS.values())[rng.integers(len(MOTIONS))]
    cycles = speed * rng.uniform(*SPEED_JITTER) * np.arange(frames) / PERIOD  # (T,) cycles done
    phase = rng.random()
    x = rng.uniform(r_max + 1, width - r_max - 1)
    if kind == "move":  # wraps around vertically: y uniform on [0, H) at every frame
        y = height * ((phase + direction * cycles) % 1.0)
        r = np.full(frames, rng.uniform(r_min, r_max))
    else:               # sawtooth size: r uniform on [r_min, r_max) at every frame
        y = np.full(frames, rng.uniform(0, height))
        r = r_min + (r_max - r_min) * ((phase + direction * cycles) % 1.0)
    tone = rng.uniform(-TONE_JITTER, TONE_JITTER)
    brightness = rng.uniform(-BRIGHTNESS_JITTER, BRIGHTNESS_JITTER)

    # float32 throughout: (T, H, W, 3) temporaries dominate the time
    y, r = y.astype(np.float32)[:, None, None], r.astype(np.float32)[:, None, None]
    rows = np.arange(height, dtype=np.float32)[None, :, None] + np.float32(0.5)
    cols = np.arange(width, dtype=np.float32)[None, None, :] + np.float32(0.5)
    dy = (rows - y + np.float32(height / 2)) % np.float32(height) - np.float32(height / 2)  # on a torus
    dx = cols - np.float32(x)
    alpha = np.clip(0.5 - signed_distance(spec["shape"], dx, dy, r), 0, 1).astype(np.float32)[..., None]
    obj = np.asarray(spec["object_rgb"], np.float32) + np.float32(tone)
    video = rng.standard_normal((frames, height, width, 3), dtype=np.float32)
    video *= np.float32(NOISE_STD)
    video += background + np.float32(brightness)
    video += alpha * (obj - background)  # = background * (1 - alpha) + obj * alpha, plus the rest
    np.rint(video, out=video)
    return np.clip(video, 0, 255, out=video).astype(np.uint8)


def video_name(class_name, group, clip):
    return f"v_{class_name}_g{group:02d}_c{clip:02d}"


def split_groups(count, first_group):
    """(group, clip) pairs for `count` videos, CLIPS_PER_GROUP per group from `first_group` on."""
    return [(first_group + i // CLIPS_PER_GROUP, 1 + i % CLIPS_PER_GROUP) for i in range(count)]


def make_dataset(out, classes=6, train_per_class=24, test_per_class=8, frames=40, size=(64, 80),
                 seed=0, storage="raw", quality=90, progress=False):
    """Write the synthetic dataset under `out`; returns a summary dict (see module docstring).

    Test videos are groups g01.. (the lowest, as in split 1), train videos the groups after them.
    Raises ValueError for impossible arguments.
    """
    height, width = size
    specs = class_specs(classes)
    if train_per_class < 1 or test_per_class < 1:
        raise ValueError("train-per-class and test-per-class must be >= 1")
    test_groups = math.ceil(test_per_class / CLIPS_PER_GROUP)
    if test_groups + math.ceil(train_per_class / CLIPS_PER_GROUP) > MAX_GROUPS:
        raise ValueError(f"at most {MAX_GROUPS * CLIPS_PER_GROUP} videos per class "
                         f"({MAX_GROUPS} groups of {CLIPS_PER_GROUP})")
    if frames < 2:
        raise ValueError(f"frames must be >= 2 (motion needs two), not {frames}")
    if min(height, width) < MIN_SIZE:
        raise ValueError(f"size must be at least {MIN_SIZE}x{MIN_SIZE}, not {height}x{width}")
    if storage not in ("raw", "jpeg"):
        raise ValueError(f"storage must be 'raw' or 'jpeg', not {storage!r}")

    out = Path(out)
    list_dir, video_dir = out / "ucfTrainTestlist", out / "UCF-101-hdf5"
    list_dir.mkdir(parents=True, exist_ok=True)
    splits = {"test": split_groups(test_per_class, 1),
              "train": split_groups(train_per_class, test_groups + 1)}
    jobs = [(label, spec, split, group, clip) for label, spec in enumerate(specs, 1)
            for split in ("train", "test") for group, clip in splits[split]]
    lines = {"train": [], "test": []}
    backgrounds, total_bytes = {}, 0
    for label, spec, split, group, clip in tqdm(jobs, unit="video", disable=not progress or not sys.stderr.isatty()):
        class_key = zlib.crc32(spec["name"].encode())  # a class's videos do not depend on --classes
        if (spec["name"], group) not in backgrounds:   # a group shares its background, as in UCF-101
            backgrounds[spec["name"], group] = make_background(
                spec, height, width, np.random.default_rng([seed, class_key, group]))
        rng = np.random.default_rng([seed, class_key, group, clip, 1])
        video = render_video(spec, backgrounds[spec["name"], group], frames, rng)
        name = video_name(spec["name"], group, clip)
        path = video_dir / spec["name"] / f"{name}.hdf5"
        write_video_hdf5(str(path), video, storage=storage, quality=quality)
        total_bytes += path.stat().st_size
        entry = f"{spec['name']}/{name}.avi"
        lines[split].append(f"{entry} {label}" if split == "train" else entry)

    def write_lines(path, rows):
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write("".join(f"{row}\r\n" for row in rows))  # CRLF on every line, as the official lists

    write_lines(list_dir / "classInd.txt", [f"{i} {spec['name']}" for i, spec in enumerate(specs, 1)])
    write_lines(list_dir / "trainlist01.txt", lines["train"])
    write_lines(list_dir / "testlist01.txt", lines["test"])
    summary = {
        "appearance": [s["name"] for s in specs if s["category"] == "appearance"],
        "motion": [s["name"] for s in specs if s["category"] == "motion"],
        "description": {s["name"]: describe(s) for s in specs},
        "arguments": dict(classes=classes, train_per_class=train_per_class, test_per_class=test_per_class,
                          frames=frames, size=[height, width], seed=seed, storage=storage),
    }
    tmp = Path(atomic.temporary_path(out / "synthetic_classes.json"))
    tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / "synthetic_classes.json")
    return dict(summary, train_videos=len(lines["train"]), test_videos=len(lines["test"]), bytes=total_bytes)


# The verb/noun mode (--verb-noun): issue 26's study in two labels. A verb is a motion that no single
# frame shows (rise and fall wrap around vertically, stay stands still at a random height: at any one
# frame the object's height is uniform in all three); a noun is an appearance (the object's shape and
# colour over a shared grey background) that every frame shows.
VERBS = {"rise": ("move", -1, 1.0), "fall": ("move", +1, 1.0), "stay": ("move", 0, 1.0)}
NOUNS = [("red_square", "square", (220, 40, 40)), ("blue_disc", "disc", (40, 80, 230)),
         ("green_diamond", "diamond", (40, 200, 70)), ("yellow_ring", "ring", (240, 210, 40)),
         ("cyan_cross", "cross", (40, 210, 220))]
NOUN_BACKGROUND = MOTION_LOOK[2]
VIDEOS_DIR = "videos"
ANNOTATIONS_NAME = "annotations.csv"
ANNOTATION_HEADER = "uid,verb,noun,action,verb_class,noun_class,split,group"


def verb_noun_groups(recordings, val_recordings, test_recordings):
    """{recording number: split}: the first test_recordings are test, the next val_recordings val, the
    rest train (whole recordings, so a recording's segments never straddle subsets)."""
    if min(val_recordings, test_recordings) < 0 or recordings - val_recordings - test_recordings < 1:
        raise ValueError(f"{recordings} recordings leave none for training after {val_recordings} val and "
                         f"{test_recordings} test")
    return {g: "test" if g <= test_recordings else "val" if g <= test_recordings + val_recordings else "train"
            for g in range(1, recordings + 1)}


def make_verb_noun_dataset(out, verbs=3, nouns=3, recordings=8, segments=6, val_recordings=2, test_recordings=2,
                           frames=40, size=(64, 80), seed=0, storage="raw", quality=90):
    """Write DIR/videos/<uid>.hdf5 and DIR/annotations.csv (ANNOTATION_HEADER, one line per segment): each
    recording (group recNN, its own background texture) holds `segments` segments whose (verb, noun)
    pairs cycle through all verbs x nouns from a seeded offset. Same arguments, same bytes. Returns
    a summary dict; ValueError for impossible arguments."""
    if not 2 <= verbs <= len(VERBS) or not 2 <= nouns <= len(NOUNS):
        raise ValueError(f"verbs must be in 2..{len(VERBS)} and nouns in 2..{len(NOUNS)}")
    if segments < 1 or frames < 2 or min(size) < MIN_SIZE or storage not in ("raw", "jpeg"):
        raise ValueError(f"need segments >= 1, frames >= 2, a size of at least {MIN_SIZE}x{MIN_SIZE} and storage "
                         f"raw or jpeg")
    splits = verb_noun_groups(recordings, val_recordings, test_recordings)
    verb_names, noun_specs = list(VERBS)[:verbs], NOUNS[:nouns]
    out = Path(out)
    (out / VIDEOS_DIR).mkdir(parents=True, exist_ok=True)
    lines, total_bytes, pairs = [], 0, verbs * nouns
    for group, split in splits.items():
        offset = int(np.random.default_rng([seed, group]).integers(pairs))
        for clip in range(1, segments + 1):
            pair = (offset + clip) % pairs
            v, n = pair % verbs, pair // verbs
            noun, shape, rgb = noun_specs[n]
            spec = dict(shape=shape, object_rgb=rgb, background_rgb=NOUN_BACKGROUND, motion=VERBS[verb_names[v]])
            background = make_background(spec, size[0], size[1], np.random.default_rng([seed, 7, group]))
            video = render_video(spec, background, frames, np.random.default_rng([seed, 7, group, clip]))
            uid = f"rec{group:02d}_seg{clip:02d}"
            path = out / VIDEOS_DIR / f"{uid}.hdf5"
            write_video_hdf5(str(path), video, storage=storage, quality=quality)
            total_bytes += path.stat().st_size
            lines.append(f"{uid},{verb_names[v]},{noun},{verb_names[v]} {noun},{v},{n},{split},rec{group:02d}")
    csv_path = out / ANNOTATIONS_NAME
    tmp = Path(atomic.temporary_path(csv_path))
    tmp.write_text("".join(f"{line}\n" for line in [ANNOTATION_HEADER] + lines), encoding="utf-8")
    os.replace(tmp, csv_path)
    counts = {name: sum(f",{name}," in line for line in lines) for name in ("train", "val", "test")}
    return {"verbs": verb_names, "nouns": [n[0] for n in noun_specs], "segments": len(lines), "bytes": total_bytes,
            "subsets": counts, "annotations": str(csv_path), "videos": str(out / VIDEOS_DIR)}


def parse_size(text):
    """'HxW' -> (H, W) for argparse."""
    height, sep, width = text.lower().partition("x")
    if not sep or not height.isdigit() or not width.isdigit():
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 64x80, not {text!r}")
    if min(int(height), int(width)) < MIN_SIZE:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_SIZE}x{MIN_SIZE}, not {text!r}")
    return int(height), int(width)


def fail(message):
    """A usage error: one line on stderr, exit status 2."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main_verb_noun(args, start):
    try:
        result = make_verb_noun_dataset(args.out, verbs=args.verbs, nouns=args.nouns, recordings=args.recordings,
                                        segments=args.segments_per_recording, val_recordings=args.val_recordings,
                                        test_recordings=args.test_recordings, frames=args.frames, size=args.size,
                                        seed=args.seed, storage=args.storage)
    except ValueError as e:
        fail(e)
    except OSError as e:
        fail(f"cannot write to --out {args.out}: {e}")
    subsets = result["subsets"]
    print(f"{PROG}: wrote {result['segments']} segments ({subsets['train']} train, {subsets['val']} val, "
          f"{subsets['test']} test) of {args.frames} frames {args.size[0]}x{args.size[1]} ({result['bytes'] / 1e6:.1f} "
          f"MB) to {result['videos']} and {result['annotations']} in {time.perf_counter() - start:.1f} s")
    print(f"  verbs (motions): {' '.join(result['verbs'])}")
    print(f"  nouns (appearances): {' '.join(result['nouns'])}")


def main(args):
    start = time.perf_counter()
    if args.verb_noun:
        return main_verb_noun(args, start)
    try:
        result = make_dataset(args.out, classes=args.classes, train_per_class=args.train_per_class,
                              test_per_class=args.test_per_class, frames=args.frames, size=args.size,
                              seed=args.seed, storage=args.storage, progress=True)
    except ValueError as e:
        fail(e)
    except OSError as e:
        fail(f"cannot write to --out {args.out}: {e}")
    print(f"{PROG}: wrote {args.classes} classes ({len(result['appearance'])} appearance, "
          f"{len(result['motion'])} motion), {result['train_videos']} train + {result['test_videos']} "
          f"test videos of {args.frames} frames {args.size[0]}x{args.size[1]} ({args.storage}, "
          f"{result['bytes'] / 1e6:.1f} MB) to {args.out} in {time.perf_counter() - start:.1f} s")
    print(f"  appearance classes: {' '.join(result['appearance'])}")
    print(f"  motion classes:     {' '.join(result['motion'])}")
    print(f"  use it as the data directory: getUCF101({str(args.out)!r})")


def get_args_parser():
    parser = argparse.ArgumentParser(
        prog=PROG, description="Write a small synthetic dataset in UCF-101's layout (split lists + "
        "HDF5 videos): half appearance classes, half motion classes that no single frame can tell apart.")
    parser.add_argument("--out", required=True, help="output folder (gets ucfTrainTestlist/, "
                        "UCF-101-hdf5/, synthetic_classes.json); required")
    parser.add_argument("--classes", type=int, default=6,
                        help=f"number of classes, 2..{MAX_CLASSES}; ceil(n/2) appearance, the rest motion (default: 6)")
    parser.add_argument("--train-per-class", type=int, default=24, help="training videos per class (default: 24)")
    parser.add_argument("--test-per-class", type=int, default=8, help="test videos per class (default: 8)")
    parser.add_argument("--frames", type=int, default=40, help="frames per video (default: 40)")
    parser.add_argument("--size", type=parse_size, default=(64, 80), metavar="HxW",
                        help=f"frame height x width, each >= {MIN_SIZE} (default: 64x80)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default: 0)")
    parser.add_argument("--storage", choices=("raw", "jpeg"), default="raw",
                        help="HDF5 storage of the frames, as prepare_ucf101.py (default: raw)")
    g = parser.add_argument_group("verb/noun mode (an annotation CSV with two labels, issue 26)")
    g.add_argument("--verb-noun", action="store_true",
                   help=f"write {VIDEOS_DIR}/<uid>.hdf5 and {ANNOTATIONS_NAME} ({ANNOTATION_HEADER}) instead: verbs "
                        "are motions (rise, fall, stay), nouns appearances (shape and colour) (default: off)")
    g.add_argument("--verbs", type=int, default=3, help=f"verb classes, 2..{len(VERBS)} (default: 3)")
    g.add_argument("--nouns", type=int, default=3, help=f"noun classes, 2..{len(NOUNS)} (default: 3)")
    g.add_argument("--recordings", type=int, default=8, help="recordings (groups recNN) (default: 8)")
    g.add_argument("--segments-per-recording", type=int, default=6, help="segments per recording (default: 6)")
    g.add_argument("--val-recordings", type=int, default=2, help="recordings in the val split (default: 2)")
    g.add_argument("--test-recordings", type=int, default=2,
                   help="recordings in the test split, the first ones (default: 2)")
    return parser


if __name__ == "__main__":
    main(get_args_parser().parse_args())
