"""A4 pages typeset with reportlab's platypus: headings that are PDF bookmarks, paragraphs, tables that
break across pages with their header row repeated, small tables side by side, matplotlib figures as
images, and a page template with the footer and page number. DejaVu Sans (matplotlib's font, embedded)
writes every character the report uses (→, ↔, ±)."""
import io
import os
from typing import Any, Callable, Dict, List, Optional, Sequence
from xml.sax.saxutils import escape

import matplotlib
from matplotlib.figure import Figure
from matplotlib.text import Text
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import inch
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Flowable,
    Frame,
    KeepTogether,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    TableStyle,
)
from reportlab.platypus import Table as GridTable

from actionrec.reporting import figures
from actionrec.reporting import tables as report_tables

PAGE_W, PAGE_H = A4[0] / inch, A4[1] / inch  # 8.27 x 11.69 inches
MARGIN_T, MARGIN_B = 0.6, 0.6
MARGIN_L = (PAGE_W - figures.TEXT_W) / 2
FRAME_H = PAGE_H - MARGIN_T - MARGIN_B
BODY_PT, TABLE_PT, SMALL_PT = 8.5, 7.5, 7.0
MIN_TABLE_PT = 5.0
FIGURE_DPI = 220  # figures are embedded as PNG images (reportlab embeds no vector PDF)
FONT = "DejaVuSans"
RULE_COLOR, STRIPE_COLOR, FOOTER_COLOR = (
    colors.HexColor("#222222"),
    colors.HexColor("#f0f0f0"),
    colors.HexColor("#666666"),
)


def register_fonts() -> None:
    """DejaVu Sans in four faces from matplotlib's own font folder, once."""
    if FONT in pdfmetrics.getRegisteredFontNames():
        return
    folder = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
    faces = {FONT: "DejaVuSans.ttf", FONT + "-Bold": "DejaVuSans-Bold.ttf",
             FONT + "-Oblique": "DejaVuSans-Oblique.ttf", FONT + "-BoldOblique": "DejaVuSans-BoldOblique.ttf"}
    for name, file_name in faces.items():
        pdfmetrics.registerFont(TTFont(name, os.path.join(folder, file_name)))
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=FONT + "-Bold", italic=FONT + "-Oblique",
                                  boldItalic=FONT + "-BoldOblique")


def style(size: float, bold: bool = False, italic: bool = False, indent: float = 0.0, space_after: float = 2.0,
          keep_with_next: bool = False) -> ParagraphStyle:
    """A paragraph style of DejaVu Sans at ``size`` points (``indent`` in inches, for bullets)."""
    font = FONT + ("-Bold" if bold else "") + ("Oblique" if italic and bold else "-Oblique" if italic else "")
    return ParagraphStyle(f"s{size}{bold}{italic}{indent}", fontName=font, fontSize=size, leading=size * 1.32,
                          leftIndent=indent * inch, bulletIndent=max(indent - 0.13, 0) * inch, spaceAfter=space_after,
                          keepWithNext=keep_with_next, bulletFontName=FONT)


class ReportDocument(BaseDocTemplate):
    """An A4 document whose pages carry ``footer`` and their number; headings made by ``heading`` become
    the PDF's outline, and ``marks`` records the page of every ``Mark`` flowable by name."""

    def __init__(self, path: str, footer: str, title: str) -> None:
        register_fonts()
        super().__init__(path, pagesize=A4, leftMargin=MARGIN_L * inch, rightMargin=MARGIN_L * inch,
                         topMargin=MARGIN_T * inch, bottomMargin=MARGIN_B * inch, title=title,
                         author="combine_results.py", creator="combine_results.py (reportlab)")
        frame = Frame(self.leftMargin, self.bottomMargin, self.width, self.height, id="text", leftPadding=0,
                      rightPadding=0, topPadding=0, bottomPadding=0)
        self.addPageTemplates([PageTemplate(id="page", frames=[frame], onPage=self.decorate)])
        self.footer, self.marks, self.tables, self.figures = footer, {}, 0, 0

    def decorate(self, canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(FONT, 6.5)
        canvas.setFillColor(FOOTER_COLOR)
        canvas.drawString(MARGIN_L * inch, 0.35 * inch, self.footer)
        canvas.drawRightString((PAGE_W - MARGIN_L) * inch, 0.35 * inch, f"page {doc.page}")
        canvas.restoreState()

    def afterFlowable(self, flowable: Flowable) -> None:
        outline = getattr(flowable, "outline", None)
        if outline:
            text, level = outline
            key = f"section{id(flowable)}"
            self.canv.bookmarkPage(key)
            self.canv.addOutlineEntry(text, key, level=level, closed=False)
        if isinstance(flowable, Mark):
            self.marks[flowable.name] = self.page

    def render(self, story: List[Flowable]) -> int:
        """Typeset ``story``; returns the number of pages."""
        self.build(story)
        return self.page


class Mark(Flowable):
    """An invisible flowable that records the page it lands on (``ReportDocument.marks``)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def wrap(self, available_width: float, available_height: float) -> tuple:
        return 0, 0

    def draw(self) -> None:
        pass


def heading(text: str, level: int = 1, keep: float = 1.5) -> List[Flowable]:
    """A heading kept on one page with the next ``keep`` inches, and a bookmark (levels 0 and 1 at the
    outline's top, 2 under them)."""
    size = {0: 16, 1: 12.5, 2: 10}[level]
    before = {0: 0.0, 1: 0.22, 2: 0.12}[level]
    paragraph = Paragraph(escape(text), style(size, bold=True, space_after=size * 0.4))
    paragraph.outline = (text, 0 if level < 2 else 1)
    return [CondPageBreak((keep + before + size * 1.6 / 72.0) * inch), Spacer(1, before * inch), paragraph]


def paragraph(text: str, size: float = BODY_PT, bullet: Optional[str] = None, italic: bool = False) -> Paragraph:
    return Paragraph(escape(text).replace("\n", "<br/>"), style(size, italic=italic, indent=0.18 if bullet else 0.0),
                     bulletText=bullet)


def page_break() -> PageBreak:
    return PageBreak()


def _width(text: str, size: float, bold: bool = False) -> float:
    """Width in inches of the widest line of ``text`` in DejaVu Sans."""
    font = FONT + ("-Bold" if bold else "")
    return max(pdfmetrics.stringWidth(line, font, size) for line in str(text).split("\n")) / inch


def column_widths(table: report_tables.Table, size: float, max_width: float) -> tuple:
    """``(size, widths in inches)``: the font size (at most ``size``, at least ``MIN_TABLE_PT``) at which the
    table's widest cells fit ``max_width``; columns wider than their share at the smallest size wrap."""
    while True:
        pad = size * 0.9 / 72.0
        widths = [max([_width(h, size, bold=True)] + [_width(row[j], size) for row in table.rows]) + pad
                  for j, h in enumerate(table.header)]
        if sum(widths) <= max_width or size <= MIN_TABLE_PT:
            return size, widths
        size = max(MIN_TABLE_PT, round(size * max_width / sum(widths) - 0.05, 1))


def grid_table(table: report_tables.Table, size: float, max_width: float) -> GridTable:
    """The rows of a ``Table`` under its header (repeated on every page the table spans), between rules,
    striped when long; cells as plain text (one line per line of the cell) unless they must wrap."""
    size, widths = column_widths(table, size, max_width)
    overflow = sum(widths) - max_width
    wrap = overflow > 0
    if wrap:  # still too wide at the smallest size: the widest column gives up the excess and wraps
        widest = max(range(len(widths)), key=widths.__getitem__)
        widths[widest] -= overflow
    rows = table.rows or [["(none)"] + [""] * (len(table.header) - 1)]
    cell_style = style(size, space_after=0)
    body = [[Paragraph(escape(str(c)).replace("\n", "<br/>"), cell_style) if wrap else str(c) for c in row]
            for row in rows]
    grid = GridTable([list(table.header)] + body, colWidths=[w * inch for w in widths], repeatRows=1, hAlign="LEFT")
    commands = [("FONT", (0, 0), (-1, 0), FONT + "-Bold", size, size * 1.25),
                ("FONT", (0, 1), (-1, -1), FONT, size, size * 1.25),
                ("LINEABOVE", (0, 0), (-1, 0), 0.9, RULE_COLOR), ("LINEBELOW", (0, 0), (-1, 0), 0.5, RULE_COLOR),
                ("LINEBELOW", (0, -1), (-1, -1), 0.9, RULE_COLOR), ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), size * 0.45), ("RIGHTPADDING", (0, 0), (-1, -1), size * 0.45),
                ("TOPPADDING", (0, 0), (-1, -1), 1), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5)]
    commands += [("ALIGN", (j, 0), (j, -1), {"r": "RIGHT", "c": "CENTER"}.get(a, "LEFT"))
                 for j, a in enumerate(table.align)]
    if len(rows) > 6:
        commands.append(("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, STRIPE_COLOR]))
    grid.setStyle(TableStyle(commands))
    return grid


def table(doc: ReportDocument, table: report_tables.Table, size: float = TABLE_PT,
          numbered: bool = True) -> List[Flowable]:
    """Caption (numbered ``Table N.``), the table across the text width (split across pages when long)
    and its note."""
    if numbered:
        doc.tables += 1
    caption = f"Table {doc.tables}. {table.caption}" if numbered else table.caption
    # the caption, the header and a few rows start on one page (CondPageBreak, not keepWithNext: a kept group
    # larger than a page would leave the heading above it alone on its page)
    out = [CondPageBreak(1.0 * inch), Spacer(1, 0.04 * inch),
           Paragraph(escape(caption), style(SMALL_PT + 0.5, space_after=3)), grid_table(table, size, figures.TEXT_W)]
    if table.note:
        out.append(Paragraph(escape(table.note), style(SMALL_PT - 0.5, italic=True, space_after=0)))
    return out + [Spacer(1, 0.1 * inch)]


def table_grid(doc: ReportDocument, tables: Sequence[report_tables.Table], columns: int = 2,
               size: float = SMALL_PT, caption: Optional[str] = None) -> List[Flowable]:
    """Small tables side by side, ``columns`` to a row, each under its own title (its caption)."""
    gap = 0.25
    slot = (figures.TEXT_W - gap * (columns - 1)) / columns
    cells = []
    for t in tables:
        cell = [Paragraph(escape(t.caption), style(size + 0.5, bold=True, space_after=2)), grid_table(t, size, slot)]
        if t.note:
            cell.append(Paragraph(escape(t.note), style(size - 0.5, italic=True, space_after=0)))
        cells.append(cell)
    rows = [cells[i:i + columns] + [""] * (columns - len(cells[i:i + columns])) for i in range(0, len(cells), columns)]
    grid = GridTable(rows, colWidths=[(slot + gap) * inch] * (columns - 1) + [slot * inch], hAlign="LEFT")
    grid.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0),
                              ("RIGHTPADDING", (0, 0), (-1, -1), 0), ("BOTTOMPADDING", (0, 0), (-1, -1), 6)]))
    out = []
    if caption:
        doc.tables += 1
        out.append(Paragraph(escape(f"Table {doc.tables}. {caption}"),
                             style(SMALL_PT + 0.5, space_after=4, keep_with_next=True)))
    return out + [grid]


class FigureImage(Flowable):
    """A matplotlib figure as a PNG image, with its text (titles, tick labels, legends) laid over it
    invisibly (PDF text render mode 3, as an OCR layer), so that the figure's words can be searched and
    extracted like the rest of the report."""

    def __init__(self, png: bytes, width: float, height: float, texts: List[tuple]) -> None:
        super().__init__()
        self.png, self.width, self.height, self.texts = png, width * inch, height * inch, texts

    def wrap(self, available_width: float, available_height: float) -> tuple:
        return self.width, self.height

    def draw(self) -> None:
        self.canv.drawImage(ImageReader(io.BytesIO(self.png)), 0, 0, self.width, self.height)
        for x, y, text, size in self.texts:
            line = self.canv.beginText()
            line.setTextRenderMode(3)  # invisible
            line.setFont(FONT, size)
            line.setTextOrigin(x * self.width, y * self.height)
            line.textLine(text)
            self.canv.drawText(line)


def figure_image(height: float, draw: Callable[[Figure, Sequence[float]], None]) -> FigureImage:
    """A matplotlib drawing of ``height`` inches across the text width, as an image flowable."""
    fig = figures.new_figure(figures.TEXT_W, height)
    with matplotlib.rc_context({"pdf.fonttype": 42}):
        draw(fig, [0.0, 0.0, 1.0, 1.0])
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=FIGURE_DPI)
    renderer = fig.canvas.get_renderer()
    width_px, height_px = fig.bbox.width, fig.bbox.height
    texts = []
    for artist in fig.findobj(Text):
        if artist.get_visible() and artist.get_text().strip() and artist.figure is fig:
            box = artist.get_window_extent(renderer)
            texts.append((box.x0 / width_px, box.y0 / height_px, artist.get_text().replace("\n", " "),
                          max(1.0, float(artist.get_fontsize()))))
    return FigureImage(buffer.getvalue(), figures.TEXT_W, height, texts)


def figure(doc: ReportDocument, height: float, draw: Callable[[Figure, Sequence[float]], None], caption: str,
           numbered: bool = True) -> List[Flowable]:
    """A figure and its caption below, kept on one page (the height is cut to what a page holds)."""
    if numbered:
        doc.figures += 1
    caption = f"Figure {doc.figures}. {caption}" if numbered else caption
    text = Paragraph(escape(caption), style(SMALL_PT, italic=True, space_after=8))
    caption_h = text.wrap(figures.TEXT_W * inch, FRAME_H * inch)[1] / inch
    height = min(height, FRAME_H - caption_h - 0.15)
    return [KeepTogether([figure_image(height, draw), Spacer(1, 0.02 * inch), text])]


def spacer(inches: float) -> Spacer:
    return Spacer(1, inches * inch)


def blocks_story(blocks: Sequence[tuple], doc: ReportDocument) -> List[Flowable]:
    """Flowables of ``("heading", text, level)``, ``("paragraph", text, bullet)`` and ``("table", Table)``
    blocks (the summary page's form)."""
    story = []
    for block in blocks:
        if block[0] == "heading":
            story += heading(block[1], block[2], keep=0.4)
        elif block[0] == "paragraph":
            story.append(paragraph(block[1], BODY_PT - (0.5 if block[2] else 0), bullet=block[2]))
        else:
            story += [spacer(0.05)] + table(doc, block[1])
    return story


Story = List[Flowable]
Marks = Dict[str, int]
