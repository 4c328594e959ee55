"""``fpharness train SUITE.toml``: a suite's training scenarios beside their float64 shadows.

Exit 0 when every scenario stayed finite, 1 when one went non-finite or failed mid-run, 2
on a usage error, which includes a scenario that cannot start (its model function fails,
its layers cannot run in float64, its data does not fit): every scenario is checked before
any trains.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from harness.cli.base import command
from harness.cli.options import Input, Output, check_outputs
from harness.execution.progress import Progress
from harness.execution.training import run_scenarios
from harness.judgement.training import ScenarioResult
from harness.plan.suite import load_suite
from harness.record.results import Results, now, run_info
from oracles.errors import UsageError, choices
from reports.html import write_html
from reports.training import render_scenarios


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("suite", metavar="SUITE.toml", help="a suite file with [[scenario]] tables, e.g. "
                   "suites/seed_training.toml")
    p.add_argument("--scenario", metavar="NAME", action="append",
                   help="run only this scenario (repeat for more; a fix runs with what it fixes only if named too)")
    p.add_argument("--step", metavar="K", type=int,
                   help="stop after step K and print every layer's tensors at that step against the shadow's "
                   "(what a verdict's repro command does)")
    p.add_argument("--json", metavar="PATH", help="write results (schema 4) here (default results/SUITE.json; with "
                   "--step, none unless given)")
    p.add_argument("--html", metavar="PATH", help="write a self-contained HTML report here")
    p.add_argument("-j", "--jobs", type=int, default=1,
                   help="scenarios trained at once, each in its own process (default 1: the frameworks use every "
                   "core themselves)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


@command("train", "train a suite's scenarios under their precision policies beside a float64 shadow: exit 0 when all "
         "stay finite, 1 otherwise, 2 on usage errors")(_configure)
def train_command(args: argparse.Namespace) -> int:
    """Check every chosen scenario, train them, write and show the verdicts."""
    suite = load_suite(args.suite)
    if not suite.scenarios:
        raise UsageError(f"{args.suite} has no [[scenario]] tables; fpharness train runs scenarios (README "
                         f"'Training scenarios'), and its [[case]] tables run with: fpharness run {args.suite}")
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    if args.step is not None and args.step < 1:
        raise UsageError(f"--step counts optimizer steps from 1, got {args.step}")
    scenarios = list(suite.scenarios)
    if args.scenario:
        names = [s.name for s in scenarios]
        for name in args.scenario:
            if name not in names:
                raise UsageError(f"--scenario {name!r}: {args.suite} has no such scenario; {choices(names, given=name)}")
        scenarios = [s for s in scenarios if s.name in args.scenario]
    if args.step is not None:
        longest = max(s.steps for s in scenarios)
        if args.step > longest:
            raise UsageError(f"--step {args.step} is past the end: the scenarios run at most {longest} steps")
    # a look at one step (a verdict's repro) does not replace the suite's results unless asked
    json_path = args.json or (None if args.step is not None else str(Path("results") / f"{suite.name}.json"))
    inputs = [Input("the suite file", args.suite), *(Input("a module the suite imports", p) for p in suite.imports)]
    check_outputs([Output("--json", json_path, "results.json") if json_path else None,
                   Output("--html", args.html, "report.html") if args.html else None], inputs)
    started = now()
    bar = Progress("scenarios", enabled=False if (args.quiet or args.no_progress) else None)
    bar.start(len(scenarios))

    finished: list[ScenarioResult] = []

    def arrived(result: ScenarioResult) -> None:
        finished.append(result)
        bar.advance()

    try:
        results = run_scenarios(scenarios, jobs=args.jobs, until=args.step, progress=bar.describe, on_result=arrived)
    except KeyboardInterrupt:
        bar.stop()
        order = {s.name: i for i, s in enumerate(scenarios)}
        done = sorted(finished, key=lambda r: order[r.name])
        if done:
            _write(_results(started, suite.name, done, interrupted=True), json_path, args.html)
        print(f"interrupted: {len(done)} of {len(scenarios)} scenario(s) had finished"
              + (f" and are in {json_path}" if done and json_path else ""), file=sys.stderr)
        return 130
    finally:
        bar.stop()
    out = _results(started, suite.name, results)
    _write(out, json_path, args.html)
    if not args.quiet:
        print(render_scenarios(results, step=args.step))
        if json_path:
            print(f"results: {json_path}")
        if args.html:
            print(f"report: {args.html}")
    return out.exit_code


def _results(started: str, suite: str, results: list[ScenarioResult], *, interrupted: bool = False) -> Results:
    info = run_info(started, [], command=" ".join(["fpharness", *sys.argv[1:]]))
    versions = {r.framework if r.backend in ("", r.framework) else f"{r.framework}/{r.backend}": r.version
                for r in results if r.version}
    extra = {**info.extra, "suite": suite, **({"interrupted": True} if interrupted else {})}
    return Results(replace(info, frameworks=dict(versions), extra=extra), (), tuple(results))


def _write(out: Results, json_path: str | None, html_path: str | None) -> None:
    """Write the results and the report (each atomically); a write that fails is one line."""
    for option, path, write in (("--json", json_path, lambda p: out.write(p)),
                                ("--html", html_path, lambda p: write_html([out], Path(p)))):
        if not path:
            continue
        try:
            write(path)
        except OSError as exc:
            raise UsageError(f"{option} {path!r}: cannot write it ({exc.strerror or exc})") from None
