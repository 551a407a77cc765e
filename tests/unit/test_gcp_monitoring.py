"""The bucket layouts of Cloud Monitoring's Distribution, as the GCP serving report reads them.

The contract suite (tests/contract/test_gcp.py::TestGcpServing) reads linear buckets through
the Cloud Monitoring stand-in; these are the other two layouts BucketOptions defines
(exponential and explicit), and trailing zero buckets left out of ``bucketCounts``.
"""

from __future__ import annotations

import pytest

from core.serving_metrics import histogram_quantile
from providers.gcp.monitoring import MonitoringError, _buckets


def test_exponential_buckets_bounds_are_scale_times_growth_powers():
    bounds, counts = _buckets({
        "bucketOptions": {"exponentialBuckets": {"numFiniteBuckets": 3, "growthFactor": 2, "scale": 10}},
        "bucketCounts": ["0", "4", "4"],
    })  # fmt: skip
    assert bounds == [10, 20, 40, 80]
    assert counts == [0, 4, 4, 0, 0]  # underflow, 3 finite, overflow: trailing zeros filled in
    assert histogram_quantile(bounds, counts, 0.5) == 20  # the 4th of 8 values: the top of [10, 20)


def test_explicit_buckets_keep_their_bounds():
    bounds, counts = _buckets({"bucketOptions": {"explicitBuckets": {"bounds": [0, 5, 50]}},
                               "bucketCounts": ["0", "9", "1"]})  # fmt: skip
    assert (bounds, counts) == ([0, 5, 50], [0, 9, 1, 0])
    assert histogram_quantile(bounds, counts, 0.99) == pytest.approx(5 + 45 * 0.9)


def test_a_distribution_without_buckets_is_an_error_naming_the_service():
    with pytest.raises(MonitoringError, match="Cloud Monitoring sent a latency distribution without buckets"):
        _buckets({"count": "3"})
