"""report.pdf: the summary page (every number from results.json), the tables and figures, and the
per-class appendix, typeset by ``pdf_layout`` (reportlab)."""
from typing import Any, Dict, List

import numpy as np

from actionrec import formatting
from actionrec.evaluation import comparison, model_info
from actionrec.reporting import confusion_figures, figure_set, figures, pdf_layout, sentences
from actionrec.reporting import tables as report_tables

MAIN_PAGES_MAX_101 = 12  # pages before the appendix for a 101-class run (checked by the tests)


def summary_blocks(results: Dict[str, Any], tables: Dict[str, Any]) -> List[tuple]:
    """The summary page as blocks: ("heading", text, level), ("paragraph", text, bullet), ("table", Table).
    Every number in it comes from ``results`` (results.json)."""
    split = results["split"]
    data = results["dataset"]
    title = report_tables.dataset_title(results)
    blocks = [("heading", f"{title} action recognition: results", 0)]
    val = (
        f" Validation: groups {formatting.groups_text(data['val_groups'])} of the training list "
        f"({data['val']['videos']} "
        f"videos), used only to calibrate the models and choose fusion weights."
        if data["val"]
        else " No validation predictions were given: fusion weights are equal or given, never chosen on the test set."
    )
    blocks.append(
        (
            "paragraph",
            f"Dataset: {title}, {results['classes']} classes, split {split}. Subset: test "
            f"({test_list_name(results, split)}, {results['videos']} videos); {data['train']['videos']} "
            f"training videos ({data['train']['note']})." + val,
            None,
        )
    )
    blocks.append(("heading", "Models", 2))
    for name, model in results["models"].items():
        arch = f", {model['arch']}" if model.get("arch") and model["arch"] != name else ""
        blocks.append(("paragraph", f"{name}: {model['title']} ({model_info.entry_type(results, name)}{arch}). Test: "
                                    f"{model['test_description']} ({model['rows_per_video']['mean']:.1f} rows per "
                                    f"video).", "•"))
    if results["fusions"]:
        blocks.append(("heading", "Fusions", 2))
        for name, fusion in results["fusions"].items():
            blocks.append(
                (
                    "paragraph",
                    f"{name}: {fusion['rule']} of {', '.join(fusion['members'])}; weights "
                    f"{sentences.weights_text(fusion)} ({sentences.weights_source_text(fusion)}).",
                    "•",
                )
            )
    blocks.append(("table", tables["topk"]))
    for key, question in sentences.QUESTIONS.items():
        blocks.append(("heading", question, 2))
        for sentence in results["answers"][key]:
            blocks.append(("paragraph", sentence, "•"))
    return blocks


def test_list_name(results: Dict[str, Any], split: int) -> str:
    """Where the split's test videos are listed."""
    if results.get("dataset_name") == "hmdb51":
        return f"id 2 in testTrainMulti_7030_splits/*_test_split{split}.txt"
    return f"testlist0{split}.txt"


def write_report_pdf(path: str, results: Dict[str, Any], tables: Dict[str, Any], cms: Dict[str, np.ndarray],
                     logs: Dict[str, List[Dict[str, Any]]]) -> Dict[str, int]:
    """The multi-page report; returns ``{"pages": N, "main_pages": M, "appendix_page": M + 1}``."""
    title = report_tables.dataset_title(results)
    doc = pdf_layout.ReportDocument(path, f"{title} split {results['split']}, {results['videos']} test videos; "
                                          f"combine_results.py, {results['generated']}",
                                    f"{title} action recognition: results")
    specs = figure_set.figure_specs(results, cms, logs)
    story = pdf_layout.blocks_story(summary_blocks(results, tables), doc)
    story += accuracy_story(doc, results, tables, specs)
    story += classes_story(doc, results, tables, cms, specs)
    story += other_story(doc, results, tables, specs)
    story += [pdf_layout.page_break(), pdf_layout.Mark("appendix")] + appendix_story(doc, results, tables, specs)
    pages = doc.render(story)
    return {"pages": pages, "main_pages": doc.marks["appendix"] - 1, "appendix_page": doc.marks["appendix"]}


def _figure(doc: pdf_layout.ReportDocument, specs: Dict[str, figures.FigureSpec], name: str) -> pdf_layout.Story:
    height, draw, caption = specs[name]
    return pdf_layout.figure(doc, height, draw, caption)


def accuracy_story(doc: pdf_layout.ReportDocument, results: Dict[str, Any], tables: Dict[str, Any],
                   specs: Dict[str, figures.FigureSpec]) -> pdf_layout.Story:
    """Accuracy and fusion: the top-k figure, the fusions, the validation evidence, the macro averages."""
    story = pdf_layout.heading("Accuracy and fusion", keep=3.3) + _figure(doc, specs, "topk")
    for name in ("fusions", "validation", "macro"):
        if name in tables:
            story += pdf_layout.table(doc, tables[name])
    return story


def classes_story(doc: pdf_layout.ReportDocument, results: Dict[str, Any], tables: Dict[str, Any],
                  cms: Dict[str, np.ndarray], specs: Dict[str, figures.FigureSpec]) -> pdf_layout.Story:
    """Best and worst classes, most confused pairs, the confusion matrices."""
    order, ref = results["order"], results["reference"]
    story = pdf_layout.heading("Best and worst classes", keep=2.0)
    story += pdf_layout.table_grid(doc, [tables[f"best_worst_{n}"] for n in order], columns=2, caption=(
        f"The {comparison.NUM_LISTED} best and worst classes of each model and fusion (per-class accuracy %, "
        f"ties by name)."))
    story += pdf_layout.heading("Most confused pairs", keep=2.0)
    story += pdf_layout.table_grid(doc, [tables[f"most_confused_{n}"] for n in order], columns=2, caption=(
        "The most confused pairs of each model and fusion: % of the true class's test videos predicted as the "
        "other class (videos: count / test videos of the true class)."))
    if results["classes"] > figures.FEW_CLASSES:
        story += [pdf_layout.page_break()] + pdf_layout.heading(f"Confusion matrix of the best: {ref}", keep=9.0)
        story += _figure(doc, specs, f"confusion_{ref}")
        story += pdf_layout.heading("The most confused classes", keep=6.0) + _figure(doc, specs,
                                                                                    "confusion_most_confused")
    else:
        height, draw, caption = confusion_figures.confusion_grid_spec(results, cms)
        story += pdf_layout.heading("Confusion matrices", keep=min(height, 9.0) + 0.3)
        story += pdf_layout.figure(doc, height, draw, caption)
    return story


def other_story(doc: pdf_layout.ReportDocument, results: Dict[str, Any], tables: Dict[str, Any],
                specs: Dict[str, figures.FigureSpec]) -> pdf_layout.Story:
    """Appearance vs motion, precision and recall, speed, learning curves, the data."""
    story = pdf_layout.heading("Appearance vs motion", keep=2.5) + pdf_layout.table(doc, tables["appearance_vs_motion"])
    if "accuracy_difference" in specs:
        story += _figure(doc, specs, "accuracy_difference")
    story += pdf_layout.heading("Precision and recall per class", keep=specs["precision_recall"][0])
    story += _figure(doc, specs, "precision_recall")
    story += pdf_layout.heading("Speed", keep=1.2 + 0.16 * len(results["order"]) + specs["speed_accuracy"][0])
    story += pdf_layout.table(doc, tables["timing"]) + _figure(doc, specs, "speed_accuracy")
    story += pdf_layout.heading("Learning curves", keep=specs["learning_curves"][0])
    story += _figure(doc, specs, "learning_curves")
    story += pdf_layout.heading("Dataset", keep=1.2) + pdf_layout.table(doc, tables["dataset"])
    return story + _figure(doc, specs, "dataset")


def appendix_story(doc: pdf_layout.ReportDocument, results: Dict[str, Any], tables: Dict[str, Any],
                   specs: Dict[str, figures.FigureSpec]) -> pdf_layout.Story:
    """The per-class accuracy of every model, the per-class tables, the other confusion matrices."""
    many = results["classes"] > figures.FEW_CLASSES
    story = pdf_layout.heading("Appendix: per-class results", 0, keep=1.0) + _figure(doc, specs, "per_class_accuracy")
    for key in ("per_class_recall", "per_class_precision", "per_class_f1"):
        story += ([pdf_layout.page_break()] if many else []) + pdf_layout.table(doc, tables[key],
                                                                                size=pdf_layout.SMALL_PT)
    if many:
        for name in results["order"]:
            if name != results["reference"]:
                story += [pdf_layout.page_break()] + _figure(doc, specs, f"confusion_{name}")
    return story
