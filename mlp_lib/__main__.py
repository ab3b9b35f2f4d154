"""Command line: ``python -m mlp_lib reproduce ROW_ID [ROW_ID ...] [--seed S] [--json]``."""

from __future__ import annotations

import argparse
import json
import sys

from . import __version__


def _fmt(x):
    return "—" if x is None else f"{x:.4f}"


def _reproduce(args):
    from .experiments import ROWS, run, run_many
    rows = list(ROWS) if args.rows == ["all"] else args.rows
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise SystemExit(f"error: unknown row {', '.join(unknown)}; valid: "
                         f"{', '.join(ROWS)} (or 'all')")
    seeds = args.seed
    if len(rows) * len(seeds) == 1:
        results = [run(rows[0], seeds[0], progress=None if not args.quiet else False,
                       keep_model=False)]
    else:
        results = run_many(rows, seeds, processes=args.processes,
                           progress=None if not args.quiet else False)
    for result in results:
        if args.json:
            print(json.dumps(result.as_dict()), flush=True)
            continue
        row = ROWS[result.row]
        note = f"  (diverged at step {result.diverged_at})" if result.diverged_at is not None else ""
        print(f"{result.row:15s} seed {result.seed:<3d} test loss {result.test_loss:.4f} "
              f"(report {_fmt(row.report_loss)})  accuracy {result.test_accuracy:.4f} "
              f"(report {_fmt(row.report_accuracy)})  {result.seconds:.1f} s{note}",
              flush=True)
    return 0


def _rows(args):
    from .experiments import ROWS
    for row in ROWS.values():
        print(f"{row.id:15s} {row.describe()}; report: loss {_fmt(row.report_loss)}, "
              f"accuracy {_fmt(row.report_accuracy)} (notebook {row.notebook})")
    return 0


README_MARKERS = ("<!-- results:start -->", "<!-- results:end -->")


def _table(args):
    from pathlib import Path

    from .experiments import ROWS, format_table, load_results, results_path, summarize
    results = []
    missing = []
    for row_id in ROWS:
        path = results_path(row_id)
        if path.is_file():
            results += load_results(path)
        else:
            missing.append(row_id)
    if not results:
        raise SystemExit("error: no saved results; run the notebooks first "
                         "(python3 tasks.py reproduce)")
    table = format_table(summarize(results))
    if missing:
        table += f"\n\n(no saved results for: {', '.join(missing)})"
    if not args.update_readme:
        print(table)
        return 0
    readme = Path(__file__).resolve().parent.parent / "README.md"
    text = readme.read_text()
    start, end = README_MARKERS
    if start not in text or end not in text:
        raise SystemExit(f"error: {readme} lacks the markers {start} ... {end}")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{table}\n{end}{tail}")
    print(f"updated the results table in {readme}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m mlp_lib",
        description="mlp_lib: reproduce the coursework report's MLP experiments on MNIST.")
    parser.add_argument("--version", action="version", version=f"mlp_lib {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    rep = commands.add_parser(
        "reproduce", help="train rows of the report's table and print them beside the report",
        description="Train each ROW_ID with the report's per-sample SGD (3 epochs over the "
                    "60,000 training images in file order) and print test loss and accuracy "
                    "beside the report's. Several rows or seeds run in parallel processes.")
    rep.add_argument("rows", nargs="+", metavar="ROW_ID",
                     help="row ids (see 'python -m mlp_lib rows'), or 'all'")
    rep.add_argument("--seed", type=int, nargs="+", default=[0], metavar="S",
                     help="seed(s) of the initial weights (default 0); several run each row "
                          "once per seed")
    rep.add_argument("--json", action="store_true",
                     help="one JSON object per line: row, seed, test_loss, test_accuracy, "
                          "seconds, diverged_at")
    rep.add_argument("--processes", type=int, default=None,
                     help="parallel processes for several runs (default: one per core)")
    rep.add_argument("--quiet", action="store_true", help="no progress bar")
    rep.set_defaults(func=_reproduce)
    rows = commands.add_parser("rows", help="list the report's rows and their settings")
    rows.set_defaults(func=_rows)
    table = commands.add_parser(
        "table", help="the report-vs-reproduced table from the notebooks' saved results",
        description="Summarise results/*.json (written by the notebooks) as a Markdown "
                    "table: mean ± std over seeds beside the report, with a verdict.")
    table.add_argument("--update-readme", action="store_true",
                       help="write the table into README.md between its results markers")
    table.set_defaults(func=_table)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
