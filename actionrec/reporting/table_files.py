"""The tables as files: ``tables.md`` (Markdown) and ``tables/*.tex`` (LaTeX, input by report/report.tex)."""
import os
import re
from typing import Any, Dict, List

from actionrec.reporting import sentences
from actionrec.reporting import tables as report_tables

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "→": r"$\rightarrow$", "↔": r"$\leftrightarrow$", "±": r"$\pm$",
}


_LATEX_RE = re.compile("|".join(re.escape(c) for c in _LATEX_SPECIAL))


_MARKDOWN_RE = re.compile(r"([\\|*_`\[\]<>])")


def latex_escape(text: str) -> str:
    return _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group(0)], str(text))


def markdown_escape(text: str) -> str:
    return _MARKDOWN_RE.sub(r"\\\1", str(text))


def _flat(cell):
    return "; ".join(str(cell).split("\n"))


def table_to_latex(table: report_tables.Table, long: bool = False) -> str:
    """A ``tabular`` (``longtable`` when ``long``) preceded by its caption as a comment; cells escaped."""
    def line(cells, escape):
        return " & ".join(latex_escape(_flat(c)) if escape else c for c in cells) + r" \\"

    env = "longtable" if long else "tabular"
    head = [line([r"\textbf{" + latex_escape(h) + "}" for h in table.header], escape=False), r"\hline"]
    out = [f"% {table.caption}", r"\begin{" + env + "}{" + table.align + "}", r"\hline"] + head
    if long:
        out += [r"\endhead"]
    out += [line(row, escape=True) for row in table.rows] or [
        r"\multicolumn{" + str(len(table.header)) + "}{l}{(none)}" + r" \\"
    ]
    out += [r"\hline", r"\end{" + env + "}", ""]
    return "\n".join(out)


def table_to_markdown(table: report_tables.Table) -> str:
    align = {"r": "---:", "l": ":---", "c": ":---:"}
    out = [
        f"*{markdown_escape(table.caption)}*",
        "",
        "| " + " | ".join(markdown_escape(h) for h in table.header) + " |",
        "| " + " | ".join(align[a] for a in table.align) + " |",
    ]
    out += ["| " + " | ".join(markdown_escape(_flat(c)) for c in row) + " |" for row in table.rows]
    if not table.rows:
        out.append("| (none) |" + " |" * (len(table.header) - 1))
    if table.note:
        out += ["", markdown_escape(table.note)]
    return "\n".join(out + [""])


TABLE_SECTIONS = (  # (Markdown heading, aggregate .tex name, table name prefix or name)
    ("Top-k accuracy", "topk", "topk"),
    ("Fusions", "fusions", "fusions"),
    ("Validation evidence", "validation", "validation"),
    ("Macro precision, recall, F1", "macro", "macro"),
    ("Speed", "timing", "timing"),
    ("Best and worst classes", "best_worst", "best_worst_"),
    ("Most confused pairs", "most_confused", "most_confused_"),
    ("Appearance vs motion", "appearance_vs_motion", "appearance_vs_motion"),
    ("Dataset", "dataset", "dataset"),
    ("Per-class accuracy", "per_class_recall", "per_class_recall"),
    ("Per-class precision", "per_class_precision", "per_class_precision"),
    ("Per-class F1", "per_class_f1", "per_class_f1"),
)


def write_tables(tables: Dict[str, Any], results: Dict[str, Any], output_dir: str) -> List[str]:
    """``tables.md`` and ``tables/*.tex``: one file per table, one per section for report.tex (a section
    of several tables, e.g. best_worst.tex, holds them one after another), and summary.tex (the answers).
    Returns the paths written."""
    tables_dir = os.path.join(output_dir, "tables")
    os.makedirs(tables_dir, exist_ok=True)
    written = []

    def write(name, text):
        path = os.path.join(tables_dir, f"{name}.tex")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        written.append(path)

    markdown = [
        f"# {report_tables.dataset_title(results)} results: split {results['split']}, {results['videos']} test videos",
        "",
    ]
    for key, question in sentences.QUESTIONS.items():
        markdown += [f"**{question}**", ""] + [markdown_escape(s) for s in results["answers"][key]] + [""]
    for heading, aggregate, prefix in TABLE_SECTIONS:
        names = [n for n in tables if n == prefix or (prefix.endswith("_") and n.startswith(prefix))]
        if not names:
            continue
        markdown += [f"## {heading}", ""]
        parts = []
        for name in names:
            long = name.startswith("per_class")
            text = table_to_latex(tables[name], long=long)
            if name != aggregate:
                write(name, text)
                parts.append(r"\par\medskip\noindent\textbf{" + latex_escape(tables[name].caption) + r"}\par\smallskip"
                             + "\n" + text)
            else:
                parts.append(text)
            markdown.append(table_to_markdown(tables[name]))
        write(aggregate, "\n".join(parts))
    summary = []
    for key, question in sentences.QUESTIONS.items():
        summary += ([r"\paragraph{" + latex_escape(question) + "}", r"\begin{itemize}"]
                    + [r"\item " + latex_escape(s) for s in results["answers"][key]] + [r"\end{itemize}", ""])
    write("summary", "\n".join(summary))
    path = os.path.join(output_dir, "tables.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(markdown))
    return [path] + written
