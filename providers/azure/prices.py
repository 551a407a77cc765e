"""List prices of the Azure ML VM sizes: what a training job's or an endpoint's estimate reads.

On-demand prices in USD per instance-hour in East US, as published in 2026 on
https://azure.microsoft.com/pricing/details/machine-learning/ (the VM's price; the same for
training and for online endpoints). The catalogue entry names this table (``prices``), so the
UI finds it without naming the cloud. A hardware profile can carry its own ``hourly_usd``.
"""

from __future__ import annotations

HOURLY_USD: dict[str, float] = {
    "Standard_DS2_v2": 0.146,
    "Standard_DS3_v2": 0.293,
    "Standard_DS4_v2": 0.585,
}
