"""One rule from an interval to a word, for every comparison in README.md and docs/.

A comparison of X with Y is a paired win rate: on each seed, X wins (1), loses (0) or ties (1/2) against
Y on the same seed, and P is the mean over n seeds. Its 95% interval is Wilson's for k = wins + ties/2
out of n: it is never zero-width (10 wins of 10 give [0.72, 1.00], not [1, 1]).

The word comes from the interval alone, with one margin, MARGIN = 0.2 around 0.5:
    "X better"                              the interval lies above 0.5
    "X worse"                               the interval lies below 0.5
    "no difference larger than the margin"  the interval lies within [0.3, 0.7]
    "undecided with n seeds"                anything else (more seeds would decide)
A lecture claim predicts a direction; the claim then
    "holds"                                 the interval lies on the predicted side of 0.5
    "does not hold here"                    it lies within the margin, or on the other side
    "undecided with n seeds"                anything else
    "not measured"                          no experiment
A k/n count (seeds that reach a bar) gets the same Wilson interval.
"""
import math

MARGIN = 0.2
Z = 1.959963984540054  # the normal's 97.5% quantile: a 95% interval


def wilson(k, n, z=Z):
    """Wilson's score interval for k successes of n (k may be a half: a tie)."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def win_rate(xs, ys, higher_is_better=True):
    """(P, (low, high), n): X's paired win rate over Y, ties counted as half."""
    assert len(xs) == len(ys) and len(xs) > 0, "paired by seed: one value each"
    k = 0.0
    for x, y in zip(xs, ys):
        if x == y:
            k += 0.5
        elif (x > y) == higher_is_better:
            k += 1.0
    n = len(xs)
    return k / n, wilson(k, n), n


def word(interval, n, x="X"):
    """The comparison's word, from its interval alone."""
    low, high = interval
    if low > 0.5:
        return f"{x} better"
    if high < 0.5:
        return f"{x} worse"
    if 0.5 - MARGIN <= low and high <= 0.5 + MARGIN:
        return "no difference larger than the margin"
    return f"undecided with {n} seeds"


def claim(interval, n, predicted_above=True):
    """A lecture claim's verdict: the claim predicts P above 0.5 (or below, predicted_above=False)."""
    if interval is None:
        return "not measured"
    low, high = interval
    if (low > 0.5) if predicted_above else (high < 0.5):
        return "holds"
    within = 0.5 - MARGIN <= low and high <= 0.5 + MARGIN
    against = (high < 0.5) if predicted_above else (low > 0.5)
    if within or against:
        return "does not hold here"
    return f"undecided with {n} seeds"


def show(p, interval):
    """'0.62 [0.41, 0.79]'."""
    return f"{p:.2f} [{interval[0]:.2f}, {interval[1]:.2f}]"


def count(k, n):
    """'17/20 [0.64, 0.95]': a count of seeds and its Wilson interval."""
    low, high = wilson(k, n)
    return f"{k}/{n} [{low:.2f}, {high:.2f}]"
