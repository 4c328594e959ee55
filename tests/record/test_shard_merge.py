"""Sharding (``run --shard K/N``) and merging (``fpharness merge``): the shards partition the
suite along input groups, and merging them gives exactly the unsharded results."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from crafted import baseline_and_current, cell, run, tiny_suite

from harness.cli.app import main
from harness.judgement.summary import Summary, judge
from harness.plan.cells import Budget, CellResult, CellSpec
from harness.plan.inputs import parse_inputs
from harness.plan.suite import load_suite
from harness.record.compare import Kind, compare
from harness.record.results import Results, load_results
from harness.record.shard import Shard, assign, merge_results, parse_shard, select
from oracles.errors import UsageError
from oracles.evaluate import evaluate
from oracles.formats import get_format
from oracles.registry import get_oracle


def _timeless(c: CellResult) -> CellResult:
    return replace(c, seconds=0.0, impl_seconds=0.0)


def _by_key(results: Results) -> dict[tuple[str, ...], CellResult]:
    return {c.spec.key: _timeless(c) for c in results.cells}


# -- choosing shards -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "shard"), [("1/1", Shard(1, 1)), ("2/4", Shard(2, 4)), (" 4 / 4 ", Shard(4, 4))])
def test_parse_shard(text: str, shard: Shard) -> None:
    assert parse_shard(text) == shard
    assert str(shard) == f"{shard.index}/{shard.count}"


@pytest.mark.parametrize(
    ("text", "message"),
    [("3", "must be K/N"), ("0/3", "K must be between 1 and N"), ("4/3", "K must be between 1 and N"),
     ("1/0", "K must be between 1 and N"), ("a/b", "must be K/N"), ("-1/2", "must be K/N")],
    ids=["no-slash", "zero", "too-big", "no-shards", "words", "negative"],
)
def test_invalid_shards(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_shard(text)


def test_shards_partition_the_suite_along_input_groups(tmp_path: Path) -> None:
    cells = load_suite(tiny_suite(tmp_path)).cells
    for count in (1, 2, 3, 7, 10):
        where = assign(cells, count)
        assert where == assign(list(cells), count)  # deterministic
        assert set(where) <= set(range(count))
        shards = [select(cells, Shard(k, count)) for k in range(1, count + 1)]
        assert sorted(c.key for s in shards for c in s) == sorted(c.key for c in cells)
        groups: dict[tuple[object, ...], set[int]] = {}
        for c, s in zip(cells, where, strict=True):
            groups.setdefault((c.oracle, c.dtype, c.inputs, c.params), set()).add(s)
        assert all(len(s) == 1 for s in groups.values()), "a group of cells was split across shards"
        assert len(set(where)) == min(count, len(groups))  # every shard gets work while groups last
    assert select(cells, Shard(1, 1)) == cells


def test_shards_balance_estimated_cost() -> None:
    def spec(oracle: str, inputs: str, impl: str = "numpy.x") -> CellSpec:
        return CellSpec(oracle, impl, "numpy", "float16", "cpu", inputs)

    # one exhaustive group outweighs all the small ones: it gets a shard to itself
    cells = [spec("exp", "exhaustive")] + [spec(o, "special") for o in ("log", "sigmoid", "silu", "gelu")]
    where = assign(cells, 2)
    assert where[0] != where[1] and len(set(where[1:])) == 1


# -- merging ---------------------------------------------------------------------------------------------


def test_shard_and_merge_equal_the_unsharded_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = tiny_suite(tmp_path)
    whole = tmp_path / "all.json"
    assert main(["run", str(suite), "--json", str(whole), "--no-cache", "-q", "-j", "1"]) == 1
    parts = []
    for k in (1, 2, 3):
        part = tmp_path / f"part{k}.json"
        code = main(["run", str(suite), "--shard", f"{k}/3", "--json", str(part), "--no-cache", "-q", "-j", "1"])
        assert code in (0, 1)
        parts.append(str(part))
    merged_path = tmp_path / "merged.json"
    assert main(["merge", *parts, "-o", str(merged_path)]) == 0
    assert "merged 3 parts: 11 cells" in capsys.readouterr().out

    unsharded, merged = load_results(whole), load_results(merged_path)
    assert _by_key(merged) == _by_key(unsharded)
    assert all(c.summary is not None for c in merged.cells if c.status in ("pass", "fail"))
    assert {v.kind for v in compare(unsharded, merged).verdicts} == {Kind.UNCHANGED}
    assert merged.exit_code == unsharded.exit_code == 1

    shards = [load_results(p) for p in parts]
    assert [s.run.extra["shard"] for s in shards] == ["1/3", "2/3", "3/3"]
    assert merged.run.started == min(s.run.started for s in shards)
    assert merged.run.finished == max(s.run.finished for s in shards)
    assert merged.run.frameworks == unsharded.run.frameworks
    assert merged.run.extra["suite"] == "tiny"
    assert [p["shard"] for p in merged.run.extra["parts"]] == ["1/3", "2/3", "3/3"]
    assert "conflicts" not in merged.run.extra
    # the merged file is an ordinary results file: its JSON cells match the unsharded ones
    cells_json = {c["id"]: c for c in json.loads(merged_path.read_text())["cells"]}
    for c in json.loads(whole.read_text())["cells"]:
        for volatile in ("seconds", "impl_seconds"):
            c.pop(volatile)
            cells_json[c["id"]].pop(volatile, None)
        assert cells_json[c["id"]] == c


def test_more_shards_than_groups_leaves_empty_shards(tmp_path: Path) -> None:
    suite = tiny_suite(tmp_path)
    common = ["--cache-dir", str(tmp_path / "cache"), "-q", "-j", "1"]
    assert main(["run", str(suite), "--json", str(tmp_path / "all.json"), *common]) == 1
    parts = []
    for k in range(1, 9):
        part = tmp_path / f"p{k}.json"
        assert main(["run", str(suite), "--shard", f"{k}/8", "--json", str(part), *common]) in (0, 1)
        parts.append(str(part))
    assert load_results(parts[-1]).cells == ()  # 7 input groups, 8 shards
    assert main(["merge", *parts, "-o", str(tmp_path / "m.json"), "-q"]) == 0
    assert _by_key(load_results(tmp_path / "m.json")) == _by_key(load_results(tmp_path / "all.json"))


def _naive_softplus(x: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    with np.errstate(over="ignore"):
        return np.log(np.asarray(1, x.dtype) + np.exp(x))


def test_chunks_of_one_cell_merge_exactly() -> None:
    """Two parts holding the same cell (chunks of a streamed cell) merge into the summary
    and status of the whole, with the status recomputed from the merged numbers."""
    oracle, fmt = get_oracle("softplus"), get_format("float16")
    inputs = parse_inputs("special").generate(oracle, fmt)
    x = inputs.batches[0].arrays[0]
    params = oracle.bind({})
    ref = evaluate(oracle, [x.astype(np.float64)], fmt, params)
    got = _naive_softplus(x)
    k = x.size // 2
    parts = [judge(ref[:k], got[:k], fmt), judge(ref[k:], got[k:], fmt, offset=k)]
    low, high = sorted(p.ulp_max for p in parts)
    assert low < high
    # a budget between the chunks' max errors: one chunk alone passes, the whole fails
    spec = CellSpec("softplus", "naive", "numpy", "float16", "cpu", "special", tuple(sorted(params.items())),
                    Budget.build((low + high) / 2, {"unexpected_inf": True}))

    def result(summary: Summary) -> CellResult:
        violations = spec.budget.violations(summary)
        return CellResult(spec, "fail" if violations else "pass", "; ".join(violations), "float16", summary)

    whole = result(judge(ref, got, fmt))
    head, tail = result(parts[0]), result(parts[1])
    assert {head.status, tail.status} == {"pass", "fail"} and whole.status == "fail"
    merged = merge_results([Results(run(), (head,)), Results(run("2026-01-02T00:00:00+00:00"), (tail,))])
    assert merged.cells == (whole,)
    assert merged.run.started == "2026-01-01T00:00:00+00:00"
    assert merged.run.finished == "2026-01-02T00:10:00+00:00"
    with pytest.raises(UsageError, match="the same elements"):
        merge_results([Results(run(), (head,)), Results(run("2026-01-03T00:00:00+00:00"), (head,))])


def test_merging_errors_skips_and_conflicting_versions() -> None:
    a = Results(run(torch="2.3.0"), (cell(status="error", reason="E: boom"), cell(dtype="bfloat16", status="skipped",
                                                                                  reason="no torch")))
    b = Results(run("2026-01-02T00:00:00+00:00", torch="2.4.0"), (cell(), cell(dtype="bfloat16")))
    merged = merge_results([a, b])
    statuses = {c.spec.dtype: (c.status, c.reason) for c in merged.cells}
    assert statuses == {
        "float16": ("error", "E: boom"),
        "bfloat16": ("error", "incomplete: 1 of 2 parts skipped (no torch)"),
    }
    assert merged.run.frameworks["torch"] == "2.3.0 | 2.4.0"
    assert merged.run.extra["conflicts"] == {"frameworks.torch": ["2.3.0", "2.4.0"]}
    with pytest.raises(UsageError, match="same as an earlier one"):
        merge_results([a, a])
    with pytest.raises(UsageError, match="at least one"):
        merge_results([])
    out16 = Results(run(), (cell(out_dtype="float16"),))
    out32 = Results(run("2026-01-02T00:00:00+00:00"), (cell(out_dtype="float32"),))
    with pytest.raises(UsageError, match="output formats"):
        merge_results([out16, out32])


def test_merged_shards_compare_like_the_whole() -> None:
    base, cur = baseline_and_current()
    halves = [Results(cur.run, cur.cells[:4]), Results(replace(cur.run, started="2026-01-02T00:05:00+00:00"), cur.cells[4:])]
    merged = merge_results(halves)
    assert [(v.id, v.kind) for v in compare(base, merged).verdicts] == [(v.id, v.kind) for v in compare(base, cur).verdicts]


# -- the command --------------------------------------------------------------------------------------------


def test_merge_record_and_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, _ = baseline_and_current()
    base.write(tmp_path / "a.json")
    db = str(tmp_path / "h.sqlite")
    assert main(["merge", str(tmp_path / "a.json"), "-o", str(tmp_path / "m.json"), "--record", "--db", db]) == 0
    assert "recorded: run 1" in capsys.readouterr().out
    assert main(["merge", str(tmp_path / "missing.json"), "-o", str(tmp_path / "m.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["merge", str(tmp_path / "a.json"), str(tmp_path / "a.json"), "-o", str(tmp_path / "m.json")]) == 2
    assert "same as an earlier one" in capsys.readouterr().err
    suite = tiny_suite(tmp_path)
    assert main(["run", str(suite), "--shard", "0/2", "-q"]) == 2
    err = capsys.readouterr().err
    assert "--shard '0/2': K must be between 1 and N" in err and "Traceback" not in err
