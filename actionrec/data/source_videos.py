"""Which video files a conversion reads: every `<Class>/<video>.<suffix>` under a folder, or a split list's
entries, and which dataset a folder of videos is (UCF-101, HMDB-51 or one's own).
"""
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Optional, Union

from actionrec.data import datasets, hmdb51, split_lists

PathLike = Union[str, os.PathLike]


def read_video_list(list_path: PathLike) -> list[str]:
    """Relative `<Class>/<video>.avi` entries of a split list (train lists carry a label: dropped).
    An entry of another form is a ValueError naming the line: the file is not a split list."""
    with open(list_path, "r", encoding="utf-8") as f:
        lines = f.read().splitlines()
    entries = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        entry = line.split()[0]
        folder, _, name = entry.partition("/")
        if not folder or "/" in name or Path(name).suffix.lower() not in split_lists.VIDEO_SUFFIXES:
            raise ValueError(f"line {number} is {line.strip()[:60]!r}, not <Class>/<video>.avi as in a split list")
        entries.append(entry)
    return entries


def is_video(path: Path) -> bool:
    return path.suffix.lower() in split_lists.VIDEO_SUFFIXES and not path.name.startswith(".") and path.is_file()


def resolve_entry(videos_dir: Path, entry: str) -> str:
    """A list entry `<Class>/<stem>.avi` as the video that is there: the entry itself, else
    `<Class>/<stem>.<any video suffix>` (lists name every video .avi), else the entry unchanged."""
    path = videos_dir / entry
    if path.is_file() or not path.parent.is_dir():
        return entry
    stem = Path(entry).stem
    matches = sorted(p.name for p in path.parent.iterdir() if Path(p.name).stem == stem and is_video(p))
    return (Path(entry).parent / matches[0]).as_posix() if matches else entry


def find_videos(videos_dir: Path, list_path: Optional[PathLike] = None) -> list[str]:
    """Sorted relative paths `<Class>/<video>.<suffix>` to convert (hidden files are not videos)."""
    if list_path is not None:
        return [resolve_entry(videos_dir, entry) for entry in read_video_list(list_path)]
    return sorted(p.relative_to(videos_dir).as_posix() for p in videos_dir.glob("*/*")
                  if is_video(p) and not p.parent.name.startswith("."))


def same_output(names: Iterable[str]) -> Optional[tuple[str, str]]:
    """The first two names that would be converted to the same file (a.avi and a.mp4), or None."""
    seen = {}
    for name in names:
        key = Path(name).with_suffix("").as_posix()
        if key in seen and seen[key] != name:
            return seen[key], name
        seen.setdefault(key, name)
    return None


def video_folders(videos_dir: Path) -> set[str]:
    """The names of the class folders under videos_dir (none when it is not a folder)."""
    try:
        return {p.name for p in videos_dir.iterdir() if p.is_dir() and not p.name.startswith(".")}
    except OSError:
        return set()


def detect_dataset(data_dir: Optional[Path], videos_dir: Optional[Path]) -> tuple[str, str]:
    """(dataset, why) for --dataset auto: the dataset whose split folder --data-dir holds, else whose video
    folder it holds (UCF-101/ or hmdb51/), else hmdb51 when every class folder of the videos is an HMDB-51
    action, else ucf101 (also one's own videos). ValueError when --data-dir holds both datasets' folders."""
    if data_dir is not None:
        # The split folder says which; else, when the videos are --data-dir's, which video folder is there.
        for folders in (datasets.SPLIT_DIRS, datasets.VIDEO_DIRS if videos_dir is None else {}):
            found = datasets.datasets_with(data_dir, folders)
            if len(found) > 1:
                raise ValueError(f"--data-dir {data_dir} holds both {' and '.join(f + '/' for f in folders.values())}: "
                                 f"pass --dataset ucf101 or hmdb51")
            if found:
                return found[0], f"--data-dir holds {folders[found[0]]}/"
    if videos_dir is not None:
        folders = video_folders(videos_dir)
        if folders and folders <= set(hmdb51.HMDB_ACTIONS):
            return "hmdb51", f"the {len(folders)} class folders of {videos_dir} are HMDB-51 actions"
    return "ucf101", "no HMDB-51 split or action folder"
