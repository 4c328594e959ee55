"""Isolation (harness/execution/isolation.py): whatever a custom implementation does, its
cell ends with a precise reason, the other cells complete, the results are written and the
exit code is 1; the run's processes die with it and Ctrl-C prints one line.

Layer: runner integration, plus a few end-to-end runs of the console script. Hostile
implementations are small functions in a tmp file; every row of the table once ended the
run, hung it or passed it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.execution.runner import Runner
from harness.execution.schedule import run_cells
from harness.frameworks.registry import Impl
from harness.plan.cells import CellSpec

pytestmark = pytest.mark.skipif(os.name != "posix", reason="isolation needs POSIX (pass_fds)")

HOSTILE = '''
import ctypes, os, signal, sys

import numpy as np

def good(x):
    with np.errstate(all="ignore"):
        return np.logaddexp(0.0, x.astype(np.float64)).astype(x.dtype)

def sys_exit_0(x):
    sys.exit(0)

def sys_exit_3(x):
    sys.exit(3)

def os_exit_0(x):
    os._exit(0)

def segfault(x):
    ctypes.string_at(0)

def abort(x):
    os.abort()

def kill_self(x):
    os.kill(os.getpid(), signal.SIGKILL)

def hold_the_gil(x):
    import re
    re.match(r"(a+)+$", "a" * 40 + "b")  # exponential backtracking in C, GIL held
    return x

def allocate_forever(x):
    hoard = []
    while True:
        hoard.append(np.empty(64 << 20, dtype=np.uint8))  # counted by RLIMIT_DATA untouched

def interrupt(x):
    raise KeyboardInterrupt

def sleep(x):
    import time
    time.sleep(120)
    return x
'''


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    (folder / "import_exit.py").write_text("import os\nos._exit(7)\ndef f(x):\n    return x\n")
    (folder / "import_sys_exit.py").write_text("import sys\nsys.exit(5)\ndef f(x):\n    return x\n")
    path = folder / "hostile.py"
    path.write_text(textwrap.dedent(HOSTILE))
    return path


def _cell(impl: str, *, dtype: str = "float16", timeout: float = 300.0) -> CellSpec:
    return CellSpec("softplus", impl, "numpy", dtype, "cpu", "special", custom=True, timeout=timeout)


def _target(hostile: Path, name: str) -> str:
    if name.startswith("import_"):
        return f"{hostile.parent / name}.py:f"
    return f"{hostile}:{name}"


DIED = "the worker process running it died"

CASES = [
    pytest.param("sys_exit_0", "the implementation called sys.exit(0)", id="sys-exit-0"),
    pytest.param("sys_exit_3", "the implementation called sys.exit(3)", id="sys-exit-3"),
    pytest.param("os_exit_0", f"{DIED}: the implementation ended it with exit code 0 (os._exit", id="os-exit-0"),
    pytest.param("segfault", f"{DIED}: killed by signal 11 (SIGSEGV); run it alone to see it: fpharness check",
                 id="segfault"),
    pytest.param("abort", f"{DIED}: killed by signal 6 (SIGABRT)", id="abort"),
    pytest.param("kill_self", f"{DIED}: killed by signal 9 (SIGKILL)", id="sigkill-itself"),
    pytest.param("import_exit", f"{DIED} while importing the implementation: the implementation ended it with"
                 " exit code 7", id="os-exit-at-import"),
    pytest.param("import_sys_exit", "the implementation called sys.exit(5) while importing the implementation",
                 id="sys-exit-at-import"),
    pytest.param("hold_the_gil", "timed out after 2 s", id="gil-held-past-timeout"),
    pytest.param("allocate_forever", "exceeded the memory limit of 1 GiB (MemoryError", id="unbounded-allocation"),
    pytest.param("interrupt", "KeyboardInterrupt", id="raises-keyboard-interrupt"),
]


@pytest.mark.parametrize(("name", "reason"), CASES)
def test_hostile_implementation_is_an_error_cell_and_the_run_goes_on(
    hostile: Path, monkeypatch: pytest.MonkeyPatch, name: str, reason: str
) -> None:
    monkeypatch.setenv("FPHARNESS_MEMORY_LIMIT", "1")
    timeout = 2 if name == "hold_the_gil" else 60
    cells = [_cell(_target(hostile, name), timeout=timeout), _cell(f"{hostile}:good"),
             _cell(_target(hostile, name), dtype="bfloat16", timeout=timeout)]
    started = time.monotonic()
    results = run_cells(cells, runner=Runner())
    assert [r.status for r in results] == ["error", "pass", "error"], [r.reason for r in results]
    assert results[0].reason.startswith(reason), results[0].reason
    assert "\n" not in results[0].reason
    assert time.monotonic() - started < 60


def test_gil_holding_timeout_kills_within_the_timeout(hostile: Path) -> None:
    started = time.monotonic()
    (result,) = run_cells([_cell(f"{hostile}:hold_the_gil", timeout=1)])
    assert (result.status, result.reason) == ("error", "timed out after 1 s")
    assert time.monotonic() - started < 15  # the regex alone runs for minutes


def test_the_parent_never_imports_the_implementation(hostile: Path) -> None:
    runner = Runner()
    cells = [_cell(_target(hostile, "import_exit"))]
    runner.validate(cells)  # would end this process at import
    (result,) = run_cells(cells, runner=runner)
    assert result.status == "error"
    assert not [m for m in sys.modules.values() if getattr(m, "__file__", None) == str(hostile.parent / "import_exit.py")]


def test_an_in_memory_implementation_that_exits_is_an_error_cell() -> None:
    """assert_precision's implementations run in-process; SystemExit must not escape."""

    def leave(x: object) -> object:
        sys.exit(4)

    runner = Runner(extra_impls={"mine": Impl("mine", "numpy", "softplus", leave, custom=True)})
    cell = CellSpec("softplus", "mine", "numpy", "float16", "cpu", "special", custom=True)
    (result,) = run_cells([cell], runner=runner)
    assert (result.status, result.reason) == ("error", "the implementation called sys.exit(4)")


# -- the console script -----------------------------------------------------------------------


def _script() -> str:
    script = Path(sys.executable).parent / "fpharness"
    found = str(script) if script.exists() else shutil.which("fpharness")
    if not found:
        pytest.skip("the fpharness console script is not installed")
    return found


def _suite(tmp_path: Path, hostile: Path, names: list[str], dtypes: str = '["float16", "bfloat16"]') -> Path:
    impls = ", ".join(json.dumps(_target(hostile, n)) for n in names)
    path = tmp_path / "suite.toml"
    path.write_text(textwrap.dedent(f'''
        schema = 1
        name = "hostile"

        [[case]]
        oracle = "softplus"
        impls = ["numpy.logaddexp", {impls}]
        framework = "numpy"
        dtypes = {dtypes}
        inputs = ["special"]
        timeout = 5
    '''))
    return path


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_run_with_hostile_implementations_writes_every_cell_and_exits_1(
    hostile: Path, tmp_path: Path, jobs: str
) -> None:
    names = ["good", "sys_exit_3", "os_exit_0", "segfault", "import_exit"]
    suite = _suite(tmp_path, hostile, names)
    out = tmp_path / "out.json"
    proc = subprocess.run([_script(), "run", str(suite), "--json", str(out), "-q", "--no-cache", "-j", jobs],
                          capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]
    cells = json.loads(out.read_text())["cells"]
    status = {(c["impl"].rpartition(":")[2] if c["custom"] else c["impl"], c["dtype"]): c["status"] for c in cells}
    assert len(cells) == 2 * (len(names) + 1)
    for dtype in ("float16", "bfloat16"):
        assert status["numpy.logaddexp", dtype] in ("pass", "fail")
        assert status["good", dtype] == "pass"
        for name in ("sys_exit_3", "os_exit_0", "segfault", "f"):
            assert status[name, dtype] == "error"


@pytest.mark.parametrize("name", ["sys_exit_0", "sys_exit_3", "import_exit"])
def test_check_of_an_exiting_implementation_exits_1_with_results(hostile: Path, tmp_path: Path, name: str) -> None:
    out = tmp_path / "out.json"
    proc = subprocess.run([_script(), "check", _target(hostile, name), "--oracle", "softplus", "--framework",
                           "numpy", "--dtype", "float16", "--inputs", "special", "-j", "1", "-q", "--no-cache",
                           "--json", str(out)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]
    (cell,) = json.loads(out.read_text())["cells"]
    assert cell["status"] == "error" and ("sys.exit" in cell["reason"] or "exit code 7" in cell["reason"])


# -- the run's processes die with it ------------------------------------------------------------


def _children() -> dict[int, int]:
    """pid -> parent pid of every live (non-zombie) process, from /proc."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if fields[0] != "Z":
            out[int(entry)] = int(fields[1])
    return out


def _descendants(pid: int) -> set[int]:
    table = _children()
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in table.items() if pp == parent and p not in found]
        found.update(kids)
        frontier.extend(kids)
    return found


def _start_busy_run(hostile: Path, tmp_path: Path) -> tuple[subprocess.Popen[str], set[int]]:
    """`fpharness run -j 2` of two groups of sleeping cells, once its workers and their
    isolated processes are up: (the process, its descendants)."""
    suite = _suite(tmp_path, hostile, ["sleep"])
    proc = subprocess.Popen([_script(), "run", str(suite), "--json", str(tmp_path / "o.json"), "-q", "--no-cache",
                             "-j", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            start_new_session=True)
    deadline = time.monotonic() + 90
    family: set[int] = set()
    while time.monotonic() < deadline:
        family = _descendants(proc.pid)
        # two workers, each with an isolated process, plus the resource tracker
        if len(family) >= 5:
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"the run never started its workers: {family}")
    time.sleep(0.5)
    return proc, _descendants(proc.pid)


def _survivors(pids: set[int], within: float) -> set[int]:
    deadline = time.monotonic() + within
    while True:
        alive = pids & set(_children())
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_the_run_leaves_no_process_behind(hostile: Path, tmp_path: Path) -> None:
    proc, family = _start_busy_run(hostile, tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    alive = _survivors(family, within=10)
    for pid in alive:  # leave nothing behind for the next test either
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"outlived the run: {alive}"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_prints_one_line_and_exits_130(hostile: Path, tmp_path: Path) -> None:
    proc, family = _start_busy_run(hostile, tmp_path)
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal does: the whole foreground group
    try:
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert (proc.returncode, stderr) == (130, "fpharness: interrupted\n")
    assert stdout == ""
    alive = _survivors(family, within=10)
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"outlived the run: {alive}"


def test_a_fresh_process_imports_again_under_the_import_limit(tmp_path: Path) -> None:
    """After a timeout kills the isolated process, the next cell's fresh process imports the
    module again; that import is not charged to the cell's short --timeout (once it was, and
    every later cell of a slow-importing implementation timed out too)."""
    slow = tmp_path / "slow_import.py"
    slow.write_text(textwrap.dedent('''
        import time
        import numpy as np
        time.sleep(1.5)  # an import slower than the cells' timeout (TensorFlow takes seconds)

        def f(x):
            if x.dtype == np.float16:
                time.sleep(60)
            return np.logaddexp(0, x)  # softplus
    '''))
    cells = [_cell(f"{slow}:f", dtype=d, timeout=1.0) for d in ("float16", "float32", "float64")]
    results = run_cells(cells, runner=Runner())
    assert [r.status for r in results] == ["error", "pass", "pass"], [r.reason for r in results]
    assert results[0].reason == "timed out after 1 s"
