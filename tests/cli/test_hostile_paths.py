"""Hostile and careless paths given to the command line: outputs that are directories, that
are an input of the same command, or that lie where nothing can be written; cache
directories that are files or not caches at all (issue 13, defects 4, 6 and 12).

Layer: end to end, in-process through ``harness.cli.app.main``. Every case must end at
once with exit 2 and exactly one line on stderr naming the bad path and what is accepted,
before any work: no cell runs (``run_cells`` is replaced by a tripwire), and no file under
the test's directory is created, changed or removed. Add a row for every new way a path
can hurt; ids read as the mistake.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import numpy as np
import pytest

import harness.cli.session as session_mod
from harness.cli.app import main
from harness.record.results import Results
from suites.seeds.report import main as seeds_report

NO_WORK = ["-q", "-j", "1", "--no-progress"]

SUITE = """
    schema = 1
    name = "s"
    imports = ["my_oracles.py"]

    [[case]]
    oracle = "exp"
    impls = ["numpy.exp"]
    dtypes = ["float16"]
    inputs = ["special", "npy:in.npy"]
"""

IMPL = '''
import numpy as np

def f(x):
    return np.exp(x)
'''


@pytest.fixture(scope="module")
def results_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a small real results file (one check of numpy.exp)."""
    out = tmp_path_factory.mktemp("results") / "r.json"
    code = main(["check", "numpy.exp", "--dtype", "float16", "--inputs", "special", "--no-cache",
                 "--json", str(out), *NO_WORK])
    assert code == 0
    return out.read_bytes()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, results_file: bytes) -> Path:
    """A project directory as the current one: inputs of every kind, a folder, a plain file,
    and the cache in a folder of its own."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.setenv("FPHARNESS_CACHE_DIR", str(root / "cache"))
    np.save(root / "in.npy", np.array([0.5, 1.0, 2.0], dtype=np.float16))
    (root / "impl.py").write_text(IMPL)
    (root / "my_oracles.py").write_text("# a suite's own oracles would be registered here\n")
    (root / "s.toml").write_text(textwrap.dedent(SUITE))
    (root / "a.json").write_bytes(results_file)
    (root / "b.json").write_bytes(results_file)
    (root / "outdir").mkdir()
    (root / "afile").write_text("a plain file\n")
    (root / "results").mkdir()
    (root / "results" / "frameworks.json").write_bytes(results_file)  # a user's own results
    (root / "jax").mkdir()
    (root / "jax" / "notes.txt").write_text("mine\n")

    def tripwire(*args: object, **kw: object) -> object:
        raise AssertionError("cells started running before the paths were checked")

    monkeypatch.setattr(session_mod, "run_cells", tripwire)
    return root


def snapshot(root: Path) -> dict[str, tuple[str, bytes, int]]:
    """Every path under ``root``: its kind, its bytes (files) and its mtime."""
    out: dict[str, tuple[str, bytes, int]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        kind = "dir" if path.is_dir() else "file"
        out[str(path.relative_to(root))] = (kind, path.read_bytes() if kind == "file" else b"", st.st_mtime_ns)
    return out


def unwritable_dir() -> str:
    """A directory in which not even root can create a file."""
    probe = Path("/proc/fpharness-probe")
    try:
        probe.mkdir()
    except OSError:
        return "/proc"
    probe.rmdir()
    pytest.skip("no directory here refuses writes, not even /proc")


CASES = [
    # -- check ----------------------------------------------------------------------------------
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "--inputs", "special", "--json", "outdir"],
                 "outdir", ["is a directory", "outdir/results.json"], id="check-json-is-a-directory"),
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "--inputs", "special", "--html", "outdir"],
                 "outdir", ["is a directory", "outdir/report.html"], id="check-html-is-a-directory"),
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "--inputs", "npy:in.npy", "--json", "in.npy"],
                 "in.npy", ["an input", "--inputs npy:in.npy", "in.json"], id="check-json-is-the-npy-input"),
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "--inputs", "npy:in.npy", "--html", "./in.npy"],
                 "./in.npy", ["an input", "--inputs npy:in.npy"], id="check-html-is-the-npy-input-spelt-differently"),
    pytest.param(["check", "impl.py:f", "--oracle", "exp", "--framework", "numpy", "--dtype", "float16",
                  "--inputs", "special", "--json", "impl.py"],
                 "impl.py", ["an input", "implementation"], id="check-json-is-the-implementation"),
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "--inputs", "special", "--json", "x.json",
                  "--html", "x.json"], "x.json", ["--json", "its own file"], id="check-json-and-html-one-file"),
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "--inputs", "special", "--json", "afile/r.json"],
                 "afile/r.json", ["'afile' is not a directory"], id="check-json-parent-is-a-file"),
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "--inputs", "special", "--json", "UNWRITABLE/x/r.json"],
                 "UNWRITABLE/x/r.json", ["cannot write in", "a directory you can write"],
                 id="check-json-parent-cannot-be-created"),
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "--inputs", "special", "--json", "/dev/null"],
                 "/dev/null", ["not a regular file"], id="check-json-is-a-device"),
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "--inputs", "special", "--cache-dir", "afile"],
                 "afile", ["--cache-dir", "not a directory"], id="check-cache-dir-is-a-file"),
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "--inputs", "special", "--cache-dir", "afile/sub"],
                 "afile/sub", ["--cache-dir", "not a directory"], id="check-cache-dir-under-a-file"),
    # -- run ------------------------------------------------------------------------------------
    pytest.param(["run", "s.toml", "--json", "s.toml"], "s.toml", ["suite file", "s.json"],
                 id="run-json-is-the-suite"),
    pytest.param(["run", "s.toml", "--html", "s.toml"], "s.toml", ["suite file", "s.html"],
                 id="run-html-is-the-suite"),
    pytest.param(["run", "s.toml", "--json", "my_oracles.py"], "my_oracles.py", ["a module the suite imports", "my_oracles.json"],
                 id="run-json-is-a-module-the-suite-imports"),
    pytest.param(["run", "s.toml", "--json", "outdir"], "outdir", ["is a directory"], id="run-json-is-a-directory"),
    pytest.param(["run", "s.toml", "--html", "outdir"], "outdir", ["is a directory"], id="run-html-is-a-directory"),
    pytest.param(["run", "s.toml", "--json", "in.npy"], "in.npy", ["npy:in.npy"], id="run-json-is-an-npy-input-of-the-suite"),
    pytest.param(["run", "s.toml", "--json", "afile/s.json"], "afile/s.json", ["'afile' is not a directory"],
                 id="run-json-parent-is-a-file"),
    pytest.param(["run", "s.toml", "--cache-dir", "afile"], "afile", ["--cache-dir", "not a directory"],
                 id="run-cache-dir-is-a-file"),
    pytest.param(["run", "s.toml", "--json", "h.sqlite", "--record", "--db", "h.sqlite"], "h.sqlite",
                 ["history database"], id="run-json-is-the-history-database"),
    # -- merge, compare, report -----------------------------------------------------------------
    pytest.param(["merge", "a.json", "b.json", "-o", "a.json"], "a.json", ["an input", "results file"],
                 id="merge-output-is-a-part"),
    pytest.param(["merge", "a.json", "b.json", "-o", "outdir"], "outdir", ["is a directory", "outdir/merged.json"],
                 id="merge-output-is-a-directory"),
    pytest.param(["merge", "a.json", "b.json", "-o", "afile/m.json"], "afile/m.json", ["'afile' is not a directory"],
                 id="merge-output-parent-is-a-file"),
    pytest.param(["compare", "a.json", "b.json", "--markdown", "outdir"], "outdir",
                 ["is a directory", "outdir/comparison.md"], id="compare-markdown-is-a-directory"),
    pytest.param(["compare", "a.json", "b.json", "--markdown", "b.json"], "b.json", ["an input", "b.md"],
                 id="compare-markdown-is-the-current-results"),
    pytest.param(["compare", "a.json", "b.json", "--markdown", "afile/c.md"], "afile/c.md",
                 ["'afile' is not a directory"], id="compare-markdown-parent-is-a-file"),
    pytest.param(["report", "a.json", "-o", "a.json"], "a.json", ["an input", "a.html"], id="report-output-is-the-input"),
    pytest.param(["report", "a.json", "--baseline", "b.json", "-o", "b.json"], "b.json", ["an input", "b.html"],
                 id="report-output-is-the-baseline"),
    pytest.param(["report", "a.json", "-o", "outdir"], "outdir", ["is a directory", "outdir/report.html"],
                 id="report-output-is-a-directory"),
    pytest.param(["report", "a.json", "-o", "afile/r.html"], "afile/r.html", ["'afile' is not a directory"],
                 id="report-output-parent-is-a-file"),
    # -- cache clear on something that is not a cache ----------------------------------------------
    pytest.param(["cache", "clear", "--cache-dir", "."], ".", ["does not look like an fpharness cache", "CACHEDIR.TAG"],
                 id="cache-clear-a-project-directory"),
    pytest.param(["cache", "clear", "--cache-dir", "results"], "results", ["does not look like an fpharness cache"],
                 id="cache-clear-a-results-folder"),
    pytest.param(["cache", "clear", "--dry-run", "--cache-dir", "."], ".", ["does not look like an fpharness cache"],
                 id="cache-clear-dry-run-a-project-directory"),
]


@pytest.mark.parametrize(("argv", "bad", "fragments"), CASES)
def test_bad_paths_exit_2_before_any_work(
    workdir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], bad: str, fragments: list[str]
) -> None:
    if any("UNWRITABLE" in a for a in argv):
        place = unwritable_dir()
        argv = [a.replace("UNWRITABLE", place) for a in argv]
        bad = bad.replace("UNWRITABLE", place)
    if argv[0] in ("check", "run"):
        argv = [*argv, *NO_WORK, *([] if "--cache-dir" in argv else ["--no-cache"])]
    before = snapshot(workdir)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, f"exit {code}; stderr {err!r}"
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), f"one line on stderr, got {err!r}"
    assert lines[0].startswith("fpharness: error: ") and "Traceback" not in err
    assert repr(bad) in lines[0], f"{bad!r} not named in {lines[0]!r}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    assert out == ""
    assert snapshot(workdir) == before, "a file was created, changed or removed"


def test_the_good_paths_still_work(workdir: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The same commands with sensible paths: nothing above refuses a good path."""
    monkeypatch.undo()  # the real run_cells
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("FPHARNESS_CACHE_DIR", str(workdir / "cache"))
    monkeypatch.setenv("FPHARNESS_JAX_CACHE_DIR", "")
    assert main(["run", "s.toml", "--json", "new/s.json", "--html", "new/s.html", *NO_WORK, "--no-cache"]) == 0
    assert json.loads((workdir / "new" / "s.json").read_text())["schema"] == 4
    assert main(["merge", "a.json", "-o", "m.json", "-q"]) == 0
    assert main(["compare", "a.json", "b.json", "--markdown", "outdir/c.md"]) == 0
    assert main(["report", "a.json", "-o", "outdir/r.html", "-q"]) == 0
    assert (workdir / "outdir" / "c.md").is_file() and (workdir / "outdir" / "r.html").is_file()
    capsys.readouterr()


def test_an_existing_output_file_is_replaced(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Overwriting an earlier output of the same kind is what the user asked for."""
    assert main(["report", "a.json", "-o", "old.html", "-q"]) == 0
    assert main(["report", "a.json", "-o", "old.html", "-q"]) == 0
    assert os.path.getsize(workdir / "old.html") > 0
    capsys.readouterr()


@pytest.mark.parametrize(
    ("output", "fragment"),
    [
        pytest.param("a.json", "is the results file, an input", id="seeds-report-output-is-its-input"),
        pytest.param("outdir", "is a directory", id="seeds-report-output-is-a-directory"),
    ],
)
def test_seeds_report_checks_its_output_first(
    workdir: Path, capsys: pytest.CaptureFixture[str], output: str, fragment: str
) -> None:
    before = snapshot(workdir)
    assert seeds_report(["a.json", "-o", output]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and repr(output) in err and fragment in err
    assert snapshot(workdir) == before


def test_a_write_that_fails_after_the_run_is_one_line_and_shows_the_results(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The paths were fine when checked, and the disk filled up during the run: the results
    are shown on screen and the failed write is one line, not a traceback."""
    monkeypatch.undo()
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("FPHARNESS_JAX_CACHE_DIR", "")

    def full(self: Results, path: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Results, "write", full)
    code = main(["check", "numpy.exp", "--dtype", "float16", "--inputs", "special", "--json", "r.json",
                 "--no-cache", "-j", "1", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 2 and err == "fpharness: error: --json 'r.json': cannot write it (No space left on device);" \
        " the run's results are in the table above\n"
    assert "1 cells: 1 passed" in out and "results: r.json" not in out
