import math

import numpy as np
import pandas as pd
import pytest

from vlmflow.stats import curve_table, mean_ci


def test_constant_input_has_a_zero_width_interval():
    assert mean_ci([2.5] * 7) == (2.5, 2.5, 2.5)


def test_mean_is_the_sample_mean_and_inside_its_interval():
    m, lo, hi = mean_ci([1, 2, 3, 4, 10])
    assert m == 4.0  # 20 / 5
    assert 1 <= lo < m < hi <= 10


def test_nans_are_dropped():
    assert mean_ci([1, np.nan, 3, np.nan]) == mean_ci([1, 3])
    assert mean_ci([1, np.nan, 3])[0] == 2.0


@pytest.mark.filterwarnings("error")  # NaNs without numpy's "mean of empty slice" warnings in the logs
@pytest.mark.parametrize("values", [[], [np.nan, np.nan]])
def test_no_values_give_nans(values):
    assert all(math.isnan(v) for v in mean_ci(values))


def test_interval_width_matches_the_standard_error():
    # 500 zeros and 500 ones: SE of the mean = 0.5 / sqrt(1000) = 0.0158,
    # so the 95% interval is about 2 * 1.96 * 0.0158 = 0.062 wide
    m, lo, hi = mean_ci([0, 1] * 500)
    assert m == 0.5 and 0.05 < hi - lo < 0.075


def test_interval_narrows_with_more_samples():
    _, lo10, hi10 = mean_ci([0, 1] * 5)
    _, lo1000, hi1000 = mean_ci([0, 1] * 500)
    assert hi1000 - lo1000 < (hi10 - lo10) / 3  # width ~ 1/sqrt(n): 10x less here


def test_lower_level_interval_lies_inside():
    x = [0.3, -1.2, 2.0, 0.7, 0.1, -0.4, 1.5]
    _, lo50, hi50 = mean_ci(x, level=0.5)
    _, lo95, hi95 = mean_ci(x, level=0.95)
    assert lo95 < lo50 < hi50 < hi95


def test_curve_table_has_one_row_per_group_with_non_nan_counts():
    df = pd.DataFrame(
        {
            "layer": [1, 0, 0, 0, 0, 1, 1],
            "cond": ["a", "a", "a", "a", "b", "a", "a"],
            "rel_change": [2.0, 1.0, 3.0, np.nan, 5.0, 4.0, 6.0],
        }
    )
    t = curve_table(df, ["layer", "cond"])
    assert list(t.columns) == ["layer", "cond", "mean", "ci_low", "ci_high", "n"]
    assert t[["layer", "cond"]].values.tolist() == [[0, "a"], [0, "b"], [1, "a"]]
    assert t["mean"].tolist() == [2.0, 5.0, 4.0]  # (1+3)/2, 5, (2+4+6)/3
    assert t["n"].tolist() == [2, 1, 3]
    assert (t["ci_low"] <= t["mean"]).all() and (t["mean"] <= t["ci_high"]).all()
    assert t.loc[1, "ci_low"] == t.loc[1, "ci_high"] == 5.0

    by_layer = curve_table(df.rename(columns={"rel_change": "v"}), ["layer"], value="v")
    assert by_layer["layer"].tolist() == [0, 1]
    assert by_layer["mean"].tolist() == [3.0, 4.0]  # (1+3+5)/3, (2+4+6)/3
    assert by_layer["n"].tolist() == [3, 3]


def _answers():
    return pd.DataFrame(
        dict(
            model="m",
            task="t",
            sample_id=[f"s{i}" for i in range(4)],
            question="q?",
            blocked_layers="1-4",
            pred_before=["A", "B", "C", "A"],
            pred_after=["A", "C", "C", "B"],
            correct_before=[True, True, True, False],
            correct_after=[True, False, True, False],
            answer_prompt="The",
            reference=["red", "blue", "sea to grass", "left"],
            answer_before=["red", "blue", "sea to night", "left"],
            answer_after=["red", "green", "sea to night", "right"],
            first_token_before=[True, True, True, True],
            first_token_after=[True, False, True, False],
            exact_before=[True, True, False, True],
            exact_after=[True, False, False, False],
        )
    )


def test_table2_drops_and_examples():
    from vlmflow.stats import early_cross_frame_examples, early_cross_frame_table

    t = early_cross_frame_table(_answers()).iloc[0]
    assert (t.mc_before, t.mc_after, t.mc_drop) == (75.0, 50.0, 25.0)
    assert t.mc_drop_relative == pytest.approx(100 / 3) and t.mc_flip == 0.5
    assert (t.exact_before, t.exact_after, t.first_token_after) == (75.0, 25.0, 50.0)
    ex = early_cross_frame_examples(_answers(), per_task=2)
    # answers right before and changed after come first
    assert ex.sample_id.tolist() == ["s1", "s3"]


def test_failure_figure_draws_with_no_wrong_samples(tmp_path):
    from vlmflow.plots import failure_cases

    correct = pd.DataFrame(
        dict(
            task="t",
            experiment=["question_and_options_to_last"] * 2 + ["vq_to_true_opt"] * 2,
            block=[
                "True option -> Last",
                "True option -> Last (random edges)",
                "Video -> True option",
                "Video -> True option",
            ],
            layer=[1, 1, 1, 2],
            rel_change=[-10.0, -1.0, -5.0, -2.0],
        )
    )
    wrong = correct.iloc[:0]
    table = failure_cases(wrong, correct, tmp_path / "f", ["t"], {})
    assert (tmp_path / "f.png").stat().st_size > 0
    assert set(table.route) == {"True option -> Last", "Video -> chosen option"}  # random controls left out
    assert set(table.samples) == {"correct"}
