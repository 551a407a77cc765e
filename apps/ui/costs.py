"""A rough cost estimate of a training job: its compute time times the machine's list price.

The prices are the list prices of core/prices.py (on-demand, USD per instance-hour, with
their sources); a hardware profile can carry its own ``hourly_usd``. The estimate covers the
fit itself, not the job's start-up, storage or network, so treat it as an order of magnitude.
Local training runs on this machine: no charge.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.prices import HOURLY_USD


def machine_type(hardware: Mapping[str, Any]) -> str | None:
    """Return the machine type a hardware profile names (``instance_type``/``machine_type``)."""
    value = hardware.get("instance_type") or hardware.get("machine_type")
    return str(value) if value else None


def training_cost(hardware: Mapping[str, Any], train_seconds: float | None) -> dict[str, Any]:
    """Estimate what a training job cost.

    Args:
        hardware: the training hardware profile recorded with the job.
        train_seconds: how long the fit took (the ``train_seconds`` metric), or None.

    Returns:
        ``usd`` (None when unknown) and ``basis``, a sentence saying how it was computed.
    """
    machine = machine_type(hardware)
    if machine is None:
        return {"usd": 0.0, "basis": "local machine: no cloud charge"}
    hourly = hardware.get("hourly_usd", HOURLY_USD.get(machine))
    if hourly is None:
        return {"usd": None, "basis": f"no list price known for {machine} (set hourly_usd in its profile)"}
    if train_seconds is None:
        return {"usd": None, "basis": f"{machine} at ${float(hourly):.3f}/h; training time unknown"}
    count = int(hardware.get("instance_count", 1) or 1)
    usd = float(hourly) * count * float(train_seconds) / 3600
    return {
        "usd": usd,
        "basis": f"{count} x {machine} at ${float(hourly):.3f}/h for {float(train_seconds):.1f} s",
    }
