"""JAX's persistent compilation cache (harness/frameworks/adapters.py, ``use_jax_compilation_cache``):
a second process loads the executables the first one compiled and returns the same bits;
the CLI keeps the cache in ``jax/`` of ``--cache-dir`` and makes none with ``--no-cache``.

Layer: frameworks and runner, plus two real CLI subprocesses. Every check runs in a fresh
process, because JAX reads its cache configuration once per process, at the first
compilation: in-process, the first test to compile would decide for all the others.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.frameworks.adapters import JAX_CACHE_ENV

# find_spec, not importorskip: the tests run JAX in subprocesses only, never in pytest's own
pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")

#: compiles a few eager JAX built-ins on a few shapes and dtypes; prints the hash of the output
#: bits and how many executables came from the persistent cache
PROBE = r"""
import hashlib, json, sys
import numpy as np
import jax.monitoring
from harness.frameworks.adapters import get_backend, use_jax_compilation_cache
from harness.frameworks.catalogue import get_impl

hits = []
jax.monitoring.register_event_listener(
    lambda name, **kw: hits.append(name) if name == "/jax/compilation_cache/cache_hits" else None)
use_jax_compilation_cache(None if sys.argv[1] == "-" else sys.argv[1])
backend = get_backend("jax")
digest = hashlib.sha256()
for impl_id in ("jax.logsumexp", "jax.softmax", "jax.gelu"):
    fn = get_impl(impl_id).fn
    for dtype in ("float16", "float32"):
        for shape in ((3, 4), (2, 7)):
            x = np.linspace(-30, 30, num=shape[0] * shape[1]).reshape(shape).astype(dtype)
            digest.update(backend.from_native(fn(backend.to_native(x, "cpu"))).tobytes())
print(json.dumps({"bits": digest.hexdigest(), "hits": len(hits)}))
"""


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)  # a user's own JAX cache would win over ours
    env.pop(JAX_CACHE_ENV, None)
    env["FPHARNESS_CACHE_DIR"] = str(tmp_path / "default-cache")
    env["JAX_PLATFORMS"] = "cpu"
    return env


def _probe(cache: Path | None, tmp_path: Path, **env: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, "-" if cache is None else str(cache)],
        capture_output=True, text=True, env={**_env(tmp_path), **env}, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["stderr"] = proc.stderr
    return out


def _entries(path: Path) -> set[str]:
    return {p.name for p in path.iterdir() if p.name.endswith("-cache")} if path.is_dir() else set()


def _fpharness(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "fpharness"
    found = str(script) if script.exists() else shutil.which("fpharness")
    command = [found] if found else [sys.executable, "-m", "harness.cli"]
    return subprocess.run(
        [*command, *argv], capture_output=True, text=True, env=_env(tmp_path), cwd=tmp_path, timeout=300,
    )


def test_a_second_process_reuses_the_executables_and_gets_the_same_bits(tmp_path: Path) -> None:
    cache = tmp_path / "jax"
    first = _probe(cache, tmp_path)
    written = _entries(cache)
    assert written, "the first process wrote no executables"
    # (the first process may hit too: two eager paths can lower to the same executable)

    second = _probe(cache, tmp_path)
    assert second["hits"] >= len(written)  # every compilation was a hit ...
    assert _entries(cache) == written  # ... so nothing new was written
    assert second["bits"] == first["bits"]

    uncached = _probe(None, tmp_path)
    assert uncached["bits"] == first["bits"]  # the cache changes no result
    assert uncached["hits"] == 0


def test_a_jax_cache_the_user_configured_wins(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    _probe(tmp_path / "ours", tmp_path, JAX_COMPILATION_CACHE_DIR=str(theirs))
    assert not (tmp_path / "ours").exists()
    # with JAX's default minimum compile time (1 s) their cache may hold nothing; ours is untouched


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="ownership and modes are POSIX")
def test_a_directory_others_can_write_to_is_not_used(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    out = _probe(shared, tmp_path)
    assert "not using a JAX compilation cache" in out["stderr"] and "writable by other users" in out["stderr"]
    assert not _entries(shared)


def test_the_cli_keeps_the_jax_cache_under_cache_dir(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    argv = ("check", "jax.softplus", "--dtype", "float16", "--inputs", "special", "-q", "-j", "1",
            "--cache-dir", str(cache), "--json")
    first = _fpharness(tmp_path, *argv, "first.json")
    assert first.returncode in (0, 1), first.stderr
    written = _entries(cache / "jax")
    assert written
    if hasattr(os, "getuid"):
        assert stat.S_IMODE((cache / "jax").stat().st_mode) & 0o077 == 0  # private: it holds machine code

    second = _fpharness(tmp_path, *argv, "second.json")
    assert second.returncode == first.returncode, second.stderr
    assert _entries(cache / "jax") == written

    def verdicts(name: str) -> list[dict[str, Any]]:
        cells = json.loads((tmp_path / name).read_text())["cells"]
        return [{k: v for k, v in c.items() if k not in ("seconds", "impl_seconds")} for c in cells]

    assert verdicts("second.json") == verdicts("first.json")


def test_no_cache_makes_no_jax_directory(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    proc = _fpharness(tmp_path, "check", "jax.softplus", "--dtype", "float16", "--inputs", "special",
                      "-q", "-j", "1", "--cache-dir", str(cache), "--no-cache", "--json", "out.json")
    assert proc.returncode in (0, 1), proc.stderr
    assert not (cache / "jax").exists()
    assert not (tmp_path / "default-cache" / "jax").exists()


def test_worker_processes_use_it_too(tmp_path: Path) -> None:
    # two reference groups, so -j 2 runs the cells in spawned workers, which learn the
    # directory from the environment the CLI set
    cache = tmp_path / "cache"
    proc = _fpharness(tmp_path, "check", "jax.softplus", "--dtype", "float16", "--dtype", "bfloat16",
                      "--inputs", "special", "-q", "-j", "2", "--cache-dir", str(cache), "--json", "out.json")
    assert proc.returncode in (0, 1), proc.stderr
    assert _entries(cache / "jax")
