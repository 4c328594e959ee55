"""The Python half of ``scripts/gpu_check.sh``: what the GPU machine is, and what a run on
it showed. Not an ``fpharness`` command: the script calls it as ``python -m
harness.cli.gpu_check``, once fpharness and its dependencies import.

``environment OUT.json``
    The machine as the harness sees it: ``nvidia-smi``'s name, driver and memory of each GPU,
    Python, and for each framework (torch and jax by default) its version, its devices by
    name (the adapter's :meth:`~harness.frameworks.adapters.Backend.devices`, the names the
    results files carry) or why it has no CUDA device, and its CUDA build. Prints one line per
    framework; with ``--require-cuda`` exits 2 when no framework sees a CUDA device (a GPU
    that the drivers or the framework builds cannot use is a setup problem: nothing a run
    could measure).

``summary``
    Reads the suite's results, the exhaustive cell's results and the phase timings, writes a
    Markdown summary (the tables ``docs/gpu.md`` is to take: per framework, implementation and
    dtype the worst forward and gradient ULP error on CUDA and whether CUDA answered as the
    CPU), prints a few lines, and decides the script's exit code: 0 when the harness worked,
    whatever the verdicts (a cell over budget is a finding about a framework), 1 for a
    harness failure: a command that exited other than 0 or 1, results that are missing, no
    cuda cell that ran, a cell that hit an internal error or a re-check that disagreed
    ("please report"), failing or missing transfer tests.

Everything here reads results and prints; it runs no cell.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from harness.cli.base import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from harness.frameworks.adapters import get_backend
from harness.plan.cells import CellResult
from harness.record.results import Results, load_results
from oracles.atomic import atomic_write_text
from oracles.errors import FpharnessError
from reports.labels import format_ulp

__all__ = ["Verdict", "environment", "judge", "main", "markdown"]

#: what a cell's reason says when the harness, not the implementation, went wrong
#: (runner: "internal error (please report)"; the streamed re-check's disagreement)
HARNESS_FAULT = "please report"
#: what a finished command may exit with: 0 every cell within budget, 1 some over it
FINISHED = (EXIT_OK, EXIT_FAIL)


# -- environment ------------------------------------------------------------------------------


def _nvidia_smi() -> list[dict[str, str]] | str:
    """One record per GPU from ``nvidia-smi``, or why there is none."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return "nvidia-smi not found"
    fields = ("name", "driver_version", "memory.total")
    try:
        done = subprocess.run([exe, f"--query-gpu={','.join(fields)}", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"nvidia-smi failed: {exc}"
    if done.returncode != 0:
        return f"nvidia-smi exited with {done.returncode}: {(done.stdout + done.stderr).strip()[:200]}"
    return [dict(zip(fields, (v.strip() for v in line.split(",")), strict=False))
            for line in done.stdout.splitlines() if line.strip()]


def _build(name: str) -> dict[str, Any]:
    """What the framework's build says about CUDA (only when it is already loaded)."""
    fw = sys.modules.get(name)
    if fw is None:
        return {}
    if name == "torch":
        found: dict[str, Any] = {"cuda_build": getattr(fw.version, "cuda", None)}
        try:
            found["cudnn"] = fw.backends.cudnn.version()
            if fw.cuda.is_available():
                major, minor = fw.cuda.get_device_capability(0)
                found["capability"] = f"sm_{major}{minor}"
        except Exception as exc:  # noqa: BLE001 - a description must not fail the script
            found["error"] = str(exc)
        return found
    if name == "jax":
        try:
            return {"jaxlib": str(getattr(sys.modules.get("jaxlib"), "__version__", "")),
                    "all_devices": [f"{d.platform}: {d.device_kind}" for d in fw.devices()]}
        except Exception as exc:  # noqa: BLE001 - as above
            return {"error": str(exc)}
    return {}


def environment(out: Path, frameworks: Sequence[str] = ("torch", "jax"), *, require_cuda: bool = False) -> int:
    """Write the machine's description to ``out`` (JSON) and print one line per framework;
    exit code 2 when ``require_cuda`` and no framework sees a CUDA device, else 0."""
    described: dict[str, Any] = {}
    lines: list[str] = []
    for name in frameworks:
        backend = get_backend(name)
        why = backend.device_unavailable("cuda")
        entry = {"version": backend.version(), "devices": backend.devices(), "no_cuda": why, **_build(name)}
        described[name] = entry
        where = f"cuda = {entry['devices']['cuda']}" if why is None else f"no cuda: {why}"
        build = f" (CUDA {entry['cuda_build']})" if entry.get("cuda_build") else ""
        lines.append(f"  {name} {entry['version'] or '(not installed)'}{build}: {where}")
    record = {"python": sys.version.split()[0], "executable": sys.executable, "platform": platform.platform(),
              "gpus": _nvidia_smi(), "frameworks": described}
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(record, indent=1) + "\n")
    print("\n".join(lines))
    if require_cuda and all(entry["no_cuda"] for entry in described.values()):
        reasons = "; ".join(f"{name}: {entry['no_cuda']}" for name, entry in described.items())
        print(f"gpu_check: a GPU is there but no framework can use it ({reasons})", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


# -- summary ---------------------------------------------------------------------------------


@dataclass
class Verdict:
    """What the script's run showed: lines to print, and the harness failures among them."""

    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_FAIL if self.failures else EXIT_OK


def _statuses(cells: Iterable[CellResult]) -> str:
    counts = Counter(c.status for c in cells)
    order = ("pass", "fail", "error", "unsupported", "skipped")
    return ", ".join(f"{counts[s]:,} {s}" for s in order if counts[s])


def _faults(cells: Sequence[CellResult], what: str, verdict: Verdict) -> None:
    broken = [c for c in cells if HARNESS_FAULT in c.reason]
    if broken:
        verdict.failures.append(f"{len(broken)} {what} cells hit a harness fault, e.g. {broken[0].spec.id}:"
                                f" {broken[0].reason}")


def _load(path: Path | None, what: str, rc: int | None, verdict: Verdict) -> Results | None:
    """The results a command wrote, or None (and a failure when the command should have)."""
    if rc is None or path is None:
        return None  # the phase was skipped
    if rc not in FINISHED:
        verdict.failures.append(f"{what} exited with {rc}, not 0 or 1")
    if not path.is_file():
        verdict.failures.append(f"{what} wrote no results at {path}")
        return None
    try:
        return load_results(path)
    except FpharnessError as exc:
        verdict.failures.append(f"{what}: {exc}")
        return None


def _suite_lines(results: Results, verdict: Verdict) -> None:
    cuda = [c for c in results.cells if c.spec.device == "cuda"]
    verdict.lines.append(f"suite: {len(cuda):,} cuda cells: {_statuses(cuda)}")
    for name in sorted({c.spec.framework for c in cuda}):
        mine = [c for c in cuda if c.spec.framework == name]
        device = results.run.devices.get(name, {}).get("cuda", "no cuda device")
        version = results.run.frameworks.get(name) or "?"
        ran = [c for c in mine if c.status != "skipped"]
        line = f"  {name} {version} on {device}: {len(ran):,} of {len(mine):,} ran ({_statuses(mine)})"
        if not ran:
            line += f"; skipped: {mine[0].reason}"
        verdict.lines.append(line)
    device_checks = [c for c in cuda if c.spec.check == "device" and c.consistency is not None and c.consistency.compared]
    if device_checks:
        same = sum(1 for c in device_checks if c.consistency is not None and c.consistency.consistent)
        verdict.lines.append(f"  CPU vs CUDA: {same:,} of {len(device_checks):,} device checks gave the same bits")
    if cuda and all(c.status == "skipped" for c in cuda):
        reasons = sorted({f"{c.spec.framework}: {c.reason}" for c in cuda})
        verdict.failures.append(f"no cuda cell ran ({'; '.join(reasons)})")
    _faults(cuda, "suite", verdict)


def _exhaustive_lines(results: Results, wall: float | None, verdict: Verdict) -> None:
    for c in results.cells:
        timing = f"{wall:.1f} s wall" if wall is not None else f"{c.seconds:.1f} s"
        if c.summary is None:
            verdict.lines.append(f"exhaustive: {c.spec.id}: {c.status}: {c.reason}")
        else:
            verdict.lines.append(f"exhaustive: {c.spec.id}: {c.status}, max {format_ulp(c.summary.ulp_max)} ulp over"
                                 f" {c.summary.n:,} inputs, {timing}" + (f"; {c.reason}" if c.reason else ""))
        if c.status == "skipped":
            verdict.failures.append(f"the exhaustive cell did not run: {c.reason}")
    _faults(results.cells, "exhaustive", verdict)


def read_timings(path: Path | None) -> list[tuple[str, float, str]]:
    """The script's phases: ``(phase, seconds, what)`` from its tab-separated file."""
    if path is None or not path.is_file():
        return []
    rows: list[tuple[str, float, str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        phase, _, rest = line.partition("\t")
        seconds, _, what = rest.partition("\t")
        try:
            rows.append((phase, float(seconds), what))
        except ValueError:  # not a line the script wrote: left out, not fatal
            continue
    return rows


def read_junit(path: Path | None) -> tuple[int, int, int] | None:
    """(tests, failed or errored, skipped) from pytest's JUnit XML; None when unreadable."""
    if path is None or not path.is_file():
        return None
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError:
        return None
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = [0, 0, 0]
    for suite in suites:
        total[0] += int(suite.get("tests", 0))
        total[1] += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        total[2] += int(suite.get("skipped", 0))
    return total[0], total[1], total[2]


def _tests_lines(tests_rc: int, junit: tuple[int, int, int] | None, verdict: Verdict) -> None:
    if tests_rc != 0:
        # 5: pytest collected nothing; any other: a test failed or pytest could not start
        verdict.failures.append(f"the CUDA transfer tests exited with {tests_rc} (transfer-tests.log says why)")
        return
    if junit is None:
        verdict.failures.append("the CUDA transfer tests left no readable report (transfer-tests.xml)")
        return
    tests, _, skipped = junit
    if tests - skipped <= 0:
        verdict.failures.append(f"the CUDA transfer tests ran nothing: all {skipped} were skipped (transfer-tests.log says why)")
        return
    verdict.lines.append(f"transfer tests: {tests - skipped} passed, {skipped} skipped (every float16 and bfloat16"
                         " pattern and random float32/float64 ones to cuda and back, layouts, gradients)")


def judge(results: Path | None, run_rc: int | None, exhaustive: Path | None = None, check_rc: int | None = None,
          tests_rc: int | None = None, timings: Sequence[tuple[str, float, str]] = (),
          junit: tuple[int, int, int] | None = None) -> tuple[Verdict, Results | None]:
    """The script's verdict from what its phases left (``*_rc`` None: the phase was skipped;
    ``junit``: the transfer tests' counts, :func:`read_junit`); the suite's results, for
    :func:`markdown`."""
    verdict = Verdict()
    if tests_rc is not None:
        _tests_lines(tests_rc, junit, verdict)
    suite = _load(results, "fpharness run", run_rc, verdict)
    if suite is not None:
        _suite_lines(suite, verdict)
    walls = {phase: seconds for phase, seconds, _ in timings}
    streamed = _load(exhaustive, "fpharness check (exhaustive float32)", check_rc, verdict)
    if streamed is not None:
        _exhaustive_lines(streamed, walls.get("exhaustive"), verdict)
    if timings:
        verdict.lines.append("phases: " + ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds, _ in timings))
    return verdict, suite


def _worst(cells: Sequence[CellResult]) -> str:
    """The worst max ULP error of ``cells``, and how many of them failed or erred."""
    judged = [c.summary.ulp_max for c in cells if c.summary is not None]
    counts = Counter(c.status for c in cells)
    if not judged:
        return ", ".join(sorted(counts)) or "-"
    bad = [f"{counts['fail']} over budget"] * bool(counts["fail"]) + [f"{counts['error']} error"] * bool(counts["error"])
    return format_ulp(max(judged)) + (f" ({', '.join(bad)})" if bad else "")


def _device_check(cells: Sequence[CellResult]) -> str:
    found = [c.consistency for c in cells if c.consistency is not None and c.consistency.compared]
    if not found:
        return ", ".join(sorted({c.status for c in cells})) or "-"
    differing = sum(f.differing for f in found)
    if not differing:
        return "same bits"
    distances = [f.max_ulp for f in found if f.max_ulp is not None]
    most = f", max {format_ulp(max(distances))} ulp" if distances else ""
    return f"{differing:,} of {sum(f.compared for f in found):,} differ{most}"


def markdown(verdict: Verdict, suite: Results | None, environment_file: Path | None) -> str:
    """The summary as Markdown: the verdict's lines, the machine, and per framework a table of
    implementation x dtype on CUDA (worst forward and gradient ULP error, CPU = CUDA)."""
    out = ["# fpharness on a GPU: scripts/gpu_check.sh", ""]
    if environment_file is not None and environment_file.is_file():
        out += ["```json", environment_file.read_text(encoding="utf-8").strip(), "```", ""]
    out += [f"- {line.strip()}" for line in verdict.lines]
    out += [f"- HARNESS FAILURE: {failure}" for failure in verdict.failures]
    if suite is None:
        return "\n".join(out) + "\n"
    cuda = [c for c in suite.cells if c.spec.device == "cuda"]
    for name in sorted({c.spec.framework for c in cuda}):
        device = suite.run.devices.get(name, {}).get("cuda", "no cuda device")
        out += ["", f"## {name} {suite.run.frameworks.get(name) or ''} on {device}", "",
                "| implementation | dtype | forward: max ulp | gradient: max ulp | CPU = CUDA |", "|---|---|---|---|---|"]
        rows: dict[tuple[str, str], list[CellResult]] = {}
        for c in cuda:
            if c.spec.framework == name:
                rows.setdefault((c.spec.impl, c.spec.dtype), []).append(c)
        for (impl, dtype), cells in rows.items():
            forward = [c for c in cells if c.spec.pass_ == "forward"]
            grad = [c for c in cells if c.spec.pass_ == "grad"]
            device_cells = [c for c in cells if c.spec.check == "device"]
            out.append(f"| {impl} | {dtype} | {_worst(forward)} | {_worst(grad)} | {_device_check(device_cells)} |")
    return "\n".join(out) + "\n"


# -- command line -----------------------------------------------------------------------------


def _rc(text: str) -> int | None:
    """An exit code the script passes on; ``-`` for a phase it skipped."""
    return None if text == "-" else int(text)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m harness.cli.gpu_check environment|summary ...``; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m harness.cli.gpu_check",
                                     description="the Python half of scripts/gpu_check.sh")
    sub = parser.add_subparsers(dest="what", required=True)
    env = sub.add_parser("environment", help="describe the GPU machine as the harness sees it")
    env.add_argument("out", type=Path, help="where the JSON description goes")
    env.add_argument("--framework", action="append", dest="frameworks", help="torch, jax, ... (default: torch and jax)")
    env.add_argument("--require-cuda", action="store_true", help="exit 2 when no framework sees a CUDA device")
    summary = sub.add_parser("summary", help="judge the run and write its Markdown summary")
    summary.add_argument("--results", type=Path, required=True, help="the suite's results JSON")
    summary.add_argument("--run-exit", type=_rc, default=None, metavar="RC", help="fpharness run's exit code, - if skipped")
    summary.add_argument("--exhaustive", type=Path, help="the exhaustive float32 cell's results JSON")
    summary.add_argument("--check-exit", type=_rc, default=None, metavar="RC", help="its exit code, - if skipped")
    summary.add_argument("--tests-exit", type=_rc, default=None, metavar="RC", help="the transfer tests' exit code, - if skipped")
    summary.add_argument("--tests-xml", type=Path, help="the transfer tests' JUnit XML (pytest --junitxml)")
    summary.add_argument("--timings", type=Path, help="the script's phases: phase<TAB>seconds<TAB>what")
    summary.add_argument("--environment", type=Path, help="the environment JSON, copied into the summary")
    summary.add_argument("--markdown", type=Path, required=True, help="where the Markdown summary goes")
    args = parser.parse_args(argv)
    try:
        if args.what == "environment":
            return environment(args.out, tuple(args.frameworks or ("torch", "jax")), require_cuda=args.require_cuda)
        verdict, suite = judge(args.results, args.run_exit, args.exhaustive, args.check_exit, args.tests_exit,
                               read_timings(args.timings), read_junit(args.tests_xml))
        atomic_write_text(args.markdown, markdown(verdict, suite, args.environment))
    except FpharnessError as exc:
        print(f"gpu_check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print("\n".join(verdict.lines))
    for failure in verdict.failures:
        print(f"gpu_check: harness failure: {failure}", file=sys.stderr)
    return verdict.exit_code


if __name__ == "__main__":
    sys.exit(main())
