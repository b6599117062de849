"""Atomic file writes: a file is either its old self or complete, never half written."""
import os
from typing import Callable, Union

PathLike = Union[str, os.PathLike]


def atomic_write(path: PathLike, write_fn: Callable[[str], None]) -> None:
    """Call ``write_fn(tmp_path)``, then move ``tmp_path`` onto ``path`` (same directory); the temporary
    file is removed when anything fails."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp_path = f"{path}.tmp-{os.getpid()}"
    try:
        write_fn(tmp_path)
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise
