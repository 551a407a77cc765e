"""List prices of the Vertex AI machine types: what a training job's or an endpoint's estimate reads.

On-demand prices in USD per node-hour in us-central1, as published in 2026 on
https://cloud.google.com/vertex-ai/pricing (custom training; prediction nodes: the same figure
for both on these types, to the cent). The catalogue entry names this table (``prices``), so
the UI finds it without naming the cloud. A hardware profile can carry its own ``hourly_usd``.
"""

from __future__ import annotations

HOURLY_USD: dict[str, float] = {
    "n1-standard-2": 0.109,
    "n1-standard-4": 0.219,
    "n1-standard-8": 0.438,
}
