"""The label sets of a model's outputs, as predict.py reads them: one class list with one softmax, or label
heads (engine/label_heads.py: verb classes then noun classes, side by side), each head with its own
softmax, and the actions the two heads make (evaluation/head_scores.py: a (verb, noun) pair's
probability is the product of its verb's and its noun's)."""
from typing import NamedTuple

import numpy as np

from actionrec.engine import label_heads
from actionrec.evaluation import head_scores
from actionrec.evaluation import scores as video_scores

CLASS = "class"  # the one label set of a model without heads


class LabelSet(NamedTuple):
    """name: CLASS, or the head's name; columns: its outputs among the model's logits; classes: their names."""
    name: str
    columns: slice
    classes: list[str]


def label_sets(checkpoint: dict) -> list[LabelSet]:
    """The label sets of a training script's checkpoint: its heads (`heads`), else its class list."""
    if not checkpoint.get("heads"):
        class_list = [str(c) for c in checkpoint["class_list"]]
        return [LabelSet(CLASS, slice(0, len(class_list)), class_list)]
    heads = label_heads.Heads.from_record(checkpoint["heads"])
    return [LabelSet(name, part, heads.classes[name]) for name, part in zip(heads.names, heads.slices)]


def video_scores_of(logits: np.ndarray, sets: list[LabelSet]) -> dict[str, np.ndarray]:
    """{label set: its video score} of a video's logits [rows, outputs]: scores.video_score (the mean
    log-softmax over the rows) of each set's columns alone."""
    return {s.name: video_scores.video_score(logits[:, s.columns]) for s in sets}


def has_actions(sets: list[LabelSet]) -> bool:
    """Two heads (a verb and a noun) make actions."""
    return len(sets) == 2 and sets[0].name != CLASS


def action_distribution(verb: np.ndarray, noun: np.ndarray) -> np.ndarray:
    """[V * N]: the probability of every (verb, noun) pair, column v * N + n: the product of the two
    heads' probabilities (head_scores.action_scores on their logarithms)."""
    with np.errstate(divide="ignore"):  # a probability of 0 (the max fusion) is a log of -inf: a product of 0
        logs = head_scores.action_scores(np.log(verb)[None], np.log(noun)[None])[0]
    return np.exp(logs)


def distributions(per_set: dict[str, np.ndarray], sets: list[LabelSet]) -> dict[str, tuple[np.ndarray, list[str]]]:
    """{name: (distribution, class names)} of each label set's distribution in `per_set` and, for two
    heads, of the actions (head_scores.ACTION, named "verb noun")."""
    out = {s.name: (np.asarray(per_set[s.name]), s.classes) for s in sets}
    if has_actions(sets):
        verbs, nouns = sets
        out[head_scores.ACTION] = (action_distribution(per_set[verbs.name], per_set[nouns.name]),
                                   head_scores.pair_names(verbs.classes, nouns.classes))
    return out


def explained_set(sets: list[LabelSet], head: str | None) -> LabelSet:
    """The label set whose class Grad-CAM explains: --explain-head's (default: the first head), or the one
    class list. A UserError-worthy ValueError for a head the model does not have."""
    if sets[0].name == CLASS:
        if head is not None:
            raise ValueError(f"--explain-head {head}: the checkpoints have no label heads (one class list)")
        return sets[0]
    named = {s.name: s for s in sets}
    if head is not None and head not in named:
        raise ValueError(f"--explain-head {head}: the checkpoints' heads are {', '.join(named)}")
    return named[head] if head is not None else sets[0]
