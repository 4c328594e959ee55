"""``fpharness check IMPL --oracle NAME --dtype D ...``: judge one implementation."""

from __future__ import annotations

import argparse
from typing import Any

from harness.cli.base import command
from harness.cli.dry_run import add_dry_run_option, dry_run
from harness.cli.options import add_exec_options, check_exec_outputs, exec_options, parse_params
from harness.cli.session import execute
from harness.frameworks.catalogue import get_impl
from harness.frameworks.registry import FRAMEWORKS
from harness.judgement.consistency import CHECKS
from harness.plan.cells import COTANGENTS, MODES, Budget, CellSpec, passes
from harness.plan.consistency import checks_for, consistency_params, signature
from harness.plan.inputs import parse_inputs
from oracles.errors import UsageError
from oracles.formats import get_format
from oracles.registry import get_oracle


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("impl", metavar="IMPL",
                   help="a built-in id (see `fpharness impls`), package.module:function or path/to/file.py:function")
    p.add_argument("--oracle", help="the oracle to judge against (default: the built-in's own; a custom"
                                    " implementation checked with --consistency alone may have none)")
    p.add_argument("--framework", choices=FRAMEWORKS, help="which tensors a custom implementation takes")
    p.add_argument("--dtype", action="append", required=True, metavar="D",
                   help="input format: float16, bfloat16, float32, float64 (repeatable)")
    p.add_argument("--device", action="append", metavar="DEV", help="cpu or cuda (repeatable; default cpu)")
    p.add_argument("--inputs", action="append", metavar="SPEC",
                   help="exhaustive, special, random:N[:SEED], normal:MEAN:STD:N[:SEED], uniform:LO:HI:N[:SEED],"
                        " npy:PATH, npz:PATH (repeatable; default: special and random:10000)")
    p.add_argument("--param", action="append", default=[], metavar="K=V", help="oracle parameter, e.g. beta=2")
    p.add_argument("--max-ulp", type=float, metavar="X", help="fail cells whose max ULP error exceeds X")
    p.add_argument("--max-bits", type=float, metavar="B", help="fail cells whose max bits of error exceed B")
    p.add_argument("--atol", metavar="A", help='absolute tolerance as in torch.testing.assert_close, or "torch"')
    p.add_argument("--rtol", metavar="R", help='relative tolerance as in torch.testing.assert_close, or "torch"')
    p.add_argument("--tolerance", choices=["torch"],
                   help="torch.testing.assert_close's default atol and rtol for the output dtype")
    p.add_argument("--allow", action="append", default=[], metavar="CAT[=N]",
                   help="allow an incidence category (all, or N elements, or a fraction below 1)")
    p.add_argument("--timeout", type=float, default=300.0, help="per-cell timeout in seconds (default 300)")
    p.add_argument("--grad", nargs="?", const="", action="append", metavar="ARG",
                   help="judge the gradient (autodiff's vector-Jacobian product) instead of the forward values;"
                        " ARG picks the argument (repeatable; default: every real argument)")
    p.add_argument("--mode", choices=MODES, help="forward (the default), grad (as --grad), or both passes")
    p.add_argument("--cotangent", action="append", choices=COTANGENTS, metavar="C",
                   help="a gradient's cotangent: ones (loss.backward(), the default), random or special (repeatable)")
    p.add_argument("--consistency", nargs="?", const="", action="append", metavar="CHECK",
                   help="check that the same input gives the same answer wherever it sits, and the function's"
                        f" properties (no oracle needed): {', '.join(CHECKS)} (repeatable; default: every one that"
                        " applies). Alone it runs only these checks; add --mode to judge accuracy too")
    p.add_argument("--consistency-ulp", type=float, metavar="X",
                   help="ULPs two answers may differ by in the consistency checks (default: each check's own, 0 for"
                        " most)")
    add_exec_options(p)
    add_dry_run_option(p)


@command("check", "judge one implementation against an oracle")(_configure)
def check_command(args: argparse.Namespace) -> int:
    """Judge the implementation on every dtype x device x input set; exit 0 when every cell
    is within budget, 1 otherwise, 2 (before anything runs) on a bad option or path: an
    output that is a directory or an input (an npy/npz file, the implementation's source).
    With ``--dry-run``: validate, print the plan, exit 0; nothing runs."""
    options = exec_options(args)
    custom = ":" in args.impl
    if args.consistency_ulp is not None and args.consistency is None:
        raise UsageError("--consistency-ulp is the consistency checks' tolerance: add --consistency")
    accuracy = args.consistency is None or args.mode is not None or args.grad is not None
    if not accuracy:
        given = [flag for flag, value in (("--max-ulp", args.max_ulp), ("--max-bits", args.max_bits),
                                          ("--atol", args.atol), ("--rtol", args.rtol), ("--tolerance", args.tolerance))
                 if value is not None] + (["--allow"] if args.allow else [])
        if given:
            raise UsageError(f"{given[0]} is an accuracy budget, and --consistency alone judges no accuracy: use"
                             " --consistency-ulp X for the ULPs two answers may differ by, or add --mode forward")
    if custom:
        if not args.framework:
            raise UsageError("a custom implementation needs --framework numpy|torch|tensorflow|keras|jax (and --oracle"
                             " NAME, unless only --consistency is checked)")
        if not args.oracle and accuracy:
            raise UsageError("a custom implementation needs --oracle NAME to be judged against; without an oracle,"
                             " check only its consistency: --consistency")
        oracle, framework = signature(args.oracle or ""), args.framework
    else:
        impl = get_impl(args.impl)
        oracle = get_oracle(args.oracle or impl.oracle)
        framework = impl.framework
        if impl.oracle != oracle.name:
            raise UsageError(f"{impl.id} implements {impl.oracle}, not {oracle.name}; drop --oracle or pass --oracle {impl.oracle}")
    bound = oracle.bind(parse_params(args.param))
    params = tuple(sorted(bound.items()))
    allow: dict[str, object] = {}
    for item in args.allow:
        cat, _, value = item.partition("=")
        try:
            allow[cat] = True if not value else _count_or_fraction(value)
        except ValueError:
            raise UsageError(
                f"--allow {item!r}: N must be a count or a fraction below 1, e.g. {cat}=10 or {cat}=0.01"
            ) from None
    if not args.timeout > 0:  # join(0) would race the implementation instead of waiting
        raise UsageError(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    budget = Budget.build(args.max_ulp, allow, max_bits=args.max_bits, atol=_tolerance("--atol", args.atol),
                          rtol=_tolerance("--rtol", args.rtol), tolerance=args.tolerance)
    dtypes = [get_format(d).name for d in args.dtype]
    devices = args.device or ["cpu"]
    inputs = [parse_inputs(s).text for s in (args.inputs or ["special", "random:10000"])]
    wrt = [w for w in (args.grad or []) if w]
    mode = args.mode or ("grad" if args.grad is not None else "forward")
    if mode == "forward" and args.grad is not None:
        raise UsageError("--mode forward judges no gradient: drop --grad, or use --mode both")
    if mode == "forward" and args.cotangent:
        raise UsageError("--cotangent is a gradient's: add --grad (or --mode grad|both)")
    judged = passes(oracle, mode, wrt, args.cotangent or ["ones"]) if accuracy else []
    cells = [
        CellSpec(oracle.name, args.impl, framework, dtype, device, spec, params, budget, custom, args.timeout,
                 wrt=w, cotangent=cot)
        for w, cot in judged for dtype in dtypes for device in devices for spec in inputs
    ]
    if args.consistency is not None:
        cells += _consistency_cells(args, oracle, framework, custom, dtypes, devices, inputs, bound)
    check_exec_outputs(options, cells)
    if args.dry_run:
        return dry_run(cells, f"check {args.impl}", options)
    return execute(cells, options).exit_code


def _consistency_cells(args: argparse.Namespace, oracle: Any, framework: str, custom: bool, dtypes: list[str],
                       devices: list[str], inputs: list[str], bound: dict[str, Any]) -> list[CellSpec]:
    """The cells of ``--consistency``: one per check, dtype, device and input set."""
    requested = [c for c in args.consistency if c] or None
    if args.consistency_ulp is not None and not args.consistency_ulp >= 0:
        raise UsageError(f"--consistency-ulp must be a non-negative number of ULPs, got {args.consistency_ulp:g}")
    budget = Budget.build(args.consistency_ulp)
    cparams = consistency_params(oracle, bound)
    cells: list[CellSpec] = []
    for device in devices:
        checks = checks_for(oracle, cparams, device, requested)
        if requested and "device" in requested and device != "cuda" and "cuda" not in devices:
            raise UsageError("--consistency device compares CPU with CUDA: add --device cuda")
        cells += [CellSpec(oracle.name, args.impl, framework, dtype, device, spec, tuple(sorted(cparams.items())),
                           budget, custom, args.timeout, check=check)
                  for check in checks for dtype in dtypes for spec in inputs]
    if not cells:
        raise UsageError("no consistency check applies to these cells")
    return cells


def _count_or_fraction(text: str) -> int | float:
    """``10`` is a count, ``0.01`` or ``1e-3`` a fraction; Budget.build judges the value."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def _tolerance(option: str, text: str | None) -> float | str | None:
    """``torch`` or a number; Budget.build judges the value."""
    if text is None or text == "torch":
        return text
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"{option} {text!r}: give a number such as 1e-5, or torch") from None
