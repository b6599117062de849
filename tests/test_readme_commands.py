"""The README's commands on the demo's outputs run. Every command of a fenced code block of README.md
that names demo/ is run, with exit status 0 expected, on a tiny demo that the Makefile's own recipes
build: `make demo` with DEMO set to a temporary folder and the dataset, image size and epochs made
small through the Makefile's DEMO_* variables. A changed README is tested as it reads."""
import os
import re
import shlex
import shutil
import sys

import pytest

from helpers import run_group

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(REPO, "README.md")
# The demo's recipes at a size that builds in about a minute on 2 cores: 3 classes (MotionUp among them),
# 2 test and 8 training videos per class of 16 frames (one 16-frame window), group g03 held out for
# validation as g08 is in the demo, one step of one epoch per model.
TINY = {"DEMO_DATASET": "--classes 3 --train-per-class 8 --test-per-class 2 --frames 16 --size 24x32 --seed 0",
        "DEMO_SIZE": "32", "DEMO_VAL_GROUPS": "3", "DEMO_TRAIN": "--epochs 1 --max-steps 1 --no-tensorboard"}
DEMO_PATH = re.compile(r"(?<![\w./-])demo/")
PYTHON = re.compile(r"(?<!\S)python3?(?=\s)")
A_VIDEO = "data/UCF-101-hdf5/MotionUp/v_MotionUp_g01_c01.hdf5"  # in the demo and in the tiny demo


def readme_commands(text):
    """The commands of the fenced code blocks of a README: continued lines joined, comments and blank
    lines dropped."""
    commands = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S):
        for line in re.sub(r"\s*\\\n\s*", " ", block).splitlines():
            line = re.sub(r"(^|\s)#.*", "", line).strip()  # no command here quotes a '#'
            if line:
                commands.append(line)
    return commands


def demo_commands(text):
    return [c for c in readme_commands(text) if DEMO_PATH.search(c)]


def on_tiny_demo(command, demo):
    """A README command made to run on the tiny demo: demo/ -> its folder, python -> this interpreter,
    a VIDEO placeholder -> one of its test videos."""
    command = DEMO_PATH.sub(lambda _: demo.rstrip("/") + "/", command)
    command = PYTHON.sub(lambda _: shlex.quote(sys.executable), command)
    return re.sub(r"\bVIDEO\b", shlex.quote(os.path.join(demo, A_VIDEO)), command)


with open(README, encoding="utf-8") as f:
    README_TEXT = f.read()
COMMANDS = demo_commands(README_TEXT)


def tail(text, lines=30):
    return "\n".join((text or "").splitlines()[-lines:])


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    """`make demo` at tiny sizes into a temporary folder, with this interpreter instead of .venv."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    root = tmp_path_factory.mktemp("readme")
    stamp = root / "venv-stamp"  # stands for .venv's install stamp: newer than requirements.txt
    stamp.touch()
    demo = str(root / "demo")
    variables = {"DEMO": demo, "PY": sys.executable, "STAMP": str(stamp), **TINY}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two stages at a time on shared cores
    result = run_group(["make", "-j2", "demo"] + [f"{k}={v}" for k, v in variables.items()],
                       cwd=REPO, env=env, timeout=240)
    assert result.returncode == 0, f"make demo (tiny) failed:\n{tail(result.stdout)}\n{tail(result.stderr)}"
    assert os.path.isfile(os.path.join(demo, "report", "results.json"))
    return demo


def test_the_readme_shows_commands_on_the_demo():
    assert "make demo" in readme_commands(README_TEXT)  # what the fixture runs, at tiny sizes
    assert COMMANDS, "no command of README.md's code blocks names demo/"


def test_readme_parsing():
    text = ("text demo/x\n```bash\nmake demo    # all\n# python c.py demo/no\npython a.py demo/report/r.json \\\n"
            "    --flag VIDEO  # note\npython b.py runs/x\n```\n")
    assert readme_commands(text) == ["make demo", "python a.py demo/report/r.json --flag VIDEO", "python b.py runs/x"]
    assert demo_commands(text) == ["python a.py demo/report/r.json --flag VIDEO"]
    assert on_tiny_demo("python a.py demo/r.json --flag VIDEO my_demo/x", "/t/d") == (
        f"{shlex.quote(sys.executable)} a.py /t/d/r.json --flag {shlex.quote('/t/d/' + A_VIDEO)} my_demo/x")


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{i}-{c.split()[1] if len(c.split()) > 1 else c}"
                                                   for i, c in enumerate(COMMANDS)])
def test_readme_command_runs_on_the_demo(tiny_demo, command):
    result = run_group(["bash", "-c", on_tiny_demo(command, tiny_demo)], cwd=REPO,
                       env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert result.returncode == 0, (f"README command failed (exit {result.returncode}) on the tiny demo:\n{command}\n"
                                    f"{tail(result.stderr)}")
