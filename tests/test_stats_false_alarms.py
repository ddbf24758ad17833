"""verify's per-tensor checks keep their false-alarm rate on small tensors (15 and 20 values).

``check_tensor`` runs three statistical tests per random tensor (mean, variance, KS fit), each at
the per-test level A that ``verify_network`` gives it (alpha / m). Each test is exact or
conservative at every n, so a correct tensor fails a given test with probability <= A and fails
at all with probability <= 3A, independently of the other tensors. Over N independent tensors the
failure counts are therefore stochastically below Binomial(N, A) (per test) and Binomial(N, 3A)
(per tensor); we assert each at its one-sided 1 - 1e-6 quantile, ``scipy.stats.binom.ppf``:

    N = 20,000, A = 1e-4: per test <= 12, per tensor <= 21   (expected at most 2 and 6)
    N = 10,000, A = 1e-4: per test <=  9, per tensor <= 14   (expected at most 1 and 3)

so a correct implementation fails this file with probability below 1e-5 (12 assertions).
The large-n z-test on the sample variance that verify used before failed 20-value normal
tensors ~12 times more often than A (chi^2_20 is skewed): about 25 variance failures in
20,000, twice the bound. The values are drawn by the initializers themselves (one call, split
into tensors: the block stream's values are i.i.d.), with fixed seeds, so the test is deterministic.
"""

import pytest
from scipy import stats

from netspec.check.verify import check_tensor
from netspec.init.fans import compute_fans
from netspec.init.initializers import get_initializer
from netspec.init.streams import BlockStream

A = 1e-4
CASES = [
    ("he_normal", (4, 5), 20_000),  # the 4 -> 5 -> 3 demo's first kernel, N(0, 2 / 4)
    ("glorot_uniform", (5, 3), 10_000),  # its second kernel, U(±sqrt(6 / 8)), 15 values
    ({"name": "he_normal", "truncated": True}, (4, 5), 10_000),
]


def draw(config, shape, count, seed=2024):
    """``count`` tensors of ``shape`` from the initializer, with the fans of ``shape``."""
    init = get_initializer(config)
    flat = init((count * shape[0], *shape[1:]), BlockStream(seed, "false-alarms"), fans=compute_fans(shape))
    return init.declared(shape), flat.reshape(count, *shape)


@pytest.mark.parametrize(("config", "shape", "count"), CASES, ids=lambda v: str(v)[:20])
def test_small_tensors_fail_no_more_often_than_alpha(config, shape, count):
    dist, tensors = draw(config, shape, count)
    failures = {"tensor": 0, "mean": 0, "variance": 0, "fit": 0}
    for values in tensors:
        report = check_tensor("w", values, dist, A)
        assert report.tests["bounds"] == "pass"  # exact: never a false alarm
        failures["tensor"] += report.verdict == "FAIL"
        for test in ("mean", "variance", "fit"):
            failures[test] += report.tests[test] == "FAIL"
    per_test = stats.binom.ppf(1 - 1e-6, count, A)
    per_tensor = stats.binom.ppf(1 - 1e-6, count, 3 * A)
    assert failures["tensor"] <= per_tensor, (failures, per_tensor)
    assert max(failures[t] for t in ("mean", "variance", "fit")) <= per_test, (failures, per_test)
