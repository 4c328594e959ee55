"""Hostile and careless input, refused before any cell runs (issue 13, defects 5, 7, 8, 9, 12).

Layer: inputs and configuration. Every case is a row of a table with a readable id; each
must give a one-line :class:`UsageError` that names the bad value and what is accepted.
Add a row for every new way of getting it wrong. The end-to-end tables at the bottom check
that the CLI turns them into exit 2 with one line on stderr and writes nothing; the pytest
plugin's side (a bad ``assert_precision`` argument fails its test, not the session) is in
tests/testing/test_plugin.py.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.cli.app import main
from harness.plan.cells import Budget, CellSpec
from harness.plan.inputs import MAX_INPUTS, parse_inputs
from harness.plan.suite import NAME_RULE, load_suite, suite_name
from oracles import FLOAT16, FLOAT32, UsageError, get_oracle


def one_line(exc: pytest.ExceptionInfo[UsageError]) -> str:
    text = str(exc.value)
    assert "\n" not in text, f"usage errors are one line: {text!r}"
    return text


def refused(call: Callable[[], object], fragments: list[str]) -> str:
    with pytest.raises(UsageError) as exc:
        call()
    text = one_line(exc)
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"
    return text


# -- numbers: budgets, parameters, timeouts (defects 7 and 12) ---------------------------------


@pytest.mark.parametrize(
    ("max_ulp", "allow", "fragments"),
    [
        pytest.param(math.nan, None, ["max_ulp must be a non-negative number, got nan", "leave it out"], id="max-ulp-nan"),
        pytest.param(math.inf, None, ["max_ulp must be a finite number, got inf", "leave max_ulp out"], id="max-ulp-inf"),
        pytest.param(-math.inf, None, ["max_ulp must be a non-negative number, got -inf"], id="max-ulp-minus-inf"),
        pytest.param(True, None, ["max_ulp must be a non-negative number, got True"], id="max-ulp-bool"),
        pytest.param(None, {"lost_to_zero": math.nan}, ["allow.lost_to_zero", "got nan", "true, false, a count"],
                     id="allow-nan"),
        pytest.param(None, {"lost_to_zero": math.inf}, ["allow.lost_to_zero = inf is not a count", "write true"],
                     id="allow-inf"),
        pytest.param(None, {"lost_to_zero": -math.inf}, ["allow.lost_to_zero", "got -inf"], id="allow-minus-inf"),
    ],
)
def test_budget_refuses_non_finite_numbers(max_ulp: Any, allow: dict[str, Any] | None, fragments: list[str]) -> None:
    refused(lambda: Budget.build(max_ulp, allow), fragments)


def test_budget_results_stay_json() -> None:
    # what Budget.build accepts can always be written (json refuses NaN and Infinity)
    import json

    budget = Budget.build(0.5, {"inherent_inf": True, "lost_to_zero": 0.01, "missing_inf": 3})
    json.dumps(budget.to_json(), allow_nan=False)


@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        pytest.param("0", ["beta='0' is outside its domain", "beta must be a finite non-zero number", "e.g. beta=1.0"],
                     id="beta-zero-text"),
        pytest.param(0.0, ["beta=0.0 is outside its domain"], id="beta-zero"),
        pytest.param(-0.0, ["beta=-0.0 is outside its domain"], id="beta-minus-zero"),
        pytest.param("nan", ["beta='nan' is not finite", "a finite non-zero number"], id="beta-nan-text"),
        pytest.param(math.inf, ["beta=inf is not finite"], id="beta-inf"),
        pytest.param("-inf", ["beta='-inf' is not finite"], id="beta-minus-inf-text"),
        pytest.param("1e999", ["beta='1e999' is not finite"], id="beta-overflows"),
        pytest.param(True, ["beta=True must be a finite non-zero number"], id="beta-bool"),
        pytest.param("two", ["beta='two' must be a number, e.g. beta=1.0"], id="beta-text"),
    ],
)
def test_softplus_beta_outside_its_domain(value: object, fragments: list[str]) -> None:
    refused(lambda: get_oracle("softplus").bind({"beta": value}), ["softplus: parameter ", *fragments])


def test_softplus_negative_beta_is_inside_the_domain() -> None:
    assert get_oracle("softplus").bind({"beta": "-2"})["beta"] == -2.0


def test_every_builtin_parameter_default_is_inside_its_domain() -> None:
    from oracles import all_oracles

    for o in all_oracles():
        assert o.bind() == {p.name: p.default for p in o.params}, o.name


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        pytest.param({"domain": "odd"}, ["unknown domain 'odd'", "pick from: non-negative, nonzero, positive, real"],
                     id="unknown-domain"),
        pytest.param({"default": 0.0, "domain": "positive"}, ["eps=0.0 is outside its domain", "a finite number > 0"],
                     id="default-outside"),
        pytest.param({"default": math.nan}, ["eps=nan is not finite"], id="default-nan"),
    ],
)
def test_param_declarations_are_checked(kwargs: dict[str, Any], fragments: list[str]) -> None:
    from oracles.registry import Param

    args: dict[str, Any] = {"default": 1e-7, **kwargs}
    refused(lambda: Param("eps", **args), fragments)


@pytest.mark.parametrize(
    "timeout",
    [pytest.param(math.inf, id="inf"), pytest.param(math.nan, id="nan"), pytest.param(0.0, id="zero"),
     pytest.param(-1.0, id="negative"), pytest.param(1e300, id="beyond-timeout-max")],
)
def test_cell_timeout_must_be_positive_and_finite(timeout: float) -> None:
    refused(lambda: CellSpec("exp", "numpy.exp", "numpy", "float16", "cpu", "special", timeout=timeout),
            ["timeout must be a positive, finite number of seconds", f"got {timeout!r}", "e.g. timeout = 300"])


# -- input specs and files (defects 8 and 9) --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        pytest.param("random:10000000000", ["N = 10000000000 is over the limit of 16777216 (2**24)",
                                            "exhaustive float32 is streamed"], id="random-huge"),
        pytest.param(f"random:{MAX_INPUTS + 1}", [f"N = {MAX_INPUTS + 1} is over the limit"], id="random-limit-plus-1"),
        pytest.param("normal:0:1:99999999999", ["N = 99999999999 is over the limit"], id="normal-huge"),
        pytest.param("uniform:0:1:99999999999:3", ["N = 99999999999 is over the limit"], id="uniform-huge"),
        pytest.param("uniform:-inf:1:10", ["LO must be finite"], id="uniform-minus-inf"),
        pytest.param("normal:0:nan:10", ["STD must be finite"], id="normal-std-nan"),
    ],
)
def test_generated_specs_are_bounded(text: str, fragments: list[str]) -> None:
    refused(lambda: parse_inputs(text), [f"input spec {text!r}", *fragments])


def test_the_limit_itself_is_accepted() -> None:
    assert parse_inputs(f"random:{MAX_INPUTS}").n == MAX_INPUTS


def _npy(path: Path, arr: np.ndarray) -> Path:
    np.save(path, arr, allow_pickle=True)
    return path


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def _huge_header(path: Path) -> Path:
    # a header that promises more than the limit and no data: refused from the header alone
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f2", "fortran_order": False, "shape": (MAX_INPUTS + 1,)})
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _fifo(path: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    os.mkfifo(path)
    return path


#: (how to make the file in tmp_path, spec kind, fragments of the message)
FILES: list[Any] = [
    pytest.param(lambda d: _npy(d / "e.npy", np.zeros(0, np.float16)), "npy",
                 ["npy:", "e.npy holds no inputs", "shape (0,)", "at least one value"], id="empty-array"),
    pytest.param(lambda d: _npy(d / "r.npy", np.zeros((0, 4), np.float16)), "npy",
                 ["holds no inputs", "shape (0, 4)"], id="zero-rows"),
    pytest.param(lambda d: _npy(d / "c.npy", np.zeros((3, 0), np.float16)), "npy",
                 ["holds no inputs", "shape (3, 0)"], id="zero-columns"),
    pytest.param(lambda d: _npz(d / "z.npz", x=np.zeros(0, np.float16)), "npz",
                 ["z.npz holds no inputs", "array 'x' has shape (0,)"], id="npz-zero-size"),
    pytest.param(lambda d: _npz(d / "n.npz"), "npz", ["n.npz holds no inputs", "no arrays"], id="npz-no-arrays"),
    pytest.param(lambda d: _npz(d / "o.npz", x=np.array([1, "a"], dtype=object)), "npz",
                 ["array 'x' holds Python objects (dtype object)", "never unpickled", "save numbers"],
                 id="npz-object-array"),
    pytest.param(lambda d: _npy(d / "o.npy", np.array([1, "a"], dtype=object)), "npy",
                 ["holds Python objects (dtype object)"], id="npy-object-array"),
    pytest.param(lambda d: _npy(d / "one.npy", np.ones(3, np.float16)), "npz",
                 ["one.npy' is a .npy file, not an .npz archive", "use npy:"], id="npz-on-npy"),
    pytest.param(lambda d: _npz(d / "two.npz", x=np.ones(3, np.float16)), "npy",
                 ["two.npz' is an .npz archive, not a .npy file", "use npz:"], id="npy-on-npz"),
    pytest.param(lambda d: d, "npy", ["is a directory", "give the .npy file inside it"], id="directory"),
    pytest.param(lambda d: Path("/dev/zero"), "npy", ["'/dev/zero' is not a regular file", "numpy.save"],
                 id="dev-zero"),
    pytest.param(lambda d: _fifo(d / "pipe"), "npz", ["is not a regular file"], id="fifo"),
    pytest.param(lambda d: d / "nope.npy", "npy", ["nope.npy' does not exist"], id="missing"),
    pytest.param(lambda d: _huge_header(d / "big.npy"), "npy",
                 [f"has {MAX_INPUTS + 1} elements", "over the limit of 16777216 (2**24)"], id="npy-over-limit"),
    pytest.param(lambda d: _write(d / "zero.npy", b""), "npy",
                 ["cannot read", "it is empty"], id="zero-bytes"),
    pytest.param(lambda d: _write(d / "t.npy", b"1,2,3\n"), "npy",
                 ["cannot read", "neither a .npy file nor an .npz archive"], id="text-file"),
    pytest.param(lambda d: _write(d / "bad.npz", b"PK\x03\x04garbage"), "npz",
                 ["cannot read", "as npz"], id="broken-zip"),
]


@pytest.mark.parametrize(("make", "kind", "fragments"), FILES)
def test_hostile_files_are_refused_when_parsed(tmp_path: Path, make: Callable[[Path], Path], kind: str,
                                               fragments: list[str]) -> None:
    path = make(tmp_path)
    refused(lambda: parse_inputs(f"{kind}:{path}"), fragments)


@pytest.mark.parametrize(("make", "kind", "fragments"), FILES)
def test_hostile_files_are_refused_when_read(tmp_path: Path, make: Callable[[Path], Path], kind: str,
                                             fragments: list[str]) -> None:
    # a spec re-read from stored results is not checked when parsed; reading it is
    path = make(tmp_path)
    spec = parse_inputs(f"{kind}:{path}", check_file=False)
    refused(lambda: spec.generate(get_oracle("exp"), FLOAT16), fragments)


# -- class targets: in [0, C), checked when the file is read (defect 12) --------------------------


def _targets(tmp_path: Path, oracle: str, target: np.ndarray, rows: np.ndarray | None = None) -> str:
    """An npz for ``oracle`` (logits or logp rows, and targets); 3 rows of 4 classes by default."""
    first = get_oracle(oracle).args[0].name
    rows = np.zeros((3, 4), np.float32) if rows is None else rows
    return f"npz:{_npz(tmp_path / 'rows.npz', **{first: rows, 'target': target})}"


@pytest.mark.parametrize("oracle", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize(
    ("target", "rows", "fragments"),
    [
        pytest.param(np.array([0, -1, 1]), None,
                     ["target[1] = -1 is not a class index", "takes target in [0, 4)", "of 4 columns",
                      "no ignore_index"], id="minus-one"),
        pytest.param(np.array([0, 1, 4]), None, ["target[2] = 4 is not a class index", "in [0, 4)"],
                     id="equal-to-class-count"),
        pytest.param(np.array([9, -3, 4]), None, ["target[0] = 9", "3 of 3 rows are outside"], id="first-bad-row"),
        pytest.param(np.array([0, 1, 2**63], dtype=np.uint64), None, ["target[2] = 9223372036854775808"],
                     id="huge-unsigned"),
        pytest.param(np.array([0, 1]), None, ["needs one class index per row", "shape (3,), got (2,)"],
                     id="too-few-targets"),
        pytest.param(np.array([0, 1, 2]), np.zeros(4, np.float32), ["must be 2-D (rows x width)", "shape (4,)"],
                     id="one-dimensional-rows"),
    ],
)
def test_out_of_range_targets_are_refused_naming_the_row(tmp_path: Path, oracle: str, target: np.ndarray,
                                                         rows: np.ndarray | None, fragments: list[str]) -> None:
    spec = _targets(tmp_path, oracle, target, rows)
    refused(lambda: parse_inputs(spec).generate(get_oracle(oracle), FLOAT32), [spec, *fragments])


def test_targets_inside_the_range_are_kept_as_int64(tmp_path: Path) -> None:
    spec = _targets(tmp_path, "cross_entropy", np.array([0, 3, 2], dtype=np.uint8))
    inputs = parse_inputs(spec).generate(get_oracle("cross_entropy"), FLOAT32)
    target = inputs.batches[0].arrays[1]
    assert target.dtype == np.int64 and target.tolist() == [0, 3, 2]


@pytest.mark.parametrize("oracle", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("spec", ["special", "exhaustive", "random:500:3", "normal:0:5:300"])
def test_builtin_generators_make_targets_inside_the_range(oracle: str, spec: str) -> None:
    inputs = parse_inputs(spec).generate(get_oracle(oracle), FLOAT16)
    for batch in inputs.batches:
        rows, width = batch.arrays[0].shape
        target = batch.arrays[1]
        assert target.shape == (rows,) and 0 <= int(target.min()) and int(target.max()) < width


# -- suites (defects 5, 7, 9 and 12) ----------------------------------------------------------------

CASE = """
[[case]]
oracle = "exp"
impls = ["numpy.exp"]
dtypes = ["float16"]
inputs = ["special"]
"""


def suite(top: str = "", case: str = "") -> str:
    """A suite with schema 1, the top-level lines ``top`` and ``case`` added to its case."""
    return "schema = 1\n" + top + CASE + case


SUITES = [
    pytest.param(suite('name = "../../../tmp/x"\n'),
                 ["name '../../../tmp/x' is not a valid suite name", NAME_RULE, 'did you mean name = "tmp-x"?'],
                 id="name-traversal"),
    pytest.param(suite('name = "/etc/passwd"\n'), ["name '/etc/passwd' is not a valid", 'name = "etc-passwd"'],
                 id="name-absolute"),
    pytest.param(suite('name = ".hidden"\n'), ["name '.hidden' is not a valid", 'name = "hidden"'], id="name-dot"),
    pytest.param(suite('name = ".."\n'), ["name '..' is not a valid", 'name = "suite"'], id="name-dotdot"),
    pytest.param(suite('name = ""\n'), ["name '' is not a valid"], id="name-empty"),
    pytest.param(suite('name = "-x"\n'), ["name '-x' is not a valid", 'name = "x"'], id="name-option-like"),
    pytest.param(suite('name = "a b"\n'), ["name 'a b' is not a valid", 'name = "a-b"'], id="name-space"),
    pytest.param(suite(f'name = "{"n" * 65}"\n'), ["is not a valid suite name", f'name = "{"n" * 64}"'],
                 id="name-too-long"),
    pytest.param(suite("name = 7\n"), ["name must be a string, got 7", 'write name = "7"'], id="name-number"),
    pytest.param(suite("name = true\n"), ["name must be a string, got true"], id="name-bool"),
    pytest.param(CASE, ["missing schema", "write schema = 1"], id="missing-schema"),
    pytest.param("schema = true\n" + CASE, ["schema must be the integer 1, got true", "write schema = 1"],
                 id="schema-bool"),
    pytest.param('schema = "1"\n' + CASE, ["schema must be the integer 1, got \"1\""], id="schema-string"),
    pytest.param(suite().replace('dtypes = ["float16"]', 'dtypes = "float16"'),
                 ["dtypes must be a list of strings, got the string 'float16'", 'write dtypes = ["float16"]'],
                 id="dtypes-string"),
    pytest.param(suite().replace('impls = ["numpy.exp"]', 'impls = "*"'),
                 ["impls must be a list of strings", 'write impls = ["*"]'], id="impls-string"),
    pytest.param(suite().replace('inputs = ["special"]', 'inputs = "special"'),
                 ['write inputs = ["special"]'], id="inputs-string"),
    pytest.param(suite('imports = "mine.py"\n'), ['write imports = ["mine.py"]'], id="imports-string"),
    pytest.param(suite().replace('dtypes = ["float16"]', "dtypes = [16]"),
                 ["dtypes must be a non-empty list of strings, got [16]", 'e.g. dtypes = ["float16", "bfloat16"]'],
                 id="dtypes-numbers"),
    pytest.param(suite().replace('oracle = "exp"', "oracle = 3"), ["oracle must be a string, got 3"],
                 id="oracle-number"),
    pytest.param(suite(case="budget = { max_ulp = inf }\n"),
                 ["case 1 (exp).budget: max_ulp must be a finite number, got inf"], id="max-ulp-inf"),
    pytest.param(suite(case="budget = { max_ulp = nan }\n"), ["max_ulp must be a non-negative number, got nan"],
                 id="max-ulp-nan"),
    pytest.param(suite(case="budget = { max_ulp = { float16 = -inf } }\n"), ["got -inf"], id="max-ulp-dtype-inf"),
    pytest.param(suite(case="budget = { allow = { lost_to_zero = nan } }\n"), ["allow.lost_to_zero", "got nan"],
                 id="allow-nan"),
    pytest.param(suite(case="budget = { allow = { lost_to_zero = inf } }\n"),
                 ["allow.lost_to_zero = inf is not a count", "write true"], id="allow-inf"),
    pytest.param(suite(case="budget = 3\n"), ["budget must be a table such as { max_ulp = 1 }, got 3"],
                 id="budget-number"),
    pytest.param(suite(case="timeout = inf\n"), ["timeout must be a positive number of seconds, got inf"],
                 id="timeout-inf"),
    pytest.param(suite(case="timeout = nan\n"), ["timeout must be a positive number of seconds, got nan"],
                 id="timeout-nan"),
    pytest.param(suite(case="timeout = true\n"), ["timeout must be a positive number of seconds, got true"],
                 id="timeout-bool"),
    pytest.param(suite().replace('"exp"', '"softplus"').replace('"numpy.exp"', '"numpy.logaddexp"')
                 + "params = { beta = 0 }\n", ["parameter beta=0 is outside its domain", "finite non-zero"],
                 id="beta-zero"),
    pytest.param(suite().replace('"exp"', '"softplus"').replace('"numpy.exp"', '"numpy.logaddexp"')
                 + "params = { beta = nan }\n", ["parameter beta=nan is not finite"], id="beta-nan"),
    pytest.param(suite().replace('"exp"', '"softplus"').replace('"numpy.exp"', '"numpy.logaddexp"')
                 + "params = { beta = true }\n", ["parameter beta=True must be a finite non-zero number"],
                 id="beta-bool"),
]


@pytest.mark.parametrize(("body", "fragments"), SUITES)
def test_hostile_suites_are_refused(tmp_path: Path, body: str, fragments: list[str]) -> None:
    path = tmp_path / "suite.toml"
    path.write_text(body, encoding="utf-8")
    refused(lambda: load_suite(path), fragments)


@pytest.mark.parametrize(
    ("make", "fragments"),
    [
        pytest.param(lambda d: _write(d / "s.toml", b"schema = 1\nname = \"caf\xe9\"\n"),
                     ["is not UTF-8 text (byte 0xe9 at offset 22)", "save it as UTF-8"], id="latin-1"),
        pytest.param(lambda d: _write(d / "s.toml", b"\xff\xfe\x00s"),
                     ["is not UTF-8 text (byte 0xff at offset 0)"], id="utf-16-bom"),
        pytest.param(lambda d: d, ["is a directory", "give the .toml file inside it"], id="directory"),
        pytest.param(lambda d: Path("/dev/zero"), ["'/dev/zero' is not a regular file"], id="dev-zero"),
        pytest.param(lambda d: _fifo(d / "pipe.toml"), ["is not a regular file"], id="fifo"),
    ],
)
def test_unreadable_suite_files_are_one_line(tmp_path: Path, make: Callable[[Path], Path],
                                              fragments: list[str]) -> None:
    path = make(tmp_path)
    refused(lambda: load_suite(path), ["suite file ", *fragments])


@pytest.mark.parametrize(
    ("text", "name"),
    [
        pytest.param("frameworks", "frameworks", id="plain"),
        pytest.param("../../../tmp/x", "tmp-x", id="traversal"),
        pytest.param("my suite (v2)", "my-suite-v2", id="spaces"),
        pytest.param("...", "suite", id="nothing-left"),
        pytest.param("x" * 100, "x" * 64, id="long"),
    ],
)
def test_suite_name_suggestions_are_valid_names(tmp_path: Path, text: str, name: str) -> None:
    assert suite_name(text) == name
    path = tmp_path / "s.toml"
    path.write_text(suite(f'name = "{name}"\n'), encoding="utf-8")
    assert load_suite(path).name == name


def test_default_name_from_an_odd_file_name_is_a_valid_name(tmp_path: Path) -> None:
    path = tmp_path / ".my suite.toml"
    path.write_text(suite(), encoding="utf-8")
    assert load_suite(path).name == "my-suite"


# -- end to end: exit 2, one line on stderr, nothing written ------------------------------------

COMMON = ["-q", "--no-cache", "-j", "1", "--no-progress"]


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FPHARNESS_CACHE_DIR", str(tmp_path / "cache"))
    np.save(tmp_path / "empty.npy", np.zeros(0, np.float16))
    np.savez(tmp_path / "ce.npz", logits=np.zeros((2, 3), np.float32), target=np.array([0, 3]))
    (tmp_path / "escape.toml").write_text(suite(f'name = "{tmp_path}/escaped"\n'), encoding="utf-8")
    (tmp_path / "latin.toml").write_bytes(b"schema = 1\nname = \"caf\xe9\"\n")
    return tmp_path


CLI = [
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "--inputs", "special", "--max-ulp", "nan"],
                 ["max_ulp must be a non-negative number, got nan"], id="max-ulp-nan"),
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "--inputs", "special", "--max-ulp", "inf"],
                 ["max_ulp must be a finite number, got inf"], id="max-ulp-inf"),
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "--inputs", "special", "--allow", "lost_to_zero=.1e400"],
                 ["allow.lost_to_zero = inf is not a count"], id="allow-inf"),
    pytest.param(["check", "numpy.logaddexp", "--dtype", "float16", "--inputs", "special", "--param", "beta=0"],
                 ["beta='0' is outside its domain"], id="param-beta-zero"),
    pytest.param(["check", "numpy.logaddexp", "--dtype", "float16", "--inputs", "special", "--param", "beta=inf"],
                 ["beta='inf' is not finite"], id="param-beta-inf"),
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "--inputs", "special", "--timeout", "inf"],
                 ["timeout must be a positive, finite number of seconds", "got inf"], id="timeout-inf"),
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "--inputs", "random:10000000000"],
                 ["over the limit of 16777216"], id="random-huge"),
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "--inputs", "npy:empty.npy"],
                 ["npy:empty.npy holds no inputs"], id="empty-npy"),
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "--inputs", "npy:/dev/zero"],
                 ["'/dev/zero' is not a regular file"], id="dev-zero"),
    pytest.param(["check", "numpy.exp", "--dtype", "float16", "--inputs", "npz:empty.npy"],
                 ["is a .npy file, not an .npz archive: use npy:empty.npy"], id="npz-on-npy"),
    pytest.param(["check", "numpy.cross_entropy", "--dtype", "float32", "--inputs", "npz:ce.npz"],
                 ["target[1] = 3 is not a class index", "[0, 3)"], id="target-out-of-range"),
    pytest.param(["run", "escape.toml"], ["is not a valid suite name", 'did you mean name = "'], id="suite-name"),
    pytest.param(["run", "latin.toml"], ["is not UTF-8 text"], id="suite-not-utf8"),
]


@pytest.mark.parametrize(("argv", "fragments"), CLI)
def test_cli_exits_2_with_one_line(in_tmp: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                                   fragments: list[str]) -> None:
    before = {p.name for p in in_tmp.iterdir()}
    code = main([*argv[:2], *COMMON, *argv[2:], "--json", str(in_tmp / "out.json")])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fpharness: error: "), err
    for fragment in fragments:
        assert fragment in lines[0]
    assert {p.name for p in in_tmp.iterdir()} == before, "nothing is written for a refused command"
