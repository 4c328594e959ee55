"""The on-disk reference cache (oracles/cache.py): hits, misses, damage, concurrency, keys, and the
atomic writer under it (oracles/atomic.py)."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs
import pytest

import oracles.atomic as atomic
import oracles.cache as cache_mod
from oracles import BFLOAT16, FLOAT16, FLOAT32, Reference, UsageError, evaluate, get_oracle
from oracles.atomic import atomic_write_bytes, atomic_write_text
from oracles.cache import SCHEMA, ReferenceCache, cached_evaluate, default_cache_dir
from oracles.registry import Oracle

X = np.linspace(-4, 4, 33).astype(np.float32)


@pytest.fixture
def cache(tmp_path: Path) -> ReferenceCache:
    return ReferenceCache(tmp_path / "refs")


def _ref() -> Reference:
    return evaluate(get_oracle("softplus"), [X], FLOAT32)


def _key(cache: ReferenceCache, **over: Any) -> str:
    args: dict[str, Any] = {"oracle": get_oracle("softplus"), "params": None, "in_fmt": FLOAT32,
                            "out_fmt": FLOAT32, "arrays": [X]}
    args.update(over)
    return cache.key(args["oracle"], args["params"], args["in_fmt"], args["out_fmt"], args["arrays"],
                     tier=args.get("tier", True))


def _only_file(cache: ReferenceCache) -> Path:
    files = sorted(cache.path.glob("??/*.npz"))
    assert len(files) == 1, files
    return files[0]


# -- hits and misses --------------------------------------------------------------------


def test_miss_then_hit_round_trips_exactly(cache: ReferenceCache) -> None:
    key = _key(cache)
    assert cache.get(key) is None
    ref = _ref()
    cache.put(key, ref)
    got = cache.get(key)
    assert got is not None and got.equal(ref)
    assert got.ulp_exp.dtype == np.int32 and got.want.dtype == np.float64


def test_cached_evaluate_computes_once(cache: ReferenceCache, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = cache_mod.evaluate

    def counting(*args: Any, **kw: Any) -> Reference:
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(cache_mod, "evaluate", counting)
    o = get_oracle("softplus")
    first = cached_evaluate(cache, o, [X], FLOAT32, None)
    second = cached_evaluate(cache, o, [X], FLOAT32, {"beta": 1})  # the default, spelled out
    assert first.equal(second) and len(calls) == 1
    cached_evaluate(cache, o, [X], FLOAT32, {"beta": 2.0})
    assert len(calls) == 2 and cache.info()["entries"] == 2


def test_cached_evaluate_without_cache_and_progress_on_hit(cache: ReferenceCache) -> None:
    o = get_oracle("logsumexp")
    rows = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert cached_evaluate(None, o, [rows], FLOAT32).equal(evaluate(o, [rows], FLOAT32))
    cached_evaluate(cache, o, [rows], FLOAT32)
    seen: list[int] = []
    cached_evaluate(cache, o, [rows], FLOAT32, progress=seen.append)
    assert seen == [3]


def test_unwritable_cache_still_returns_the_reference(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    ref = cached_evaluate(ReferenceCache(blocker / "sub"), get_oracle("exp"), [X], FLOAT32)
    assert ref.equal(evaluate(get_oracle("exp"), [X], FLOAT32))


# -- damaged entries ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    ["truncate", "garbage", "empty", "schema", "key", "shapes", "dtype", "pickle"],
)
def test_damaged_entry_is_a_miss_and_is_removed(cache: ReferenceCache, damage: str) -> None:
    key = _key(cache)
    ref = _ref()
    file = cache.put(key, ref)
    data = file.read_bytes()
    good: dict[str, Any] = {"want": ref.want, "hi": ref.hi, "lo": ref.lo, "ulp_exp": ref.ulp_exp}
    meta = {"schema": SCHEMA, "key": key}
    if damage == "truncate":
        file.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        file.write_bytes(b"\x00garbage" * 50)
    elif damage == "empty":
        file.write_bytes(b"")
    elif damage == "schema":
        np.savez(file, meta=np.array(json.dumps({**meta, "schema": SCHEMA + 1})), **good)
    elif damage == "key":
        np.savez(file, meta=np.array(json.dumps({**meta, "key": "0" * 64})), **good)
    elif damage == "shapes":
        np.savez(file, meta=np.array(json.dumps(meta)), **{**good, "lo": ref.lo[:-1]})
    elif damage == "dtype":
        np.savez(file, meta=np.array(json.dumps(meta)), **{**good, "ulp_exp": ref.ulp_exp.astype(np.float32)})
    elif damage == "pickle":  # an object array would need pickle to load: refused
        np.savez(file, meta=np.array(json.dumps(meta)), **{**good, "want": np.array([{"x": 1}], dtype=object)})
    assert file.exists()
    assert cache.get(key) is None
    assert not file.exists()
    # and the next cached_evaluate repairs it
    again = cached_evaluate(cache, get_oracle("softplus"), [X], FLOAT32)
    assert again.equal(ref) and cache.get(key) is not None


def test_bad_key_is_rejected(cache: ReferenceCache) -> None:
    with pytest.raises(ValueError, match="hex digest"):
        cache.get("../../etc/passwd")


# -- concurrency --------------------------------------------------------------------------------


def _writer(path: str, key: str, rounds: int) -> None:
    c = ReferenceCache(path)
    ref = evaluate(get_oracle("softplus"), [X], FLOAT32)
    for _ in range(rounds):
        c.put(key, ref)
        got = c.get(key)
        assert got is not None and got.equal(ref)


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # the writers start no threads
def test_two_processes_writing_one_key(cache: ReferenceCache) -> None:
    key = _key(cache)
    ctx: Any = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    procs = [ctx.Process(target=_writer, args=(str(cache.path), key, 40)) for _ in range(2)]
    for p in procs:
        p.start()
    # a reader alongside never sees a partial file: every get is a whole entry or a miss
    seen = 0
    while any(p.is_alive() for p in procs):
        got = cache.get(key)
        if got is not None:
            assert got.equal(_ref())
            seen += 1
    for p in procs:
        p.join()
        assert p.exitcode == 0
    got = cache.get(key)
    assert got is not None and got.equal(_ref())
    assert [f.name for f in cache.path.glob("??/*")] == [f"{key}.npz"]  # no temporary files left


# -- keys ------------------------------------------------------------------------------------


def test_key_depends_on_everything_that_changes_the_result(cache: ReferenceCache) -> None:
    base = _key(cache)
    sp = get_oracle("softplus")
    bumped = Oracle(sp.name, sp.kind, sp.args, sp.fn, sp.params, version=sp.version + 1)
    variants = {
        "params": _key(cache, params={"beta": 2.0}),
        "oracle version": _key(cache, oracle=bumped),
        "oracle": _key(cache, oracle=get_oracle("exp")),
        "out format": _key(cache, out_fmt=BFLOAT16),
        "in format": _key(cache, in_fmt=FLOAT16),
        "tier": _key(cache, tier=False),
        "input bytes": _key(cache, arrays=[X + np.float32(1)]),
        "input dtype": _key(cache, arrays=[X.astype(np.float64)]),
        "input shape": _key(cache, arrays=[X[:32].reshape(4, 8)]),
    }
    assert base not in variants.values()
    assert len(set(variants.values())) == len(variants)
    assert _key(cache, params={"beta": 1}) == base == _key(cache)
    assert len(base) == 64 and int(base, 16) >= 0


def test_fast_tier_version_is_in_the_key(cache: ReferenceCache) -> None:
    from oracles import fast

    base = _key(cache)
    tier = fast.FAST_TIERS.get("softplus")
    fast.FAST_TIERS.add(fast.FastTier(tier.oracle, tier.version + 1, tier.fn, tier.target, tier.oracle_version),
                        replace=True)
    try:
        assert _key(cache) != base
        assert _key(cache, tier=False) == _key(cache, tier=False)
    finally:
        fast.FAST_TIERS.add(tier, replace=True)
    assert _key(cache) == base


# -- info, clear, location ---------------------------------------------------------------------


def test_info_and_clear(cache: ReferenceCache) -> None:
    assert cache.info() == {"entries": 0, "bytes": 0, "path": str(cache.path)}
    ref = _ref()
    for beta in (1.0, 2.0, 3.0):
        cache.put(_key(cache, params={"beta": beta}), ref)
    info = cache.info()
    assert info["entries"] == 3 and info["bytes"] > 0
    (cache.path / "ab").mkdir(exist_ok=True)
    (cache.path / "ab" / ".tmp-leftover.npz").write_bytes(b"partial")  # as versions before oracles.atomic named them
    (cache.path / "ab" / f".ab{'0' * 62}.npz.x1y2z3.tmp").write_bytes(b"partial")  # as oracles.atomic names them
    (cache.path / "jax").mkdir()
    (cache.path / "jax" / "compiled").write_bytes(b"jax")
    assert cache.clear() == 3
    assert cache.info()["entries"] == 0
    left = sorted(p.relative_to(cache.path).as_posix() for p in cache.path.rglob("*"))
    assert left == ["CACHEDIR.TAG", "jax", "jax/compiled"]  # the tag says what the folder is, and stays


def test_a_new_cache_directory_is_tagged(tmp_path: Path) -> None:
    """The cache tags the directory it creates (https://bford.info/cachedir/), and only that:
    an existing folder may be the user's, which a tag would hide from their backups."""
    new = ReferenceCache(tmp_path / "a" / "new")
    new.put(_key(new), _ref())
    tag = (new.path / cache_mod.CACHEDIR_TAG).read_bytes()
    assert tag.startswith(b"Signature: 8a477f597d28d172789f06886806bc55")
    assert cache_mod.cache_stats(new.path).tagged and cache_mod.cache_stats(new.path).foreign_files == 0
    existing = tmp_path / "project"
    existing.mkdir()
    ReferenceCache(existing).put(_key(new), _ref())
    assert not (existing / cache_mod.CACHEDIR_TAG).exists() and not cache_mod.cache_stats(existing).tagged
    assert cache_mod.clear_cache(existing).entries == 1  # its entries still make it a cache


def test_clear_refuses_a_folder_that_is_not_a_cache(tmp_path: Path) -> None:
    """No tag and no file the cache or an owner recognises: refused before anything goes.
    An empty folder has nothing to lose and is just empty."""
    folder = tmp_path / "project"
    (folder / "results").mkdir(parents=True)
    (folder / "results" / "frameworks.json").write_text("{}")
    (folder / "notes.txt").write_text("mine")
    owners = {"results": lambda rel, path: rel.endswith(".npz")}
    with pytest.raises(UsageError, match=r"does not look like an fpharness cache \(no CACHEDIR\.TAG, no entries\)"):
        cache_mod.clear_cache(folder, extra_dirs=owners)
    with pytest.raises(UsageError, match="does not look like an fpharness cache"):
        cache_mod.clear_cache(folder, dry_run=True)
    assert (folder / "results" / "frameworks.json").exists() and (folder / "notes.txt").exists()
    (folder / "CACHEDIR.TAG").write_text("Signature: 8a477f597d28d172789f06886806bc55\n")
    result = cache_mod.clear_cache(folder, extra_dirs=owners)  # tagged: a cache, but nothing in it is its own
    assert (result.files, result.exists) == (0, True) and (folder / "results" / "frameworks.json").exists()
    (folder / "CACHEDIR.TAG").write_text("Signature: something else\n")  # not the standard's tag
    with pytest.raises(UsageError, match="does not look like an fpharness cache"):
        cache_mod.clear_cache(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cache_mod.clear_cache(empty).files == 0


def test_extra_dirs_belong_to_the_caller(cache: ReferenceCache) -> None:
    """An owned subdirectory loses only the files its owner's recogniser claims (given the
    path relative to it, and never asked about a link); its other files stay."""
    cache.put(_key(cache), _ref())
    for name in ("jax", "results", "mine"):
        (cache.path / name / "deep").mkdir(parents=True)
        (cache.path / name / "deep" / "ours").write_bytes(b"12345")
        (cache.path / name / "theirs").write_bytes(b"678")
    asked: list[str] = []

    def owns(relative: str, path: str) -> bool:
        asked.append(relative)
        assert Path(path).is_file() and path.endswith(relative)
        return relative == "deep/ours"

    owners = {"jax": owns, "results": owns}
    plain = {d.name: d.owned for d in cache_mod.cache_stats(cache.path).subdirs}
    assert plain == {"jax": False, "mine": False, "results": False}
    stats = cache_mod.cache_stats(cache.path, extra_dirs=owners)
    assert [(d.name, d.owned, d.files, d.bytes, d.own_files, d.own_bytes) for d in stats.subdirs] == [
        ("jax", True, 2, 8, 1, 5), ("mine", False, 2, 8, 0, 0), ("results", True, 2, 8, 1, 5)]
    assert sorted(set(asked)) == ["deep/ours", "theirs"]
    assert cache_mod.clear_cache(cache.path, extra_dirs={"jax": owns}, dry_run=True).subdir_files == 1
    result = cache_mod.clear_cache(cache.path, extra_dirs=owners)
    assert (result.entries, result.subdir_files, result.subdir_bytes, result.subdirs) == (1, 2, 10, ("jax", "results"))
    for name in ("jax", "results"):
        assert sorted(p.name for p in (cache.path / name).iterdir()) == ["theirs"]  # emptied deep/ went too
    assert (cache.path / "mine" / "deep" / "ours").exists()
    for bad in ("jax", ("jax",), {"jax": "everything"}):
        with pytest.raises(UsageError, match=r"extra_dirs=.* must map each subdirectory name to a function"):
            cache_mod.clear_cache(cache.path, extra_dirs=bad)  # type: ignore[arg-type]


def test_atomic_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "new" / "dir" / "file.json"
    atomic_write_text(target, "héllo\n", durable=False)
    assert target.read_bytes() == "héllo\n".encode()
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second" and os.listdir(target.parent) == ["file.json"]
    if os.name == "posix":
        old = os.umask(0o027)
        try:
            atomic_write_bytes(target, b"third")
        finally:
            os.umask(old)
        assert target.stat().st_mode & 0o777 == 0o640  # as open() would have made it, not mkstemp's 0600

    def failing_replace(src: str, dst: object) -> None:
        assert atomic.TEMP_NAME.fullmatch(Path(src).name).group("name") == "file.json"  # type: ignore[union-attr]
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"lost")
    assert target.read_bytes() == (b"third" if os.name == "posix" else b"second")
    assert os.listdir(target.parent) == ["file.json"]  # the temporary file is gone


def test_default_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FPHARNESS_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    assert ReferenceCache().path == tmp_path / "mine"
    monkeypatch.setenv("FPHARNESS_CACHE_DIR", "")  # empty means unset
    assert default_cache_dir() == Path(platformdirs.user_cache_dir("fpharness", appauthor=False))
    monkeypatch.delenv("FPHARNESS_CACHE_DIR")
    assert default_cache_dir() == Path(platformdirs.user_cache_dir("fpharness", appauthor=False))
    if sys.platform.startswith("linux"):  # platformdirs picks its rules once, by the real platform
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert default_cache_dir() == tmp_path / "xdg" / "fpharness"
        monkeypatch.delenv("XDG_CACHE_HOME")
        assert default_cache_dir() == Path(os.path.expanduser("~")) / ".cache" / "fpharness"
