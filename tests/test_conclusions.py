"""The five conclusions (the report's four and one its figures suggest) as tests: each can hold and each can fail."""

import numpy as np

from mlp_lib.study.conclusions import CONCLUSIONS, judge, side_by_side
from mlp_lib.study.experiments import ROWS, RunResult


def _results(accuracy_by_row, spread=0.001, seeds=5, diverged=()):
    out = []
    for row, accuracy in accuracy_by_row.items():
        for seed in range(seeds):
            noise = spread * (seed - (seeds - 1) / 2)
            out.append(
                RunResult(
                    row,
                    seed,
                    0.3,
                    accuracy + noise,
                    np.zeros(3),
                    1.0,
                    5 if row in diverged else None,
                )
            )
    return out


STORY = {
    "sigmoid-normal": 0.92,
    "sigmoid-xavier": 0.91,
    "relu-normal": 0.95,
    "relu-xavier": 0.950,
    "relu-he": 0.951,
    "relu-he-const": 0.97,
    "six-layer": 0.968,
    "relu-uniform": 0.1,
}


def test_the_reports_story_holds_on_results_that_tell_it():
    verdicts = judge(_results(STORY))
    assert [v["holds"] for v in verdicts] == [True] * 5
    assert [v["number"] for v in verdicts] == [1, 2, 3, 4, 5]


def test_each_conclusion_can_fail():
    flipped = dict(
        STORY,
        **{
            "relu-normal": 0.90,  # 1: sigmoid better
            "relu-xavier": 0.96,  # 2: Xavier significantly better
            "relu-he-const": 0.94,  # 3: the decay better
            "relu-uniform": 0.9,  # 4: uniform converged
            "six-layer": 0.99,
        },
    )  # 5: six layers better
    assert [v["holds"] for v in judge(_results(flipped))] == [False] * 5


def test_a_difference_within_the_noise_is_not_significant():
    noisy = dict(STORY, **{"relu-normal": 0.921})  # 0.001 above, seeds spread 0.01
    first = judge(_results(noisy, spread=0.01))[0]
    assert first["holds"] is False and first["p"] > 0.05 and "not significant" in first["reason"]


def test_one_seed_is_untested_and_the_table_names_every_row():
    verdicts = judge(_results(STORY, seeds=1))
    assert [v["holds"] for v in verdicts] == [None, None, None, True, None]
    table = side_by_side({"A": _results(STORY), "B": _results(STORY, seeds=1)})
    assert table.count("\n") == len(ROWS) + 1 and "0.9700 ± 0.0016 (5)" in table
    assert len(CONCLUSIONS) == 5
