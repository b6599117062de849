"""Tables printed on the console: top-k accuracy per model, per-class accuracy worst first."""
import math
from typing import Any, Dict, Iterable, Mapping, Optional

from actionrec.evaluation import comparison, model_info


def format_class_table(per_class: Mapping[str, Optional[float]], title: str = "Per-class accuracy (worst first)",
                       counts: Any = None) -> str:
    """A printable table of ``{name: accuracy}`` sorted ascending (worst first, ties by name).

    Accuracies are fractions (shown as %); None/NaN (no test videos) are listed last as
    ``n/a``. ``counts`` optionally maps name -> number of test videos.
    """
    def value(a):
        return None if a is None or (isinstance(a, float) and math.isnan(a)) else float(a)

    rated = sorted(((n, value(a)) for n, a in per_class.items() if value(a) is not None), key=lambda x: (x[1], x[0]))
    unrated = sorted(n for n, a in per_class.items() if value(a) is None)
    width = max([len("class")] + [len(str(n)) for n in per_class])
    header = f"{'rank':>4}  {'class':<{width}}  {'accuracy':>8}" + ("  videos" if counts else "")
    lines = [title, header, "-" * len(header)] if title else [header, "-" * len(header)]
    rows = [(n, a) for n, a in rated] + [(n, None) for n in unrated]
    for rank, (name, a) in enumerate(rows, start=1):
        shown = "n/a" if a is None else f"{100.0 * a:7.2f}%"
        line = f"{rank:>4}  {str(name):<{width}}  {shown:>8}"
        if counts:
            line += f"  {counts.get(name, 0):>6}"
        lines.append(line)
    return "\n".join(lines)


def format_topk_table(results: Dict[str, Any], ks: Iterable[int] = (1, 5, 10)) -> str:
    """A printable table of top-k accuracies: ``results`` maps model name -> {"top1": .., ...}."""
    width = max([len("model")] + [len(str(n)) for n in results])
    header = f"{'model':<{width}}" + "".join(f"  {'top-' + str(k):>7}" for k in ks)
    lines = [header, "-" * len(header)]
    for name, r in results.items():
        lines.append(f"{name:<{width}}" + "".join(f"  {100.0 * r[f'top{k}']:6.2f}%" for k in ks))
    return "\n".join(lines)


def print_results(results: Dict[str, Any]) -> None:
    ev = results["evaluation"]
    print()
    print(
        format_topk_table(
            {f"{n} ({model_info.entry_title(results, n)})": ev[n] for n in results["order"]}, ks=comparison.TOPK
        )
    )
    for name, fusion in results["fusions"].items():
        print(f"fusion {name} {fusion['verdict']}")
