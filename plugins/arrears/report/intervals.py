"""Confidence intervals for proportions and their difference.

Wilson's score interval for one proportion, and Newcombe's hybrid score interval (method 10 of
Newcombe, Statistics in Medicine 17:873-890, 1998) for the difference of two independent
proportions, built from the two Wilson intervals. Both behave at 0 and 1 and for small samples,
where the textbook Wald interval does not.
"""
from __future__ import annotations

from math import sqrt

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    centre = p + z * z / (2 * n)
    half = z * sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    denominator = 1 + z * z / n
    return ((centre - half) / denominator, (centre + half) / denominator)


def newcombe(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """(p1 - p2, lower, upper): Newcombe's hybrid score interval for p1 - p2."""
    p1, p2 = (x1 / n1 if n1 else 0.0), (x2 / n2 if n2 else 0.0)
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    d = p1 - p2
    return d, d - sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
