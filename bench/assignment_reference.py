"""The course assignment's `loadFrame` / `loadSequence`, transcribed as the baseline we measure against.

Source: the UIUC CS547/IE534 "action recognition" homework's helperFunctions.py (public copies of it
are in many students' repositories). The logic is kept as it is, faults included, because the
benchmark and the equivalence tests compare our loaders with exactly this behaviour. Each known fault
is marked `FAULT:`. Two changes only, neither of which alters what is computed:
  - the path rewriting can be switched off (`rewrite_paths=False`) so the benchmark can pass .hdf5
    paths directly;
  - the constants are module-level names so the tests can refer to them.

Do not use this module for training: use helperFunctions.loadFrame / loadSequence.
"""
import cv2
import h5py
import numpy as np

FRAME_MEAN = np.asarray([0.485, 0.456, 0.406], np.float32)
FRAME_STD = np.asarray([0.229, 0.224, 0.225], np.float32)
CLIP_MEAN = np.asarray([0.433, 0.4045, 0.3776], np.float32)
CLIP_STD = np.asarray([0.1519876, 0.14855877, 0.156976], np.float32)

# FAULT: the frame size is hard-coded; a video that is not 320x240 gets crop offsets computed for
# 320x240 (for a 160x120 video the "crop" can keep as little as 40% of the width, never scaled).
CURR_W = 320
CURR_H = 240
HEIGHT = WIDTH = 224
NUM_OF_FRAMES = 16
BRIGHTNESS = 30


def _rewrite(filename):
    # FAULT: str.replace rewrites every occurrence, so a base directory that already contains
    # 'UCF-101-hdf5' becomes 'UCF-101-hdf5-hdf5'.
    filename = filename.replace('.avi', '.hdf5')
    filename = filename.replace('UCF-101', 'UCF-101-hdf5')
    return filename


def loadFrame(args, rewrite_paths=True):
    """`(filename, augment)` -> float32 [3, 224, 224] (ImageNet mean/std), or np.array([]) on any error."""
    mean = FRAME_MEAN
    std = FRAME_STD
    curr_w = CURR_W
    curr_h = CURR_H
    height = width = HEIGHT
    (filename, augment) = args

    data = np.zeros((3, height, width), dtype=np.float32)

    # FAULT: a bare `except:` turns every error (a typo, a KeyboardInterrupt, a missing file) into
    # an empty array, and the assignment's training loop then skips the whole batch.
    try:
        if rewrite_paths:
            filename = _rewrite(filename)
        # FAULT: the file is never closed. `h` is rebound to a crop offset below; CPython's reference
        # counting happens to close the file when `h` is rebound or the frame dies, so the leak only
        # shows where frames outlive the call (tracebacks kept by a caller, debuggers, PyPy).
        h = h5py.File(filename, 'r')
        # FAULT: `len - 1`, and randint excludes its bound: the last frame is never drawn. A 1-frame
        # video raises (randint(0)) and comes back as an empty array.
        nFrames = len(h['video']) - 1
        frame_index = np.random.randint(nFrames)
        frame = h['video'][frame_index]

        if augment == True:  # noqa: E712  (as written in the assignment)
            # random crop of 70-100% of the size, aspect not kept, with probability 1/2
            if np.random.randint(2) == 0:
                resize_factor_w = 0.3 * np.random.rand() + 0.7
                resize_factor_h = 0.3 * np.random.rand() + 0.7
                w1 = int(curr_w * resize_factor_w)
                h1 = int(curr_h * resize_factor_h)
                w = np.random.randint(curr_w - w1)
                h = np.random.randint(curr_h - h1)
                frame = frame[h:(h + h1), w:(w + w1)]

            # horizontal flip with probability 1/2 (before the resize, unlike ours: same result)
            if np.random.randint(2) == 0:
                frame = cv2.flip(frame, 1)

            frame = cv2.resize(frame, (width, height))
            frame = frame.astype(np.float32)

            # brightness +/- 15, saturated to [0, 255]
            brightness = BRIGHTNESS
            random_add = np.random.randint(brightness + 1) - brightness / 2.0
            frame += random_add
            frame[frame > 255] = 255.0
            frame[frame < 0] = 0.0
        else:
            frame = cv2.resize(frame, (width, height))
            frame = frame.astype(np.float32)

        # float32 normalisation on the CPU, and the float32 array crosses the process pool: 4x the
        # bytes of the uint8 frame (a cost, not a fault in the result).
        frame = frame / 255.0
        frame = (frame - mean) / std
        frame = frame.transpose(2, 0, 1)
        data[:, :, :] = frame
    except:  # noqa: E722  FAULT kept on purpose, see above
        print("Exception: " + filename)
        data = np.array([])
    return data


def loadSequence(args, rewrite_paths=True):
    """`(filename, augment)` -> float32 [3, 16, 224, 224] (clip mean/std), or np.array([]) on any error."""
    mean = CLIP_MEAN
    std = CLIP_STD
    curr_w = CURR_W
    curr_h = CURR_H
    height = width = HEIGHT
    num_of_frames = NUM_OF_FRAMES
    (filename, augment) = args

    data = np.zeros((3, num_of_frames, height, width), dtype=np.float32)

    try:  # FAULT: bare except, as in loadFrame
        if rewrite_paths:
            filename = _rewrite(filename)
        h = h5py.File(filename, 'r')  # FAULT: never closed (see loadFrame)
        # FAULT: the last frame is never used, and randint(nFrames - 16) raises for a video of 17
        # frames or fewer (randint(0) or a negative bound): such videos always come back empty.
        nFrames = len(h['video']) - 1
        frame_index = np.random.randint(nFrames - num_of_frames)
        video = h['video'][frame_index:(frame_index + num_of_frames)]

        if augment == True:  # noqa: E712
            # one crop / flip / brightness for the whole clip; the crop is drawn even when unused
            resize_factor_w = 0.3 * np.random.rand() + 0.7
            resize_factor_h = 0.3 * np.random.rand() + 0.7
            w1 = int(curr_w * resize_factor_w)
            h1 = int(curr_h * resize_factor_h)
            w = np.random.randint(curr_w - w1)
            h = np.random.randint(curr_h - h1)
            random_crop = np.random.randint(2)

            random_flip = np.random.randint(2)

            brightness = BRIGHTNESS
            random_add = np.random.randint(brightness + 1) - brightness / 2.0

            # Per frame: crop view, flip copy, uint8 resize, float32 copy, add, two masked clips,
            # divide, subtract, divide: about ten full passes over each frame in Python.
            data = []
            for frame in video:
                if random_crop:
                    frame = frame[h:(h + h1), w:(w + w1), :]
                if random_flip:
                    frame = cv2.flip(frame, 1)
                frame = cv2.resize(frame, (width, height))
                frame = frame.astype(np.float32)

                frame += random_add
                frame[frame > 255] = 255.0
                frame[frame < 0] = 0.0

                frame = frame / 255.0
                frame = (frame - mean) / std
                data.append(frame)
            data = np.asarray(data)
        else:
            data = []
            for frame in video:
                frame = cv2.resize(frame, (width, height))
                frame = frame.astype(np.float32)
                frame = frame / 255.0
                frame = (frame - mean) / std
                data.append(frame)
            data = np.asarray(data)

        data = data.transpose(3, 0, 1, 2)  # a non-contiguous view: pickling it for the pool copies it
    except:  # noqa: E722
        print("Exception: " + filename)
        data = np.array([])
    return data
