"""Which dataset a data folder holds (UCF-101 or HMDB-51), and its train/validation/test subsets."""
import os
from collections.abc import Mapping, Sequence

import numpy as np

from actionrec.data import hmdb51, split_lists, video_groups

DATASETS = ("auto", "ucf101", "hmdb51")


SPLIT_DIRS = {"ucf101": "ucfTrainTestlist", "hmdb51": hmdb51.HMDB_SPLIT_DIR}  # a data folder's split lists


VIDEO_DIRS = {"ucf101": split_lists.VIDEO_DIR, "hmdb51": hmdb51.HMDB_VIDEO_DIR}  # the released videos


HDF5_DIRS = {"ucf101": split_lists.HDF5_DIR, "hmdb51": hmdb51.HMDB_HDF5_DIR}  # their converted copies


DATASET_HELP = ("the dataset of --data-dir: ucf101 (it holds ucfTrainTestlist/), hmdb51 (it holds "
                f"{hmdb51.HMDB_SPLIT_DIR}/) or auto: the one whose split folder is there (default: auto)")


def resolve_dataset(base_directory: str, dataset: str = "auto") -> str:
    """"ucf101" or "hmdb51": `dataset` itself, or with "auto" the dataset whose split folder
    base_directory holds (ucfTrainTestlist/ or testTrainMulti_7030_splits/; ucf101 when neither, so that
    getUCF101 names what is missing); ValueError when it holds both."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, not {dataset!r}")
    if dataset != "auto":
        return dataset
    found = datasets_with(base_directory, SPLIT_DIRS)
    if len(found) > 1:
        raise ValueError(f"{base_directory} holds both ucfTrainTestlist/ and {hmdb51.HMDB_SPLIT_DIR}/: pass --dataset "
                         f"ucf101 or hmdb51")
    return found[0] if found else "ucf101"  # neither: getUCF101 says what --data-dir must hold


def datasets_with(base_directory: str, folders: Mapping[str, str]) -> list[str]:
    """The datasets whose folder in `folders` (SPLIT_DIRS, VIDEO_DIRS, HDF5_DIRS) base_directory holds."""
    return [name for name, folder in folders.items() if os.path.isdir(os.path.join(base_directory, folder))]


def get_split(
    base_directory: str, split: int = 1, storage: str = "auto", dataset: str = "auto"
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """getUCF101 or getHMDB51 (the same return shape) for `dataset` (see resolve_dataset)."""
    dataset = resolve_dataset(base_directory, dataset)
    return (hmdb51.getHMDB51 if dataset == "hmdb51" else split_lists.getUCF101)(base_directory, split, storage)


def subset_videos(
    base_directory: str,
    split: int,
    subset: str,
    val_groups: Sequence[int] = (),
    storage: str = "auto",
    dataset: str = "auto",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(class_list, paths, labels) of one subset of a split: "test", "train" (without the held-out
    validation groups) or "val" (the training videos of `val_groups`)."""
    dataset = resolve_dataset(base_directory, dataset)
    class_list, train, test = get_split(base_directory, split, storage, dataset)
    if subset == "test":
        return class_list, test[0], test[1]
    if subset not in ("train", "val"):
        raise ValueError(f"subset must be test, train or val, not {subset!r}")
    if subset == "val" and not val_groups:
        raise ValueError("the val subset needs validation groups (train with --val-groups)")
    if not val_groups:
        return class_list, train[0], train[1]
    kept, held = video_groups.split_by_groups(train[0], train[1], val_groups, dataset)
    return (class_list,) + (held if subset == "val" else kept)
