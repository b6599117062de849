"""Shared pytest setup: make the flat scripts at the repository root importable, and keep the suite's disk
use small.

Disk: the suite trains and tests real-sized models (a ResNet-50 checkpoint is ~100 MB, a 3D ResNet-50 with
its optimizer state ~370 MB), and pytest keeps every temporary directory of a session until the next
sessions by default: one run of the suite wrote 15 GB, which filled a CI machine's disk. pyproject.toml
removes a passing test's `tmp_path` at once (`tmp_path_retention_policy = "failed"`); the fixture below
does the same for the directories a test module's fixtures make with `tmp_path_factory`, at the end of the
module, unless one of the module's tests failed (then they stay for a look, as the failing test's own do).
"""
import os
import shutil
import sys

import pytest
import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

_FAILED_MODULES = set()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if outcome.get_result().failed:
        _FAILED_MODULES.add(item.module.__name__)


@pytest.fixture(scope="module", autouse=True)
def _remove_module_temp_dirs(request, tmp_path_factory):
    """Record the directories made by `tmp_path_factory.mktemp` while this module runs; remove them after
    its last test (autouse fixtures are set up first, so this one is torn down after the module's own)."""
    made = []
    mktemp = tmp_path_factory.mktemp

    def recording_mktemp(basename, numbered=True):
        path = mktemp(basename, numbered=numbered)
        made.append(path)
        return path

    tmp_path_factory.mktemp = recording_mktemp
    try:
        yield
    finally:
        del tmp_path_factory.mktemp  # the class's method again
        if request.module.__name__ not in _FAILED_MODULES:
            for path in made:
                shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``): where other jobs
    share the cores, torch's spinning threads would only wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
