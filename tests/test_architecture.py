"""The shape of the code (README, "Architecture"): arrows run scripts -> library -> models.

- a root script never imports another root script (what two scripts share lives in actionrec/);
- the library (actionrec/) imports no root module except the model file resnet_3d.py, which stays at the
  root for the assignment's users;
- the models (actionrec/models/ and resnet_3d.py) import nothing else from the library;
- helperFunctions.py, the assignment's public face, is only a re-export of the library: nothing of
  the toolkit imports it;
- no module of the library is over 450 lines (the aim is ~400).
Read from the source with ast, so a lazy import inside a function counts as much as one at the top.
"""
import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT_MODULES = sorted(f[:-3] for f in os.listdir(REPO) if f.endswith(".py"))
MODEL_FILES = ["resnet_3d"]  # root modules that are models, not scripts
LIBRARY_LIMIT = 450


def library_files():
    out = []
    for folder, _, files in os.walk(os.path.join(REPO, "actionrec")):
        out += [os.path.join(folder, f) for f in files if f.endswith(".py")]
    return sorted(out)


def imported_modules(path):
    """Every module name an import statement of the file names (absolute imports only)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_root_holds_scripts_and_the_two_files_the_assignment_hands_out():
    assert "helperFunctions" in ROOT_MODULES and "resnet_3d" in ROOT_MODULES
    assert not os.path.exists(os.path.join(REPO, "engine.py")) and not os.path.exists(os.path.join(REPO, "metrics.py"))


@pytest.mark.parametrize("script", [m for m in ROOT_MODULES if m not in MODEL_FILES])
def test_a_script_imports_no_other_script(script):
    imported = imported_modules(os.path.join(REPO, script + ".py"))
    others = sorted(m for m in ROOT_MODULES if m != script and m not in MODEL_FILES and m in imported)
    assert others == [], f"{script}.py imports {others}: what scripts share belongs in actionrec/"


@pytest.mark.parametrize("path", library_files(), ids=lambda p: os.path.relpath(p, REPO))
def test_the_library_imports_no_script_and_not_helperFunctions(path):
    imported = imported_modules(path)
    roots = sorted(m for m in ROOT_MODULES if m in imported and m not in MODEL_FILES)
    assert roots == [], f"{os.path.relpath(path, REPO)} imports the root modules {roots}"


def test_the_models_import_nothing_else_from_the_library():
    model_paths = [p for p in library_files() if os.sep + os.path.join("actionrec", "models") + os.sep in p]
    model_paths += [os.path.join(REPO, m + ".py") for m in MODEL_FILES]
    for path in model_paths:
        outside = sorted(m for m in imported_modules(path)
                         if m.startswith("actionrec") and not m.startswith("actionrec.models"))
        assert outside == [], f"{os.path.relpath(path, REPO)} imports {outside}: models import only models"


def test_helperFunctions_is_a_re_export_and_the_toolkit_does_not_import_it():
    for path in library_files() + [os.path.join(REPO, m + ".py") for m in ROOT_MODULES if m != "helperFunctions"]:
        assert "helperFunctions" not in imported_modules(path), os.path.relpath(path, REPO)
    with open(os.path.join(REPO, "helperFunctions.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    definitions = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert definitions == []
    import helperFunctions
    for name in ("getUCF101", "getHMDB51", "loadFrame", "loadSequence", "loadFrameRaw", "loadSequenceRaw"):
        assert callable(getattr(helperFunctions, name)), name


@pytest.mark.parametrize("path", library_files(), ids=lambda p: os.path.relpath(p, REPO))
def test_no_library_module_is_over_the_limit(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().count("\n")
    assert lines <= LIBRARY_LIMIT, f"{os.path.relpath(path, REPO)}: {lines} lines; split it by idea"
