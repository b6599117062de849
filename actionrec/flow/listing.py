"""Which videos a flow extraction covers, and where each one's flow goes.

A video is named `<Class>/<stem>` whatever its storage, so that its output path and its shard do not
depend on whether the HDF5 copy or the original video is read. A segment of a dataset defined by an
annotation CSV (data/annotations.py) is named by its uid alone (uids are unique; its video may lie in any
sub-folder of the videos folder), so its flow is `<out>/<uid>.hdf5`.
"""
import os
from pathlib import Path

from actionrec.data import hmdb51, split_lists

FLOW_DIRS = {"ucf101": "UCF-101-flow", "hmdb51": "hmdb51-flow"}  # beside UCF-101-hdf5/, hmdb51-hdf5/
VIDEO_ROOTS = {
    "ucf101": (split_lists.HDF5_DIR, split_lists.VIDEO_DIR),
    "hmdb51": (hmdb51.HMDB_HDF5_DIR, hmdb51.HMDB_VIDEO_DIR),
}
SOURCE_SUFFIXES = (".hdf5",) + split_lists.VIDEO_SUFFIXES  # preferred first: the course's HDF5, then any video


def _class_folder_videos(folder: Path):
    """(stem, suffix) of the video files in one class folder (hidden files and temporaries are not)."""
    for entry in os.scandir(folder):
        stem, suffix = os.path.splitext(entry.name)
        if suffix.lower() in SOURCE_SUFFIXES and not entry.name.startswith(".") and entry.is_file():
            yield stem, suffix.lower()


def find_sources(roots) -> dict:
    """{`<Class>/<stem>`: source path} of the videos in the folders `roots` (each holding
    `<Class>/<video>.<suffix>`); a video found in several is taken from the first root, and within a
    folder HDF5 before the other suffixes (SOURCE_SUFFIXES order)."""
    sources = {}
    for root in map(Path, roots):
        if not root.is_dir():
            continue
        found = {}
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for stem, suffix in _class_folder_videos(folder):
                name = f"{folder.name}/{stem}"
                best = found.get(name)
                if best is None or SOURCE_SUFFIXES.index(suffix) < SOURCE_SUFFIXES.index(Path(best).suffix.lower()):
                    found[name] = str(folder / (stem + suffix))
        for name, path in found.items():
            sources.setdefault(name, path)
    return sources


def dataset_roots(data_dir, dataset: str) -> list:
    """The video folders of `dataset` ("ucf101" or "hmdb51") under data_dir: HDF5 copy first."""
    return [os.path.join(data_dir, folder) for folder in VIDEO_ROOTS[dataset]]


def default_out_dir(data_dir, dataset: str) -> str:
    return os.path.join(data_dir, FLOW_DIRS[dataset])


def annotated_out_dir(videos_dir) -> str:
    """The flow folder of an annotation CSV's videos folder: beside it, `<videos>-flow` (mydata/videos ->
    mydata/videos-flow), as UCF-101-flow/ lies beside UCF-101-hdf5/."""
    folder = os.path.normpath(os.fspath(videos_dir))
    if os.path.basename(folder) in ("", ".", ".."):  # "." or "..": name the folder itself
        folder = os.path.abspath(folder)
    return folder + "-flow"


def video_name(video_path, by_uid: bool = False) -> str:
    """The name of a video's flow: `<Class>/<stem>` (its folder and file stem), or `<stem>` alone (by_uid:
    a segment of an annotation CSV, whose uid is its file's stem)."""
    video_path = os.fspath(video_path)
    stem = os.path.splitext(os.path.basename(video_path))[0]
    return stem if by_uid else f"{os.path.basename(os.path.dirname(video_path))}/{stem}"


def output_path(out_dir, name: str) -> Path:
    """`<out_dir>/<Class>/<stem>.hdf5` for the video named `<Class>/<stem>` (`<out_dir>/<uid>.hdf5` for a uid)."""
    return Path(out_dir) / f"{name}.hdf5"
