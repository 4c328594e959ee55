"""The fpharness pytest plugin (entry point ``pytest11: fpharness``).

What it gives a test suite:

* the ``precision`` fixture: ``precision(fn, oracle=..., framework=..., ...)`` is
  :func:`harness.testing.assertions.assert_precision` and ``precision.consistent(fn,
  ...)`` is :func:`harness.testing.assertions.assert_consistent`, with defaults from
  ``@pytest.mark.precision(...)`` and from the ``framework``/``device``/``dtype``
  parameters that :func:`precision_params` makes;
* :func:`precision_params`: ``@pytest.mark.parametrize(*precision_params(...))`` turns
  frameworks, devices and dtypes into parameters with ids like ``torch-cuda-bfloat16``;
  a CUDA parameter without a CUDA device (or a framework that is not installed) is a
  clean skip with the reason, never an error;
* a precision summary table at the end of the session and, with ``--precision-report
  DIR``, the session's results as ``DIR/results.json`` (results schema 4) and, when the
  HTML reporter is installed, ``DIR/report.html``.

Every cell judged during a test (through the fixture or a bare ``assert_precision`` /
``assert_consistent``; accuracy and consistency cells alike) is
carried on that test's report as JSON (attribute :data:`REPORT_ATTR`), so it crosses
from pytest-xdist workers to the controller with the report itself; the controller
aggregates the cells from the reports it logs. Nothing but the error types is imported
from the harness until a test runs, so the plugin costs little in sessions that do not
use it: the imports inside functions below are there for that start-up cost alone.
"""

from __future__ import annotations

import json
import shlex
import tempfile
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from oracles.errors import UsageError, choices

if TYPE_CHECKING:
    from harness.plan.cells import CellResult

__all__ = [
    "GROUP",
    "HTML_NAME",
    "MARKERS",
    "REPORT_ATTR",
    "REPORT_OPTION",
    "RESULTS_NAME",
    "Precision",
    "precision",
    "precision_params",
]

#: the option group every fpharness option lives in
GROUP = "fpharness"
#: write the session's results (and the HTML report) into this directory
REPORT_OPTION = "--precision-report"
_REPORT_DEST = "fpharness_precision_report"
#: file names inside the --precision-report directory
RESULTS_NAME = "results.json"
HTML_NAME = "report.html"
#: the TestReport attribute carrying the cells judged in that phase (JSON text: it
#: survives pytest-xdist's report serialisation untouched)
REPORT_ATTR = "fpharness_cells"

MARKERS: Mapping[str, str] = {
    "precision": (
        "precision(**kwargs): default arguments of the precision fixture"
        " (oracle, framework, dtypes, devices, inputs, params, max_ulp, allow, timeout; checks for"
        " precision.consistent)"
    ),
    "cuda": "cuda: needs a CUDA device; precision_params skips it cleanly without one",
}

#: what precision(...) accepts (assert_precision's arguments)
_PRECISION_ARGUMENTS = ("oracle", "framework", "dtypes", "devices", "inputs", "params", "max_ulp", "allow",
                        "timeout", "max_bits", "atol", "rtol", "tolerance", "grad", "wrt", "cotangent")
#: what precision.consistent(...) accepts (assert_consistent's arguments)
_CONSISTENT_ARGUMENTS = ("oracle", "framework", "dtypes", "inputs", "checks", "device", "max_ulp", "params",
                         "timeout")
#: what @pytest.mark.precision(...) accepts: defaults for either method
_ARGUMENTS = (*_PRECISION_ARGUMENTS, "checks")
#: the marker's defaults that precision.consistent(...) takes. Not max_ulp: the marker's is
#: an accuracy budget against an oracle, consistency's the ULPs two answers may differ by
_CONSISTENT_DEFAULTS = ("oracle", "framework", "dtypes", "inputs", "checks", "params", "timeout")
#: precision_params parameter -> assert_precision argument
_PARAM_ARGS = (("framework", "framework"), ("device", "devices"), ("dtype", "dtypes"))


class _Session:
    """The per-config plugin object: when the session started, the cells aggregated from
    the logged reports (on the xdist controller: from every worker), the reproducer
    directory, and the report files written."""

    def __init__(self, config: pytest.Config) -> None:
        from datetime import datetime, timezone

        self.config = config
        self.started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.cells: list[dict[str, Any]] = []
        self.written: list[Path] = []
        self.problems: list[str] = []
        self._repro: Path | None = None

    def repro_dir(self) -> Path:
        if self._repro is None:
            # pytest keeps no public handle on its temporary directories outside fixtures;
            # _tmp_path_factory is where the tmpdir plugin puts it (basetemp, retention)
            factory = getattr(self.config, "_tmp_path_factory", None)
            if factory is not None:
                self._repro = Path(factory.mktemp("fpharness", numbered=True))
            else:  # -p no:tmpdir
                self._repro = Path(tempfile.mkdtemp(prefix="fpharness-"))
        return self._repro

    # hooks ------------------------------------------------------------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # on the xdist controller this sees the workers' reports too
        payload = getattr(report, REPORT_ATTR, None)
        if payload:
            self.cells.extend(json.loads(payload))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        target = self.config.getoption(_REPORT_DEST)
        if target and not _is_worker(self.config):
            self._write_report(Path(self.config.invocation_params.dir, target))

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        if _is_worker(config):
            return
        if self.cells:
            terminalreporter.write_sep("=", "fpharness precision summary")
            terminalreporter.write(_render(self.cells, terminalreporter))
        for path in self.written:
            terminalreporter.write_line(f"precision report: {path}")
        for problem in self.problems:
            terminalreporter.write_line(f"fpharness: {problem}")

    def _write_report(self, directory: Path) -> None:
        from harness.plan.cells import CellResult  # lazy: see the module docstring
        from harness.plan.inputs import parse_inputs  # lazy: see the module docstring
        from harness.record.results import Results, run_info  # lazy: see the module docstring

        cells = tuple(CellResult.from_json(c) for c in self.cells)
        seeds = set()
        for c in cells:
            # the specs were checked when their cells ran; a repro file removed since must
            # not cost the session its report
            spec = parse_inputs(c.spec.inputs, check_file=False)
            if spec.kind in ("random", "normal", "uniform"):
                seeds.add(spec.seed)
        command = " ".join(shlex.quote(a) for a in ("pytest", *self.config.invocation_params.args))
        info = run_info(self.started, {c.spec.framework for c in cells}, seeds=sorted(seeds), command=command)
        results = Results(info, cells)
        results.write(directory / RESULTS_NAME)
        self.written.append(directory / RESULTS_NAME)
        from reports.html import write_html  # lazy: see the module docstring

        try:
            write_html([results], directory / HTML_NAME)
        except Exception as exc:  # noqa: BLE001 - a broken HTML view must not lose the session
            self.problems.append(f"HTML report not written: {type(exc).__name__}: {exc}")
        else:
            self.written.append(directory / HTML_NAME)


_SESSION = pytest.StashKey[_Session]()
_PENDING = pytest.StashKey[list[dict[str, Any]]]()
_PLUGIN_NAME = "fpharness-session"


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


# -- options and markers ----------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "fpharness precision testing")
    group.addoption(
        REPORT_OPTION,
        dest=_REPORT_DEST,
        metavar="DIR",
        default=None,
        help=f"write the session's precision results to DIR/{RESULTS_NAME} (results schema 4)"
        f" and, when the HTML reporter is installed, DIR/{HTML_NAME}",
    )


def pytest_configure(config: pytest.Config) -> None:
    registered = {line.split(":")[0].split("(")[0].strip() for line in config.getini("markers")}
    for name, text in MARKERS.items():
        if name not in registered:
            config.addinivalue_line("markers", text)
    state = _Session(config)
    config.stash[_SESSION] = state
    config.pluginmanager.register(state, _PLUGIN_NAME)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_SESSION, None)
    if state is not None:
        config.pluginmanager.unregister(state)
        del config.stash[_SESSION]


# -- carrying results on the reports ---------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    from harness.testing.assertions import Recorder, recording  # lazy: see the module docstring

    pending = item.stash.setdefault(_PENDING, [])
    state = item.config.stash[_SESSION]

    def record(result: CellResult) -> None:
        pending.append(result.to_json())

    with recording(Recorder(record, state.repro_dir, in_pytest=True)):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    pending = item.stash.get(_PENDING, None)
    if pending:
        # the cells judged in this phase travel with this phase's report: TestReport
        # serialisation (pytest-xdist) copies its __dict__, and plain JSON text crosses as is
        try:
            payload = json.dumps(pending, allow_nan=False, default=_json_default)
        except (TypeError, ValueError) as exc:
            # a hook that raises is an INTERNALERROR that ends the whole session; a cell that
            # cannot be stored (Budget and Param refuse NaN and Inf, so this is a bug) costs
            # only its own record, and the summary says so
            state = item.config.stash.get(_SESSION, None)
            if state is not None:
                state.problems.append(f"{len(pending)} precision cell(s) of {item.nodeid} not recorded: {exc}")
        else:
            setattr(report, REPORT_ATTR, payload)
        pending.clear()
    return report


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars in parameters
        return obj.item()
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def _render(cells: Sequence[dict[str, Any]], terminalreporter: Any) -> str:
    """The per-oracle tables of :mod:`reports.terminal`, rendered for pytest's terminal."""
    import io

    from rich.console import Console

    from reports.terminal import print_results  # lazy: see the module docstring

    markup = bool(getattr(terminalreporter, "hasmarkup", False))
    width = int(getattr(getattr(terminalreporter, "_tw", None), "fullwidth", 120) or 120)
    buf = io.StringIO()
    console = Console(file=buf, width=max(width, 100), force_terminal=markup, no_color=not markup,
                      highlight=False, soft_wrap=False)
    print_results(cells, console=console, max_examples=1, details=True)
    return buf.getvalue()


# -- the fixture -----------------------------------------------------------------------------


class Precision:
    """The ``precision`` fixture: ``precision(fn, **kwargs)`` (or ``precision.check``)
    runs :func:`~harness.testing.assertions.assert_precision` and ``precision.consistent(fn,
    **kwargs)`` :func:`~harness.testing.assertions.assert_consistent`, with this test's
    defaults; every judged cell is kept in :attr:`results`."""

    def __init__(self, defaults: Mapping[str, Any] | None = None) -> None:
        self.defaults: dict[str, Any] = dict(defaults or {})
        self.results: list[CellResult] = []

    def __call__(self, fn: Any, **kwargs: Any) -> list[CellResult]:
        __tracebackhide__ = True
        return self.check(fn, **kwargs)

    def check(self, fn: Any, **kwargs: Any) -> list[CellResult]:
        """Judge ``fn``; raises :class:`AssertionError` when a cell is over budget."""
        __tracebackhide__ = True
        from harness.testing.assertions import assert_results, check_precision  # lazy: see the module docstring

        where = "precision(...)"
        _check_arguments(kwargs, where, _PRECISION_ARGUMENTS)
        args = {**{k: v for k, v in self.defaults.items() if k in _PRECISION_ARGUMENTS}, **kwargs}
        _require(args, ("oracle", "framework", "dtypes"), where)
        results = check_precision(fn, **args)
        self.results.extend(results)
        return assert_results(results, fn=fn)

    def consistent(self, fn: Any, **kwargs: Any) -> list[CellResult]:
        """Check ``fn``'s consistency (the arguments of
        :func:`~harness.testing.assertions.assert_consistent`); raises
        :class:`AssertionError` when a check finds a difference. Takes the marker's
        ``oracle``, ``framework``, ``dtypes``, ``inputs``, ``checks``, ``params`` and
        ``timeout`` and the ``device`` parameter, not its ``max_ulp`` (an accuracy budget)."""
        __tracebackhide__ = True
        from harness.testing.assertions import assert_results, check_consistent  # lazy: see the module docstring

        where = "precision.consistent(...)"
        _check_arguments(kwargs, where, _CONSISTENT_ARGUMENTS)
        args = {k: v for k, v in self.defaults.items() if k in _CONSISTENT_DEFAULTS}
        devices = self.defaults.get("devices")
        if "device" not in kwargs and devices is not None:
            names = [devices] if isinstance(devices, str) else list(devices)
            if len(names) != 1:
                raise UsageError(f"{where} checks on one device, and this test's defaults name {len(names)}"
                                 f" ({', '.join(map(str, names))}): pass device='cpu' or device='cuda'")
            args["device"] = names[0]
        args.update(kwargs)
        _require(args, ("framework", "dtypes"), where)
        results = check_consistent(fn, **args)
        self.results.extend(results)
        return assert_results(results, fn=fn)


def _require(args: Mapping[str, Any], needed: Sequence[str], where: str) -> None:
    missing = [name for name in needed if name not in args]
    if missing:
        raise UsageError(
            f"{where} needs {', '.join(missing)}: pass them, set them with"
            " @pytest.mark.precision(...), or parametrize with precision_params(...)"
        )


def _check_arguments(args: Mapping[str, Any], where: str, accepted: Sequence[str] = _ARGUMENTS) -> None:
    unknown = sorted(set(args) - set(accepted))
    if unknown:
        # an argument of the other method says which one takes it
        other = ("precision.consistent(...)" if unknown[0] in _CONSISTENT_ARGUMENTS
                 else "precision(...)" if unknown[0] in _PRECISION_ARGUMENTS else None)
        hint = f"; {unknown[0]!r} is an argument of {other}" if other else ""
        raise UsageError(f"{where}: unknown argument {unknown[0]!r}{hint}; {choices(accepted, given=unknown[0])}")


@pytest.fixture
def precision(request: pytest.FixtureRequest) -> Precision:
    """Judge a function against an oracle: ``precision(fn, oracle="softplus",
    framework="torch", dtypes=["float16"])``. Defaults come from
    ``@pytest.mark.precision(...)`` (the closest marker wins) and from the ``framework``,
    ``device`` and ``dtype`` parameters of :func:`precision_params`."""
    defaults: dict[str, Any] = {}
    for mark in reversed(list(request.node.iter_markers("precision"))):
        if mark.args:

            raise UsageError("@pytest.mark.precision takes keyword arguments only, e.g. precision(oracle='softplus')")
        _check_arguments(mark.kwargs, "@pytest.mark.precision")
        defaults.update(mark.kwargs)
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None:
        for param, arg in _PARAM_ARGS:
            value = callspec.params.get(param)
            if isinstance(value, str):
                defaults[arg] = value
    return Precision(defaults)


# -- parametrisation -------------------------------------------------------------------------


def precision_params(
    dtypes: Sequence[str],
    devices: Sequence[str] = ("cpu",),
    frameworks: Sequence[str] | None = None,
) -> tuple[str, list[Any]]:
    """``@pytest.mark.parametrize(*precision_params(dtypes=[...], devices=[...]))``.

    Gives the parameters ``device`` and ``dtype`` (and ``framework`` first when
    ``frameworks`` is given) with ids like ``cpu-float16`` / ``torch-cuda-bfloat16``; the
    ``precision`` fixture picks them up. A parameter whose framework is not installed,
    whose device is missing (CUDA without a GPU) or whose framework cannot hold the dtype
    is skipped with the reason; CUDA parameters carry the ``cuda`` marker."""
    from harness.frameworks.adapters import DEVICES, get_backend  # lazy: see the module docstring
    from harness.frameworks.registry import FRAMEWORKS  # lazy: see the module docstring
    from oracles.formats import get_format  # lazy: see the module docstring

    dtype_names = [get_format(d).name for d in ([dtypes] if isinstance(dtypes, str) else dtypes)]
    device_names = [devices] if isinstance(devices, str) else list(devices)
    for device in device_names:
        if device not in DEVICES:
            raise UsageError(f"precision_params: unknown device {device!r}; {choices(DEVICES)}")
    fw_names: list[str | None] = [None] if frameworks is None else (
        [frameworks] if isinstance(frameworks, str) else list(frameworks)
    )
    for fw in fw_names:
        if fw is not None and fw not in FRAMEWORKS:
            raise UsageError(f"precision_params: unknown framework {fw!r}; {choices(FRAMEWORKS)}")
    if not dtype_names or not device_names or not fw_names:
        raise UsageError("precision_params: dtypes, devices and frameworks must each name at least one")

    params: list[Any] = []
    for fw in fw_names:
        # without a framework, CUDA availability is torch's answer (the common case)
        backend = get_backend(fw or "torch")
        for device in device_names:
            for dtype in dtype_names:
                marks: list[Any] = [pytest.mark.cuda] if device == "cuda" else []
                reason = _skip_reason(backend, fw, device, dtype)
                if reason:
                    marks.append(pytest.mark.skip(reason=reason))
                values = (device, dtype) if fw is None else (fw, device, dtype)
                params.append(pytest.param(*values, id="-".join(values), marks=marks))
    names = "device,dtype" if frameworks is None else "framework,device,dtype"
    return names, params


def _skip_reason(backend: Any, framework: str | None, device: str, dtype: str) -> str | None:
    if framework is not None:
        reason = backend.unavailable()
        if reason:
            return f"{framework}: {reason}"
    if device != "cpu":
        reason = backend.device_unavailable(device)
        if reason:
            return f"{backend.name} on {device}: {reason}" if framework is None else reason
    if framework is not None:
        reason = backend.dtype_unavailable(dtype)
        if reason:
            return reason
    return None

