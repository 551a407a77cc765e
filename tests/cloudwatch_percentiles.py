"""CloudWatch percentiles for moto: moto stores metric data but computes no ``pNN`` statistic.

moto answers GetMetricData with the statistics Sum, Average, Minimum, Maximum and SampleCount
over the values a test put, and with nothing for a percentile. ``installed()`` teaches its
in-process backend the percentile CloudWatch documents for raw values ("the value below which
NN% of the data points fall", nearest rank on the sorted values), for the duration of a
``with`` block; only values put one by one (``Value`` / ``Values``) can have percentiles, as in
CloudWatch, where statistic sets give none.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator

_PERCENTILE = re.compile(r"^p(\d{1,2}(\.\d+)?)$")


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """moto's CloudWatch answers ``pNN`` statistics inside the block."""
    from moto.cloudwatch.models import Statistics

    original = Statistics.get_statistics_for_type

    def with_percentiles(self, stat: str):  # noqa: ANN001, ANN202 - moto's own signature
        match = _PERCENTILE.match(stat)
        if match is None:
            return original(self, stat)
        values = sorted(self.metric_single_values_list)
        if not values:
            return None
        rank = math.ceil(float(match.group(1)) / 100 * len(values))
        return values[max(rank, 1) - 1]

    Statistics.get_statistics_for_type = with_percentiles
    try:
        yield
    finally:
        Statistics.get_statistics_for_type = original
