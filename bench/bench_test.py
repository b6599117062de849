"""Test-script benchmark: speed and whole-tree peak memory of whole-video testing, ours and the assignment's.

    python bench/bench_test.py [--scripts single,baseline,full,pieces,sliding,features] [--frames-list 100,1200]
                               [--bound-frames 512] [--image-size 112] [--image-size-3d 112]
                               [--workers 2] [--threads default] [--root DIR ...] [--repeats 1]
                               [--mappings] [--json PATH] [--env NAME=VALUE] [--strict] [--quick]

For every frame count it writes (in a subprocess) one synthetic UCF-101-shaped video (240x320, uint8
RGB, a moving noise pattern) with helperFunctions.write_video_hdf5 into a data dir of its own laid out
as the real one (ucfTrainTestlist/{classInd,trainlist01,testlist01}.txt with CRLF, 101 classes, and
UCF-101-hdf5/<Class>/<video>.hdf5, one test video), and checkpoints in the training scripts' format
(random weights: speed and memory do not depend on them). Then, each in a subprocess of its own so
that peaks never mix (--scripts chooses which):

  single    test_single_frame.py (part 1, ours): every frame through the 2D ResNet (--batch-size 100).
  baseline  the assignment's part 1 test, transcribed below (`assignment_test_video`): the whole video
            as float32 [frames, 3, S, S] read frame by frame, then the model on slices of 200 frames.
  full      test_3d.py --mode full (the exact whole-video pass, in tiles of --tile-frames) with the
            3D ResNet-50
  pieces    test_3d.py --mode full --max-frames 512: the older full mode, pieces run alone (an
            approximation, kept as an option)
  sliding   test_3d.py --mode sliding (every 16-frame window at --stride 8), all three at
            --image-size-3d (default 112, the Kinetics training size).
  features  extract_features.py --subsets test --pretrained none (ResNet-50, random weights: no
            download) on the same data dir.
Our scripts run at their own --chunk-frames unless --chunk-frames is given, once per value of
--workers and --threads (comma lists: a sweep; "default" = the flag or variable not set, i.e. the
scripts' own default), and once per --root (another checkout, e.g. a patched copy, measured side by
side with this one in the same run). --threads N sets OMP_NUM_THREADS=N, which torch takes as its
intra-op thread count (the baseline always runs with torch's default, as the assignment's code does).

Our scripts also run on a --bound-frames video (default 512 = --max-frames): long enough that every
memory bound is reached (a piece of --max-frames frames, all chunks in flight), so comparing
it with the longest video shows whether memory still grows once the bounds are reached.

Memory, per run, of the whole process tree:
  - test process: its peak RSS (VmHWM, polled from /proc every 20 ms; wait4()'s ru_maxrss, exact,
    raises it when the poll missed the very end), and apart the peaks of its anonymous and
    file-backed parts (RssAnon, RssFile: libraries are file-backed; sampled);
  - loader workers (forked children running the same command line): peak VmHWM, which includes
    pages shared with the parent since the fork, and peak private memory (Private_* in
    /proc/PID/smaps_rollup, sampled every 200 ms: reading it costs ~3 ms of CPU, which at 20 ms
    would take 15% of a 2-core machine from our runs and none from the baseline's);
  - /dev/shm: the test scripts hand chunks from the workers to the parent through files there
    (helperFunctions.SharedSlots): memory that no process's RSS shows. Where `unshare --mount` works
    (root or user namespaces) each test process gets a tmpfs of its own, measured exactly; otherwise
    the slot folders that appear during the run are summed (other jobs' too, flagged "(?)").
  - total = test process peak + the sum of the workers' private peaks + /dev/shm peak: an upper
    bound of what the tree held at once (pages shared with the parent counted once, in the parent);
    the JSON's sampled_peak_mb is the largest sum of the same parts read at one instant (every
    200 ms: a lower bound, and a noisy one, since the test process's peak lasts milliseconds).
  - --mappings: every second, /proc/PID/smaps of the test process and of each worker, summed by kind
    of mapping (brk heap, glibc thread arenas, large and small anonymous mmaps, files, stacks);
    the peak of each kind is printed for the shortest and the longest video.
Memory requirement, per script of ours: the longest video's total at most 50 MB above the shortest's
(and the test process's peak too); PASS/FAIL lines with the growth split into its parts.

Speed: frames/s as the test scripts report it (their own timer: loading + model + writing, without
interpreter start-up and model construction; the baseline's timer covers the same); clips/s =
prediction rows (windows or pieces) per second of that timer. `wall s` is the whole subprocess, CPU
user/sys its CPU time with its workers' (getrusage of the reaped tree). With --repeats N every cell is
the median of N runs, the repeats interleaved (repeat r runs every configuration once, starting r
configurations later). Speed ratio (ours / the assignment's, test_single_frame.py only): per repeat, of
two runs taken one after the other on the same video, then the median over the repeats; also as CPU
seconds per frame (less sensitive to other jobs on a shared machine). Each run's load average is
printed; the videos stay in the page cache: these are CPU and memory costs, not disk reads.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

MEMORY_LIMIT_MB = 50.0
NUM_CLASSES = 101
HEIGHT, WIDTH = 240, 320
TEST_CLASS = "ApplyEyeMakeup"
FPS_LINE = re.compile(r"(\d+) frames in ([\d.]+) s \(([\d.]+) frames/s\)")

SCRIPTS = {  # --scripts key -> (row name, ours: the memory requirement applies)
    "single": ("ours: test_single_frame.py", True),
    "baseline": ("assignment part 1 test (baseline)", False),
    "full": ("ours: test_3d.py --mode full", True),
    "pieces": ("ours: test_3d.py --mode full --max-frames", True),
    "sliding": ("ours: test_3d.py --mode sliding", True),
    "features": ("ours: extract_features.py", True),
}


# ----------------------------------------------------------------------------------------------
# The assignment's part 1 test, transcribed (the `[i]` -> `[j]` fault fixed, as the brief asks;
# the rest as written: whole video in float32, float resize, CPU normalisation, slices of 200).

def assignment_test_video(model, filename, num_classes, image_size, mean, std, torch, np, cv2, h5py):
    h = h5py.File(filename, 'r')
    nFrames = len(h['video'])
    data = np.zeros((nFrames, 3, image_size, image_size), dtype=np.float32)
    for j in range(nFrames):
        frame = h['video'][j]
        frame = frame.astype(np.float32)
        frame = cv2.resize(frame, (image_size, image_size))
        frame = frame / 255.0
        frame = (frame - mean) / std
        frame = frame.transpose(2, 0, 1)
        data[j, :, :, :] = frame
    h.close()

    prediction = np.zeros((nFrames, num_classes), dtype=np.float32)
    loop_i = list(range(0, nFrames, 200))
    loop_i.append(nFrames)
    for j in range(len(loop_i) - 1):
        data_batch = data[loop_i[j]:loop_i[j + 1]]
        with torch.no_grad():
            x = np.asarray(data_batch, dtype=np.float32)
            x = torch.FloatTensor(x).contiguous()  # .cuda() in the assignment; CPU here
            output = model(x)
        prediction[loop_i[j]:loop_i[j + 1]] = output.cpu().numpy()
    return prediction


def baseline_main(argv):
    """Subprocess side of the baseline: load the checkpoint's model, test one video, print JSON."""
    p = argparse.ArgumentParser(prog="bench_test.py --baseline")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--video", required=True)
    p.add_argument("--image-size", type=int, required=True)
    a = p.parse_args(argv)
    import cv2
    import h5py
    import numpy as np
    import torch
    import torch.nn as nn
    import torchvision

    checkpoint = torch.load(a.checkpoint, map_location="cpu", weights_only=True)
    model = getattr(torchvision.models, checkpoint["args"]["arch"])(weights=None)
    model.fc = nn.Linear(model.fc.in_features, len(checkpoint["class_list"]))
    model.load_state_dict(checkpoint["model"])
    num_classes = len(checkpoint["class_list"])
    del checkpoint  # the assignment loads a pickled model: no second copy of the weights
    model.eval()
    mean = np.asarray([0.485, 0.456, 0.406], np.float32)
    std = np.asarray([0.229, 0.224, 0.225], np.float32)
    start = time.perf_counter()
    prediction = assignment_test_video(model, a.video, num_classes, a.image_size, mean, std,
                                       torch, np, cv2, h5py)
    seconds = time.perf_counter() - start
    print("BASELINE " + json.dumps({"frames": int(prediction.shape[0]), "rows": int(prediction.shape[0]),
                                    "seconds": seconds}), flush=True)


# ----------------------------------------------------------------------------------------------
# Data and checkpoints

def class_names():
    names = [TEST_CLASS] + [f"Class{i:03d}" for i in range(2, NUM_CLASSES + 1)]
    return names


def write_root(root, frames, seed=0):
    """A data dir with one test video of `frames` frames; returns the video's path."""
    import numpy as np

    from actionrec.data import video_files

    names = class_names()
    lists = os.path.join(root, "ucfTrainTestlist")
    os.makedirs(lists, exist_ok=True)

    def write(name, lines):
        with open(os.path.join(lists, name), "w", newline="") as f:
            f.write("".join(line + "\r\n" for line in lines))

    write("classInd.txt", [f"{i} {n}" for i, n in enumerate(names, 1)])
    write("trainlist01.txt", [f"{TEST_CLASS}/v_{TEST_CLASS}_g08_c01.avi 1"])  # never read by the tests
    write("testlist01.txt", [f"{TEST_CLASS}/v_{TEST_CLASS}_g01_c01.avi"])
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    video = np.empty((frames, HEIGHT, WIDTH, 3), dtype=np.uint8)
    for t in range(frames):  # a pattern moving 3 px per frame
        video[t] = np.roll(base, 3 * t, axis=1)
    path = os.path.join(root, "UCF-101-hdf5", TEST_CLASS, f"v_{TEST_CLASS}_g01_c01.hdf5")
    video_files.write_video_hdf5(path, video)
    return path


def setup_main(argv):
    """Subprocess side of the set-up: videos and checkpoints, so the benchmark process itself stays
    small (a child's ru_maxrss starts from its parent's RSS at the fork)."""
    p = argparse.ArgumentParser(prog="bench_test.py --setup")
    p.add_argument("--work", required=True)
    p.add_argument("--frames-list", required=True)
    p.add_argument("--arch", required=True)
    p.add_argument("--image-size", type=int, required=True)
    p.add_argument("--image-size-3d", type=int, required=True)
    p.add_argument("--skip-3d", action="store_true")
    a = p.parse_args(argv)
    setups = {}
    for frames in (int(f) for f in a.frames_list.split(",")):
        root = os.path.join(a.work, f"data_{frames}")
        t = time.perf_counter()
        video = write_root(root, frames)
        print(f"wrote {video}: {frames} frames {HEIGHT}x{WIDTH} ({time.perf_counter() - t:.1f} s)", flush=True)
        setups[frames] = {"root": root, "video": video}
    checkpoints = write_checkpoints(a.work, a, setups[min(setups)]["root"])
    print("SETUP " + json.dumps({"setups": setups, "checkpoints": checkpoints}), flush=True)


def write_checkpoints(out, args, root):
    """2D and 3D checkpoints in the training scripts' format (engine.train's state())."""
    import torch

    from actionrec.engine import devices
    from actionrec.zoo import clip_nets, frame_nets

    ranks = devices.Dist()
    names = class_names()
    torch.manual_seed(0)
    paths = {}
    model = frame_nets.build_model(argparse.Namespace(arch=args.arch, pretrained="none", weights=None),
                                           len(names), ranks, pretrained=False)
    paths["frame"] = os.path.join(out, "frame.pth")
    torch.save({"model": model.state_dict(), "class_list": names, "kind": "frame", "epoch": 1, "step": 0,
                "args": {"arch": args.arch, "image_size": args.image_size, "data_dir": root, "split": 1}},
               paths["frame"])
    if not args.skip_3d:
        model = clip_nets.build_model(argparse.Namespace(depth=50, layer4_blocks=1, kinetics_checkpoint="none"),
                                     len(names), ranks, pretrained=False)
        paths["clip"] = os.path.join(out, "clip.pth")
        torch.save({"model": model.state_dict(), "class_list": names, "kind": "clip", "epoch": 1, "step": 0,
                    "args": {"depth": 50, "layer4_blocks": 1, "clip_len": 16, "norm": "assignment",
                             "image_size": args.image_size_3d, "data_dir": root, "split": 1}},
                   paths["clip"])
    return paths


# ----------------------------------------------------------------------------------------------
# Measuring a process tree

def _status_kb(pid, *fields):
    """{field: kB} of /proc/PID/status lines (VmHWM, VmRSS, RssAnon, RssFile...); missing ones absent."""
    found = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name in fields:
                    found[name] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return found


def _private_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return sum(int(line.split()[1]) for line in f if line.startswith(("Private_Clean:", "Private_Dirty:")))
    except (OSError, ValueError, IndexError):
        return None


ARENA_SPAN = 64 * 2 ** 20  # glibc's HEAP_MAX_SIZE on 64-bit: a thread arena is an aligned 64 MB reservation


def mapping_kinds(pid):
    """/proc/PID/smaps summed by kind of mapping -> {kind: (rss kB, private kB)}.

    Kinds: "heap" (glibc's main arena, brk), "glibc arenas" (other threads' arenas: anonymous mappings
    inside a 64 MB-aligned reservation), "anon >= 1 MB" (large malloc blocks, i.e. tensors and arrays,
    and allocator pools), "anon < 1 MB", "files" (libraries and other mapped files), "stack", "other".
    """
    maps = []
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                head = line.split(None, 5)
                if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                    start, end = (int(x, 16) for x in head[0].split("-"))
                    maps.append({"start": start, "end": end, "perms": head[1],
                                 "name": head[5].strip() if len(head) > 5 else "", "rss": 0, "private": 0})
                elif maps and head[0] == "Rss:":
                    maps[-1]["rss"] = int(head[1])
                elif maps and head[0] in ("Private_Clean:", "Private_Dirty:"):
                    maps[-1]["private"] += int(head[1])
    except (OSError, ValueError, IndexError):
        return {}
    kinds = {}
    for i, m in enumerate(maps):
        name = m["name"]
        if name == "[heap]":
            kind = "heap"
        elif name.startswith("[stack"):
            kind = "stack"
        elif name.startswith("/") and not name.startswith("/dev/shm"):
            kind = "files"
        elif name in ("", "[anon]") or name.startswith("[anon:"):
            # A thread arena starts on a 64 MB boundary; what it has not used yet follows as ---p.
            reserved = m["end"] - m["start"] == ARENA_SPAN or (
                i + 1 < len(maps) and maps[i + 1]["start"] == m["end"] and maps[i + 1]["perms"].startswith("---")
                and maps[i + 1]["end"] == m["start"] + ARENA_SPAN)
            if m["start"] % ARENA_SPAN == 0 and reserved and not m["perms"].startswith("---"):
                kind = "glibc arenas"
            else:
                kind = "anon >= 1 MB" if m["end"] - m["start"] >= 2 ** 20 else "anon < 1 MB"
        else:
            kind = "other"
        rss, private = kinds.get(kind, (0, 0))
        kinds[kind] = (rss + m["rss"], private + m["private"])
    return kinds


def _children(pid):
    found = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found += [int(c) for c in f.read().split()]
    except (OSError, ValueError):
        pass
    return found


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


SHM_DIR = "/dev/shm"
SHM_PREFIX = "ucf101-slots-"  # helperFunctions.SharedSlots: the ring of files the workers hand chunks through


def _shm_dirs():
    try:
        return {n for n in os.listdir(SHM_DIR) if n.startswith(SHM_PREFIX)}
    except OSError:
        return set()


def _dir_bytes(path):
    """Allocated bytes of the files in `path` (tmpfs pages: memory no process's RSS shows)."""
    total = 0
    try:
        for entry in os.scandir(path):
            try:
                total += entry.stat(follow_symlinks=False).st_blocks * 512
            except OSError:
                pass
    except OSError:
        pass
    return total


ISOLATE = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
           'mount -t tmpfs tmpfs /dev/shm && exec "$@"', "sh"]


def shm_isolation_works():
    """Whether a test process can get a /dev/shm of its own (a private mount namespace: needs root or
    user namespaces), so that its shared-memory files are told apart from other jobs'."""
    if not shutil.which("unshare"):
        return False
    try:
        return subprocess.run(ISOLATE + ["true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _shm_used(pid):
    """Bytes used on the /dev/shm the process `pid` sees (its own tmpfs when isolated)."""
    try:
        st = os.statvfs(f"/proc/{pid}/root{SHM_DIR}")
        return (st.f_blocks - st.f_bfree) * st.f_frsize
    except OSError:
        return 0


def _max_kinds(peaks, kinds, index):
    for kind, values in kinds.items():
        peaks[kind] = max(peaks.get(kind, 0), values[index])


def run_measured(cmd, log_path, poll=0.02, private_every=10, isolate=False, env=None, timeout=None, cwd=REPO_ROOT,  # noqa: C901 (split up in the restructure, issue 21)
                 mappings_every=0):
    """Run `cmd` (in `cwd`); returns wall time, exit code, CPU time and memory peaks in MB.

    Loader workers are the children that run the parent's own command line (forked, not exec'd)
    and live for several polls; short helpers forked by imports (fork + exec of a tool) are not.
    Their private memory is read every `private_every` polls (smaps_rollup is costly); with
    `mappings_every` every so many polls the full smaps of each process, by mapping_kinds.
    With `isolate` the process runs with a /dev/shm of its own and its use is measured exactly;
    otherwise the slot folders (helperFunctions.SharedSlots) that appear during the run are summed,
    which counts other jobs' folders too when they run at the same time (flagged by shm_dirs > 1).
    """
    main = {"VmHWM": 0, "RssAnon": 0, "RssFile": 0}
    children = {}  # pid -> {"hwm", "private", "last_private", "polls", "worker"}
    main_kinds, worker_kinds = {}, {}  # kind -> peak rss (test process) / peak private (largest worker)
    shm_before, shm_seen, shm_peak, sampled_peak = _shm_dirs(), set(), 0, 0
    stop = threading.Event()
    load_start = loadavg()
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen((ISOLATE if isolate else []) + list(cmd), cwd=cwd, stdout=log,
                                stderr=subprocess.STDOUT, env=None if not env else {**os.environ, **env})

    def poller():
        nonlocal shm_peak, sampled_peak
        count = 0
        while not stop.is_set():
            shm_now = 0
            if isolate:
                # Only once `sh` has mounted the private tmpfs and exec'd the command.
                if _cmdline(proc.pid).split(b"\0", 1)[0] == os.fsencode(cmd[0]):
                    shm_now = _shm_used(proc.pid)
            else:
                new = _shm_dirs() - shm_before
                shm_seen.update(new)
                shm_now = sum(_dir_bytes(os.path.join(SHM_DIR, d)) for d in new)
            shm_peak = max(shm_peak, shm_now)
            status = _status_kb(proc.pid, "VmHWM", "VmRSS", "RssAnon", "RssFile")
            for key in main:
                main[key] = max(main[key], status.get(key, 0))
            main_cmd = _cmdline(proc.pid)
            read_private = count % private_every == 0
            read_maps = mappings_every and count % mappings_every == 0
            if read_maps:
                _max_kinds(main_kinds, mapping_kinds(proc.pid), 0)
            todo = _children(proc.pid)
            while todo:
                pid = todo.pop()
                todo += _children(pid)
                c = children.setdefault(pid, {"hwm": 0, "private": 0, "last_private": 0, "polls": 0, "worker": False})
                c["polls"] += 1
                c["worker"] = c["worker"] or (bool(main_cmd) and _cmdline(pid) == main_cmd)
                c["hwm"] = max(c["hwm"], _status_kb(pid, "VmHWM").get("VmHWM", 0))
                if read_private or c["polls"] == 1:
                    c["last_private"] = _private_kb(pid) or 0
                    c["private"] = max(c["private"], c["last_private"])
                if read_maps and c["worker"]:
                    _max_kinds(worker_kinds, mapping_kinds(pid), 1)
            if read_private:  # the tree at one instant: parent RSS + workers' private + /dev/shm
                sampled_peak = max(sampled_peak, status.get("VmRSS", 0) * 1024 + shm_now + 1024 * sum(
                    c["last_private"] for p, c in children.items() if c["worker"] and os.path.exists(f"/proc/{p}")))
            count += 1
            stop.wait(poll)

    thread = threading.Thread(target=poller, daemon=True)
    thread.start()
    timed_out = False
    while True:  # wait4: max RSS of the process and its reaped children
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if timeout and not timed_out and time.perf_counter() - start > timeout:
            timed_out = True  # a hung run (e.g. a stuck pool shutdown): end it and its workers
            for child in _children(proc.pid):
                try:
                    os.kill(child, signal.SIGKILL)
                except OSError:
                    pass
            proc.kill()
        time.sleep(0.05)
    wall = time.perf_counter() - start
    stop.set()
    thread.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    workers = [c for c in children.values() if c["worker"] and c["polls"] >= 3]
    worker_hwm = max((w["hwm"] for w in workers), default=0)
    main_hwm = main["VmHWM"]
    # ru_maxrss also counts the forked copy of this process before exec and any child: use it only
    # when it is above both (then it is the test process's own peak, grown after the last poll).
    if usage.ru_maxrss > max(worker_hwm, _status_kb(os.getpid(), "VmHWM").get("VmHWM", 0)):
        main_hwm = max(main_hwm, usage.ru_maxrss)
    mb = 1024.0
    shm_mb = shm_peak / 2 ** 20
    private_sum = sum(w["private"] for w in workers) / mb
    return {"wall_s": wall, "returncode": proc.returncode, "timed_out": timed_out, "main_peak_mb": main_hwm / mb,
            "main_anon_peak_mb": main["RssAnon"] / mb, "main_file_peak_mb": main["RssFile"] / mb,
            "shm_peak_mb": shm_mb, "shm_dirs": len(shm_seen),
            "cpu_user_s": usage.ru_utime, "cpu_sys_s": usage.ru_stime, "minor_faults": usage.ru_minflt,
            "rusage_maxrss_mb": usage.ru_maxrss / mb, "workers": len(workers),
            "other_children": len(children) - len(workers),
            "worker_peak_mb": worker_hwm / mb,
            "worker_private_peak_mb": max((w["private"] for w in workers), default=0) / mb,
            "worker_private_sum_mb": private_sum,
            "total_peak_mb": main_hwm / mb + private_sum + shm_mb,
            "sampled_peak_mb": sampled_peak / 2 ** 20,
            "main_kinds_mb": {k: v / mb for k, v in main_kinds.items()},
            "worker_kinds_mb": {k: v / mb for k, v in worker_kinds.items()},
            "load_start": load_start, "load_end": loadavg()}


# ----------------------------------------------------------------------------------------------
# The runs

def prediction_rows(pred_dir, video):
    from actionrec.evaluation import predictions as prediction_files
    return int(prediction_files.read_predictions(prediction_files.prediction_path(pred_dir, video)).shape[0])


def config_label(key, config, show):
    """Row name of script `key` under `config` (workers, threads, root); `show`: which of those vary."""
    name = SCRIPTS[key][0]
    if key == "baseline":
        return name
    parts = [f"workers {config['workers']}"]
    if "threads" in show:
        parts.append(f"threads {config['threads']}")
    if "root" in show:
        parts.append(f"root {config['root']}")
    return f"{name} ({', '.join(parts)})"


def run_one(key, config, frames, setup, args, work, tag, isolate=False):
    """One measured run of script `key` under `config` on the `frames`-frame video."""
    root, video, ckpts = setup["root"], setup["video"], setup["checkpoints"]
    run_dir = os.path.join(work, "runs", tag)
    os.makedirs(run_dir, exist_ok=True)
    pred_dir, out_dir, log_path = (os.path.join(run_dir, n) for n in ("predictions", "test", "log.txt"))
    code = config["root"] if key != "baseline" else REPO_ROOT
    common = ["--data-dir", root, "--device", "cpu"]
    if config["workers"] != "default":
        common += ["--workers", str(config["workers"])]
    if args.chunk_frames:
        common += ["--chunk-frames", str(args.chunk_frames)]
    tested = ["--predictions-dir", pred_dir, "--output-dir", out_dir]
    size = args.image_size
    if key == "single":
        cmd = [sys.executable, os.path.join(code, "test_single_frame.py"), "--checkpoint", ckpts["frame"],
               *common, *tested, "--batch-size", str(args.batch_size), "--image-size", str(args.image_size)]
    elif key == "baseline":
        cmd = [sys.executable, os.path.abspath(__file__), "--baseline", "--checkpoint", ckpts["frame"],
               "--video", video, "--image-size", str(args.image_size)]
    elif key == "features":
        cmd = [sys.executable, os.path.join(code, "extract_features.py"), *common, "--output-dir", pred_dir,
               "--subsets", "test", "--pretrained", "none", "--arch", args.arch,
               "--batch-size", str(args.batch_size), "--image-size", str(args.image_size)]
    else:
        mode = {"full": ["--mode", "full", *(["--tile-frames", str(args.tile_frames)] if args.tile_frames else [])],
                "pieces": ["--mode", "full", "--max-frames", str(args.max_frames)],
                "sliding": ["--mode", "sliding", "--stride", str(args.stride)]}[key]
        cmd = [sys.executable, os.path.join(code, "test_3d.py"), "--checkpoint", ckpts["clip"], *common, *tested,
               *mode, "--image-size", str(args.image_size_3d)]
        if args.batch_size_3d:
            cmd += ["--batch-size", str(args.batch_size_3d)]
        size = args.image_size_3d
    env = dict(e.split("=", 1) for e in args.env)
    if key != "baseline" and config["threads"] != "default":
        env["OMP_NUM_THREADS"] = str(config["threads"])
    result = run_measured(cmd, log_path, isolate=isolate, env=env, timeout=args.timeout, cwd=code,
                          mappings_every=50 if args.mappings else 0)
    with open(log_path) as f:
        log = f.read()
    what = config_label(key, config, args.show)
    if result["returncode"] != 0:
        why = f"timed out after {args.timeout} s" if result["timed_out"] else f"exit {result['returncode']}"
        print(f"FAILED RUN {what} on {frames} frames ({why}): {' '.join(cmd)}\n{log[-2000:]}", flush=True)
        return None
    if key == "baseline":
        info = json.loads(log.split("BASELINE ", 1)[1].splitlines()[0])
        seconds, rows = info["seconds"], info["rows"]
    else:
        m = FPS_LINE.search(log)
        if not m:
            raise SystemExit(f"no 'frames/s' line in the output of {' '.join(cmd)}:\n{log[-3000:]}")
        computed, fps = int(m.group(1)), float(m.group(3))
        seconds = computed / fps if fps > 0 else float(m.group(2))
        rows = computed if key == "features" else prediction_rows(pred_dir, video)
    shutil.rmtree(run_dir, ignore_errors=True)  # prediction files, and room on the disk
    result.update({"script": key, "what": what, "config": config, "frames": frames, "image_size": size,
                   "seconds": seconds, "rows": rows, "frames_per_s": frames / seconds, "rows_per_s": rows / seconds,
                   "cpu_s_per_frame": (result["cpu_user_s"] + result["cpu_sys_s"]) / frames, "command": cmd})
    return result


MEDIAN_KEYS = ("wall_s", "cpu_user_s", "cpu_sys_s", "minor_faults", "main_peak_mb", "main_anon_peak_mb",
               "main_file_peak_mb", "shm_peak_mb", "rusage_maxrss_mb", "worker_peak_mb", "worker_private_peak_mb",
               "worker_private_sum_mb", "total_peak_mb", "sampled_peak_mb", "seconds", "frames_per_s", "rows_per_s",
               "cpu_s_per_frame")


def median_row(runs):
    row = {k: runs[0][k] for k in ("script", "what", "config", "frames", "image_size", "rows", "workers")}
    row["shm_dirs"] = max(r["shm_dirs"] for r in runs)
    row.update({k: statistics.median(r[k] for r in runs) for k in MEDIAN_KEYS})
    for kinds in ("main_kinds_mb", "worker_kinds_mb"):
        names = sorted({k for r in runs for k in r[kinds]})
        row[kinds] = {k: statistics.median(r[kinds].get(k, 0.0) for r in runs) for k in names}
    row["load"] = [statistics.median(r["load_start"][0] for r in runs if r["load_start"]),
                   statistics.median(r["load_end"][0] for r in runs if r["load_end"])] \
        if all(r["load_start"] and r["load_end"] for r in runs) else None
    row["repeats"] = len(runs)
    return row


def speed_text(row):
    if row["script"] == "sliding":
        return f"{row['rows_per_s']:.2f} clips/s ({row['rows']} windows; {row['frames_per_s']:.1f} frames/s)"
    if row["script"] == "pieces":
        return f"{row['rows_per_s']:.3f} pieces/s ({row['rows']} pieces); {row['frames_per_s']:.1f} frames/s"
    return f"{row['frames_per_s']:.2f} frames/s"


def markdown_table(rows):
    lines = ["| what | frames | image size | frames/s or clips/s | CPU s/frame | peak RSS MB (test process) "
             "| workers: peak RSS / private MB | /dev/shm MB | total MB | wall s | CPU user / sys s | load |",
             "|---|---:|---:|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        workers = (f"{r['workers']} x {r['worker_peak_mb']:.0f} / {r['worker_private_peak_mb']:.0f}"
                   if r["workers"] else "none")
        load = f"{r['load'][0]:.1f}-{r['load'][1]:.1f}" if r.get("load") else ""
        lines.append(f"| {r['what']} | {r['frames']} | {r['image_size']} | {speed_text(r)} | "
                     f"{r['cpu_s_per_frame']:.3f} | {r['main_peak_mb']:.0f} | {workers} | "
                     f"{r['shm_peak_mb']:.0f}{'' if r['shm_dirs'] <= 1 else ' (?)'} | "
                     f"{r['total_peak_mb']:.0f} | {r['wall_s']:.1f} | {r['cpu_user_s']:.0f} / {r['cpu_sys_s']:.0f} | "
                     f"{load} |")
    return "\n".join(lines)


def criteria(rows, short, long, bound):
    """Per configuration of ours: short vs long video (the requirement), and bound vs long (past the
    chunk bound), with the growth split into the test process (anon / file), workers and /dev/shm."""
    results = []
    pairs = [("length", short, long)] + ([("bound", bound, long)] if bound else [])
    for what in dict.fromkeys(r["what"] for r in rows):
        by_frames = {r["frames"]: r for r in rows if r["what"] == what}
        ours = SCRIPTS[next(iter(by_frames.values()))["script"]][1]
        for kind, a_frames, b_frames in pairs:
            if a_frames not in by_frames or b_frames not in by_frames or a_frames == b_frames:
                continue
            a, b = by_frames[a_frames], by_frames[b_frames]
            delta = {k: b[k] - a[k] for k in ("main_peak_mb", "main_anon_peak_mb", "main_file_peak_mb",
                                              "worker_private_sum_mb", "shm_peak_mb", "total_peak_mb",
                                              "sampled_peak_mb")}
            ok = delta["main_peak_mb"] <= MEMORY_LIMIT_MB and delta["total_peak_mb"] <= MEMORY_LIMIT_MB
            verdict = ("PASS" if ok else "FAIL") if ours else "INFO"
            results.append({"what": what, "kind": kind, "short": a_frames, "long": b_frames,
                            "main_short_mb": a["main_peak_mb"], "main_long_mb": b["main_peak_mb"],
                            "delta_main_mb": delta["main_peak_mb"], "total_short_mb": a["total_peak_mb"],
                            "total_long_mb": b["total_peak_mb"], "delta_total_mb": delta["total_peak_mb"],
                            "deltas_mb": delta, "limit_mb": MEMORY_LIMIT_MB, "pass": ok if ours else None,
                            "verdict": verdict})
    return results


def criteria_lines(results):
    lines = []
    for c in results:
        label = "requirement" if c["kind"] == "length" else "past the chunk/piece bound"
        d = c["deltas_mb"]
        lines.append(
            f"{c['verdict']} {c['what']} ({label}, {c['short']} vs {c['long']} frames): "
            f"whole tree {c['total_short_mb']:.0f} -> {c['total_long_mb']:.0f} MB ({c['delta_total_mb']:+.0f} MB"
            f" = test process {d['main_peak_mb']:+.0f} [anon {d['main_anon_peak_mb']:+.0f}, files "
            f"{d['main_file_peak_mb']:+.0f}], workers {d['worker_private_sum_mb']:+.0f}, /dev/shm "
            f"{d['shm_peak_mb']:+.0f}), "
            f"test process {c['main_short_mb']:.0f} -> {c['main_long_mb']:.0f} MB; limit +{c['limit_mb']:.0f} MB"
        )
    return lines


def mapping_lines(rows, short, long):
    """Peak MB per kind of mapping (mapping_kinds) for the shortest and the longest video."""
    lines = []
    for what in dict.fromkeys(r["what"] for r in rows if r["main_kinds_mb"]):
        by_frames = {r["frames"]: r for r in rows if r["what"] == what}
        if short not in by_frames or long not in by_frames:
            continue
        a, b = by_frames[short], by_frames[long]
        for side, title in (("main_kinds_mb", "test process, RSS"), ("worker_kinds_mb", "largest worker, private")):
            kinds = sorted(set(a[side]) | set(b[side]), key=lambda k: -b[side].get(k, 0.0))
            if kinds:
                lines.append(f"{what}, {title} by mapping ({short} -> {long} frames, MB, sampled every second): " +
                             ", ".join(f"{k} {a[side].get(k, 0):.0f} -> {b[side].get(k, 0):.0f}" for k in kinds))
    return lines


def speed_ratios(runs, frames_list):
    """Per configuration of test_single_frame.py and video length: ours / the assignment's, paired by
    repeat (the two runs taken one after the other), median over the repeats."""
    results = []
    baselines = {(r["frames"], r["repeat"]): r for rs in runs.values() for r in rs if r["script"] == "baseline"}
    for (what, frames), rs in runs.items():
        if rs[0]["script"] != "single" or frames not in frames_list:
            continue
        pairs = [(r, baselines[(frames, r["repeat"])]) for r in rs if (frames, r["repeat"]) in baselines]
        if not pairs:
            continue
        fps = [o["frames_per_s"] / b["frames_per_s"] for o, b in pairs]
        cpu = [b["cpu_s_per_frame"] / o["cpu_s_per_frame"] for o, b in pairs]
        loads = [x["load_start"][0] for pair in pairs for x in pair if x["load_start"]]
        results.append({"what": what, "frames": frames, "ratio": statistics.median(fps), "ratios": fps,
                        "cpu_ratio": statistics.median(cpu), "cpu_ratios": cpu,
                        "ours_fps": statistics.median(o["frames_per_s"] for o, _ in pairs),
                        "baseline_fps": statistics.median(b["frames_per_s"] for _, b in pairs),
                        "load": [min(loads), max(loads)] if loads else None, "repeats": len(pairs)})
    return results


def speed_lines(results):
    lines = []
    for s in results:
        verdict = "PASS" if round(s["ratio"], 2) >= 1.0 else "FAIL"  # as printed: 0.996 is parity, not a loss
        load = f"; load average {s['load'][0]:.1f}-{s['load'][1]:.1f}" if s["load"] else ""
        lines.append(f"{verdict} speed {s['what']} / assignment, {s['frames']} frames: {s['ratio']:.2f} "
                     f"({s['ours_fps']:.2f} / {s['baseline_fps']:.2f} frames/s; per repeat "
                     f"{', '.join(f'{x:.2f}' for x in s['ratios'])}); CPU time per frame, assignment / ours "
                     f"{s['cpu_ratio']:.2f}{load}")
    return lines


def loadavg():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def list_of(text, what):
    """'0,2' -> [0, 2]; 'default' stays a string (the flag is not passed)."""
    values = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        if item == "default":
            values.append(item)
            continue
        try:
            values.append(int(item))
        except ValueError:
            raise SystemExit(f"{what} takes a comma-separated list of numbers or 'default', not {text!r}") from None
    if not values:
        raise SystemExit(f"{what} is empty")
    return values


def get_args_parser():
    p = argparse.ArgumentParser(description="Throughput and whole-tree peak memory of the test scripts (ours and the "
                                            "assignment's part 1 test) on synthetic UCF-101-shaped videos.")
    p.add_argument("--scripts", default=",".join(SCRIPTS),
                   help=f"comma-separated, from {', '.join(SCRIPTS)} (default: all)")
    p.add_argument("--frames-list", default=None,
                   help="video lengths in frames; the memory requirement compares the shortest and the longest "
                        "(default: 100,1200; quick: 30,200)")
    p.add_argument("--bound-frames", type=int, default=None,
                   help="one more video length, run by our scripts only: long enough to reach every memory bound "
                        "(a piece of --max-frames, the chunks in flight), so that comparing it with the "
                        "longest shows whether memory still grows past it; 0 = none (default: 512; quick: 0)")
    p.add_argument("--image-size", type=int, default=None,
                   help="2D model input size: part 1 and features (default: 112; quick: 64)")
    p.add_argument("--image-size-3d", type=int, default=None,
                   help="3D model input size (default: 112, the Kinetics training size; quick: 32)")
    p.add_argument("--arch", default="resnet50", help="torchvision ResNet for part 1 and features (default: resnet50)")
    p.add_argument("--batch-size", type=int, default=100,
                   help="test_single_frame.py and extract_features.py --batch-size (default: 100)")
    p.add_argument("--batch-size-3d", type=int, default=0,
                   help="test_3d.py --batch-size, sliding mode (default: 0 = the script's own: 8 windows on the CPU)")
    p.add_argument("--workers", default="2",
                   help="loader workers of our scripts, a comma-separated list to compare several; 'default' = "
                        "the scripts' own default (default: 2)")
    p.add_argument("--threads", default="default",
                   help="torch threads of our scripts (OMP_NUM_THREADS), a comma-separated list to compare several; "
                        "'default' = torch's own choice (default: default)")
    p.add_argument("--root", action="append", default=[], metavar="DIR",
                   help="run our scripts from this checkout (repeatable: each is measured in the same run, side by "
                        "side; e.g. a patched copy and this repository) (default: this repository)")
    p.add_argument("--chunk-frames", type=int, default=0,
                   help="--chunk-frames of our scripts; 0 = each script's own default (default: 0)")
    p.add_argument("--max-frames", type=int, default=512,
                   help="test_3d.py --max-frames of the pieces run (default: 512)")
    p.add_argument("--tile-frames", type=int, default=None,
                   help="test_3d.py --tile-frames of the full run (default: test_3d.py's own)")
    p.add_argument("--stride", type=int, default=8, help="test_3d.py sliding-mode --stride (default: 8)")
    p.add_argument("--repeats", type=int, default=1, help="runs per cell; the table shows medians (default: 1)")
    p.add_argument("--mappings", action="store_true",
                   help="also read every process's /proc/PID/smaps once a second and report peak memory per kind of "
                        "mapping (heap, glibc arenas, large/small anonymous mmaps, files) (default: off)")
    p.add_argument("--skip-3d", action="store_true", help="leave out full, pieces and sliding")
    p.add_argument("--skip-baseline", action="store_true", help="leave out the assignment baseline")
    p.add_argument("--strict", action="store_true",
                   help="exit with status 1 when a memory or speed check of ours or a run fails")
    p.add_argument("--timeout", type=float, default=1200,
                   help="seconds after which a run counts as hung and is killed (default: 1200)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run (< 1 min): 30 and 200 frames, no bound run, 64x64 for 2D, 32x32 for 3D")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="environment variable for every measured process (repeatable), e.g. to try allocator "
                        "settings: --env MALLOC_MMAP_MAX_=0 --env MALLOC_TRIM_THRESHOLD_=4294967296")
    p.add_argument("--work-dir", default=None, help="where the data and runs go (default: a temporary dir, removed)")
    p.add_argument("--json", default=None, help="also write the results here")
    return p


def main(argv=None):  # noqa: C901 (split up in the restructure, issue 21)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--baseline"]:
        return baseline_main(argv[1:])
    if argv[:1] == ["--setup"]:
        return setup_main(argv[1:])
    args = get_args_parser().parse_args(argv)
    quick = args.quick
    args.frames_list = args.frames_list or ("30,200" if quick else "100,1200")
    if args.bound_frames is None:
        args.bound_frames = 0 if quick else args.max_frames
    args.image_size = args.image_size or (64 if quick else 112)
    args.image_size_3d = args.image_size_3d or (32 if quick else 112)
    frames_list = [int(f) for f in args.frames_list.split(",") if f.strip()]
    if any("=" not in e for e in args.env):
        raise SystemExit("--env takes NAME=VALUE")
    if not frames_list or min(frames_list) < 1:
        raise SystemExit("--frames-list needs positive frame counts, e.g. 100,1200")
    keys = [k.strip() for k in args.scripts.split(",") if k.strip()]
    if not keys or any(k not in SCRIPTS for k in keys):
        raise SystemExit(f"--scripts takes a comma-separated list from {', '.join(SCRIPTS)}, not {args.scripts!r}")
    keys = [k for k in SCRIPTS if k in keys and not (args.skip_3d and k in ("full", "pieces", "sliding"))
            and not (args.skip_baseline and k == "baseline")]
    roots = [os.path.abspath(r) for r in args.root] or [REPO_ROOT]
    for root in roots:
        if not os.path.isfile(os.path.join(root, "test_single_frame.py")):
            raise SystemExit(f"--root {root}: no test_single_frame.py there")
    configs = [{"workers": w, "threads": t, "root": r} for r in roots
               for w in list_of(args.workers, "--workers") for t in list_of(args.threads, "--threads")]
    args.show = {k for k in ("threads", "root") if len({str(c[k]) for c in configs}) > 1 or
                 (k == "root" and roots != [REPO_ROOT])}
    bound = args.bound_frames if args.bound_frames and args.bound_frames not in frames_list else 0
    all_frames = sorted(set(frames_list) | ({bound} if bound else set()))

    started = time.perf_counter()
    load_start = loadavg()
    print(f"load average at start {load_start}; {os.cpu_count()} CPUs", flush=True)
    work = args.work_dir or tempfile.mkdtemp(prefix="bench_test_")
    os.makedirs(work, exist_ok=True)
    try:
        cmd = [sys.executable, os.path.abspath(__file__), "--setup", "--work", work,
               "--frames-list", ",".join(map(str, all_frames)), "--arch", args.arch,
               "--image-size", str(args.image_size), "--image-size-3d", str(args.image_size_3d)]
        needs_3d = any(k in ("full", "pieces", "sliding") for k in keys)
        done = subprocess.run(cmd + ([] if needs_3d else ["--skip-3d"]), cwd=REPO_ROOT,
                              stdout=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise SystemExit(f"set-up failed: {' '.join(cmd)}")
        print("\n".join(line for line in done.stdout.splitlines() if not line.startswith("SETUP ")), flush=True)
        info = json.loads(done.stdout.split("SETUP ", 1)[1].splitlines()[0])
        setups = {int(f): dict(s, checkpoints=info["checkpoints"]) for f, s in info["setups"].items()}

        isolate = shm_isolation_works()
        print("each test process gets a /dev/shm of its own (unshare --mount): its shared memory is measured exactly"
              if isolate else "no private /dev/shm (unshare --mount failed): shared-memory folders that appear "
              "during a run are counted, other jobs' included", flush=True)
        runs, failed_runs = {}, []
        plan = [(key, config) for key in keys for config in (configs if key != "baseline" else configs[:1])]
        for repeat in range(args.repeats):
            turn = repeat % len(plan)  # each repeat starts one configuration later: no fixed position in the load
            for frames in all_frames:
                for key, config in plan[turn:] + plan[:turn]:
                    if frames == bound and not SCRIPTS[key][1]:
                        continue  # the baseline grows with length anyway: no bound run
                    tag = f"r{repeat}_{frames}_{sum(len(v) for v in runs.values())}"
                    r = run_one(key, config, frames, setups[frames], args, work, tag, isolate)
                    what = config_label(key, config, args.show)
                    if r is None:
                        failed_runs.append({"what": what, "frames": frames, "repeat": repeat})
                        continue
                    r["repeat"] = repeat
                    runs.setdefault((what, frames), []).append(r)
                    print(f"[repeat {repeat + 1}/{args.repeats}] {what}, {frames} frames: {speed_text(r)}, "
                          f"CPU {r['cpu_s_per_frame']:.3f} s/frame, peak RSS {r['main_peak_mb']:.0f} MB "
                          f"(whole tree {r['total_peak_mb']:.0f} MB), wall {r['wall_s']:.1f} s, "
                          f"load {r['load_start'][0]:.2f} -> {r['load_end'][0]:.2f}", flush=True)
        order = list(dict.fromkeys(what for what, _ in runs))  # as planned, then by length
        rows = [median_row(runs[k]) for k in sorted(runs, key=lambda k: (order.index(k[0]), k[1]))]
        results = criteria(rows, min(frames_list), max(frames_list), bound if bound > min(frames_list) else 0)
        speeds = speed_ratios(runs, frames_list)
        total = time.perf_counter() - started
        print()
        print(markdown_table(rows))
        print()
        for line in (
            criteria_lines(results) + mapping_lines(rows, min(frames_list), max(frames_list)) + speed_lines(speeds)
        ):
            print(line)
        note = f"medians of {args.repeats} interleaved run(s)" if args.repeats > 1 else "single run each (--repeats 1)"
        print(f"\n{note}; total {total:.0f} s; load average at start {load_start}, at end {loadavg()}")
        if args.json:
            import torch
            report = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
                      "host": {"platform": platform.platform(), "python": platform.python_version(),
                               "torch": torch.__version__, "cpus": os.cpu_count(),
                               "torch_threads": torch.get_num_threads()},
                      "config": {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(args).items()},
                      "frames_list": frames_list, "bound_frames": bound,
                      "shm_isolated": isolate, "failed_runs": failed_runs,
                      "rows": rows, "criteria": results, "speed": speeds,
                      "runs": [r for rs in runs.values() for r in rs],
                      "total_seconds": total, "loadavg_start": load_start, "loadavg_end": loadavg()}
            os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
            with open(args.json, "w") as f:
                json.dump(report, f, indent=2)
            print(f"wrote {args.json}")
        for f in failed_runs:
            print(f"FAILED RUN: {f['what']} on {f['frames']} frames (repeat {f['repeat'] + 1}): see above")
        failed = [c for c in results if c["pass"] is False] + [s for s in speeds if round(s["ratio"], 2) < 1.0]
        return 1 if (failed or failed_runs) and args.strict else 0
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
