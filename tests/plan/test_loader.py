"""Users' files are imported once per content, under one name, whoever asks
(harness/plan/loader.py): a suite's ``imports`` and a custom implementation that name the
same file share one module."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.plan.implementations import load_custom
from harness.plan.loader import load_file, module_name_for
from oracles.errors import UsageError


def _write(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def test_the_same_file_is_one_module(tmp_path: Path) -> None:
    f = _write(tmp_path / "mine.py", "COUNT = [0]\nCOUNT[0] += 1\ndef f(x):\n    return x\n")
    first = load_file(f, what="suite import")
    impl = load_custom(f"{f}:f", oracle="exp", framework="numpy")
    assert load_file(f, what="suite import") is first
    assert impl.fn is first.f
    assert first.COUNT == [1], "executed once"


def test_a_changed_file_is_executed_again(tmp_path: Path) -> None:
    f = _write(tmp_path / "mine.py", "VALUE = 1\n")
    assert load_file(f, what="x").VALUE == 1
    _write(f, "VALUE = 2\n")
    assert load_file(f, what="x").VALUE == 2


def test_the_module_name_is_the_same_in_every_process(tmp_path: Path) -> None:
    f = _write(tmp_path / "mine.py", "")
    code = f"from pathlib import Path; from harness.plan.loader import module_name_for; print(module_name_for(Path({str(f)!r})))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert other.stdout.strip() == module_name_for(f)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(None, "custom implementation file 'nope.py' does not exist", id="missing"),
        pytest.param("raise RuntimeError('boom')\n", "importing 'bad.py' failed: RuntimeError: boom", id="raises"),
    ],
)
def test_errors_are_one_line(tmp_path: Path, body: str | None, expected: str) -> None:
    name = "nope.py" if body is None else "bad.py"
    path = tmp_path / name
    if body is not None:
        _write(path, body)
    with pytest.raises(UsageError) as info:
        load_file(path, what="custom implementation file", shown=name)
    assert str(info.value) == expected
    assert module_name_for(path) not in sys.modules, "a failed import leaves no half module behind"
