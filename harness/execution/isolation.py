"""The isolated worker process: where users' implementations are imported and called.

An implementation under test must not be able to end, hang or crash the run. The boundary
sits at the custom implementations (``CellSpec.custom``: ``path/to/file.py:function`` and
``package.module:function``), the code fpharness knows nothing about:

* They run in one long-lived process per :class:`~harness.execution.runner.Runner`, started
  with ``subprocess`` (a fresh interpreter, not a fork of a parent that may have TensorFlow's
  or JAX's threads running, and not ``multiprocessing``'s spawn, which re-imports the
  caller's ``__main__``). The parent never imports the user's module: it sends the spec,
  the child imports it (:func:`harness.plan.implementations.load_custom`) and answers with
  a one-line :class:`UsageError` (a missing function, an import that raised) or "ok".
* Inputs go over a socket as numpy arrays (raw bytes, no pickle of the data); the child
  converts them with the framework's adapter (``to_native``, or
  :func:`~harness.frameworks.layouts.to_native_layout` for a forward call in another memory
  layout), calls the function, converts the result back (``from_native``) and returns the
  array and the call's duration.
* Whatever the implementation does becomes a one-line reason and the next cell gets a
  fresh process: ``sys.exit`` (caught in the child), ``os._exit``, a signal, a segfault or
  abort (the parent reads the exit status), holding the GIL past ``timeout`` (the parent
  waits on the socket, then kills the process: a thread could not be stopped), and
  allocating without bound (``RLIMIT_DATA`` in the child, :func:`memory_limit`).
* The child dies with its parent, ``kill -9`` included: ``PR_SET_PDEATHSIG`` on Linux and a
  watchdog thread elsewhere (:func:`die_with_parent`). It runs in its own process group, so
  Ctrl-C reaches only the parent, which kills it on the way out.

Built-in implementations (trusted framework code) and implementations handed over in
memory (``Runner.extra_impls``: ``assert_precision`` in a user's pytest process) are still
called in-process: crossing a process costs a copy of every input and output (measured in
``benchmarks/bench_isolation.py``), and an in-memory function cannot be sent to another
process. Windows has no ``pass_fds``; there custom implementations run in-process too.
"""

from __future__ import annotations

import atexit
import contextlib
import inspect
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from harness.frameworks.adapters import get_backend
from harness.frameworks.autodiff import NotDifferentiable, vjp
from harness.frameworks.layouts import layout_unavailable, to_native_layout
from harness.plan.implementations import load_custom
from oracles.errors import UsageError, one_line
from oracles.formats import get_format
from oracles.lifetime import die_with_parent

__all__ = [
    "ISOLATION_SUPPORTED",
    "MEMORY_LIMIT_ENV",
    "Call",
    "Isolated",
    "accepted_kwargs",
    "memory_limit",
    "sigint_ignored",
]

#: custom implementations run isolated where a child can inherit the socket (POSIX)
ISOLATION_SUPPORTED = os.name == "posix"
#: the isolated process's memory limit in GiB (``none`` or ``0``: no limit)
MEMORY_LIMIT_ENV = "FPHARNESS_MEMORY_LIMIT"
#: how long a fresh process may take to start (import numpy and fpharness)
_STARTUP_LIMIT = 120.0
#: importing a user's module (and its framework) may take this long even under a short
#: --timeout: TensorFlow alone imports in 5-10 s
_IMPORT_FLOOR = 60.0
_GIB = 1 << 30


def accepted_kwargs(fn: Callable[..., Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The oracle parameters ``fn`` takes (all of them when it has ``**kwargs`` or no
    signature)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return dict(params)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return dict(params)
    return {k: v for k, v in params.items() if k in sig.parameters}


def memory_limit() -> int | None:
    """The isolated process's memory limit in bytes: ``$FPHARNESS_MEMORY_LIMIT`` GiB, by
    default half of the physical memory (the run itself needs the rest); None for none."""
    text = os.environ.get(MEMORY_LIMIT_ENV, "").strip().lower()
    if text in ("none", "0", "off"):
        return None
    if text:
        try:
            gib = float(text)
        except ValueError:
            gib = float("nan")
        if not gib > 0 or gib == float("inf"):
            raise UsageError(f"{MEMORY_LIMIT_ENV}={text!r} must be a number of GiB, e.g. 8, or none for no limit")
        return int(gib * _GIB)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) // 2
    except (AttributeError, ValueError, OSError):
        return None


def _gib(n: int) -> str:
    return f"{n / _GIB:.3g} GiB"


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """Start processes inside this block and they ignore Ctrl-C from birth (Python keeps
    an inherited SIG_IGN), so no worker prints a KeyboardInterrupt traceback: the parent
    alone reports the interrupt and stops them. Only the main thread can change signals;
    elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


# -- the wire: small pickled headers, arrays as raw bytes -------------------------------------


def _send_arrays(conn: Connection, header: tuple[Any, ...], arrays: Sequence[np.ndarray]) -> None:
    shapes = []
    payloads = []
    for a in arrays:
        if a.dtype.hasobject:  # nothing to judge; the parent only reports its dtype
            shapes.append((a.dtype, a.shape, -1))
            continue
        if not a.flags.c_contiguous:
            a = a.copy(order="C")  # not np.ascontiguousarray, which makes a 0-d array 1-d
        shapes.append((a.dtype, a.shape, a.nbytes))
        if a.nbytes:
            payloads.append(a.reshape(-1).view(np.uint8).data)  # a memoryview: no copy
    conn.send((*header, shapes))
    for p in payloads:
        conn.send_bytes(p)


def _recv_arrays(conn: Connection, shapes: Sequence[tuple[Any, tuple[int, ...], int]]) -> list[np.ndarray]:
    out = []
    for dtype, shape, nbytes in shapes:
        if nbytes < 0:
            out.append(np.empty(shape, dtype=object))
            continue
        buf = bytearray(nbytes)
        if nbytes:
            conn.recv_bytes_into(buf)
        out.append(np.frombuffer(buf, dtype=dtype).reshape(shape))  # writable: a bytearray
    return out


# -- the child ---------------------------------------------------------------------------------


def _limit_memory(limit: int | None) -> None:
    # RLIMIT_DATA, not RLIMIT_AS: frameworks reserve address space they never touch (CUDA
    # maps terabytes PROT_NONE), which RLIMIT_AS would count and RLIMIT_DATA does not
    if limit is None:
        return
    with contextlib.suppress(Exception):
        import resource

        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def serve(fd: int, limit: int | None, parent: int) -> None:
    """The isolated process's loop (``python -c`` runs it): answer "resolve" and "call"
    requests until the parent closes the socket."""
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _limit_memory(limit)
    conn = Connection(fd)
    conn.send(("ready",))
    while True:
        try:
            request = conn.recv()
            if request[0] == "resolve":
                conn.send(_resolve(*request[1:]))
            else:
                _call(conn, *request[1:])
        except (EOFError, OSError):  # the parent went away (or killed us mid-reply)
            return


def _failure(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, SystemExit):
        return ("exit", repr(exc.code))
    if isinstance(exc, MemoryError):
        return ("memory", one_line(exc))
    return ("raised", one_line(exc))


def _resolve(spec: str, oracle: str, framework: str) -> tuple[str, str]:
    try:
        impl = load_custom(spec, oracle=oracle, framework=framework)
        get_backend(framework).unavailable()  # import the framework now, not inside a call's timeout
        _ = get_format("bfloat16").dtype  # and ml_dtypes (seconds on a busy machine), imported lazily
    except UsageError as exc:
        return ("usage", str(exc))
    except BaseException as exc:  # noqa: BLE001 - SystemExit at import: the parent reports it
        return _failure(exc)
    return ("ok", impl.doc)


def _call(conn: Connection, spec: str, oracle: str, framework: str, device: str, params: dict[str, Any],
          grad: tuple[int, str] | None, layout: str, shapes: Sequence[tuple[Any, tuple[int, ...], int]]) -> None:
    arrays = _recv_arrays(conn, shapes)
    backend = get_backend(framework)
    try:
        fn = load_custom(spec, oracle=oracle, framework=framework).fn  # again if the file changed
        kwargs = accepted_kwargs(fn, params)
    except BaseException as exc:  # noqa: BLE001 - reported as the cell's error
        conn.send(_failure(exc))
        return
    try:
        if grad is None:
            native = to_native_layout(backend, arrays, layout, device)
        else:  # the parent refuses any other layout with a gradient
            native = [backend.to_native(a, device) for a in arrays]
    except Exception as exc:  # noqa: BLE001 - e.g. a dtype the framework lacks
        conn.send(("inputs", one_line(exc)))
        return
    backend.synchronize(device)  # the inputs' copy to the GPU is not the call's time
    t0 = time.perf_counter()
    try:
        # overflow and invalid operations are what we measure, not warnings to print
        with np.errstate(all="ignore"), warnings.catch_warnings(), backend.placed(device):
            warnings.simplefilter("ignore")
            if grad is None:
                out = backend.from_native(fn(*native, **kwargs))
            else:  # the last array is the cotangent
                *args, cotangent = native
                out = backend.from_native(
                    vjp(framework, fn, args, kwargs, wrt=grad[0], wrt_name=grad[1], cotangent=cotangent))
    except NotDifferentiable as exc:
        del native
        conn.send(("notdiff", str(exc), exc.limit))
        return
    except BaseException as exc:  # noqa: BLE001 - SystemExit and MemoryError too
        del native
        conn.send(_failure(exc))
        return
    _send_arrays(conn, ("ok", time.perf_counter() - t0), [out])


# -- the parent's side -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    """What one call produced: the output array and the implementation's seconds, or the
    one-line reason it has none."""

    value: np.ndarray | None = None
    seconds: float = 0.0
    failure: str | None = None
    #: the framework cannot differentiate the call (NotDifferentiable's reason and limit)
    not_differentiable: tuple[str, bool] | None = None


class _Died(Exception):
    pass


class _TimedOut(Exception):
    pass


def _death(returncode: int | None) -> str:
    if returncode is None:
        return "it stopped answering"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {-returncode} ({name})"
    return f"the implementation ended it with exit code {returncode} (os._exit or a C exit)"


def _check_call_layout(framework: str, layout: str, arrays: Sequence[np.ndarray],
                       grad: tuple[int, str] | None) -> None:
    """Refuse in the parent what the child could only report as a failed cell: the caller
    asked for a layout that cannot be given. The default, contiguous, is today's call as it was."""
    if layout == "contiguous":
        return
    # first: an unknown layout or framework is a UsageError naming the choices
    why = layout_unavailable(framework, layout, arrays[0].ndim if arrays else 0)
    if grad is not None:
        # Rejected for now: autodiff of a view is a different graph (torch's backward of a
        # transposed view, TensorFlow's of a strided slice) and the cotangent would need the
        # same layout; gradient cells judge contiguous inputs only.
        raise UsageError(f"layout {layout!r} is for forward calls; a gradient call takes contiguous inputs")
    if why is not None:
        raise UsageError(f"{framework}: cannot lay out the inputs as {layout}: {why}")


_LIVE: weakref.WeakSet[Isolated] = weakref.WeakSet()


class Isolated:
    """The parent's handle on one isolated process, started on first use and again after
    every death. Not thread-safe: one runner, one caller."""

    def __init__(self) -> None:
        self.limit = memory_limit()
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        #: the implementations the current process has imported; a fresh process (after a
        #: timeout or a death) imports each again, under the import's own time limit
        self._imported: set[tuple[str, str, str]] = set()
        _LIVE.add(self)

    # -- lifetime ----------------------------------------------------------------------------
    def _start(self) -> Connection:
        if self._proc is not None and self._proc.poll() is None and self._conn is not None:
            return self._conn
        self.close()  # a process that died while idle (a thread it left behind) is replaced
        mine, theirs = socket.socketpair()
        code = (
            f"import sys; sys.path[:0] = {list(sys.path)!r}; "
            f"from harness.execution.isolation import serve; serve({theirs.fileno()}, {self.limit!r}, {os.getpid()})"
        )
        try:
            # its own process group: Ctrl-C goes to the parent, which kills it (close)
            self._proc = subprocess.Popen([sys.executable, "-c", code], pass_fds=(theirs.fileno(),),
                                          stdin=subprocess.DEVNULL, process_group=0)
        finally:
            theirs.close()
        self._conn = Connection(mine.detach())
        try:
            if not self._conn.poll(_STARTUP_LIMIT):
                raise _Died("did not start")
            self._conn.recv()
        except (_Died, EOFError, OSError):
            rc = self._proc.poll()
            self.close()
            raise RuntimeError(f"the isolated worker process could not start ({_death(rc)})") from None
        return self._conn

    def close(self) -> None:
        """Stop the process and whatever it started (it is started again when next needed)."""
        self._imported.clear()
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
            self._conn = None
        if self._proc is not None:
            if self._proc.poll() is None:
                # its own process group: a pool or subprocess the implementation started goes too
                with contextlib.suppress(OSError):
                    os.killpg(self._proc.pid, signal.SIGKILL)
                with contextlib.suppress(OSError):
                    self._proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(10)
            self._proc = None

    def __del__(self) -> None:
        # a runner dropped without close() (Runner().run(cell) in a script) stops its process
        with contextlib.suppress(Exception):
            self.close()

    def _died(self) -> int | None:
        """Reap a process that stopped answering; its exit status."""
        proc = self._proc
        rc = None
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                rc = proc.wait(5)
        self.close()
        return rc

    def _ask(self, send: Callable[[Connection], None], seconds: float) -> tuple[Any, Connection]:
        """Send a request; the reply, or raise _TimedOut (the process is killed) or _Died
        (with the exit status as its argument)."""
        conn = self._start()
        try:
            send(conn)
            if not conn.poll(seconds):
                self.close()
                raise _TimedOut
            return conn.recv(), conn
        except (EOFError, OSError):
            raise _Died(self._died()) from None

    # -- requests -----------------------------------------------------------------------------
    def resolve(self, spec: str, oracle: str, framework: str, *, timeout: float, repro: str) -> str | None:
        """Import ``spec`` in the isolated process: None when it is callable; the reason
        every cell of it fails when importing it ended or hung the process. Raises the
        child's :class:`UsageError` (no such file, module or function; the import raised)."""
        limit = max(timeout, _IMPORT_FLOOR)
        try:
            reply, _ = self._ask(lambda c: c.send(("resolve", spec, oracle, framework)), limit)
        except _TimedOut:
            return f"timed out after {limit:g} s while importing the implementation"
        except _Died as died:
            return self._death_reason(died, repro, " while importing the implementation")
        kind, text = reply
        if kind == "ok":
            self._imported.add((spec, oracle, framework))
            return None
        if kind == "usage":
            raise UsageError(text)
        return self._reason(kind, text, " while importing the implementation")

    def call(self, spec: str, oracle: str, framework: str, device: str, arrays: Sequence[np.ndarray],
             params: Mapping[str, Any], *, timeout: float, repro: str, grad: tuple[int, str] | None = None,
             layout: str = "contiguous") -> Call:
        """Call the implementation on ``arrays``; never raises for what it does. A process
        that has not imported it yet (a fresh one, after a timeout or a death) imports it
        first, under :meth:`resolve`'s own time limit rather than the call's. With ``grad``
        (the argument's position and name) the last array is a cotangent and the value is
        the gradient autodiff returns (:func:`harness.frameworks.autodiff.vjp`).

        ``layout`` (one of :data:`~harness.frameworks.layouts.LAYOUTS`) is how the inputs
        are laid out in memory for the call (:func:`~harness.frameworks.layouts.to_native_layout`).
        Raises :class:`UsageError`, before anything is sent, for an unknown layout, one the
        framework cannot give the first array (:func:`~harness.frameworks.layouts.layout_unavailable`),
        and any layout but ``contiguous`` with ``grad``."""
        _check_call_layout(framework, layout, arrays, grad)
        if (spec, oracle, framework) not in self._imported:
            why = self.resolve(spec, oracle, framework, timeout=timeout, repro=repro)
            if why is not None:
                return Call(failure=why)
        header = ("call", spec, oracle, framework, device, dict(params), grad, layout)
        try:
            reply, conn = self._ask(lambda c: _send_arrays(c, header, arrays), timeout)
            if reply[0] == "notdiff":
                return Call(not_differentiable=(reply[1], bool(reply[2])))
            if reply[0] != "ok":
                return Call(failure=self._reason(reply[0], reply[1], ""))
            (value,) = _recv_arrays(conn, reply[2])
        except _TimedOut:
            return Call(failure=f"timed out after {timeout:g} s")
        except _Died as died:
            return Call(failure=self._death_reason(died, repro, ""))
        except (EOFError, OSError):
            return Call(failure=self._death_reason(_Died(self._died()), repro, ""))  # while sending back
        return Call(value, float(reply[1]))

    def _reason(self, kind: str, text: str, where: str) -> str:
        if kind == "exit":
            return f"the implementation called sys.exit({text}){where}"
        if kind == "memory":
            self.close()  # what it left half-allocated is not the next cell's problem
            if self.limit is not None:
                return f"exceeded the memory limit of {_gib(self.limit)}{where} ({text}; {MEMORY_LIMIT_ENV} sets it)"
            return f"ran out of memory{where} ({text})"
        if kind == "inputs":
            return f"inputs: {text}"
        return f"{text}{where}" if where else text

    def _death_reason(self, died: _Died, repro: str, where: str) -> str:
        rc = died.args[0] if died.args else None
        return f"the worker process running it died{where}: {_death(rc)}; run it alone to see it: {repro}"


@atexit.register
def _close_all() -> None:
    for isolated in list(_LIVE):
        isolated.close()
