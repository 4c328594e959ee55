"""``fpharness oracles`` and ``fpharness impls``: the registries, generated, never typed."""

from __future__ import annotations

import argparse
import json

from harness.cli.base import EXIT_OK, command
from harness.frameworks.adapters import get_backend
from harness.frameworks.registry import IMPLS
from oracles import all_oracles, get_oracle
from reports.terminal import print_registry


def _configure_oracles(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the registry as JSON")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table (for docs)")


@command("oracles", "list the oracles, their arguments, parameters and domains")(_configure_oracles)
def oracles_command(args: argparse.Namespace) -> int:

    items = all_oracles()
    if args.json:
        print(json.dumps([
            {
                "name": o.name,
                "kind": o.kind,
                "args": [str(a) for a in o.args],
                "params": {p.name: p.default for p in o.params},
                "domain": o.domain,
                "doc": o.doc,
                "version": o.version,
            }
            for o in items
        ], indent=2))
        return EXIT_OK
    if args.markdown:
        print("| oracle | kind | signature | domain | meaning |")
        print("|---|---|---|---|---|")
        for o in items:
            print(f"| `{o.name}` | {o.kind} | `{o.signature}` | {o.domain} | {o.doc} |")
        return EXIT_OK

    print_registry(
        "oracles",
        ["oracle", "kind", "signature", "domain", "meaning"],
        [[o.name, o.kind, o.signature, o.domain, o.doc] for o in items],
    )
    return EXIT_OK


def _configure_impls(p: argparse.ArgumentParser) -> None:
    p.add_argument("--oracle", help="only implementations of this oracle")
    p.add_argument("--framework", help="only this framework")
    p.add_argument("--json", action="store_true", help="print as JSON")


@command("impls", "list the built-in implementations and the oracle each is judged against")(_configure_impls)
def impls_command(args: argparse.Namespace) -> int:

    if args.oracle:
        get_oracle(args.oracle)
    items = [i for i in IMPLS if (not args.oracle or i.oracle == args.oracle)
             and (not args.framework or i.framework == args.framework)]
    if args.json:
        print(json.dumps([{"id": i.id, "framework": i.framework, "oracle": i.oracle, "doc": i.doc} for i in items], indent=2))
        return EXIT_OK

    status: dict[str, str] = {}
    for fw in {i.framework for i in items}:
        status[fw] = get_backend(fw).unavailable() or "available"
    print_registry(
        "implementations",
        ["implementation", "oracle", "calls", "framework"],
        [[i.id, i.oracle, i.doc, status[i.framework]] for i in items],
    )
    return EXIT_OK
