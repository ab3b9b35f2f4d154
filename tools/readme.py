"""The README's figures, generated from the result files under ``results/``.

Each generated section sits between ``<!-- NAME:start -->`` and
``<!-- NAME:end -->`` in README.md. ``python3 tasks.py readme`` (``python
tools/readme.py`` inside the project's environment) rewrites them all; a test
fails when the README and the result files disagree. A developer's tool: it
edits the checkout's README, so it is not part of the installed package.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from mlp_lib.io.project import RESULTS_DIR as RESULTS
from mlp_lib.io.project import ROOT

__all__ = ["SECTIONS", "render", "update", "stale_sections"]


def _load(name):
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else None


def _made(prov):
    """One line of provenance."""
    if not prov:
        return "provenance: not recorded"
    commit = (prov.get("commit") or "unknown")[:7] + (
        " with uncommitted changes" if prov.get("dirty") else ""
    )
    # recorded since the per-sample engine's numba version joined provenance; older
    # result files name neither, and their line says so by leaving them out
    extra = "".join(
        f", {name} {prov[key]}" for name, key in (("numba", "numba"), ("mlp_lib", "mlp_lib"))
        if prov.get(key)
    )  # fmt: skip
    return (
        f"`{prov.get('command')}`, commit {commit}, {prov.get('date')}, {prov.get('cpu')} "
        f"({prov.get('cores')} cores), Python {prov.get('python')}, numpy "
        f"{prov.get('numpy')}, scipy {prov.get('scipy')}{extra}"
    )


def render_results():
    from mlp_lib.study.experiments import (
        ROWS,
        format_table,
        load_provenance,
        load_results,
        summarize,
    )

    results, made = [], []
    for row_id in ROWS:
        path = RESULTS / f"{row_id}.json"
        if path.is_file():
            results += load_results(path)
            made.append(load_provenance(path))
    if not results:
        return "(no results yet: `python3 tasks.py reproduce`)"
    lines = [format_table(summarize(results)), "", "Generated from `results/*.json`, made by:"]
    lines += sorted({f"- {_made(p)}" for p in made})
    return "\n".join(lines)


TARGETS = [(0.985, 60), (0.990, 600), (0.993, 1800)]


def render_beyond():
    document = _load("beyond.json")
    if document is None:
        return "(no results yet: `python3 tasks.py reproduce 05`)"
    by_rung = {}
    for run in document["runs"]:
        by_rung.setdefault(run["rung"], []).append(run)
    lines = [
        "| rung | seeds | test accuracy | training time (s) | best validation epoch |",
        "|---|---|---|---|---|",
    ]
    means = {}
    for rung, runs in by_rung.items():
        accs = [r["test_accuracy"] for r in runs]
        secs = [r["seconds"] for r in runs]
        mean, mean_s = sum(accs) / len(accs), sum(secs) / len(secs)
        means[rung] = (mean, mean_s, len(runs))
        if len(runs) > 1:
            std = math.sqrt(sum((a - mean) ** 2 for a in accs) / (len(accs) - 1))
            acc = f"{100 * mean:.2f}% ± {100 * std:.2f}% ({100 * min(accs):.2f}–{100 * max(accs):.2f}%)"
            time_ = f"{mean_s:.0f} ({min(secs):.0f}–{max(secs):.0f})"
        else:
            acc, time_ = f"{100 * mean:.2f}%", f"{mean_s:.0f}"
        epochs = ", ".join(f"{r['best_epoch'] + 1} of {len(r['val_loss'])}" for r in runs)
        lines.append(f"| {rung} | {len(runs)} | {acc} | {time_} | {epochs} |")
    lines += ["", "| target | reached? |", "|---|---|"]
    for target, budget in TARGETS:
        hits = [(name, m, s, n) for name, (m, s, n) in means.items() if m >= target and s <= budget]
        verdict = (
            f"yes: {hits[0][0]}, {100 * hits[0][1]:.2f}% in {hits[0][2]:.0f} s "
            f"(mean of {hits[0][3]} seed{'s' if hits[0][3] > 1 else ''})"
            if hits
            else "no"
        )
        lines.append(f"| ≥ {100 * target:.1f}% in ≤ {budget} s | {verdict} |")
    lines += ["", f"Generated from `results/beyond.json`, made by {_made(document['provenance'])}."]
    return "\n".join(lines)


def _per_sample_lines(activation, r):
    lines = [
        f"**Per-sample SGD, `{r['row']}` ({activation}), float64.** mlp_lib over the "
        f"whole row ({r['steps_engine']:,} steps) and on the peers' windows; the peers over "
        f"{r['steps_baselines']:,}-step windows from the initial and from the trained "
        f"weights; the report's loop and PyTorch each with the faster of 1 and all BLAS "
        f"threads; medians of {r['rounds']} rounds.",
        "",
        "| implementation | µs/step | its time / mlp_lib's |",
        "|---|---|---|",
        f"| the report's loop, as the report writes it | {r['report_us']:,.0f} | "
        f"{r['speedup_report']:.1f}× |",
    ]
    if "torch_us" in r:
        lines.append(
            f"| {r['torch_name']}, `nn.Linear` + `optim.SGD`, batch 1 | "
            f"{r['torch_us']:,.0f} | {r['speedup_torch']:.1f}× |"
        )
    if "jax_us" in r:
        lines.append(
            f"| {r['jax_name']}, the window as one jitted `lax.scan` (`jax.grad`) | "
            f"{r['jax_us']:,.1f} | {r['speedup_jax']:.2f}× (windows) |"
        )
    if "numba_us" in r:
        lines.append(
            f"| a hand-written numba loop with the same sparsity tricks "
            f"(`benchmarks/peers.py`) | {r['numba_us']:,.1f} | {r['speedup_numba']:.2f}× "
            f"(windows) |"
        )
    lines += [
        f"| `mlp_lib.train_per_sample` | {r['engine_us']:,.1f} (windows: "
        f"{r.get('engine_windows_us', r['engine_us']):,.1f}) | 1.0× |",
        "",
    ]
    if "floor_us" in r:
        lines += [
            f"The floor: a step of the trained net moves {r['traffic_mb']:.2f} MB through "
            f"the caches (each weight row it touches read, and read and written back), "
            f"{r['floor_us']:.1f} µs at the {r['bandwidth_gbs']:.0f} GB/s measured for an "
            f"array of the weights' size; the engine takes {r['distance_to_floor']:.2f}× "
            f"that.",
            "",
        ]
    diffs = [
        ("the report's loop", "max_diff_report"),
        ("PyTorch", "max_diff_torch"),
        ("JAX", "max_diff_jax"),
        ("the numba loop", "max_diff_numba"),
    ]
    shown = ", ".join(f"{r[key]:.1e} against {name}" for name, key in diffs if key in r)
    lines += [
        f"Max \\|weight difference\\| after {r['steps_baselines']:,} steps from the "
        f"same weights: {shown}.",
        "",
    ]
    return lines


def _minibatch_lines(label, mb):
    lines = [
        f"**Mini-batch SGD, {label}**: batch 128, 784-512-256-64-10 ReLU, float32, one "
        f"epoch, {mb['threads']} BLAS thread(s), the process pinned to {mb.get('cores', '?')} "
        f"core(s); matmul peak {mb['peak']:.0f} GFLOP/s (median); "
        f"{mb['gflop_per_epoch']:.1f} GFLOP per epoch.",
        "",
        "| implementation | s/epoch | CPU s/epoch | its time / mlp_lib's | GFLOP/s | % of peak |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in mb.items():
        if isinstance(r, dict):
            cpu = f"{r['cpu_seconds']:.2f}" if "cpu_seconds" in r else "—"
            lines.append(
                f"| {name} | {r['seconds']:.2f} | {cpu} | {r['ratio']:.2f}× | "
                f"{r['gflops']:.0f} | {100 * r['share_of_peak']:.0f}% |"
            )
    lines.append("")
    return lines


def render_performance():
    document = _load("bench.json")
    if document is None:
        return "(no benchmark run yet: `python3 tasks.py bench --reproduction`)"
    lines = []
    for activation, r in document.get("per_sample", {}).items():
        lines += _per_sample_lines(activation, r)
    mb = document.get("minibatch") or {}
    parts = (
        mb.items()
        if all(isinstance(v, dict) and "peak" in v for v in mb.values())
        else ([("all cores", mb)] if mb else [])
    )
    for label, part in parts:
        lines += _minibatch_lines(label, part)
    rep = document.get("reproduction")
    if rep:
        lines += [
            f"**All rows × 5 seeds** ({rep['runs']} runs, {rep['processes']} processes): "
            f"{rep['wall_s'] / 60:.1f} min wall, {rep['run_time_s'] / 60:.1f} min of run "
            f"time.",
            "",
        ]
    for name, r in document.get("serve", {}).items():
        lines += [
            f"**`serve` latency**, {name}, report's net: p50 {r['p50_ms']:.1f} ms, p95 "
            f"{r['p95_ms']:.1f} ms over {r['requests']:,} requests in a row.",
            "",
        ]
    lines.append(f"Generated from `results/bench.json`, made by {_made(document['provenance'])}.")
    return "\n".join(lines)


def render_timings():
    from mlp_lib.study.notebook import MODES, duration, timings

    document = timings()
    if not document:
        return "(no timed reproduction yet: `python3 tasks.py reproduce`)"
    lines = [
        "| notebook | " + " | ".join(f"{mode} mode" for mode in MODES) + " |",
        "|---|" + "---|" * len(MODES),
    ]
    made = {}  # machine and code -> the notebooks and modes measured there
    for name in sorted(document):
        cells = []
        for mode in MODES:
            entry = document[name].get(mode)
            cells.append(duration(entry["seconds"]) if entry else "—")
            if entry:
                p = entry["provenance"]
                where = (
                    f"commit {(p.get('commit') or 'unknown')[:7]}"
                    f"{' with uncommitted changes' if p.get('dirty') else ''}, {p.get('cpu')} "
                    f"({p.get('cores')} cores), Python {p.get('python')}, numpy "
                    f"{p.get('numpy')}, scipy {p.get('scipy')}"
                )
                made.setdefault(where, []).append(f"{name[:2]} {mode} ({p.get('date')})")
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    totals = [sum(e[m]["seconds"] for e in document.values() if m in e) for m in MODES]
    lines.append("| all | " + " | ".join(duration(t) if t else "—" for t in totals) + " |")
    lines += [
        "",
        "Each time is a whole notebook in a fresh kernel, measured by `python3 tasks.py "
        "reproduce --mode MODE` (full: the default):",
    ]
    lines += [f"- {where}: {', '.join(which)}" for where, which in made.items()]
    return "\n".join(lines)


def render_fashion():
    from mlp_lib.study.conclusions import format_verdicts, judge, results_from_records, side_by_side
    from mlp_lib.study.experiments import ROWS, load_results
    from mlp_lib.study.sweep import read_results

    records = list(read_results(RESULTS / "fashion-mnist.jsonl").values())
    if not records:
        return "(no results yet: `python3 tasks.py reproduce 06`)"
    fashion = results_from_records(records)
    mnist = [
        r
        for row in ROWS
        if (RESULTS / f"{row}.json").is_file()
        for r in load_results(RESULTS / f"{row}.json")
    ]
    sprint = [r for r in records if r["kind"] == "rung"]
    lines = [side_by_side({"MNIST": mnist, "Fashion-MNIST": fashion}), ""]
    if sprint:
        accuracy = [r["test_accuracy"] for r in sprint]
        lines += [
            f"notebook 05's sprint ({sprint[0]['name']}) on Fashion-MNIST: "
            f"{100 * sum(accuracy) / len(accuracy):.2f}% test accuracy, mean of "
            f"{len(sprint)} seeds.",
            "",
        ]
    verdicts = {"MNIST": judge(mnist), "Fashion-MNIST": judge(fashion)}
    lines += [
        "```",
        format_verdicts(verdicts),
        "```",
        "",
        "; ".join(
            f"{name}: {sum(v['holds'] is True for v in found)} of {len(found)} conclusions hold"
            for name, found in verdicts.items()
        )
        + ".",
        "",
        f"Generated from `results/fashion-mnist.jsonl` and `results/*.json`; the "
        f"Fashion-MNIST runs made by {_made(records[0].get('provenance'))}.",
    ]
    return "\n".join(lines)


def _cost(figures, name):
    if name == "none":
        return "—"
    return f"{100 * figures['cost_' + name.replace('-', '_')]:.1f}%"


def _span(pair):
    return f"{100 * pair[0]:.1f}% to {100 * pair[1]:.1f}%"


def render_playground():
    from mlp_lib.apps.runs import LIMITS

    lo = lambda key: f"{LIMITS[key][0]:,}–{LIMITS[key][1]:,}"  # noqa: E731
    lines = [
        "| limit | value |",
        "|---|---|",
        f"| hidden layers (custom) | {lo('hidden_layers')}, each of {lo('width')} units |",
        f"| parameters (custom) | at most {LIMITS['parameters']:,} |",
        f"| epochs | {lo('epochs')} per-sample, {lo('rung_epochs')} for a rung |",
        f"| training images | {lo('n_train')} (the first N, in file order) |",
        f"| per-sample steps | at most {LIMITS['steps']:,} (epochs × images) |",
        f"| learning rate | {LIMITS['lr'][0]:g}–{LIMITS['lr'][1]:g}; decay over {lo('decay_steps')} steps |",
        f"| seed | {lo('seed')} |",
        f"| runs | one training per core, {LIMITS['queued']} queued, {LIMITS['kept']} kept |",
        "| request body | 1 MB |",
    ]
    bench = _load("playground-bench.json")
    if bench is None:
        lines += ["", "(no measurement yet: `.venv/bin/python benchmarks/playground.py`)"]
        return "\n".join(lines)
    lines += [
        "",
        "| what watches | ReLU row, steps/s | cost | sigmoid row, steps/s | cost |",
        "|---|---|---|---|---|",
    ]
    relu, sigmoid = bench["observer"]["relu-he-const"], bench["observer"]["sigmoid-normal"]
    for name, label in (
        ("none", "no observer"),
        ("no-op", "an observer that does nothing"),
        ("playground", "the playground's (pipe to the server)"),
    ):
        lines.append(
            f"| {label} | {relu['steps_per_second'][name]:,.0f} | {_cost(relu, name)} | "
            f"{sigmoid['steps_per_second'][name]:,.0f} | {_cost(sigmoid, name)} |"
        )
    viewers = bench["viewers"]
    rates = viewers["steps_per_second"]
    lines += [
        "",
        f"A server run of `relu-he-const` (one epoch, 60,000 steps): "
        f"{rates['0 viewers']:,.0f} steps/s with no viewer, {rates['20 viewers']:,.0f} with "
        f"twenty (cost {100 * viewers['cost_20_viewers']:.1f}%; the same result either way: "
        f"{'yes' if viewers['identical_results'] else 'NO'}). Costs are medians of per-round "
        f"ratios ({relu['rounds']} rounds of {relu['images']:,} steps for the observer, "
        f"{viewers['rounds']} runs each for the server); one round's cost ranged over "
        f"{_span(relu['cost_playground_range'])} (ReLU, the playground's observer), "
        f"{_span(sigmoid['cost_playground_range'])} (sigmoid) and "
        f"{_span(viewers['cost_20_viewers_range'])} (twenty viewers): this machine's noise. "
        f"Made by {_made(bench.get('provenance'))}.",
    ]
    return "\n".join(lines)


SECTIONS = {
    "results": render_results,
    "beyond": render_beyond,
    "fashion": render_fashion,
    "performance": render_performance,
    "timings": render_timings,
    "playground": render_playground,
}


def render(name):
    return SECTIONS[name]()


def _split(text, name):
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        raise ValueError(f"README.md lacks the markers {start} ... {end}")
    head, rest = text.split(start, 1)
    body, tail = rest.split(end, 1)
    return head + start, body.strip("\n"), end + tail


def stale_sections(readme=ROOT / "README.md"):
    """Names of the generated sections whose text differs from a fresh render."""
    text = Path(readme).read_text()
    return [name for name in SECTIONS if _split(text, name)[1] != render(name)]


def update(readme=ROOT / "README.md"):
    """Rewrite every generated section; returns the names that changed."""
    readme = Path(readme)
    text = readme.read_text()
    changed = []
    for name in SECTIONS:
        head, body, tail = _split(text, name)
        fresh = render(name)
        if body != fresh:
            changed.append(name)
        text = f"{head}\n{fresh}\n{tail}"
    readme.write_text(text)
    return changed


if __name__ == "__main__":
    changed = update()
    print(
        f"README.md: regenerated {', '.join(SECTIONS)} from results/ "
        f"({', '.join(changed) or 'nothing'} changed)"
    )
