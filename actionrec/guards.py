"""Guards of what a run reads and writes, shared by every script (and light: no torch, so that
combine_results.py can use them): user mistakes as one-line errors, an output path that would
overwrite an input, and the record of what made a prediction or feature folder."""
import os

from actionrec.data import hmdb51, split_lists


class UserError(Exception):
    """A mistake the user can fix (bad path, bad value): reported as one line, no traceback."""


# A prediction or feature folder records what made it (engine.claim_folder), so that a resume only ever
# resumes the same run and a reader can tell which class list its columns follow.
PROVENANCE_NAME = "provenance.json"


# Flags of the scripts whose values are files or folders a script reads (besides --data-dir's lists
# and videos); a value that is a keyword of the flag (none, auto, imagenet, equal) is not a path.
INPUT_FLAGS = ("checkpoint", "features", "kinetics_checkpoint", "c3d_checkpoint", "weights", "flow_dir",
               "annotations", "videos")
NOT_PATHS = {None, "", "none", "auto", "imagenet", "equal"}


def dataset_inputs(data_dir):
    """The folders of --data-dir that hold what the scripts read: the split lists and the videos (of
    UCF-101 and of HMDB-51)."""
    return [
        os.path.join(data_dir, name)
        for name in (
            "ucfTrainTestlist",
            split_lists.HDF5_DIR,
            split_lists.VIDEO_DIR,
            hmdb51.HMDB_SPLIT_DIR,
            hmdb51.HMDB_HDF5_DIR,
            hmdb51.HMDB_VIDEO_DIR,
        )
    ]


def script_inputs(args):
    """{flag: [paths]} of every input a script's parsed `args` name (INPUT_FLAGS and --data-dir)."""
    inputs = {}
    if getattr(args, "data_dir", None):
        inputs["--data-dir"] = dataset_inputs(args.data_dir)
    for name in INPUT_FLAGS:
        values = getattr(args, name, None)
        values = values if isinstance(values, (list, tuple)) else [values]
        paths = [v for v in values if isinstance(v, str) and v not in NOT_PATHS]
        if paths:
            inputs["--" + name.replace("_", "-")] = paths
    return inputs


def _within(path, folder):
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_output_paths(outputs, inputs):
    """Refuse, before anything is written, an output that is, holds or lies inside an input: a
    predictions folder pointed at the videos rewrites them as prediction files.

    outputs: {flag: path}; inputs: {flag: [paths]} (script_inputs). UserError naming both."""
    for out_flag, out in outputs.items():
        if out in NOT_PATHS:
            continue
        real_out = os.path.realpath(out)
        for in_flag, paths in inputs.items():
            for path in paths:
                real_in = os.path.realpath(path)
                if _within(real_out, real_in):
                    relation = "is" if real_out == real_in else "lies inside"
                elif _within(real_in, real_out):
                    relation = "holds"
                else:
                    continue
                raise UserError(f"{out_flag} {out} {relation} the input {in_flag} {path}: writing there could "
                                f"overwrite what this run reads; choose another folder")
