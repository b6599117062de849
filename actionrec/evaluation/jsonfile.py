"""JSON output: numpy values made plain, NaN written as null, files written atomically."""
import json
import math
import os
from typing import Any, Union

import numpy as np

from actionrec import atomic


def to_jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays turned into Python values and NaN/inf into None."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: Union[str, os.PathLike], obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON (NaN -> null, numpy -> Python)."""
    text = json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n"

    def write(tmp_path):
        with open(tmp_path, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    atomic.atomic_write(path, write)
