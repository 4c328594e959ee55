"""harness.record.history: recording in one transaction (also when killed mid-way), migrations from
an older schema, the accepted baseline, per-cell trends, and the history commands."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from crafted import baseline_and_current, tiny_suite

import harness.record.history as history_module
from harness.cli.app import main
from harness.plan.cells import CellResult
from harness.record.compare import EnvChange
from harness.record.history import SCHEMA_VERSION, History, history_trends, load_ref
from harness.record.results import load_results
from oracles.errors import UsageError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _count(db: Path, table: str) -> int:
    conn = sqlite3.connect(str(db))
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def test_record_and_load_round_trip(tmp_path: Path) -> None:
    base, cur = baseline_and_current()
    with History(tmp_path / "h.sqlite") as h:
        first = h.record(base, suite="frameworks")
        second = h.record(cur, suite="frameworks")
        assert (first, second) == (1, 2)
        assert h.load(first) == base
        assert h.load("latest") == cur
        runs = h.runs()
    assert [r.id for r in runs] == [1, 2]
    assert runs[1].frameworks == {"numpy": "2.0.0", "torch": "2.4.0"}
    assert runs[1].statuses == {"pass": 7, "error": 1} and runs[1].cells == 8
    assert runs[0].suite == "frameworks" and runs[0].accepted == 0


def test_new_database_is_created_at_the_current_version(tmp_path: Path) -> None:
    db = tmp_path / "deep" / "dir" / "h.sqlite"
    History(db).close()
    conn = sqlite3.connect(str(db))
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == list(range(1, SCHEMA_VERSION + 1))


# -- one transaction ---------------------------------------------------------------------------------

_KILLED_RECORDER = """
import sys, time
sys.path.insert(0, {tests!r})
from crafted import baseline_and_current
import harness.record.history as history

original = history._cell_row
calls = []

def slow(run_id, cell):
    calls.append(cell)
    if len(calls) == 4:  # the run row and three cells are written: wait to be killed
        print("inserting", flush=True)
        time.sleep(120)
    return original(run_id, cell)

history._cell_row = slow
with history.History({db!r}) as h:
    h.record(baseline_and_current()[1])
print("committed", flush=True)
"""


def test_a_run_killed_while_recording_leaves_nothing_behind(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    base, cur = baseline_and_current()
    with History(db) as h:
        h.record(base)
    script = _KILLED_RECORDER.format(tests=str(Path(__file__).resolve().parents[1] / "helpers"), db=str(db))
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "inserting"
        # rows are written (into the journal-protected database) but not committed
        assert Path(f"{db}-journal").exists()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    with History(db) as h:  # opening rolls the hot journal back
        assert [r.id for r in h.runs()] == [1]
        assert h.load("latest") == base
        assert h.record(cur) == 2  # the next recording works, and no id was burnt
        assert h.load(2) == cur
    assert _count(db, "cells") == len(base.cells) + len(cur.cells)


def test_an_error_while_recording_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "h.sqlite"
    base, cur = baseline_and_current()
    original = history_module._cell_row
    calls: list[CellResult] = []

    def failing(run_id: int, cell: CellResult) -> tuple[object, ...]:
        calls.append(cell)
        if len(calls) == 3:
            raise RuntimeError("disk on fire")
        return original(run_id, cell)

    with History(db) as h:
        monkeypatch.setattr(history_module, "_cell_row", failing)
        with pytest.raises(RuntimeError, match="disk on fire"):
            h.record(base)
        monkeypatch.setattr(history_module, "_cell_row", original)
        assert h.runs() == []
        assert h.record(cur) == 1
    assert _count(db, "runs") == 1 and _count(db, "cells") == len(cur.cells)


def test_the_same_cell_twice_is_a_usage_error_and_records_nothing(tmp_path: Path) -> None:
    base, _ = baseline_and_current()
    doubled = type(base)(base.run, base.cells + base.cells[:1])
    with History(tmp_path / "h.sqlite") as h:
        with pytest.raises(UsageError, match="the same cell twice"):
            h.record(doubled)
        assert h.runs() == []


# -- migrations --------------------------------------------------------------------------------------


def _v1_database(tmp_path: Path) -> Path:
    db = tmp_path / "old.sqlite"
    conn = sqlite3.connect(str(db))
    conn.executescript((FIXTURES / "history-v1.sql").read_text(encoding="utf-8"))
    conn.close()
    return db


def test_migrates_a_version_1_database(tmp_path: Path) -> None:
    db = _v1_database(tmp_path)
    base, cur = baseline_and_current()
    with History(db) as h:
        assert [r.id for r in h.runs()] == [1, 2]
        assert h.resolve("last-accepted") == 1
        assert h.runs()[0].accepted_at is None  # the v2 column, empty for runs accepted before it existed
        assert h.load(1) == base and h.load(2) == cur
        assert h.accept("latest") == 2
        assert h.resolve("last-accepted") == 2
        assert h.record(base) == 3
    conn = sqlite3.connect(str(db))
    assert [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")] == [1, 2, 3]
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'cells_by_key'").fetchone() is not None
    # a fresh database has exactly the schema a migrated one has
    History(tmp_path / "new.sqlite").close()
    fresh = sqlite3.connect(str(tmp_path / "new.sqlite"))
    schema = "SELECT type, name, tbl_name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
    assert conn.execute(schema).fetchall() == fresh.execute(schema).fetchall()
    columns = "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?)"
    for table in ("runs", "cells", "schema_version"):
        assert conn.execute(columns, (table,)).fetchall() == fresh.execute(columns, (table,)).fetchall()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    History(db).close()
    conn = sqlite3.connect(str(db))
    conn.execute("INSERT INTO schema_version VALUES (99, 'later', 'from the future')")
    conn.commit()
    conn.close()
    with pytest.raises(UsageError, match=r"schema version 99; this fpharness reads up to \d+ \(upgrade fpharness\)"):
        History(db)


def test_foreign_files_are_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(str(other))
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(UsageError, match="not an fpharness history"):
        History(other)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database, not even close" * 100)
    with pytest.raises(UsageError, match="is not usable"):
        History(junk)
    with pytest.raises(UsageError, match="no history database"):
        History(tmp_path / "missing.sqlite", create=False)
    assert not (tmp_path / "missing.sqlite").exists()


# -- baseline and trends -------------------------------------------------------------------------------


def test_last_accepted_is_the_most_recently_accepted(tmp_path: Path) -> None:
    base, cur = baseline_and_current()
    with History(tmp_path / "h.sqlite") as h:
        with pytest.raises(UsageError, match="no runs yet"):
            h.resolve("latest")
        for r in (base, cur, base):
            h.record(r)
        with pytest.raises(UsageError, match="no accepted run"):
            h.resolve("last-accepted")
        h.accept(3)
        h.accept(1)  # rolling the baseline back to an older run
        assert h.resolve("last-accepted") == 1
        with pytest.raises(UsageError, match="has no run 9"):
            h.accept(9)
        with pytest.raises(UsageError, match="must be a run id"):
            h.resolve("yesterday")
    results, label = load_ref("history:last-accepted", tmp_path / "h.sqlite")
    assert results == base and label == "history run 1"


def test_trends_mark_environment_changes(tmp_path: Path) -> None:
    base, cur = baseline_and_current()
    db = tmp_path / "h.sqlite"
    with History(db) as h:
        h.record(base, suite="frameworks")
        h.record(cur, suite="frameworks")
        h.accept(1)
    trends = history_trends(db, cell="SOFTPLUS[torch.softplus-cpu-float16")
    assert [t.id for t in trends] == ["softplus[torch.softplus-cpu-float16-special]"]
    first, second = trends[0].points
    assert (first.run_id, first.max_ulp, first.accepted, first.changes) == (1, 0.5, True, ())
    assert (second.run_id, second.max_ulp, second.framework_version) == (2, 2.0, "2.4.0")
    assert second.changes == (EnvChange("version", "2.3.0", "2.4.0"),)
    assert second.correctly_rounded == 0.85 and second.incidence["unexpected_inf"] == 0
    cuda = history_trends(db, cell="log1p")[0].points[1]
    assert [str(c) for c in cuda.changes] == [
        "version 2.3.0 → 2.4.0", "device NVIDIA A100 → NVIDIA H100", "out_dtype float16 → float32",
    ]
    everything = history_trends(db)
    assert len(everything) == 9  # the union of both runs' cells
    assert len(history_trends(db, limit=1)) == 8
    assert history_trends(db, suite="other") == []
    with pytest.raises(UsageError, match="no history database"):
        history_trends(tmp_path / "none.sqlite")


# -- the commands --------------------------------------------------------------------------------------


def test_run_record_history_accept_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = tiny_suite(tmp_path)
    db, out = str(tmp_path / "h.sqlite"), str(tmp_path / "r.json")
    common = ["--cache-dir", str(tmp_path / "cache"), "-q", "-j", "1"]
    assert main(["run", str(suite), "--json", out, "--record", "--db", db, *common]) == 1  # naive softplus fails
    assert main(["accept", "latest", "--db", db]) == 0
    assert "run 1 is the baseline" in capsys.readouterr().out
    assert main(["compare", "history:last-accepted", out, "--db", db]) == 0
    assert "11 cells: 11 unchanged: no regression" in capsys.readouterr().out
    with History(db) as h:
        assert h.load(1) == load_results(out)
        assert h.runs()[0].suite == "tiny"
    assert main(["history", "--db", db]) == 0
    assert "tiny" in capsys.readouterr().out
    assert main(["history", "--db", db, "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["id"], listed["suite"], listed["accepted"], listed["cells"]) == (1, "tiny", 1, 11)
    assert main(["history", "--db", db, "--cell", "stable_softplus-cpu-float16-special", "--json"]) == 0
    [trend] = json.loads(capsys.readouterr().out)
    assert trend["points"][0]["status"] == "pass" and trend["points"][0]["accepted"] is True
    assert main(["history", "--db", db, "--cell", "stable_softplus"]) == 0
    assert "stable_softplus" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["history"], "no history database"),
        (["accept", "latest"], "no history database"),
        (["accept", "7"], "has no run 7"),
        (["accept", "first"], "must be a run id"),
        (["history", "--cell", "nothing-like-this"], "no recorded cell id contains"),
        (["history", "--limit", "-1"], "--limit must be 0"),
        (["compare", "history:latest", "history:9"], "has no run 9"),
    ],
    ids=["history-no-db", "accept-no-db", "accept-unknown", "accept-word", "cell", "limit", "compare-ref"],
)
def test_history_usage_errors_exit_2(
    tmp_path: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / ("h.sqlite" if "no history database" not in message else "absent.sqlite")
    if "no history database" not in message:
        with History(db) as h:
            h.record(baseline_and_current()[0])
    assert main([*argv, "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_record_with_shard_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = tiny_suite(tmp_path)
    assert main(["run", str(suite), "--shard", "1/2", "--record", "--db", str(tmp_path / "h.sqlite"), "-q"]) == 2
    assert "merge the shards and record that" in capsys.readouterr().err
    assert not (tmp_path / "h.sqlite").exists()



def test_forward_and_gradient_cells_of_one_implementation_are_two_history_rows(tmp_path: Path) -> None:
    """Same oracle, implementation, dtype, device, inputs and parameters: the pass tells
    them apart (the v3 key column ``judged``), in recording, loading, trends and compare."""
    from dataclasses import replace

    from harness.record.compare import compare
    from harness.record.results import Results

    base, _ = baseline_and_current()
    forward = base.cells[0]
    grad = replace(forward, spec=replace(forward.spec, wrt="x"))
    results = Results(base.run, (forward, grad))
    db = tmp_path / "h.sqlite"
    with History(db) as h:
        run_id = h.record(results)
        assert h.load(run_id) == results
        trends = h.trends()
    assert sorted(t.id for t in trends) == sorted([forward.spec.id, grad.spec.id])
    assert {t.key for t in trends} == {forward.spec.key, grad.spec.key}
    assert len(compare(results, results).verdicts) == 2
