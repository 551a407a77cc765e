"""List prices of the machine types astro.toml names: the one table every cost estimate reads.

On-demand prices in USD per instance-hour, us-east-1 / us-central1 / East US, as published in
2026 on the clouds' own pages (the same figure for training and for real-time inference on
these types, to the cent):

- SageMaker: https://aws.amazon.com/sagemaker/pricing/ (Training; Real-Time Inference)
- Vertex AI: https://cloud.google.com/vertex-ai/pricing (custom training; prediction nodes)
- Azure ML: https://azure.microsoft.com/pricing/details/machine-learning/ (the VM's price)

A hardware profile can carry its own ``hourly_usd`` (another region, a negotiated price). The
estimates built on them are orders of magnitude, not bills: storage, network, requests and
start-up time are left out.
"""

from __future__ import annotations

HOURLY_USD: dict[str, float] = {
    # SageMaker instances (training and real-time endpoints)
    "ml.m5.large": 0.115,
    "ml.m5.xlarge": 0.23,
    "ml.m5.2xlarge": 0.461,
    "ml.c5.large": 0.102,
    "ml.c5.xlarge": 0.204,
    # Vertex AI machines
    "n1-standard-2": 0.109,
    "n1-standard-4": 0.219,
    "n1-standard-8": 0.438,
    # Azure ML compute
    "Standard_DS2_v2": 0.146,
    "Standard_DS3_v2": 0.293,
    "Standard_DS4_v2": 0.585,
}


def hourly_price(machine: str, override: float | None = None) -> float | None:
    """The price per instance-hour of ``machine`` (``override`` first), or None if unknown."""
    if override is not None:
        return float(override)
    price = HOURLY_USD.get(machine)
    return None if price is None else float(price)


def serving_cost(
    machine: str, instance_hours: float, override: float | None = None
) -> tuple[float | None, str]:
    """Estimate what an endpoint cost: its instance hours times the machine's list price.

    Returns:
        The estimate in USD (None when no price is known) and a sentence saying how.
    """
    price = hourly_price(machine, override)
    if price is None:
        return None, f"no list price known for {machine} (set hourly_usd in its inference profile)"
    return price * instance_hours, f"{instance_hours:.2f} instance-hours of {machine} at ${price:.3f}/h"
