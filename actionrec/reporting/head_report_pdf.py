"""heads_report.pdf: the verb / noun / action report of models with label heads (``head_report``), typeset by
``pdf_layout`` like report.pdf: the dataset (its annotation CSV) and the models, the per-model per-head table,
latency and FPS, sentences saying what the numbers say, and the figures.

A file of its own rather than a section of report.pdf: ``combine_results.py --heads`` takes no other
models, and its inputs (segments of an annotation CSV, two heads) share no test set with a split list's report.
"""
import os
from typing import Any, Dict, List

from actionrec import formatting
from actionrec.evaluation.head_scores import ACTION
from actionrec.reporting import figures, pdf_layout
from actionrec.reporting import tables as report_tables

PDF_NAME = "heads_report.pdf"
SUBSET_WORDS = {"train": "training", "val": "validation", "test": "test"}


def dataset_label(models: Dict[str, Dict[str, Any]]) -> str:
    """'<folder>/<file>.csv' of the annotation CSV(s) the models were tested on."""
    paths = sorted({m["results"].get("annotations") or "an annotation CSV" for m in models.values()})
    return " and ".join(os.path.join(os.path.basename(os.path.dirname(p)), os.path.basename(p)) for p in paths)


def _named(head: str, names: List[str]) -> str:
    """'the verb rise' or 'the verbs rise and fall'."""
    return f"the {head}{'' if len(names) == 1 else 's'} {formatting.names_text(names)}"


def parts_of(results: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """{head or "action": its summary} of one model's results."""
    return {**results["heads"], **({ACTION: results[ACTION]} if ACTION in results else {})}


def winner_sentence(part: str, models: Dict[str, Dict[str, Any]]) -> str:
    """Which model has the best top-1 of ``part`` (ties named), and the best mean class recall when another."""
    top1 = {name: parts_of(m["results"])[part]["top1"] for name, m in models.items() if part in parts_of(m["results"])}
    recall = {name: parts_of(models[name]["results"])[part]["macro_recall"] for name in top1}
    if len(top1) == 1:
        (name, value), = top1.items()
        return (f"{part.capitalize()}: {name} has top-1 {formatting.pct(value)} % and mean class recall "
                f"{formatting.pct(recall[name])} %.")
    best = max(top1.values())
    winners = [n for n, v in top1.items() if v == best]
    others = ", ".join(f"{n} {formatting.pct(v)} %" for n, v in top1.items() if n not in winners)
    verb = "wins" if len(winners) == 1 else "tie at"
    sentence = f"{part.capitalize()}: {formatting.names_text(winners)} {verb} top-1 with {formatting.pct(best)} %"
    sentence += f" ({others})." if others else "."
    best_recall = max(recall.values())
    recall_winners = [n for n, v in recall.items() if v == best_recall]
    if recall_winners != winners:
        sentence += (f" On mean class recall {formatting.names_text(recall_winners)} "
                     f"{'is best' if len(recall_winners) == 1 else 'tie'} ({formatting.pct(best_recall)} %).")
    return sentence


def never_predicted_sentences(models: Dict[str, Dict[str, Any]]) -> List[str]:
    """A sentence per model and head naming the classes the subset has that the model never predicts."""
    out = []
    for name, model in models.items():
        results = model["results"]
        for head, summary in results["heads"].items():
            never = summary.get("never_predicted") or []
            if never:
                out.append(f"{name} never predicts {_named(head, never)}, though the "
                           f"{SUBSET_WORDS.get(results['subset'], results['subset'])} subset has "
                           f"{'it' if len(never) == 1 else 'them'} (precision 0).")
    return out or ["Every model predicts every class of each head that the tested subset has at least once."]


def data_sentences(models: Dict[str, Dict[str, Any]]) -> List[str]:
    """The classes each held-out subset lacks and those it has that training never had, per head (the class counts
    of the first model's results: every model of one CSV has the same), and the unseen actions of each test."""
    out = []
    first = next(iter(models.values()))["results"]
    for head, summary in first["heads"].items():
        counts = summary.get("class_counts") or {}
        train = counts.get("train", {})
        for subset in (s for s in counts if s != "train"):
            words = SUBSET_WORDS.get(subset, subset)
            absent = [c for c, n in counts[subset].items() if n == 0]
            unseen = [c for c, n in counts[subset].items() if n and not train.get(c)]
            if absent:
                out.append(f"No {words} segment has {_named(head, absent)}.")
            if unseen:
                out.append(f"The {words} subset has {_named(head, unseen)}, which training never "
                           f"has: no model can learn {'it' if len(unseen) == 1 else 'them'}.")
    for name, model in models.items():
        unseen = (model["results"].get(ACTION) or {}).get("unseen_in_training") or []
        if unseen:
            out.append(f"{name}'s tested segments include actions (verb, noun pairs) never seen in training: "
                       f"{formatting.names_text(unseen)}.")
    return out or ["Every class of each head is in every subset, and in training."]


def intro_story(models: Dict[str, Dict[str, Any]]) -> pdf_layout.Story:
    """The title (the CSV), the tested subset and the models."""
    label = dataset_label(models)
    story = pdf_layout.heading(f"{label}: verb, noun and action results", 0, keep=0.5)
    results = next(iter(models.values()))["results"]
    heads = ", ".join(f"{len(s['per_class'])} {h} classes" for h, s in results["heads"].items())
    subsets = sorted({f"{m['results']['subset']} ({m['results']['videos']} segments)" for m in models.values()})
    story.append(pdf_layout.paragraph(
        f"Dataset: the annotation CSV {results.get('annotations', label)}; {heads}. Tested on the "
        f"{' / '.join(subsets)} subset. An action is a verb and a noun: its score is the product of the two heads' "
        f"probabilities, so it is right when both heads are."))
    story += pdf_layout.heading("Models", 2, keep=0.4)
    for name, model in models.items():
        info = model["results"].get("model") or {}
        test = (info.get("test") or {}).get("description", "")
        checkpoint = model["results"].get("checkpoint")
        story.append(pdf_layout.paragraph(f"{name}: {info.get('title', name)}" + (f"; test: {test}" if test else "")
                                          + (f" ({checkpoint})." if checkpoint else "."),
                                          pdf_layout.BODY_PT - 0.5, bullet="•"))
    return story


def findings_story(models: Dict[str, Dict[str, Any]]) -> pdf_layout.Story:
    """The sentences: the winner of each head and of the actions, the classes never predicted, the data."""
    parts = list(parts_of(next(iter(models.values()))["results"]))
    story = pdf_layout.heading("What the numbers say", 2, keep=0.6)
    sentences = [winner_sentence(p, models) for p in parts] + never_predicted_sentences(models)
    story += [pdf_layout.paragraph(s, pdf_layout.BODY_PT - 0.5, bullet="•") for s in sentences]
    story += pdf_layout.heading("The classes of the subsets", 2, keep=0.6)
    return story + [pdf_layout.paragraph(s, pdf_layout.BODY_PT - 0.5, bullet="•") for s in data_sentences(models)]


def write_heads_pdf(path: str, models: Dict[str, Dict[str, Any]], tables: Dict[str, report_tables.Table],
                    specs: Dict[str, figures.FigureSpec]) -> Dict[str, Any]:
    """The PDF; returns {"pages": N, "sections": [the bookmarked headings, in order]}."""
    label = dataset_label(models)
    doc = pdf_layout.ReportDocument(path, f"{label}; combine_results.py --heads, {len(models)} models",
                                    f"{label}: verb, noun and action results")
    story = intro_story(models)
    story += [pdf_layout.spacer(0.05)] + pdf_layout.table(doc, tables["parts"])
    if "speed" in tables:
        story += pdf_layout.table(doc, tables["speed"])
    story += findings_story(models)
    for name, title in (("heads_confusion", "Confusion matrices"), ("heads_class_histograms", "Class histograms"),
                        ("heads_loss", "Loss curves")):
        height, draw, caption = specs[name]
        story += pdf_layout.heading(title, keep=min(height, pdf_layout.FRAME_H - 1.0))
        story += pdf_layout.figure(doc, height, draw, caption)
    sections = [flowable.outline[0] for flowable in story if getattr(flowable, "outline", None)]
    return {"pages": doc.render(story), "sections": sections}
