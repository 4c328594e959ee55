"""Reusing cell results across runs (``--reuse-results``): opt-in, for iterating on code.

A typical loop: a suite judges your own implementation next to a thousand framework
built-ins; you change your code and run the suite again. With ``--reuse-results`` the
built-in cells whose every input is unchanged are read back from the previous run and only
your cells run again, so the loop takes seconds instead of minutes.

A stored result is reused only when its *fingerprint* matches: the SHA-256 of a JSON record
of everything known to change a result:

* the cell (oracle, implementation, framework, dtype, device, inputs, parameters, budget,
  timeout), the number of worst elements kept, the fpharness version and
  :data:`RESULT_VERSION` (bumped whenever judging changes), and the oracle's version;
* the versions of the framework's distributions, read from package metadata without
  importing anything (numpy and ml_dtypes always);
* the bytes of a custom implementation's source file, and of npy/npz input files;
* fpharness's own source (harness/ and oracles/: built-ins, input generators, the judge);
* the machine: architecture, CPU model and flags, the cores this process may use, Python
  version, and every environment variable that steers kernels or their libraries
  (``OMP_*``, ``MKL_*``, ``XLA_*``, ``TF_*``, ``JAX_*``, ``TORCH_*``, ``ATEN_*``,
  ``PYTORCH_*``, ``KMP_*``, ``OPENBLAS_*``, ``ONEDNN_*``, ``DNNL_*``, ``CUDA_*``,
  ``CUBLAS_*``, ``CUDNN_*``, ``NVIDIA_*``, ``LD_*``, and fpharness's own); for CUDA cells
  also the NVIDIA device nodes and the driver's description of each GPU.

Fingerprints are taken before the cells run, so an implementation edited during a run
files nothing under its new fingerprint.

What it cannot see is why it is opt-in: modules that a custom implementation imports, and a
framework rebuilt in place under the same version. A nightly regression run, whose point is
to execute the frameworks, should not use it. Never stored: errors (retried every time),
and implementations passed in memory, and skips other than a CUDA cell's (no GPU: the
GPUs are in the fingerprint); "importing X failed" can be fixed without changing anything
the fingerprint sees.

Storage: ``<cache dir>/results/XY/<fingerprint>.json``, one file per cell holding
``{"schema": 1, "fingerprint": ..., "cell": <the cell's results JSON>}``, written atomically
(a temporary file renamed into place); a file that does not parse or names another
fingerprint is ignored. ``fpharness cache clear`` removes only the files
:meth:`ResultStore.owns` recognises by that name and content (and leftovers of interrupted
writes by name), so a user's own ``results/frameworks.json`` in a directory passed as
``--cache-dir`` stays.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import os
import platform
import re
import stat
import sys
from collections.abc import Sequence
from functools import cache, lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from harness.frameworks.adapters import BACKENDS
from harness.plan.cells import CellResult, CellSpec
from harness.plan.inputs import parse_inputs
from oracles.atomic import TEMP_NAME, atomic_write_text
from oracles.cache import make_cache_dir
from oracles.gradients import gradient_oracle
from oracles.properties import properties_of
from oracles.registry import get_oracle

__all__ = ["RESULT_VERSION", "SCHEMA", "SUBDIR", "ResultStore", "fingerprint", "own_source_files"]

SCHEMA = 1
#: bump whenever a change to judging could change a stored result
RESULT_VERSION = 1
SUBDIR = "results"
#: ``XY/<fingerprint>.json``: the name :meth:`ResultStore._path` gives (XY: its first two digits)
_STORED = re.compile(r"(?P<shard>[0-9a-f]{2})/(?P<key>(?P=shard)[0-9a-f]{62})\.json")
#: a stored file is a cell's summary (worst elements, a profile): kilobytes. A file far
#: larger is not one of ours, and is not read to find out
_MAX_STORED_BYTES = 16 << 20
_ENV_PREFIXES = (
    "OMP_", "MKL_", "XLA_", "TF_", "JAX_", "TORCH_", "KMP_", "OPENBLAS_", "CUDA_", "FPHARNESS_",
    # ATEN_CPU_CAPABILITY=default changes torch's float32 softplus, log1p and sigmoid
    "ATEN_", "PYTORCH_", "NVIDIA_", "ONEDNN_", "DNNL_", "CUBLAS_", "CUDNN_", "LD_",
)


@cache
def _dist_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def _machine() -> dict[str, Any]:
    cpu: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "flags", "Features", "CPU part") and key not in cpu:
                cpu[key] = value.strip()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        cores = os.cpu_count() or 0
    # thread counts follow the cores, and a reduction's summation order the threads
    return {"machine": platform.machine(), "system": platform.system(), "python": sys.version.split()[0],
            "cpu": cpu or platform.processor(), "cores": cores}


#: the checkout (or site-packages) that holds harness/ and oracles/: this file is
#: harness/record/reuse.py
_ROOT = Path(__file__).resolve().parents[2]


def own_source_files() -> list[Path]:
    """Every Python file of fpharness's own harness/ and oracles/, in a stable order."""
    return [path for package in ("harness", "oracles") for path in sorted((_ROOT / package).rglob("*.py"))]


@lru_cache(maxsize=1)
def _own_source() -> str:
    """A digest of fpharness's own code (harness/ and oracles/): built-in implementations,
    input generators and the judge change results without changing the version number of
    a development checkout."""
    digest = hashlib.sha256()
    for path in own_source_files():
        digest.update(str(path.relative_to(_ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _gpus() -> list[str]:
    """NVIDIA device nodes and the driver's description of each GPU (model, bus): a GPU
    that appears, goes or changes changes the fingerprint of every CUDA cell."""
    nodes = sorted(str(p) for p in Path("/dev").glob("nvidia*"))
    infos = []
    for info in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
        with contextlib.suppress(OSError):
            infos.append(info.read_text())
    return nodes + infos


def _framework_distributions(framework: str) -> tuple[str, ...]:

    backend = BACKENDS.get(framework)
    return backend.distributions if backend is not None else ()


def _file_digest(path: Path) -> str | None:
    """The file's SHA-256, or None (fingerprint unknown: the cell runs) when it is not a
    regular file: reading /dev/zero or a FIFO would never end."""
    try:
        st = path.stat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return _digest_of(str(path.resolve()), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=256)
def _digest_of(path: str, mtime_ns: int, size: int) -> str | None:
    # read once per version of the file: a run fingerprints many cells of one source file
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _source_of(spec: str) -> Path | None:
    """The source file of a custom implementation ``path.py:fn`` or ``package.module:fn``."""
    target = spec.rsplit(":", 1)[0]
    if target.endswith(".py"):
        return Path(target)
    try:
        found = importlib.util.find_spec(target)
    except (ImportError, ValueError):
        return None
    return Path(found.origin) if found is not None and found.origin else None


def fingerprint(cell: CellSpec, k_worst: int) -> str | None:
    """The cell's fingerprint (see the module docstring), or None when its result must not
    be stored or reused."""
    record: dict[str, Any] = {
        "result_version": RESULT_VERSION,
        "fpharness": _dist_version("fpharness"),
        "own_source": _own_source(),
        "cell": [cell.oracle, cell.impl, cell.framework, cell.dtype, cell.device, cell.inputs,
                 [[k, repr(v)] for k, v in cell.params], cell.budget.to_json(), cell.timeout, cell.custom,
                 cell.wrt, cell.cotangent, cell.check],
        "k_worst": k_worst,
        "oracle_version": get_oracle(cell.oracle).version if cell.oracle else 0,
        "truth_version": gradient_oracle(cell.oracle, cell.wrt).version if cell.is_grad else 0,
        "versions": {d: _dist_version(d) for d in ("numpy", "ml_dtypes", *_framework_distributions(cell.framework))},
        "machine": _machine(),
        "env": sorted((k, v) for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)),
    }
    if cell.check and cell.oracle:
        # what a property check holds the answers to is part of its verdict
        record["properties"] = repr(properties_of(cell.oracle, dict(cell.params)))
    if cell.device != "cpu" or cell.check == "device":
        record["gpus"] = _gpus()
    if cell.custom:
        source = _source_of(cell.impl)
        digest = _file_digest(source) if source is not None else None
        if digest is None:
            return None
        record["source"] = digest
    parsed = parse_inputs(cell.inputs, check_file=False)  # checked when the plan was made
    if parsed.kind in ("npy", "npz"):
        digest = _file_digest(Path(parsed.path))
        if digest is None:
            return None
        record["input_file"] = digest
    text = json.dumps(record, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class ResultStore:
    """Stored cell results under ``<root>/results`` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str], k_worst: int = 10) -> None:
        self.dir = Path(root).expanduser() / SUBDIR
        self.k_worst = k_worst
        self._made = False

    @staticmethod
    def owns(relative: str, path: str) -> bool:
        """Whether the file at ``path``, named ``relative`` inside ``results/``, is one the
        store wrote: ``XY/<fingerprint>.json`` holding a JSON object with an integer
        ``schema``, a ``cell`` and the ``fingerprint`` of its name (any schema: a file of
        an older or newer fpharness is still the store's), or the temporary file of such a
        write. Anything else (``frameworks.json``, a damaged file) is not claimed; the
        recogniser of ``fpharness cache clear`` (oracles.cache.OwnsFile)."""
        shard, _, name = relative.partition("/")
        temp = TEMP_NAME.fullmatch(name)
        if temp is not None:
            return _STORED.fullmatch(f"{shard}/{temp.group('name')}") is not None
        m = _STORED.fullmatch(relative)
        if m is None:
            return False
        try:
            if os.path.getsize(path) > _MAX_STORED_BYTES:
                return False
            with open(path, "rb") as fh:
                data = json.loads(fh.read())
        except (OSError, ValueError):
            return False
        return (isinstance(data, dict) and data.get("fingerprint") == m.group("key")
                and type(data.get("schema")) is int and "cell" in data)

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.json"

    def get(self, cell: CellSpec) -> CellResult | None:
        """The stored result of ``cell`` as it is now, or None."""
        return self._load(cell, fingerprint(cell, self.k_worst))

    def _load(self, cell: CellSpec, key: str | None) -> CellResult | None:
        if key is None:
            return None
        try:
            data = json.loads(self._path(key).read_text())
            if data.get("schema") != SCHEMA or data.get("fingerprint") != key:
                return None
            result = CellResult.from_json(data["cell"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        # from_json rebuilds the spec from the stored record; keep the caller's (timeout, budget)
        return dataclasses.replace(result, spec=cell)

    def put(self, result: CellResult, key: str | None) -> bool:
        """Store a pass or fail result (or the skip of a CUDA cell: no GPU) under ``key``,
        the cell's fingerprint taken *before* it ran (:meth:`fingerprints`): taken after,
        an implementation edited during the run would file the old code's result under the
        new code's fingerprint. False when the result is not stored.

        Other skips are not stored: "importing X failed" can be fixed without changing any
        version the fingerprint sees."""
        if result.status not in ("pass", "fail") and not (result.status == "skipped" and result.spec.device != "cpu"):
            return False
        if key is None:
            return False
        text = json.dumps({"schema": SCHEMA, "fingerprint": key, "cell": result.to_json()}, allow_nan=False)
        if not self._made:  # the cache directory, tagged when the store is the first to make it
            make_cache_dir(self.dir.parent)
            self._made = True
        atomic_write_text(self._path(key), text, durable=False)
        return True

    def fingerprints(self, cells: Sequence[CellSpec]) -> list[str | None]:
        """Each cell's fingerprint now (None: not storable)."""
        return [fingerprint(cell, self.k_worst) for cell in cells]

    def split(self, cells: Sequence[CellSpec], keys: Sequence[str | None]) -> tuple[dict[int, CellResult], list[int]]:
        """(stored results by position, positions still to run), for ``keys`` from
        :meth:`fingerprints`."""
        found: dict[int, CellResult] = {}
        todo: list[int] = []
        for i, (cell, key) in enumerate(zip(cells, keys, strict=True)):
            hit = self._load(cell, key)
            if hit is None:
                todo.append(i)
            else:
                found[i] = hit
        return found, todo
