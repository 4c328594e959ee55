"""The architecture is checked by a machine: the import-linter contracts in pyproject.toml
hold for the tree, and they do fail on an upward import or a cycle (tried in a copy).

Layer: architecture. Also: no module of ours imports another of ours inside a function,
except where the line says why (``# lazy: ...``), so a cycle cannot hide there.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("oracles", "harness", "reports", "suites")
LINT = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")

needs_linter = pytest.mark.skipif(LINT is None, reason="import-linter is not installed (pip install -e .[test])")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    assert LINT is not None
    return subprocess.run([LINT, "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300, check=False)


def _copy_tree(tmp: Path) -> Path:
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.npz", "*.json"))
    shutil.copy(ROOT / "pyproject.toml", tmp / "pyproject.toml")
    return tmp


@needs_linter
def test_the_tree_keeps_its_contracts() -> None:
    proc = _lint(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


@needs_linter
@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        pytest.param("oracles/formats.py", "import harness.plan.cells", "fpharness layers", id="oracles-imports-harness"),
        pytest.param("harness/judgement/tally.py", "import harness.execution.runner", "fpharness layers",
                     id="judgement-imports-execution"),
        pytest.param("reports/terminal.py", "import harness.cli.app", "fpharness layers", id="reports-imports-cli"),
        pytest.param("harness/frameworks/adapters.py", "import harness.judgement.tally", "fpharness layers",
                     id="independent-siblings"),
        pytest.param("harness/judgement/definitions.py", "import harness.judgement.summary",
                     "no import cycles inside a layer", id="cycle-inside-a-package"),
    ],
)
def test_an_upward_import_or_a_cycle_breaks_a_contract(tmp_path: Path, module: str, line: str, contract: str) -> None:
    tree = _copy_tree(tmp_path)
    target = tree / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}  # throw-away\n", encoding="utf-8")
    proc = _lint(tree)
    assert proc.returncode != 0
    assert f"{contract} BROKEN" in proc.stdout, proc.stdout


def _function_level_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of our own packages made inside a function or method
    whose line does not say why it is lazy."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.ImportFrom) and inner.module and not inner.level:
                names = [inner.module]
            elif isinstance(inner, ast.Import):
                names = [a.name for a in inner.names]
            else:
                continue
            ours = [n for n in names if n.split(".")[0] in PACKAGES]
            statement = "\n".join(lines[inner.lineno - 1 : inner.end_lineno])
            if ours and "# lazy:" not in statement:
                found.append((inner.lineno, ours[0]))
    return found


def test_no_own_module_is_imported_inside_a_function_without_a_reason() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for pkg in PACKAGES
        for path in sorted((ROOT / pkg).rglob("*.py"))
        for line, module in _function_level_imports(path)
    ]
    assert offenders == []


def test_the_function_level_check_finds_an_unexplained_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f():\n    from harness.plan import cells\n"
        "def g():\n    import oracles.cache  # lazy: start-up time\n"
        "def h():\n    import numpy\n",
        encoding="utf-8",
    )
    assert _function_level_imports(sample) == [(2, "harness.plan")]
