"""``--dry-run`` of ``fpharness run`` and ``fpharness check``: validate the plan and print it;
run nothing, write nothing.

What a dry run checks is what a real run checks before its first cell: the suite or the
options (parsed by the command itself), the output paths, and :meth:`Runner.validate`
(unknown implementations, gradients of arguments that are not real, exhaustive inputs that
cannot be streamed, a user's implementation that cannot be imported). It evaluates no
oracle, calls no implementation, imports no framework (so it takes a second, on any
machine, GPU or not) and writes no file: ``scripts/gpu_check.sh`` uses it to validate the
GPU suite where there is no GPU.

The plan is shown as counts, not as the cells one by one (the GPU suite has hundreds): a
headline (what, how many cells, of which passes), then the cells by device, framework,
dtype and input set, the streamed cells and their chunks, one line per oracle with its
implementations and its cells per pass and consistency check, and the files a real run
would write. With ``-q`` only the headline is printed.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Iterable, Sequence

from harness.cli.base import EXIT_OK
from harness.cli.session import ExecOptions
from harness.execution.runner import Runner
from harness.plan.cells import CellSpec
from harness.plan.inputs import StreamedPatterns, parse_inputs
from oracles.formats import get_format
from oracles.registry import get_oracle

__all__ = ["add_dry_run_option", "dry_run", "plan_lines"]

#: how the plan names each pass (CellSpec.pass_)
_PASS_WORDS = {"forward": "forward", "grad": "gradient", "consistency": "consistency"}


def add_dry_run_option(p: argparse.ArgumentParser) -> None:
    """The ``--dry-run`` flag of a command that runs cells."""
    p.add_argument("--dry-run", action="store_true",
                   help="validate and print the plan (cells by pass, device, framework, dtype, input set and"
                        " oracle; the files a run would write); run nothing and write nothing (-q: one line)")


def _tally(values: Iterable[str]) -> str:
    """``cuda 412`` or ``jax 196, torch 216``: each value once, in first-seen order, with its count."""
    return ", ".join(f"{value} {count:,}" for value, count in Counter(values).items())


def _streamed(cell: CellSpec) -> int:
    """How many chunks ``cell``'s inputs stream in (0: held in memory)."""
    fmt = get_format(cell.dtype)
    if cell.check or not parse_inputs(cell.inputs, check_file=False).streams(fmt):
        return 0
    return len(StreamedPatterns(fmt, get_oracle(cell.oracle)))


def _passes(cells: Sequence[CellSpec]) -> str:
    counts = Counter(c.pass_ for c in cells)
    return ", ".join(f"{counts[p]:,} {word}" for p, word in _PASS_WORDS.items() if counts[p])


def _oracle_line(subject: str, cells: Sequence[CellSpec], width: int) -> str:
    """``    exp   12 forward, 12 gradient; consistency device 6  (jax.exp, torch.exp)``"""
    accuracy = _passes([c for c in cells if not c.check])
    checks = Counter(c.check for c in cells if c.check)
    consistency = ("consistency " + ", ".join(f"{check} {n:,}" for check, n in checks.items())) if checks else ""
    judged = "; ".join(part for part in (accuracy, consistency) if part)
    return f"    {subject:<{width}}  {judged}  ({', '.join(sorted({c.impl for c in cells}))})"


def plan_lines(title: str, cells: Sequence[CellSpec], outputs: Sequence[str] = (), executor: str = "local") -> list[str]:
    """The plan of ``cells`` as lines of text; the first one alone says what was validated.

    ``title`` names what is planned (``suite gpu (suites/gpu.toml)``), ``outputs`` are the
    files a real run would write, ``executor`` where its cells would run (shown unless local). Pure: it evaluates, imports and writes nothing."""
    cells_word = "cell" if len(cells) == 1 else "cells"
    head = f"dry run: {title}: {len(cells):,} {cells_word}, valid ({_passes(cells) or 'none'}); nothing was run or written"
    lines = [head]
    if not cells:
        return lines
    lines += [
        f"  devices      {_tally(c.device for c in cells)}",
        f"  frameworks   {_tally(c.framework for c in cells)}",
        f"  dtypes       {_tally(c.dtype for c in cells)}",
        f"  inputs       {_tally(c.inputs for c in cells)}",
    ]
    chunks = [(c, n) for c in cells if (n := _streamed(c))]
    if chunks:
        total = sum(n for _, n in chunks)
        lines.append(f"  streamed     {len(chunks):,} {'cell' if len(chunks) == 1 else 'cells'} on every 32-bit pattern"
                     f" (2**32 inputs each), in {total:,} chunks")
    by_subject: dict[str, list[CellSpec]] = {}
    for cell in cells:
        by_subject.setdefault(cell.oracle or cell.impl, []).append(cell)
    width = max(len(s) for s in by_subject)
    lines.append("  per oracle (cells per pass and consistency check; implementations):")
    lines += [_oracle_line(subject, group, width) for subject, group in by_subject.items()]
    if executor != "local":
        lines.append(f"  executor     {executor} (docs/cluster.md)")
    if outputs:
        lines.append(f"  would write  {', '.join(outputs)}")
    return lines


def dry_run(cells: Sequence[CellSpec], title: str, options: ExecOptions) -> int:
    """Validate ``cells`` as a run with ``options`` would before its first cell (raising the
    same one-line :class:`~oracles.errors.UsageError`), print the plan with the files it
    would write and where it would run (only its headline with ``quiet``) and return exit
    code 0. Runs and writes nothing."""
    runner = Runner()
    try:
        runner.validate(cells)
    finally:
        runner.close()  # the isolated process, if a user's implementation was imported there
    outputs = [path for path in (options.json_path, options.html_path) if path]
    lines = plan_lines(title, cells, outputs, options.executor.id)
    print("\n".join(lines[:1] if options.quiet else lines))
    return EXIT_OK
