"""Numbers and lists in words, as the combiner's messages, tables and sentences write them."""
from typing import Iterable, Optional


def pct(value: Optional[float], signed: bool = False) -> str:
    """A fraction as a percentage string with two decimals; None as n/a."""
    if value is None:
        return "n/a"
    return f"{100.0 * value:+.2f}" if signed else f"{100.0 * value:.2f}"


def points(value: float) -> str:
    """A difference of fractions in percentage points: '+0.53 points'."""
    return f"{100.0 * value:+.2f} points"


def counted(n: int, one: str, many: str) -> str:
    """'the class' for n == 1, else 'the 7 classes'."""
    return one if n == 1 else f"the {n} {many}"


def names_text(names: Iterable[str], limit: int = 8) -> str:
    """'A, B and C' (at most ``limit`` names, then 'and N more')."""
    names = list(names)
    if len(names) > limit:
        return ", ".join(names[:limit]) + f" and {len(names) - limit} more"
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def groups_text(groups: Iterable[int]) -> str:
    """(8, 9, 10, 12) -> '8-10,12'."""
    out, groups = [], sorted(groups)
    i = 0
    while i < len(groups):
        j = i
        while j + 1 < len(groups) and groups[j + 1] == groups[j] + 1:
            j += 1
        out.append(str(groups[i]) if i == j else f"{groups[i]}-{groups[j]}")
        i = j + 1
    return ",".join(out)
