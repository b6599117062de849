"""Value types of the command-line flags: each refuses a bad value with one argparse line."""

import argparse
import math


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, not {text}")
    return value


MAX_SEED = 2 ** 64 - 1  # torch.manual_seed's limit; numpy takes any integer >= 0


def seed_int(text: str) -> int:
    """A seed: numpy refuses negative seeds, torch those of more than 64 bits."""
    value = non_negative_int(text)
    if value > MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer in 0..{MAX_SEED}, not {text}")
    return value


# UCF-101's frames are 320x240: a larger size only upscales them, and far larger ones cannot be
# allocated (a batch of 100 frames of 100000x100000 is 3 TB); the limit stops them at the flag.
MAX_IMAGE_SIZE = 1024


def image_size(text: str) -> int:
    value = positive_int(text)
    if value > MAX_IMAGE_SIZE:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_IMAGE_SIZE} (UCF-101's frames are 320x240), "
                                         f"not {text}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, not {text}")
    return value


def positive_float(text: str) -> float:
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def lr_steps(text: str) -> list[int]:
    """'30,60' (epochs at which the lr is multiplied by --lr-gamma) or 'every:10'."""
    text = text.strip()
    if text.startswith("every:"):
        return ("every", positive_int(text[len("every:"):]))
    try:
        steps = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        steps = ()
    if not steps or min(steps) <= 0 or list(steps) != sorted(set(steps)):
        raise argparse.ArgumentTypeError(f"must be increasing epochs like 30,60 or every:10, not {text!r}")
    return steps
