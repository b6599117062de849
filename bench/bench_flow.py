"""Optical flow methods: CPU cost per frame pair on the real UCF-101 clips, and accuracy.

    python bench/bench_flow.py [--samples DIR ...] [--size 340x256] [--pairs-per-clip 4] [--repeats 3]
                               [--json PATH]

On the real clips (default ../shared/data/ucf101-samples and ucf101-more; skipped with a message when
absent), frames resized to --size (TSN's 340x256), on one core (cv2.setNumThreads(1)):
- speed: ms of CPU time (user + sys) per frame pair of each method (tvl1, dis-ultrafast/fast/medium,
  farneback) on --pairs-per-clip pairs spread over each clip; the machine is shared, so each row is
  the MINIMUM over --repeats repeats (interleaved across methods), with the wall time beside it;
- the whole extraction of one clip (decode, resize, flow, 8-bit form, HDF5 write) per pair, raw file
  size per field, JPEG size per field (the real pairs), and from these the core-hours for all of UCF-101;
- accuracy on known motion: a texture and a real frame (340x256) shifted (sub-pixel to 12 px) and
  rotated (2 and 5 degrees), mean end-point error in px over the interior, of the float flow and
  after the 8-bit form (what is stored);
- agreement with TV-L1 (the papers' flow) on the real pairs: mean end-point error against it.
RAFT is not measured: it needs a weights file, and nothing is downloaded here.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from actionrec.data import video_files  # noqa: E402
from actionrec.flow import codec  # noqa: E402
from actionrec.flow.extract import JPEG_QUALITY, FlowSettings, write_flow  # noqa: E402
from actionrec.flow.known_motion import affine_pair, endpoint_error, textured_image  # noqa: E402
from actionrec.flow.methods import CV_METHODS, create_estimator  # noqa: E402

SHARED = os.path.join(REPO_ROOT, "..", "shared", "data")
DEFAULT_SAMPLES = [os.path.join(SHARED, "ucf101-samples"), os.path.join(SHARED, "ucf101-more")]
UCF101_FRAMES = 2_480_000  # 13,320 videos x ~186 frames (FACTS.md: ~2.4 M; test split 1 mean 184)
UCF101_VIDEOS = 13_320
MOTIONS = [((0.4, 0.3), 0.0), ((1.5, -0.75), 0.0), ((5.3, 2.1), 0.0), ((12.0, -7.0), 0.0), ((0.0, 0.0), 2.0),
           ((0.0, 0.0), 5.0)]
E2E_CLIP = "v_PushUps_g02_c03"  # 79 frames: the whole extraction of one clip per method
REAL_FRAME = ("v_Basketball_g01_c01", 50)  # a real frame moved by MOTIONS, beside the texture


def machine():
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")),
                     platform.processor())
    except (OSError, subprocess.SubprocessError):
        model = platform.processor()
    return dict(date=datetime.datetime.now().isoformat(timespec="minutes"), cpu=model, cores=os.cpu_count(),
                load=os.getloadavg(), python=platform.python_version(), opencv=cv2.__version__,
                numpy=np.__version__)


def find_clips(folders):
    return sorted(os.path.join(root, name) for folder in folders if os.path.isdir(folder)
                  for root, _, files in os.walk(folder) for name in files if name.endswith(".avi"))


def real_pairs(clips, size, per_clip):
    """[(RGB frame, next RGB frame)] resized to size: per_clip pairs spread evenly over each clip."""
    pairs = []
    for clip in clips:
        with video_files.open_video(clip) as video:
            starts = np.linspace(0, video.frames - 2, per_clip).round().astype(int)
            for start in starts:
                frames = video.read([start, start + 1])
                pairs.append(np.stack([cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in frames]))
    return pairs


def time_method(estimator, pairs):
    """(CPU ms per pair, wall ms per pair, flows) over `pairs`."""
    flows = []
    cpu, wall = time.process_time(), time.perf_counter()
    for pair in pairs:
        flows.append(estimator.flows(pair)[0])
    return ((time.process_time() - cpu) * 1000 / len(pairs), (time.perf_counter() - wall) * 1000 / len(pairs),
            flows)


def speed_and_agreement(pairs, repeats):
    """{method: {cpu_ms, wall_ms, epe_vs_tvl1}} (minimum over repeats)."""
    estimators = {m: create_estimator(m) for m in CV_METHODS}
    for estimator in estimators.values():
        estimator.flows(pairs[0])  # warm-up: first-call allocations
    rows, flows = {m: {"cpu_ms": [], "wall_ms": []} for m in CV_METHODS}, {}
    for _ in range(repeats):
        for method, estimator in estimators.items():
            cpu, wall, flows[method] = time_method(estimator, pairs)
            rows[method]["cpu_ms"].append(cpu)
            rows[method]["wall_ms"].append(wall)
    for method, row in rows.items():
        row["cpu_ms"], row["wall_ms"] = min(row["cpu_ms"]), min(row["wall_ms"])
        row["jpeg_bytes"] = jpeg_bytes(flows[method])
        row["epe_vs_tvl1"] = float(np.mean([endpoint_error(a, b, margin=8) for a, b in zip(flows[method],
                                                                                          flows["tvl1"])]))
    return rows


def known_motion(image):
    """{method: {motion label: (EPE float, EPE after the 8-bit form)}} of motions of uint8 [H, W, 3] image."""
    out = {}
    for method in CV_METHODS:
        estimator, out[method] = create_estimator(method), {}
        for shift, degrees in MOTIONS:
            frames, truth = affine_pair(image, shift, degrees)
            flow = estimator.flows(frames)[0]
            stored = codec.dequantize(codec.quantize(flow))
            label = f"rotate {degrees:g} deg" if degrees else f"shift ({shift[0]:g}, {shift[1]:g})"
            out[method][label] = (endpoint_error(flow, truth), endpoint_error(stored, truth))
    return out


def end_to_end(clip, size):
    """{method: {ms_per_pair (CPU, one core), raw_bytes per field}} of the whole extraction of one clip
    (raw storage)."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in CV_METHODS:
            path = os.path.join(tmp, f"{method}.hdf5")
            cpu = time.process_time()
            pairs = write_flow(path, clip, FlowSettings(method=method, size=size))
            out[method] = dict(ms_per_pair=(time.process_time() - cpu) * 1000 / pairs,
                               raw_bytes=os.path.getsize(path) / pairs)
    return out


def jpeg_bytes(flows, quality=JPEG_QUALITY):
    """Mean bytes per field of the 8-bit x and y images as JPEGs (--storage jpeg)."""
    sizes = []
    for flow in flows:
        levels = codec.quantize(flow)
        sizes.append(sum(len(cv2.imencode(".jpg", np.ascontiguousarray(levels[..., c]),
                                          [cv2.IMWRITE_JPEG_QUALITY, quality])[1]) for c in (0, 1)))
    return float(np.mean(sizes))


def print_tables(result):
    m, size = result["machine"], result["size"]
    print(f"Machine: {m['date']}, {m['cpu']}, {m['cores']} cores, load average at start "
          f"{', '.join(f'{x:.2f}' for x in m['load'])}; Python {m['python']}, OpenCV {m['opencv']}\n")
    print(f"Real clips: {result['clips']} clips, {result['pairs']} pairs at {size}, one core, minimum of "
          f"{result['repeats']} repeats\n")
    print("| method | flow ms/pair (CPU) | wall | whole extraction ms/pair | UCF-101 core-hours | "
          "EPE vs TV-L1 (px) | raw KB/field | JPEG KB/field |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for method, row in result["speed"].items():
        e2e = result["end_to_end"][method]
        hours = (UCF101_FRAMES - UCF101_VIDEOS) * e2e["ms_per_pair"] / 3.6e6
        print(f"| {method} | {row['cpu_ms']:.1f} | {row['wall_ms']:.1f} | {e2e['ms_per_pair']:.1f} | {hours:,.0f} | "
              f"{row['epe_vs_tvl1']:.2f} | {e2e['raw_bytes'] / 1e3:.0f} | {row['jpeg_bytes'] / 1e3:.1f} |")
    for image, table in result["known_motion"].items():
        labels = list(next(iter(table.values())))
        print(f"\nKnown motion of {image} at {size}, mean end-point error px (float / after the 8-bit form)\n")
        print("| method | " + " | ".join(labels) + " |")
        print("| --- |" + " ---: |" * len(labels))
        for method, row in table.items():
            print(f"| {method} | " + " | ".join(f"{row[k][0]:.3f} / {row[k][1]:.3f}" for k in labels) + " |")


def main(args):
    cv2.setNumThreads(1)
    width, height = map(int, args.size.split("x"))
    clips = find_clips(args.samples)
    if not clips:
        print(f"no .avi clips in {', '.join(args.samples)}: nothing to measure (they are in ../shared/data)")
        return
    result = dict(machine=machine(), size=args.size, clips=len(clips), repeats=args.repeats)
    pairs = real_pairs(clips, (width, height), args.pairs_per_clip)
    result["pairs"] = len(pairs)
    result["speed"] = speed_and_agreement(pairs, args.repeats)
    real_clip = next((c for c in clips if REAL_FRAME[0] in c), clips[0])
    frame = cv2.resize(
        video_files.read_frames(real_clip, [REAL_FRAME[1]])[0], (width, height), interpolation=cv2.INTER_AREA
    )
    result["known_motion"] = {"a texture": known_motion(textured_image(height, width)),
                              f"{os.path.basename(real_clip)} frame {REAL_FRAME[1]}": known_motion(frame)}
    e2e_clip = next((c for c in clips if E2E_CLIP in c), clips[0])
    result["end_to_end"] = end_to_end(e2e_clip, (width, height))
    result["machine"]["load_end"] = os.getloadavg()
    print_tables(result)
    print(f"\nLoad average at the end: {', '.join(f'{x:.2f}' for x in result['machine']['load_end'])}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


def get_args_parser():
    parser = argparse.ArgumentParser(description="Measure the optical flow methods (speed on one core, accuracy).")
    parser.add_argument("--samples", nargs="+", default=DEFAULT_SAMPLES,
                        help="folders of <Class>/<video>.avi (default: ../shared/data/ucf101-samples and ucf101-more)")
    parser.add_argument("--size", default="340x256", help="frame size WxH (default: 340x256, TSN's)")
    parser.add_argument("--pairs-per-clip", type=int, default=4, help="pairs timed per clip (default: 4)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats; the minimum is reported (default: 3)")
    parser.add_argument("--json", default=None, help="also write the numbers here (default: none)")
    return parser


if __name__ == "__main__":
    main(get_args_parser().parse_args())
