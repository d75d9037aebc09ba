"""What one bench.harness run measures, from its command line.

`latest` is the comparison the docs quote, so only a full run may write it: --quick
writes `quick`, and a run narrowed to some configurations or changed by --variant
or --set must be named, with a name no committed result has.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from . import configs as cfg

LATEST, QUICK = "latest", "quick"
RESULTS = Path(__file__).resolve().parent / "results"
WARMUP_SECONDS = 2


@dataclass(frozen=True)
class Plan:
    rounds: int
    seconds: int
    clients: tuple[int, ...]
    pages: tuple[str, ...]
    quick: bool
    only: tuple[str, ...] = ()
    variants: tuple[tuple[str, str, dict[str, str]], ...] = field(default=())
    # Variables set in every configuration (a proposed default, measured alike).
    everywhere: tuple[tuple[str, str], ...] = field(default=())
    name: str = LATEST  # results/<name>.{json,md,png}
    render_only: bool = False

    def estimate_minutes(self, configurations: int) -> float:
        per_run = self.seconds + WARMUP_SECONDS + 0.5
        runs = self.rounds * configurations * len(self.pages) * len(self.clients)
        return (runs * per_run + self.rounds * configurations * 4) / 60


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.harness")
    add = parser.add_argument
    add("--quick", action="store_true", help="1 round, 16 clients, list page")
    add("--rounds", type=int, help="default 3 (--quick: 1)")
    add("--seconds", type=int, default=8, help="per run, after a 2 s warm-up")
    add("--clients", default="16,256,1000")
    add("--pages", default="list,detail", help="list, detail or both")
    add("--configs", default="", help="keys to run, e.g. 1,3,6")
    add(
        "--variant",
        action="append",
        default=[],
        help="a configuration (default 6) with variables changed: "
        "'[BASE/]label:KEY=VALUE,...'",
    )
    add(
        "--set",
        action="append",
        default=[],
        help="KEY=VALUE for every configuration, e.g. GUNICORN_CMD_ARGS=--reuse-port",
    )
    add("--name", help=f"results/NAME.{{json,md,png}} (default {LATEST}, or {QUICK})")
    add(
        "--render",
        action="store_true",
        help="rebuild results/NAME.{md,png} from results/NAME.json; no load",
    )
    return parser


def _name(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    defaults = (parser.get_default("clients"), parser.get_default("pages"))
    narrowed = args.configs or args.variant or args.set
    narrowed = narrowed or (args.clients, args.pages) != defaults
    name: str = args.name or (QUICK if args.quick else LATEST)
    if not name.replace("-", "").replace("_", "").isalnum():
        parser.error("--name takes letters, digits, - and _")
    partial = not args.render and (args.quick or narrowed)
    if partial and name == LATEST:
        parser.error(
            f"results/{LATEST}.* is the full comparison the docs quote: "
            "name this run with --name"
        )
    if partial and name != QUICK and (RESULTS / f"{name}.json").exists():
        # bench/README.md quotes every result file there is: a partial run must
        # not change one under its name.
        parser.error(
            f"results/{name}.json exists and bench/README.md quotes it: "
            "give this quick or narrowed run a new --name"
        )
    return name


def _list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def plan_parse(argv: list[str] | None) -> Plan:
    parser = _parser()
    args = parser.parse_args(argv)
    name = _name(args, parser)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    split = [item.partition("=") for item in args.set]
    if any(not key or not sep for key, sep, _ in split):
        parser.error("--set takes KEY=VALUE")
    try:
        clients = tuple(int(c) for c in _list(args.clients))
        variants = tuple(cfg.variant_parse(v) for v in args.variant)
    except ValueError as error:
        parser.error(str(error))
    if rounds < 1 or args.seconds < 1 or not clients or min(clients) < 1:
        parser.error("--rounds, --seconds and --clients need positive numbers")
    pages = _list(args.pages)
    if not pages or not set(pages) <= {"list", "detail"}:
        parser.error("--pages takes list, detail, or list,detail")
    return Plan(
        rounds=rounds,
        seconds=args.seconds,
        clients=(16,) if args.quick else clients,
        pages=("list",) if args.quick else pages,
        quick=args.quick,
        only=_list(args.configs),
        variants=variants,
        everywhere=tuple((key, value) for key, _, value in split),
        name=name,
        render_only=args.render,
    )
