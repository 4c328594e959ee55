"""--reuse-results: unchanged cells are read back, changed ones run again, and what comes
back is the result the run would have produced."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from harness.cli.app import main
from harness.plan.cells import CellSpec
from harness.record.reuse import ResultStore, fingerprint, own_source_files


def _write_impl(path: Path, body: str) -> None:
    path.write_text(textwrap.dedent('''
        from pathlib import Path

        import numpy as np

        def softplus(x):
            Path(__file__).with_suffix(".calls").open("a").write("x")
            with np.errstate(all="ignore"):
                return BODY
    ''').replace("BODY", body))


def _cells(results: Path) -> list[dict[str, Any]]:
    out = []
    for c in json.loads(results.read_text())["cells"]:
        c.pop("seconds")
        c.pop("impl_seconds")
        out.append(c)
    return out


def _run(impl: Path, cache: Path, out: Path, *extra: str) -> int:
    return main(["check", f"{impl}:softplus", "--oracle", "softplus", "--framework", "numpy", "--dtype", "float16",
                 "--inputs", "exhaustive", "--cache-dir", str(cache), "--json", str(out), "-q", "-j", "1", *extra])


def test_unchanged_cell_is_read_back_and_a_changed_one_runs(tmp_path: Path) -> None:
    impl, cache = tmp_path / "mine.py", tmp_path / "cache"
    calls = impl.with_suffix(".calls")
    _write_impl(impl, "np.log(1 + np.exp(x))")
    assert _run(impl, cache, tmp_path / "a.json") == 1  # overflows in float16: fails
    assert calls.read_text() == "x"
    assert _run(impl, cache, tmp_path / "b.json", "--reuse-results") == 1
    assert calls.read_text() == "x", "the unchanged cell was not run again"
    assert _cells(tmp_path / "b.json") == _cells(tmp_path / "a.json")
    _write_impl(impl, "np.logaddexp(0, x).astype(x.dtype)")  # the fix
    assert _run(impl, cache, tmp_path / "c.json", "--reuse-results") == 0
    assert calls.read_text() == "xx", "a changed implementation runs again"
    assert _run(impl, cache, tmp_path / "d.json") == 0
    assert calls.read_text() == "xxx", "without the flag every cell runs"


def test_fingerprint_follows_what_changes_a_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    impl = tmp_path / "f.py"
    _write_impl(impl, "x")
    cell = CellSpec("softplus", f"{impl}:softplus", "numpy", "float16", "cpu", "special", custom=True)
    base = fingerprint(cell, 10)
    assert base is not None and base == fingerprint(cell, 10)
    assert fingerprint(cell, 5) != base
    assert fingerprint(CellSpec("softplus", f"{impl}:softplus", "numpy", "float32", "cpu", "special", custom=True),
                       10) != base
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=true")
    assert fingerprint(cell, 10) != base
    monkeypatch.delenv("XLA_FLAGS")
    _write_impl(impl, "x + 0")
    assert fingerprint(cell, 10) != base
    cuda = CellSpec("softplus", "torch.softplus", "torch", "float16", "cuda", "special")
    assert fingerprint(cuda, 10) not in (None, fingerprint(CellSpec(
        "softplus", "torch.softplus", "torch", "float16", "cpu", "special"), 10))
    assert fingerprint(CellSpec("softplus", f"{tmp_path}/gone.py:f", "numpy", "float16", "cpu", "special",
                                custom=True), 10) is None


def test_damaged_or_foreign_entries_are_ignored(tmp_path: Path) -> None:
    impl = tmp_path / "g.py"
    _write_impl(impl, "x")
    cell = CellSpec("softplus", f"{impl}:softplus", "numpy", "float16", "cpu", "special", custom=True)
    store = ResultStore(tmp_path)
    key = fingerprint(cell, 10)
    assert key is not None
    path = store._path(key)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert store.get(cell) is None
    path.write_text(json.dumps({"schema": 1, "fingerprint": "0" * 64, "cell": {}}))
    assert store.get(cell) is None


def test_reuse_needs_the_cache(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    impl = tmp_path / "h.py"
    _write_impl(impl, "x")
    assert main(["check", f"{impl}:softplus", "--oracle", "softplus", "--framework", "numpy",
                 "--dtype", "float16", "--reuse-results", "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert "--reuse-results" in err and len(err.strip().splitlines()) == 1


def test_an_implementation_edited_during_the_run_is_not_filed_under_its_new_source(tmp_path: Path) -> None:
    """The fingerprint is taken before the run: the old code's result must not be reused
    for the code saved while it ran."""
    impl, cache = tmp_path / "edits.py", tmp_path / "cache"
    fixed = impl.read_text() if impl.exists() else ""
    _write_impl(impl, "np.log(1 + np.exp(x))")
    naive = impl.read_text()
    fixed = naive.replace("np.log(1 + np.exp(x))", "np.logaddexp(0, x).astype(x.dtype)")
    # on its first call the implementation saves its own fix, as an editor would mid-run
    impl.write_text(naive.replace("def softplus(x):", f"def softplus(x):\n    Path(__file__).write_text({fixed!r})"))
    assert _run(impl, cache, tmp_path / "a.json") == 1
    assert impl.read_text() == fixed
    assert _run(impl, cache, tmp_path / "b.json", "--reuse-results") == 0, "the fixed code ran"


def test_the_own_source_digest_covers_every_layer() -> None:
    """A fingerprint that missed part of fpharness's code would reuse results the new code
    would judge differently (the digest once walked one folder too deep after a move)."""
    files = {p.relative_to(Path(__file__).resolve().parents[2]).as_posix() for p in own_source_files()}
    for expected in ("harness/record/reuse.py", "harness/judgement/tally.py", "harness/frameworks/builtins/torch_impls.py",
                     "oracles/registry.py", "oracles/fast/__init__.py"):
        assert expected in files
