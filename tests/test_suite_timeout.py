"""The suite's per-test timeout (pyproject.toml): a test that hangs on a forked loader pool fails, and the
tests after it still run."""
import os
import sys
import textwrap

from helpers import run_group

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HANGING = textwrap.dedent('''
    import os, signal, time
    import helperFunctions as hf

    def test_a_pool_that_never_answers():
        pool = hf.make_pool(2)
        try:
            pool.submit(time.sleep, 3600).result()  # a worker that never finishes: the wait hangs
        finally:
            for process in pool.processes:
                process.kill()
            hf.close_pool(pool)

    def test_the_next_test_still_runs():
        assert True
''')


def test_the_suite_has_a_per_test_timeout(pytestconfig):
    assert float(pytestconfig.getini("timeout")) > 0
    assert pytestconfig.getini("timeout_method") == "signal"


def test_a_hung_pool_wait_fails_its_test_and_the_session_goes_on(tmp_path):
    (tmp_path / "test_hang.py").write_text(HANGING)
    result = run_group(
        [sys.executable, "-m", "pytest", "-c", os.path.join(REPO, "pyproject.toml"), "--rootdir", REPO, "-p",
         "no:cacheprovider", "-o", "timeout=3", "-q", str(tmp_path / "test_hang.py")],
        cwd=REPO, timeout=120, env={**os.environ, "PYTHONPATH": REPO})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Timeout" in result.stdout and "1 failed, 1 passed" in result.stdout, result.stdout
