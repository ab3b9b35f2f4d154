"""Five conclusions as tests that any set of row results can pass or fail: the
report's four, and a fifth that its figures suggest without its saying so.

The report drew its four from single runs on MNIST (§2.1–§2.2, §4); the fifth
compares its §3 run with its best four-layer row, which the report prints
without a conclusion about depth. Here each is a comparison of
two rows over their seeds, decided by Welch's t-test on test accuracy (two
sided, 5% level), so the same code judges MNIST (``results/*.json``) and
Fashion-MNIST (notebook 06's sweep):

1. ReLU beats sigmoid: ``relu-normal`` against ``sigmoid-normal`` (same
   N(0, 0.1) init; the report's §2.1). Holds if ReLU is significantly better.
2. He init is at least as good as Xavier for ReLU: ``relu-he`` against
   ``relu-xavier``. Holds unless Xavier is significantly better.
3. A constant rate of 0.01 beats the linear decay: ``relu-he-const`` against
   ``relu-he``. Holds if the constant rate is significantly better.
4. Uniform U[0, 1) init does not converge: ``relu-uniform``. Holds if every
   seed diverged or ended at chance level (accuracy below 0.2).
5. Six layers do no better than four: ``six-layer`` against
   ``relu-he-const``. Holds unless six layers are significantly better.
"""

from __future__ import annotations

import math

import numpy as np

from .rows import RunResult

__all__ = ["CONCLUSIONS", "judge", "format_verdicts", "results_from_records", "side_by_side"]

#: (number, the claim, row A, row B, what "holds" means); 1-4 are the report's.
CONCLUSIONS = [
    (1, "ReLU beats sigmoid", "relu-normal", "sigmoid-normal", "better"),
    (2, "He is at least as good as Xavier for ReLU", "relu-he", "relu-xavier", "not worse"),
    (3, "a constant rate 0.01 beats the linear decay", "relu-he-const", "relu-he", "better"),
    (4, "uniform U[0,1) init does not converge", "relu-uniform", None, "no convergence"),
    (5, "six layers do no better than four", "six-layer", "relu-he-const", "not better"),
]
LEVEL = 0.05
CHANCE = 0.2


def results_from_records(records):
    """``RunResult``s from a sweep's row records (``mlp_lib.study.sweep``)."""
    return [RunResult.from_record(r) for r in records if r["kind"] == "row"]


def _accuracies(results, row):
    return np.array([r.test_accuracy for r in results if r.row == row], dtype=float)


def judge(results):
    """Each conclusion on ``results`` (RunResults of one dataset): a list of dicts
    with ``number``, ``claim``, ``a``/``b`` (rows), ``a_mean``, ``a_std``,
    ``b_mean``, ``b_std``, ``p`` (Welch; NaN where not applicable), ``holds``
    (bool) and ``reason`` (one line)."""
    from scipy.stats import ttest_ind

    verdicts = []
    for number, claim, a, b, rule in CONCLUSIONS:
        xa = _accuracies(results, a)
        entry = {
            "number": number,
            "claim": claim,
            "a": a,
            "b": b,
            "a_mean": float(xa.mean()) if len(xa) else math.nan,
            "a_std": float(xa.std(ddof=1)) if len(xa) > 1 else math.nan,
            "b_mean": math.nan,
            "b_std": math.nan,
            "p": math.nan,
        }
        if rule == "no convergence":
            diverged = sum(r.diverged_at is not None for r in results if r.row == a)
            converged = int(np.sum(xa >= CHANCE))
            entry["holds"] = len(xa) > 0 and converged == 0
            entry["reason"] = (
                f"{diverged} of {len(xa)} seeds diverged; {converged} reached "
                f"accuracy {CHANCE} or more"
            )
            verdicts.append(entry)
            continue
        xb = _accuracies(results, b)
        entry.update(
            b_mean=float(xb.mean()) if len(xb) else math.nan,
            b_std=float(xb.std(ddof=1)) if len(xb) > 1 else math.nan,
        )
        if len(xa) < 2 or len(xb) < 2:
            entry["holds"], entry["reason"] = None, "fewer than 2 seeds: no test"
            verdicts.append(entry)
            continue
        p = float(ttest_ind(xa, xb, equal_var=False).pvalue)
        entry["p"] = p
        a_better = xa.mean() > xb.mean() and p < LEVEL
        b_better = xb.mean() > xa.mean() and p < LEVEL
        entry["holds"] = {
            "better": a_better,
            "not worse": not b_better,
            "not better": not a_better,
        }[rule]
        difference = xa.mean() - xb.mean()
        entry["reason"] = f"{a} − {b} = {difference:+.4f} accuracy, Welch p = {p:.2g}" + (
            " (significant)" if p < LEVEL else " (not significant)"
        )
        verdicts.append(entry)
    return verdicts


def format_verdicts(by_dataset):
    """Side-by-side lines: for each conclusion, its verdict on each dataset."""
    lines = []
    names = list(by_dataset)
    for k, (number, claim, a, b, _) in enumerate(CONCLUSIONS):
        lines.append(f"{number}. {claim} ({a}" + (f" vs {b})" if b else ")"))
        for name in names:
            v = by_dataset[name][k]
            word = {True: "holds", False: "FAILS", None: "untested"}[v["holds"]]
            figures = f"{v['a_mean']:.4f} ± {v['a_std']:.4f}"
            if b:
                figures += f" vs {v['b_mean']:.4f} ± {v['b_std']:.4f}"
            lines.append(f"   {name:14s} {word:8s} {figures}; {v['reason']}")
    return "\n".join(lines)


def side_by_side(by_dataset):
    """A Markdown ``Table``: each row's report figure (MNIST, one run) and its mean ±
    std accuracy over seeds on each dataset (``by_dataset``: name -> RunResults)."""
    from .experiments import ROWS, summarize
    from .tables import markdown_table, mean_std

    summaries = {
        name: {s["row"]: s for s in summarize(results)} for name, results in by_dataset.items()
    }
    header = ["row", "report (MNIST, one run)"] + [
        f"{name}: accuracy (mean ± std, seeds)" for name in by_dataset
    ]
    rows = []
    for row_id, row in ROWS.items():
        report = "did not converge" if row.report_accuracy is None else f"{row.report_accuracy:.4f}"
        cells = []
        for name in by_dataset:
            s = summaries[name].get(row_id)
            n = 0 if s is None else len(s["seeds"])
            cells.append("—" if s is None else f"{mean_std(s['acc_mean'], s['acc_std'], n)} ({n})")
        rows.append([row_id, report, *cells])
    return markdown_table(header, rows)
