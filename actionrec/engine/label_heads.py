"""Several label heads on one backbone (issue 26: a verb and a noun per segment), for every model.

The heads share the model's one classifier: its outputs are the heads' classes one after another
(verb classes, then noun classes), so the model builders stay as they are (num_classes = the sum),
a Linear of V + N outputs being exactly a verb Linear and a noun Linear side by side, and TSN's
segmental consensus (a mean over segments of every output) is each head's consensus. Each head has
its own softmax: the loss is the weighted sum of the heads' cross-entropies, a sample is right when
every head is (an action is right when its verb and its noun are).

The dataset comes from an annotation CSV (data/annotations.py): samples carry one label per head, an
int64 [N, heads] array; the checkpoint records the heads (names, class names, loss weights, the
label pairs seen in training) under `heads`, and its class_list is "<head>:<class>" of every output.
"""

import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F

from actionrec.data import annotations
from actionrec.guards import UserError


class Heads:
    """names: the heads in output order; classes: {head: [class names]}; weights: the loss weight of each
    head; pairs: the label tuples (one id per head) the training subset has, sorted."""

    def __init__(self, names, classes, weights=None, pairs=()):
        self.names = list(names)
        self.classes = {name: list(classes[name]) for name in self.names}
        self.weights = [float(w) for w in (weights or [1.0] * len(self.names))]
        if len(self.weights) != len(self.names):
            raise UserError(f"--head-weights: {len(self.weights)} weight(s) for {len(self.names)} heads "
                            f"({', '.join(self.names)})")
        self.pairs = sorted(tuple(int(i) for i in p) for p in pairs)
        bounds = np.cumsum([0] + [len(self.classes[n]) for n in self.names])
        self.slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]

    @property
    def sizes(self) -> list[int]:
        return [len(self.classes[name]) for name in self.names]

    @property
    def class_list(self) -> list[str]:
        return [f"{name}:{c}" for name in self.names for c in self.classes[name]]

    def record(self) -> dict:
        """What the checkpoint and the prediction files keep of the heads."""
        return {"names": self.names, "classes": self.classes, "weights": self.weights,
                "pairs": [list(p) for p in self.pairs]}

    @classmethod
    def from_record(cls, record: dict) -> "Heads":
        return cls(record["names"], record["classes"], record.get("weights"), record.get("pairs", ()))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-sample loss (N,): sum over heads of weight x cross-entropy; logits (N, sum of classes),
        labels (N, heads)."""
        total = None
        for i, (part, weight) in enumerate(zip(self.slices, self.weights)):
            loss = weight * F.cross_entropy(logits[:, part], labels[:, i], reduction="none")
            total = loss if total is None else total + loss
        return total

    def head_hits(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """{head: bool (N,)}: the head's top-1 class is the label."""
        return {name: logits[:, part].argmax(1) == labels[:, i]
                for i, (name, part) in enumerate(zip(self.names, self.slices))}

    def hits(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """bool (N,): every head right (the action, for a verb and a noun)."""
        right = self.head_hits(logits, labels).values()
        return torch.stack(list(right)).all(0)


def parse_weights(text: str | None, count: int) -> list[float]:
    """--head-weights "1,0.5" -> [1.0, 0.5] (None: all 1)."""
    if not text:
        return [1.0] * count
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError:
        raise UserError(f"--head-weights {text}: expected {count} comma-separated numbers such as 1,1") from None
    if len(weights) != count or any(not np.isfinite(w) or w < 0 for w in weights) or not any(weights):
        raise UserError(f"--head-weights {text}: expected {count} finite weights >= 0, not all 0 "
                        f"(one per head: {', '.join(annotations.LABELS)})")
    return weights


def label_array(segments: list[annotations.Segment]) -> np.ndarray:
    """int64 [N, heads]: each segment's class id per head (annotations.LABELS order)."""
    return np.array([[getattr(s, f"{label}_class") for label in annotations.LABELS] for s in segments],
                    dtype=np.int64).reshape(len(segments), len(annotations.LABELS))


def _samples(segments, video_paths):
    return [video_paths[s.uid] for s in segments], label_array(segments)


def training_split(args: argparse.Namespace, main: bool = True) -> tuple[Heads, tuple, tuple, str]:
    """(heads, train (video paths, labels [N, heads]), held out (video paths, labels), its name) of
    --annotations: validation is the CSV's val subset (or, without a split column, whole groups drawn by
    --seed), else its test subset (training.training_data then maps the paths to what the loader reads).
    main: this process prints (rank 0)."""
    if not args.videos:
        raise UserError("--annotations needs --videos DIR: the folder of the segments' video files")
    read, subsets, video_paths = annotations.load_dataset(args.annotations, args.videos, args.val_fraction, args.seed)
    held_name = "val" if subsets["val"] else "test"
    if not subsets[held_name]:
        raise UserError(f"{args.annotations}: no val or test segment to evaluate on (give some lines split val, "
                        f"or leave out the split column to draw validation groups)")
    train = _samples(subsets["train"], video_paths)
    heads = Heads(annotations.LABELS, {label: annotations.class_names(read.vocabulary(label))
                                       for label in annotations.LABELS},
                  parse_weights(getattr(args, "head_weights", None), len(annotations.LABELS)),
                  {tuple(row) for row in train[1].tolist()})
    if main:
        print(f"annotations {args.annotations}: {len(train[0])} training segments, {len(subsets[held_name])} "
              f"{held_name}; heads " + ", ".join(f"{n} ({len(heads.classes[n])} classes)" for n in heads.names),
              flush=True)
    return heads, train, _samples(subsets[held_name], video_paths), held_name


def vocabulary_of(class_names: list[str]) -> dict[int, str]:
    """annotations.class_names' list back to {id: name} (ids no segment had are left out)."""
    return {i: name for i, name in enumerate(class_names) if not name.startswith("<unused ")}


def test_subset(args: argparse.Namespace, checkpoint: dict) -> tuple[Heads, list[str], np.ndarray, dict]:
    """(heads, paths, labels [N, heads], class counts) of --subset of the checkpoint's annotation CSV (or
    of --annotations: another CSV with the checkpoint's vocabularies); the split is the training run's
    (its --val-fraction and --seed). class counts: {subset: {head: [count per class]}} of every subset."""
    trained = checkpoint.get("args", {})
    heads = Heads.from_record(checkpoint["heads"])
    csv_path = getattr(args, "annotations", None) or trained.get("annotations")
    videos = getattr(args, "videos", None) or trained.get("videos")
    if not csv_path or not videos or not os.path.exists(csv_path):
        raise UserError(f"{args.checkpoint} was trained on the annotation CSV {csv_path}, which is not there: give "
                        f"--annotations CSV and --videos DIR")
    vocabularies = [vocabulary_of(heads.classes[label]) for label in annotations.LABELS]
    read = annotations.read_annotations(csv_path, *vocabularies)
    subsets = annotations.split_segments(read, trained.get("val_fraction", annotations.VAL_FRACTION),
                                         trained.get("seed", 0))
    chosen = subsets.get(args.subset, [])
    if not chosen:
        present = [name for name, members in subsets.items() if members]
        raise UserError(f"{csv_path}: no segment in --subset {args.subset} (it has {', '.join(present)})")
    paths = annotations.resolve_videos(chosen, videos)
    if args.limit:
        chosen = chosen[:args.limit]
    counts = {name: {label: np.bincount(label_array(members)[:, i], minlength=len(heads.classes[label])).tolist()
                     for i, label in enumerate(heads.names)} for name, members in subsets.items()}
    return heads, [paths[s.uid] for s in chosen], label_array(chosen), counts
