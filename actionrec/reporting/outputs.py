"""Everything a combiner run writes into its --output-dir: results.json, the confusion matrices as .npy,
the tables, the figures and report.pdf."""
import os
from typing import Any, Dict, List, Tuple

import numpy as np

from actionrec.evaluation import jsonfile
from actionrec.reporting import figure_set, report_pdf, sentences, table_files
from actionrec.reporting import tables as report_tables


def write_outputs(results: Dict[str, Any], cms: Dict[str, np.ndarray], logs: Dict[str, List[Dict[str, Any]]],
                  output_dir: str) -> Tuple[str, str]:
    """The summary's sentences (``results["answers"]``), then every file; returns the paths of results.json
    and report.pdf (``results["report"]`` says its pages)."""
    results["answers"] = sentences.build_answers(results)
    figures_dir = os.path.join(output_dir, "figures")
    os.makedirs(figures_dir, exist_ok=True)
    results_path = os.path.join(output_dir, "results.json")
    jsonfile.write_json(results_path, results)
    for name, cm in cms.items():
        np.save(os.path.join(output_dir, f"confusion_{name}.npy"), cm)
    tables = report_tables.build_tables(results)
    table_files.write_tables(tables, results, output_dir)
    figure_set.write_figures(
        figures_dir,
        figure_set.figure_specs(results, cms, logs),
        aliases={"confusion_best": f"confusion_{results['reference']}"},
    )  # a fixed name for report.tex
    report_path = os.path.join(output_dir, "report.pdf")
    results["report"] = report_pdf.write_report_pdf(report_path, results, tables, cms, logs)
    jsonfile.write_json(results_path, results)
    return results_path, report_path
