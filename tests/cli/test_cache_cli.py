"""``fpharness cache info|clear`` (harness/cli/commands/cache.py) and the functions under it
(oracles/cache.py: cache_stats, clear_cache).

Layer: end to end, on real entries written by ``cached_evaluate`` into a tmp directory.
Sizes are asserted against the files on disk, so a miscount fails.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import oracles.cache as cache_mod
from harness.cli.app import main
from harness.cli.commands.cache import OWNED_SUBDIRS, human_bytes
from oracles import FLOAT16, FLOAT32, Format, Reference, get_oracle
from oracles.cache import INFO_SCHEMA, ReferenceCache, cache_stats, cached_evaluate, clear_cache
from oracles.errors import UsageError

X = np.linspace(-4, 4, 33).astype(np.float32)
X16 = X.astype(np.float16)
DAY = 86400.0


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's ~/.cache: the default directory is in tmp too."""
    monkeypatch.setenv("FPHARNESS_CACHE_DIR", str(tmp_path / "default-cache"))


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _files(cache: ReferenceCache) -> set[Path]:
    return set(cache.path.glob("??/*.npz"))


def add(cache: ReferenceCache, oracle: str, arrays: list[Any], fmt: Format, params: dict[str, Any] | None = None) -> Path:
    """One real entry through cached_evaluate; returns its file."""
    before = _files(cache)
    cached_evaluate(cache, get_oracle(oracle), arrays, fmt, params)
    (new,) = _files(cache) - before
    return new


def size(*files: Path) -> int:
    return sum(f.stat().st_size for f in files)


def tree_bytes(root: Path) -> int:
    """Every regular file under ``root`` but the CACHEDIR.TAG, which no size counts."""
    return sum(p.lstat().st_size for p in root.rglob("*")
               if p.is_file() and not p.is_symlink() and p != root / "CACHEDIR.TAG")


#: files as JAX's compilation cache names them (jax._src.lru_cache, XLA's autotuner)
JAX_NAMES = (
    f"jit_softplus-{'a1' * 32}-cache",
    f"jit_softplus-{'a1' * 32}-atime",
    f"jit__psum-{'0f' * 32}",
    ".lockfile",
    "xla_gpu_per_fusion_autotune_cache_dir/" + "Ab-_" * 10 + "xyz.textproto",
    "xla_gpu_per_fusion_autotune_cache_dir/tmp/tmp_per_fusion_cache_7.textproto",
)


class Entries:
    """Three entries: exp into float32 twice (two inputs), softplus into float16 once."""

    def __init__(self, root: Path) -> None:
        self.cache = ReferenceCache(root)
        self.exp_a = add(self.cache, "exp", [X], FLOAT32)
        self.exp_b = add(self.cache, "exp", [X + np.float32(1)], FLOAT32)
        self.softplus = add(self.cache, "softplus", [X16], FLOAT16)

    @property
    def dir(self) -> str:
        return str(self.cache.path)

    @property
    def all(self) -> tuple[Path, Path, Path]:
        return self.exp_a, self.exp_b, self.softplus


@pytest.fixture
def entries(tmp_path: Path) -> Entries:
    return Entries(tmp_path / "cache")


def _no_evaluate(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kw: Any) -> Reference:
        raise AssertionError("recomputed: the entry should have been a cache hit")

    monkeypatch.setattr(cache_mod, "evaluate", boom)


# -- info ------------------------------------------------------------------------------------


def test_stats_count_entries_per_oracle_and_format(entries: Entries) -> None:
    stats = cache_stats(entries.dir)
    assert stats.exists and stats.entries == 3 and stats.unreadable == 0
    assert [(g.oracle, g.out_format, g.entries, g.bytes) for g in stats.groups] == [
        ("exp", "float32", 2, size(entries.exp_a, entries.exp_b)),
        ("softplus", "float16", 1, size(entries.softplus)),
    ]
    assert stats.entry_bytes == stats.total_bytes == size(*entries.all) == tree_bytes(entries.cache.path)
    assert entries.cache.info() == {"entries": 3, "bytes": size(*entries.all), "path": entries.dir}


def test_info_text(entries: Entries, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "cache", "info", "--cache-dir", entries.dir)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    total = size(*entries.all)
    assert lines[:3] == [f"cache directory: {entries.dir}", "exists: yes",
                         f"entries: 3, {human_bytes(total)} ({total:,} bytes)"]
    rows = [line.split() for line in lines[3:6]]
    assert rows[0] == ["oracle", "format", "entries", "size"]
    assert rows[1][:3] == ["exp", "float32", "2"] and rows[1][-2] == f"({size(entries.exp_a, entries.exp_b):,}"
    assert rows[2][:3] == ["softplus", "float16", "1"] and rows[2][-2] == f"({size(entries.softplus):,}"
    assert lines[-1] == f"total: {human_bytes(total)} ({total:,} bytes)"


def test_info_json_record(entries: Entries, capsys: pytest.CaptureFixture[str]) -> None:
    (entries.cache.path / "jax").mkdir()
    (entries.cache.path / "jax" / JAX_NAMES[0]).write_bytes(b"x" * 100)
    code, out, _ = run_main(capsys, "cache", "info", "--json", "--cache-dir", entries.dir)
    assert code == 0
    record = json.loads(out)
    assert record["schema"] == INFO_SCHEMA == 1
    assert record["entry_schema"] == cache_mod.SCHEMA
    assert (record["path"], record["exists"], record["entries"]) == (entries.dir, True, 3)
    assert record["by_oracle"] == [
        {"oracle": "exp", "out_format": "float32", "entries": 2, "bytes": size(entries.exp_a, entries.exp_b)},
        {"oracle": "softplus", "out_format": "float16", "entries": 1, "bytes": size(entries.softplus)},
    ]
    assert record["other"] == [{"name": "jax", "files": 1, "bytes": 100, "owned": True, "own_files": 1, "own_bytes": 100}]
    assert record["tagged"] is True
    assert record["total_bytes"] == size(*entries.all) + 100 == tree_bytes(entries.cache.path)


def test_info_on_a_missing_directory_creates_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope"
    code, out, _ = run_main(capsys, "cache", "info", "--cache-dir", str(missing))
    assert code == 0 and out.splitlines() == [f"cache directory: {missing}", "exists: no (nothing cached yet)"]
    code, out, _ = run_main(capsys, "cache", "info", "--json", "--cache-dir", str(missing))
    assert json.loads(out)["exists"] is False and json.loads(out)["entries"] == 0
    assert not missing.exists()


def test_info_uses_the_default_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Entries(tmp_path / "default-cache")  # FPHARNESS_CACHE_DIR, set by the fixture
    code, out, _ = run_main(capsys, "cache", "info", "--json")
    assert code == 0 and json.loads(out)["entries"] == 3


def test_entries_without_oracle_in_meta_are_unknown(entries: Entries) -> None:
    # written by put without `about`, as entries made before the meta named the oracle
    cache = entries.cache
    key = cache.key(get_oracle("tanh"), None, FLOAT32, FLOAT32, [X])
    legacy = cache.put(key, cached_evaluate(None, get_oracle("tanh"), [X], FLOAT32))
    groups = {(g.oracle, g.out_format): g.entries for g in cache_stats(cache.path).groups}
    assert groups == {("exp", "float32"): 2, ("softplus", "float16"): 1, ("unknown", "unknown"): 1}
    result = clear_cache(cache.path, oracle="exp")
    assert (result.entries, result.kept) == (2, 2) and legacy.exists()


# -- a corrupt entry, leftovers, foreign files ---------------------------------------------------


def test_corrupt_entry_is_counted_unreadable(entries: Entries, capsys: pytest.CaptureFixture[str]) -> None:
    data = entries.exp_b.read_bytes()
    entries.exp_b.write_bytes(data[: len(data) // 2])
    stats = cache_stats(entries.dir)
    assert (stats.entries, stats.unreadable, stats.unreadable_bytes) == (3, 1, len(data) // 2)
    assert [(g.oracle, g.entries) for g in stats.groups] == [("exp", 1), ("softplus", 1)]
    code, out, err = run_main(capsys, "cache", "info", "--cache-dir", entries.dir)
    assert (code, err) == (0, "")
    (row,) = [line.split() for line in out.splitlines() if line.strip().startswith("unreadable")]
    assert row[:2] == ["unreadable", "1"]
    # --oracle cannot tell whose it is: kept; a plain clear removes it
    assert clear_cache(entries.dir, oracle="exp").entries == 1 and entries.exp_b.exists()
    assert clear_cache(entries.dir).entries == 2 and not entries.exp_b.exists()


def test_temporary_files_only_stale_ones_are_cleared(entries: Entries, capsys: pytest.CaptureFixture[str]) -> None:
    shard = entries.exp_a.parent
    fresh = shard / ".tmp-fresh1.npz"
    stale = shard / ".tmp-stale1.npz"
    fresh.write_bytes(b"p" * 10)
    stale.write_bytes(b"p" * 30)
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    stats = cache_stats(entries.dir)
    assert (stats.temp_files, stats.temp_bytes, stats.stale_temp_files, stats.entries) == (2, 40, 1, 3)
    _, out, _ = run_main(capsys, "cache", "info", "--cache-dir", entries.dir)
    assert "temporary files from interrupted writes: 2, 40 B (40 bytes) (1 older than 1 h" in out
    # a fresh one may be a write in progress in another process
    result = clear_cache(entries.dir)
    assert (result.entries, result.temp_files, result.temp_bytes) == (3, 1, 30)
    assert fresh.exists() and not stale.exists()


def test_foreign_files_and_links_are_left_alone(entries: Entries, tmp_path: Path) -> None:
    root = entries.cache.path
    shard = entries.exp_a.parent
    notes = shard / "notes.txt"
    notes.write_text("mine")
    readme = root / "README"
    readme.write_text("mine too")
    (root / "mine").mkdir()
    (root / "mine" / "data.npz").write_bytes(b"d" * 7)
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "precious.npz"
    target.write_bytes(b"keep me")
    (outside / ("cd" + "0" * 62 + ".npz")).write_bytes(b"also mine")
    try:
        # a link named like an entry, and a link named like a shard directory
        (shard / (shard.name + "f" * 62 + ".npz")).symlink_to(target)
        (root / "cd").symlink_to(outside, target_is_directory=True)
    except OSError:
        pytest.skip("symbolic links are not available here")
    stats = cache_stats(root)
    assert stats.entries == 3
    assert (stats.foreign_files, stats.foreign_bytes) == (4, len("mine") + len("mine too"))  # links count 0 bytes
    assert [(d.name, d.files, d.bytes, d.owned) for d in stats.subdirs] == [("mine", 1, 7, False)]
    result = clear_cache(root)
    assert (result.entries, result.files, result.failed) == (3, 3, ())
    assert notes.read_text() == "mine" and readme.exists() and (root / "mine" / "data.npz").exists()
    assert target.read_bytes() == b"keep me" and (outside / ("cd" + "0" * 62 + ".npz")).exists()
    assert (root / "cd").is_symlink() and (shard / (shard.name + "f" * 62 + ".npz")).is_symlink()
    assert shard.exists()  # not empty: the foreign files keep it


def test_owned_subdirectory_is_emptied_only_without_oracle(entries: Entries, capsys: pytest.CaptureFixture[str]) -> None:
    jax = entries.cache.path / "jax"
    (jax / "nested").mkdir(parents=True)
    (jax / JAX_NAMES[0]).write_bytes(b"a" * 11)
    (jax / "xla_gpu_kernel_cache_file").write_bytes(b"b" * 13)
    code, out, _ = run_main(capsys, "cache", "info", "--cache-dir", entries.dir)
    assert "other: jax 24 B (24 bytes), 2 files; emptied by `cache clear`" in out.splitlines()
    assert clear_cache(entries.dir, oracle="exp", extra_dirs=OWNED_SUBDIRS).subdir_files == 0
    assert (jax / JAX_NAMES[0]).exists()
    rest = size(entries.softplus)
    code, out, _ = run_main(capsys, "cache", "clear", "--cache-dir", entries.dir)
    assert code == 0
    assert out == f"removed 1 entry and 2 files under jax/: {human_bytes(rest + 24)} ({rest + 24:,} bytes) from {entries.dir}\n"
    assert sorted(p.name for p in jax.iterdir()) == ["nested"]  # kept for a JAX process; an empty folder it did not empty stays
    assert sorted(p.name for p in entries.cache.path.iterdir()) == ["CACHEDIR.TAG", "jax"]  # empty shards removed


def test_clear_removes_only_the_cache_own_files_in_results_and_jax(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13, defect 4: with ``--cache-dir .`` in a project, ``results/`` is both the
    user's results folder and the reuse store, and ``jax/`` may be anyone's. ``clear``
    removes the store's files (by name and content) and JAX's (by name), nothing else."""
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.setenv("FPHARNESS_JAX_CACHE_DIR", "")
    code = main(["check", "numpy.exp", "--dtype", "float16", "--inputs", "special", "--cache-dir", ".",
                 "--json", "results/frameworks.json", "-q", "-j", "1", "--no-progress"])
    assert code == 0
    stored = sorted(p.relative_to(project).as_posix() for p in (project / "results").glob("??/*.json"))
    assert len(stored) == 1  # the reuse store's file of the one cell
    mine = {
        "results/frameworks.json": (project / "results" / "frameworks.json").read_bytes(),
        "results/ab/" + "ab" * 32 + ".json": b'{"schema": 1, "fingerprint": "not its name", "cell": {}}',
        "results/cd/" + "cd" * 32 + ".json": b"my notes, not JSON",
        "results/notes.txt": b"mine",
        "jax/notes.txt": b"mine",
        "jax/jit_f-cache": b"not a key",
        "s.toml": b"schema = 1",
    }
    for name in JAX_NAMES:
        (project / "jax" / name).parent.mkdir(parents=True, exist_ok=True)
        (project / "jax" / name).write_bytes(b"jax")
    for name, data in mine.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_bytes(data)
    code, out, err = run_main(capsys, "cache", "clear", "--cache-dir", ".")
    assert (code, err) == (0, "")
    assert f"and {1 + len(JAX_NAMES)} files under jax/, results/" in out
    assert {name: (project / name).read_bytes() for name in mine} == mine
    assert not any((project / name).exists() for name in stored)
    assert not any((project / "jax" / name).exists() for name in JAX_NAMES)
    assert not (project / "jax" / "xla_gpu_per_fusion_autotune_cache_dir").exists()  # emptied by us: gone


def test_info_counts_foreign_files_in_owned_subdirectories(entries: Entries, capsys: pytest.CaptureFixture[str]) -> None:
    results = entries.cache.path / "results"
    results.mkdir()
    (results / "frameworks.json").write_text("{}")
    (entries.cache.path / "jax").mkdir()
    (entries.cache.path / "jax" / JAX_NAMES[0]).write_bytes(b"j")
    (entries.cache.path / "jax" / "notes.txt").write_bytes(b"n")
    _, out, _ = run_main(capsys, "cache", "info", "--cache-dir", entries.dir)
    assert "other: jax 2 B (2 bytes), 2 files; 1 file removed by `cache clear`, 1 not the cache's, left alone" in out
    assert "other: results 2 B (2 bytes), 1 file; not the cache's, left alone" in out


# -- clear -----------------------------------------------------------------------------------


def test_clear_one_oracle_leaves_the_others_loadable(
    entries: Entries, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    removed = size(entries.exp_a, entries.exp_b)
    code, out, err = run_main(capsys, "cache", "clear", "--oracle", "exp", "--cache-dir", entries.dir)
    assert (code, err) == (0, "")
    assert out == f"removed 2 entries: {human_bytes(removed)} ({removed:,} bytes) from {entries.dir}; 1 entry kept\n"
    assert not entries.exp_a.exists() and not entries.exp_b.exists()
    _no_evaluate(monkeypatch)
    ref = cached_evaluate(entries.cache, get_oracle("softplus"), [X16], FLOAT16)
    assert ref.size == X16.size
    assert [(g.oracle, g.entries) for g in cache_stats(entries.dir).groups] == [("softplus", 1)]


def test_dry_run_removes_nothing(entries: Entries, capsys: pytest.CaptureFixture[str]) -> None:
    before = {f: f.read_bytes() for f in entries.all}
    code, out, _ = run_main(capsys, "cache", "clear", "--dry-run", "--cache-dir", entries.dir)
    total = size(*entries.all)
    assert code == 0 and out == f"would remove 3 entries: {human_bytes(total)} ({total:,} bytes) from {entries.dir}\n"
    assert {f: f.read_bytes() for f in entries.all} == before
    result = clear_cache(entries.dir, oracle="softplus", dry_run=True)
    assert (result.entries, result.entry_bytes, result.kept, result.dry_run) == (1, size(entries.softplus), 2, True)
    assert cache_stats(entries.dir).entries == 3


def test_clear_everything(entries: Entries, capsys: pytest.CaptureFixture[str]) -> None:
    total = size(*entries.all)
    code, out, _ = run_main(capsys, "cache", "clear", "--cache-dir", entries.dir)
    assert code == 0 and out == f"removed 3 entries: {human_bytes(total)} ({total:,} bytes) from {entries.dir}\n"
    assert [p.name for p in entries.cache.path.iterdir()] == ["CACHEDIR.TAG"]  # the tag stays: still a cache
    code, out, _ = run_main(capsys, "cache", "clear", "--cache-dir", entries.dir)
    assert (code, out) == (0, f"nothing to clear in {entries.dir}\n")


def test_clear_older_than(entries: Entries, capsys: pytest.CaptureFixture[str]) -> None:
    ten_days_ago = time.time() - 10 * DAY
    os.utime(entries.exp_a, (ten_days_ago, ten_days_ago))
    code, out, _ = run_main(capsys, "cache", "clear", "--older-than", "5", "--cache-dir", entries.dir)
    assert code == 0 and out.startswith("removed 1 entry: ") and out.endswith("; 2 entries kept\n")
    assert not entries.exp_a.exists() and entries.exp_b.exists() and entries.softplus.exists()
    # fractions of a day, and --older-than with --oracle
    result = clear_cache(entries.dir, oracle="softplus", older_than_days=0.5, now=time.time() + DAY)
    assert (result.entries, result.kept) == (1, 1) and entries.exp_b.exists()


def test_clear_a_missing_directory_is_not_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope"
    code, out, err = run_main(capsys, "cache", "clear", "--cache-dir", str(missing))
    assert (code, out, err) == (0, f"nothing to clear: {missing} does not exist\n", "")
    assert not missing.exists()


def test_a_file_that_vanishes_mid_clear_is_fine(entries: Entries, monkeypatch: pytest.MonkeyPatch) -> None:
    real_unlink = os.unlink
    raced: list[str] = []

    def racing_unlink(path: str) -> None:
        if not raced:  # another process removes the first file just before we do
            raced.append(path)
            real_unlink(path)
        real_unlink(path)

    sizes = {str(f): f.stat().st_size for f in entries.all}
    monkeypatch.setattr(cache_mod.os, "unlink", racing_unlink)
    result = clear_cache(entries.dir)
    assert (result.entries, result.failed, result.kept) == (2, (), 0)
    assert not any(f.exists() for f in entries.all)
    assert result.entry_bytes == sum(sizes.values()) - sizes[raced[0]]  # only what this call removed


def test_a_file_that_cannot_be_removed_exits_1(
    entries: Entries, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_unlink = os.unlink

    def refusing_unlink(path: str) -> None:
        if Path(path) == entries.softplus:
            raise PermissionError(13, "Permission denied")
        real_unlink(path)

    monkeypatch.setattr(cache_mod.os, "unlink", refusing_unlink)
    code, out, _ = run_main(capsys, "cache", "clear", "--cache-dir", entries.dir)
    assert code == 1
    assert out.splitlines()[0].startswith("removed 2 entries: ")
    assert out.splitlines()[1] == f"  could not remove {entries.softplus}: Permission denied"
    assert entries.softplus.exists()


# -- usage errors and help ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        pytest.param(["clear", "--older-than", "-1"], "--older-than -1", id="older-than-negative"),
        pytest.param(["clear", "--older-than", "nan"], "--older-than nan", id="older-than-nan"),
        pytest.param(["clear", "--older-than", "inf"], "--older-than inf", id="older-than-inf"),
        pytest.param(["clear", "--oracle", "sofplus"], "'sofplus'", id="unknown-oracle"),
        pytest.param(["info", "--cache-dir", "FILE"], "is not a directory", id="info-dir-is-a-file"),
        pytest.param(["clear", "--cache-dir", "FILE"], "is not a directory", id="clear-dir-is-a-file"),
    ],
)
def test_usage_errors_are_one_line_exit_2(
    argv: list[str], names: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "a-file"
    file.write_text("not a directory")
    argv = [str(file) if a == "FILE" else a for a in argv]
    code, out, err = run_main(capsys, "cache", *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("fpharness: error: ") and names in err
    if "--oracle" in argv:
        assert "pick from: " in err and "softplus" in err


def test_unknown_oracle_that_is_cached_is_accepted(entries: Entries, capsys: pytest.CaptureFixture[str]) -> None:
    """A custom oracle's entries are cleared by name without registering the oracle."""
    from oracles.registry import Oracle

    exp = get_oracle("exp")
    custom = Oracle("my_exp", exp.kind, exp.args, exp.fn, exp.params)
    cached_evaluate(entries.cache, custom, [X], FLOAT32)
    code, out, _ = run_main(capsys, "cache", "clear", "--oracle", "my_exp", "--cache-dir", entries.dir)
    assert code == 0 and out.startswith("removed 1 entry: ") and out.endswith("; 3 entries kept\n")


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["cache"], id="no-action"),
        pytest.param(["cache", "purge"], id="unknown-action"),
        pytest.param(["cache", "clear", "--older-than", "a week"], id="older-than-not-a-number"),
    ],
)
def test_argparse_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.splitlines()[-1].startswith("fpharness: error: ")


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        pytest.param(["cache", "--help"], ["info", "clear"], id="cache"),
        pytest.param(["cache", "info", "--help"], ["--cache-dir", "--json", "FPHARNESS_CACHE_DIR"], id="info"),
        pytest.param(["cache", "clear", "--help"], ["--oracle", "--older-than", "--dry-run", "jax/"], id="clear"),
    ],
)
def test_help(argv: list[str], words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr().out
    assert exc.value.code == 0 and all(w in out for w in words)


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (5 * 1024**3, "5.0 GiB")],
)
def test_human_bytes(n: int, text: str) -> None:
    assert human_bytes(n) == text


def test_library_rejects_a_negative_age(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="older_than_days=-2"):
        clear_cache(tmp_path, older_than_days=-2)

