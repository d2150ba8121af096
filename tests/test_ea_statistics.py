"""The statistics of the decisive E_a comparison, on synthetic samples with a known difference."""

from __future__ import annotations

import numpy as np

from hal.protocols.hexane_eval import compare, mean_ci


def test_intervals_cover_the_true_difference_at_their_level():
    rng = np.random.default_rng(0)
    hits = {"paired": 0, "unpaired": 0, "model": 0}
    trials = 400
    for _ in range(trials):
        ref = rng.normal(7.6, 0.3, 30)  # 30 seeds of the reference's E_a
        mod = ref + 0.1 + rng.normal(0.0, 0.2, 30)  # a model pulled from the same starts, 0.1 eV high
        c = compare(dict(enumerate(mod)), dict(enumerate(ref)))
        hits["paired"] += abs(c.paired - 0.1) <= c.paired_ci
        hits["model"] += abs(c.model_mean - 7.7) <= c.model_ci
        other = rng.normal(7.7, 0.5, 45)  # independent starts, another spread and count (Welch)
        c = compare(dict(enumerate(other)), dict(enumerate(ref)))
        hits["unpaired"] += abs(c.unpaired - 0.1) <= c.unpaired_ci
    for name, k in hits.items():  # 95 % intervals: 95 % coverage (binomial sd 1.1 %)
        assert 0.91 <= k / trials <= 0.985, (name, k / trials)


def test_pairing_and_the_distribution_test():
    rng = np.random.default_rng(1)
    ref = rng.normal(7.6, 0.3, 200)
    same_start = ref + 0.05 + rng.normal(0.0, 0.05, 200)  # strongly paired: a far tighter paired interval
    c = compare(dict(enumerate(same_start)), dict(enumerate(ref)))
    assert c.n_paired == 200 and c.paired_ci < 0.3 * c.unpaired_ci
    assert c.paired_ci == mean_ci(same_start - ref)[1]
    shifted = rng.normal(8.0, 0.3, 200)  # another distribution: the KS test sees it, not an equal one
    assert compare(dict(enumerate(shifted)), dict(enumerate(ref))).ks_pvalue < 1e-6
    equal = rng.normal(7.6, 0.3, 200)
    assert compare(dict(enumerate(equal)), dict(enumerate(ref))).ks_pvalue > 1e-3
    # seeds pulled by one side only count in the unpaired comparison
    part = compare({s: same_start[s] for s in range(50)}, dict(enumerate(ref)))
    assert part.n_paired == 50 and part.n_model == 50 and part.n_reference == 200
