"""The run history: an SQLite database of recorded runs, their cells and the accepted
baseline (default ``.fpharness/history.sqlite`` in the current directory).

Schema (version :data:`SCHEMA_VERSION`; every change is an explicit, numbered migration in
:data:`MIGRATIONS`, applied in order and each in its own transaction; a new database is
built by the same migrations, so a migrated and a fresh database are the same)::

    schema_version(version PK, applied, description)       one row per applied migration
    runs(id PK, started, finished, suite, host, git_commit, fpharness, python, platform,
         frameworks JSON, devices JSON, accepted, accepted_at [v2], run_json)
    cells(run_id -> runs.id, oracle, impl, dtype, device, inputs, params,   -- CellSpec.key
          judged [v3: '' forward, '∂x:ones' a gradient, '≡position' a consistency check],
          cell_id, framework, status, reason, out_dtype, n, correctly_rounded,
          max_ulp, mean_ulp, unexpected_nan, missing_nan, unexpected_inf,
          inherent_inf, missing_inf, lost_to_zero, cell_json)
          PRIMARY KEY (run_id, oracle, impl, dtype, device, inputs, params, judged)
    index cells_by_key on the key columns [v2, judged v3]

``accepted`` is 0 for a run never accepted, else the order in which runs were accepted:
the run with the largest value is the baseline (``history:last-accepted``), so accepting
an older run again rolls the baseline back. ``run_json`` and ``cell_json`` hold exactly
what the results file holds, so a recorded run loads back as the same :class:`Results`.

Recording a run is one transaction: a run interrupted (or killed) while recording leaves
no row behind, and the next recording works.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.judgement.summary import CATEGORIES
from harness.plan.cells import CellResult
from harness.record.compare import CellKey, EnvChange
from harness.record.results import Results, RunInfo, load_results, now
from oracles.errors import UsageError

__all__ = [
    "DEFAULT_DB",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "CellTrend",
    "History",
    "Migration",
    "RunRow",
    "TrendPoint",
    "history_trends",
    "load_ref",
]

DEFAULT_DB = Path(".fpharness") / "history.sqlite"
REF_PREFIX = "history:"


@dataclass(frozen=True, slots=True)
class Migration:
    """Schema version ``version`` is reached by running ``statements`` on ``version - 1``."""

    version: int
    description: str
    statements: tuple[str, ...]


_KEY_COLUMNS = ("oracle", "impl", "dtype", "device", "inputs", "params", "judged")

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "runs and their cells", (
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            started TEXT NOT NULL,
            finished TEXT NOT NULL,
            suite TEXT,
            host TEXT NOT NULL,
            git_commit TEXT,
            fpharness TEXT NOT NULL,
            python TEXT NOT NULL,
            platform TEXT NOT NULL,
            frameworks TEXT NOT NULL,
            devices TEXT NOT NULL,
            accepted INTEGER NOT NULL DEFAULT 0,
            run_json TEXT NOT NULL
        )""",
        """CREATE TABLE cells (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            oracle TEXT NOT NULL,
            impl TEXT NOT NULL,
            dtype TEXT NOT NULL,
            device TEXT NOT NULL,
            inputs TEXT NOT NULL,
            params TEXT NOT NULL,
            cell_id TEXT NOT NULL,
            framework TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT NOT NULL,
            out_dtype TEXT,
            n INTEGER NOT NULL,
            correctly_rounded INTEGER NOT NULL,
            max_ulp REAL,
            mean_ulp REAL,
            unexpected_nan INTEGER NOT NULL,
            missing_nan INTEGER NOT NULL,
            unexpected_inf INTEGER NOT NULL,
            inherent_inf INTEGER NOT NULL,
            missing_inf INTEGER NOT NULL,
            lost_to_zero INTEGER NOT NULL,
            cell_json TEXT NOT NULL,
            PRIMARY KEY (run_id, oracle, impl, dtype, device, inputs, params)
        )""",
    )),
    Migration(2, "when a run was accepted; cells indexed by key for per-cell trends", (
        "ALTER TABLE runs ADD COLUMN accepted_at TEXT",
        "CREATE INDEX cells_by_key ON cells (oracle, impl, dtype, device, inputs, params, run_id)",
    )),
    # SQLite cannot change a primary key in place: the table is copied. Cells recorded
    # before are forward cells ('' for judged).
    Migration(3, "gradient cells: which pass a cell judges is part of its key", (
        "ALTER TABLE cells RENAME TO cells_v2",
        "DROP INDEX cells_by_key",
        """CREATE TABLE cells (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            oracle TEXT NOT NULL,
            impl TEXT NOT NULL,
            dtype TEXT NOT NULL,
            device TEXT NOT NULL,
            inputs TEXT NOT NULL,
            params TEXT NOT NULL,
            judged TEXT NOT NULL DEFAULT '',
            cell_id TEXT NOT NULL,
            framework TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT NOT NULL,
            out_dtype TEXT,
            n INTEGER NOT NULL,
            correctly_rounded INTEGER NOT NULL,
            max_ulp REAL,
            mean_ulp REAL,
            unexpected_nan INTEGER NOT NULL,
            missing_nan INTEGER NOT NULL,
            unexpected_inf INTEGER NOT NULL,
            inherent_inf INTEGER NOT NULL,
            missing_inf INTEGER NOT NULL,
            lost_to_zero INTEGER NOT NULL,
            cell_json TEXT NOT NULL,
            PRIMARY KEY (run_id, oracle, impl, dtype, device, inputs, params, judged)
        )""",
        """INSERT INTO cells (run_id, oracle, impl, dtype, device, inputs, params, judged, cell_id, framework,
            status, reason, out_dtype, n, correctly_rounded, max_ulp, mean_ulp, unexpected_nan, missing_nan,
            unexpected_inf, inherent_inf, missing_inf, lost_to_zero, cell_json)
           SELECT run_id, oracle, impl, dtype, device, inputs, params, '', cell_id, framework,
            status, reason, out_dtype, n, correctly_rounded, max_ulp, mean_ulp, unexpected_nan, missing_nan,
            unexpected_inf, inherent_inf, missing_inf, lost_to_zero, cell_json FROM cells_v2""",
        "DROP TABLE cells_v2",
        "CREATE INDEX cells_by_key ON cells (oracle, impl, dtype, device, inputs, params, judged, run_id)",
    )),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


@dataclass(frozen=True, slots=True)
class RunRow:
    """A recorded run as ``fpharness history`` lists it."""

    id: int
    started: str
    finished: str
    suite: str | None
    host: str
    git_commit: str | None
    frameworks: dict[str, str | None]
    accepted: int
    accepted_at: str | None
    statuses: dict[str, int]

    @property
    def cells(self) -> int:
        return sum(self.statuses.values())


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One cell in one run. ``changes`` lists what differs from the previous point of the
    same cell: its framework version, device name, output format or element count (the
    environment changes an HTML trend marks); empty for the first point."""

    run_id: int
    started: str
    git_commit: str | None
    accepted: bool
    status: str
    max_ulp: float | None
    mean_ulp: float | None
    correctly_rounded: float | None
    n: int
    incidence: Mapping[str, int]
    framework_version: str | None
    device_name: str | None
    out_dtype: str | None
    changes: tuple[EnvChange, ...] = ()


@dataclass(frozen=True, slots=True)
class CellTrend:
    """A cell's series over the recorded runs, oldest first."""

    key: CellKey
    id: str
    framework: str
    points: tuple[TrendPoint, ...] = field(default=())


# -- opening and migrating ----------------------------------------------------------------------


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; every write below says BEGIN itself
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _version(conn: sqlite3.Connection, path: Path) -> int:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "schema_version" not in tables:
        if tables - {"sqlite_sequence"}:
            raise UsageError(f"{str(path)!r} is an SQLite database but not an fpharness history (no schema_version table)")
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the database to :data:`SCHEMA_VERSION`, one transaction per migration; returns
    the version found. A database from a newer fpharness is a :class:`UsageError`."""
    conn.execute("BEGIN IMMEDIATE")  # one migrator at a time; others wait (timeout) then see the new version
    try:
        found = _version(conn, path)
        if found > SCHEMA_VERSION:
            raise UsageError(
                f"history {str(path)!r} has schema version {found}; this fpharness reads up to {SCHEMA_VERSION}"
                " (upgrade fpharness)"
            )
        if found == 0:
            conn.execute(
                "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied TEXT NOT NULL, description TEXT NOT NULL)"
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    for m in MIGRATIONS:
        if m.version <= found:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if _version(conn, path) >= m.version:  # another process got there first
                conn.execute("ROLLBACK")
                continue
            for statement in m.statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, applied, description) VALUES (?, ?, ?)",
                (m.version, now(), m.description),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return found


# -- the database -------------------------------------------------------------------------------


class History:
    """A history database, opened (and migrated) on construction. ``create=False`` makes a
    missing file a :class:`UsageError` instead of creating it. Use as a context manager."""

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_DB, *, create: bool = True) -> None:
        self.path = Path(path)
        if not self.path.exists():
            if not create:
                raise UsageError(
                    f"no history database at {str(self.path)!r}; record a run first"
                    " (fpharness run SUITE --record) or pass --db PATH"
                )
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = _connect(self.path)
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"history {str(self.path)!r} is not usable: {exc}") from None
        try:
            migrate(self.conn, self.path)
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise UsageError(f"history {str(self.path)!r} is not usable: {exc}") from None
        except BaseException:
            self.conn.close()
            raise

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- writing --------------------------------------------------------------------------
    def record(self, results: Results, *, suite: str | None = None) -> int:
        """Store a run and all its cells in one transaction; returns the new run id."""
        run = results.run
        name = suite if suite is not None else run.extra.get("suite")
        try:
            with self._transaction() as conn:
                cur = conn.execute(
                    "INSERT INTO runs (started, finished, suite, host, git_commit, fpharness, python, platform,"
                    " frameworks, devices, run_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run.started, run.finished, None if name is None else str(name), run.host, run.git_commit,
                     run.fpharness, run.python, run.platform, _dumps(run.frameworks), _dumps(run.devices),
                     _dumps(run.to_json())),
                )
                run_id = int(cur.lastrowid or 0)
                conn.executemany(
                    f"INSERT INTO cells ({', '.join(_CELL_COLUMNS)}) VALUES ({', '.join('?' * len(_CELL_COLUMNS))})",
                    (_cell_row(run_id, cell) for cell in results.cells),
                )
        except sqlite3.IntegrityError as exc:
            raise UsageError(f"cannot record the run: {exc} (the same cell twice? merge parts first)") from None
        return run_id

    def accept(self, ref: str | int) -> int:
        """Make run ``ref`` (an id, ``latest`` or ``last-accepted``) the accepted baseline."""
        with self._transaction() as conn:
            run_id = self.resolve(ref)
            order = conn.execute("SELECT COALESCE(MAX(accepted), 0) + 1 FROM runs").fetchone()[0]
            conn.execute("UPDATE runs SET accepted = ?, accepted_at = ? WHERE id = ?", (order, now(), run_id))
        return run_id

    # -- reading --------------------------------------------------------------------------
    def resolve(self, ref: str | int) -> int:
        """A run id from ``ID``, ``latest`` or ``last-accepted``."""
        text = str(ref).strip()
        if text == "latest":
            row = self.conn.execute("SELECT MAX(id) FROM runs").fetchone()
            if row[0] is None:
                raise UsageError(f"history {str(self.path)!r} has no runs yet; record one with fpharness run SUITE --record")
            return int(row[0])
        if text == "last-accepted":
            row = self.conn.execute("SELECT id FROM runs WHERE accepted > 0 ORDER BY accepted DESC LIMIT 1").fetchone()
            if row is None:
                raise UsageError(
                    f"history {str(self.path)!r} has no accepted run; accept one with fpharness accept RUN_ID|latest"
                )
            return int(row[0])
        if not text.isdigit():
            raise UsageError(f"run {text!r} must be a run id (see fpharness history), latest or last-accepted")
        if self.conn.execute("SELECT 1 FROM runs WHERE id = ?", (int(text),)).fetchone() is None:
            raise UsageError(f"history {str(self.path)!r} has no run {text}; see fpharness history")
        return int(text)

    def load(self, ref: str | int) -> Results:
        """A recorded run as the :class:`Results` that was recorded."""
        run_id = self.resolve(ref)
        row = self.conn.execute("SELECT run_json FROM runs WHERE id = ?", (run_id,)).fetchone()
        cells = self.conn.execute("SELECT cell_json FROM cells WHERE run_id = ? ORDER BY rowid", (run_id,))
        return Results(
            RunInfo.from_json(json.loads(row[0])),
            tuple(CellResult.from_json(json.loads(c[0])) for c in cells),
        )

    def runs(self, *, limit: int | None = None) -> list[RunRow]:
        """The recorded runs, oldest first (the last ``limit`` when given)."""
        rows = self.conn.execute(
            "SELECT * FROM (SELECT * FROM runs ORDER BY id DESC LIMIT ?) ORDER BY id",
            (-1 if limit is None else limit,),
        ).fetchall()
        statuses: dict[int, dict[str, int]] = {}
        for r in self.conn.execute("SELECT run_id, status, COUNT(*) FROM cells GROUP BY run_id, status"):
            statuses.setdefault(int(r[0]), {})[str(r[1])] = int(r[2])
        return [
            RunRow(
                id=int(r["id"]), started=r["started"], finished=r["finished"], suite=r["suite"], host=r["host"],
                git_commit=r["git_commit"], frameworks=json.loads(r["frameworks"]), accepted=int(r["accepted"]),
                accepted_at=r["accepted_at"], statuses=statuses.get(int(r["id"]), {}),
            )
            for r in rows
        ]

    def trends(self, *, cell: str | None = None, suite: str | None = None, limit: int | None = None) -> list[CellTrend]:
        """Per-cell series over the last ``limit`` runs (of ``suite``), for the cells whose id
        contains ``cell``; see :func:`history_trends`."""
        runs = [r for r in self.runs() if suite is None or r.suite == suite]
        if limit is not None:
            runs = runs[-limit:] if limit > 0 else []
        if not runs:
            return []
        info = {
            int(r["id"]): r
            for r in self.conn.execute(
                f"SELECT id, started, git_commit, accepted, frameworks, devices FROM runs"
                f" WHERE id IN ({', '.join('?' * len(runs))})",
                [r.id for r in runs],
            )
        }
        query = (
            f"SELECT * FROM cells WHERE run_id IN ({', '.join('?' * len(runs))})"
            + (" AND instr(lower(cell_id), lower(?)) > 0" if cell else "")
            + f" ORDER BY {', '.join(_KEY_COLUMNS)}, run_id"
        )
        args: list[Any] = [r.id for r in runs] + ([cell] if cell else [])
        series: dict[CellKey, list[sqlite3.Row]] = {}
        for row in self.conn.execute(query, args):
            key: CellKey = tuple(str(row[c]) for c in _KEY_COLUMNS)  # type: ignore[assignment]
            series.setdefault(key, []).append(row)
        out: list[CellTrend] = []
        for key, rows in sorted(series.items(), key=lambda kv: (kv[1][-1]["cell_id"], kv[0])):
            points: list[TrendPoint] = []
            for row in rows:
                run = info[int(row["run_id"])]
                point = _point(row, run)
                if points:
                    point = _with_changes(points[-1], point)
                points.append(point)
            out.append(CellTrend(key, str(rows[-1]["cell_id"]), str(rows[-1]["framework"]), tuple(points)))
        return out


_CELL_COLUMNS = (
    "run_id", *_KEY_COLUMNS, "cell_id", "framework", "status", "reason", "out_dtype", "n", "correctly_rounded",
    "max_ulp", "mean_ulp", *CATEGORIES, "cell_json",
)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=False, default=lambda o: o.item() if hasattr(o, "item") else str(o))


def _cell_row(run_id: int, cell: CellResult) -> tuple[Any, ...]:
    """One row of ``cells`` (a module function so that tests can interrupt recording here)."""
    s = cell.summary
    inc = s.incidence if s is not None else dict.fromkeys(CATEGORIES, 0)
    return (
        run_id, *cell.spec.key, cell.spec.id, cell.spec.framework, cell.status, cell.reason, cell.out_dtype,
        s.n if s else 0, s.correctly_rounded if s else 0,
        s.ulp_max if s and s.ulp_count else None, s.ulp_mean if s else None,
        *(inc[c] for c in CATEGORIES), _dumps(cell.to_json()),
    )


def _point(row: sqlite3.Row, run: sqlite3.Row) -> TrendPoint:
    framework, device = str(row["framework"]), str(row["device"])
    versions = json.loads(run["frameworks"])
    devices = json.loads(run["devices"])
    n = int(row["n"])
    return TrendPoint(
        run_id=int(row["run_id"]),
        started=str(run["started"]),
        git_commit=run["git_commit"],
        accepted=bool(run["accepted"]),
        status=str(row["status"]),
        max_ulp=row["max_ulp"],
        mean_ulp=row["mean_ulp"],
        correctly_rounded=int(row["correctly_rounded"]) / n if n else None,
        n=n,
        incidence={c: int(row[c]) for c in CATEGORIES},
        framework_version=versions.get(framework),
        device_name=(devices.get(framework) or {}).get(device),
        out_dtype=row["out_dtype"],
    )


def _with_changes(prev: TrendPoint, point: TrendPoint) -> TrendPoint:
    from dataclasses import replace

    changes: list[EnvChange] = []
    for what, before, after in (
        ("version", prev.framework_version, point.framework_version),
        ("device", prev.device_name, point.device_name),
        ("out_dtype", prev.out_dtype, point.out_dtype),
    ):
        if before != after and (before is not None or after is not None):
            changes.append(EnvChange(what, before, after))
    if prev.n and point.n and prev.n != point.n:
        changes.append(EnvChange("n", str(prev.n), str(point.n)))
    return replace(point, changes=tuple(changes))


def history_trends(
    db: str | os.PathLike[str] = DEFAULT_DB,
    *,
    cell: str | None = None,
    suite: str | None = None,
    limit: int | None = None,
) -> list[CellTrend]:
    """Per-cell series for trend views: for every cell (whose id contains ``cell``), its
    :class:`TrendPoint` in each of the last ``limit`` recorded runs (of ``suite``), oldest
    first: run id, start time, status, max and mean ULP, correctly rounded fraction,
    incidence counts, framework version and device name, with ``changes`` marking where
    the environment changed. A missing database is a :class:`UsageError`."""
    with History(db, create=False) as h:
        return h.trends(cell=cell, suite=suite, limit=limit)


def load_ref(ref: str, db: str | os.PathLike[str] = DEFAULT_DB) -> tuple[Results, str]:
    """A results file path, or ``history:last-accepted`` / ``history:latest`` /
    ``history:ID`` from ``db``; returns the results and a label for views."""
    if not ref.startswith(REF_PREFIX):
        return load_results(ref), ref
    with History(db, create=False) as h:
        run_id = h.resolve(ref[len(REF_PREFIX):])
        return h.load(run_id), f"history run {run_id}"
