"""The report of an evaluation: printed and written tables (Markdown, LaTeX), the summary's sentences,
the figures (matplotlib), the PDF (reportlab) and the mean over three splits (``--summarize``). It reads
what actionrec.evaluation computed (results.json) and computes no score of its own."""
