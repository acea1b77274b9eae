"""Wilson and Newcombe intervals against the worked examples of Newcombe (1998)."""
from arrears.report.intervals import newcombe, wilson


def test_wilson_against_newcombes_single_proportion_examples():
    # Newcombe, "Two-sided confidence intervals for the single proportion" (1998), Table I,
    # method 3 (score, no continuity correction).
    assert [round(v, 4) for v in wilson(81, 263)] == [0.2553, 0.3662]
    assert [round(v, 4) for v in wilson(15, 148)] == [0.0624, 0.1605]
    assert [round(v, 4) for v in wilson(0, 20)] == [0.0, 0.1611]


def test_newcombe_hybrid_score_against_the_papers_worked_examples():
    # Newcombe, "Interval estimation for the difference between independent proportions" (1998),
    # Table II, method 10: (a) 56/70 - 48/80, (b) 9/10 - 3/10, (e) 10/10 - 0/20.
    d, lo, hi = newcombe(56, 70, 48, 80)
    assert round(d, 4) == 0.2 and (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)
    _, lo, hi = newcombe(9, 10, 3, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.1705, 0.8090)
    _, lo, hi = newcombe(10, 10, 0, 20)
    assert (round(lo, 4), round(hi, 4)) == (0.6791, 1.0)


def test_the_interval_is_symmetric_in_the_arms():
    d, lo, hi = newcombe(30, 200, 45, 210)
    d2, lo2, hi2 = newcombe(45, 210, 30, 200)
    assert (round(d, 12), round(lo, 12), round(hi, 12)) == (round(-d2, 12), round(-hi2, 12), round(-lo2, 12))
