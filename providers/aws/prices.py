"""List prices of the SageMaker instance types: what a training job's or an endpoint's estimate reads.

On-demand prices in USD per instance-hour in us-east-1, as published in 2026 on
https://aws.amazon.com/sagemaker/pricing/ (Training; Real-Time Inference: the same figure for
both on these types, to the cent). The catalogue entry names this table (``prices``), so the
UI finds it without naming the cloud. A hardware profile can carry its own ``hourly_usd``
(another region, a negotiated price).
"""

from __future__ import annotations

HOURLY_USD: dict[str, float] = {
    "ml.m5.large": 0.115,
    "ml.m5.xlarge": 0.23,
    "ml.m5.2xlarge": 0.461,
    "ml.c5.large": 0.102,
    "ml.c5.xlarge": 0.204,
}
