"""A rough cost estimate of a training job: its compute time times the machine's list price.

The prices are the list prices each cloud keeps in its own package
(``providers/<cloud>/prices.py``: on-demand, USD per instance-hour, with their sources), found
through the catalogue (:func:`core.catalogue.list_price`) without naming a cloud; a hardware
profile can carry its own ``hourly_usd``. The estimate covers the fit itself, not the job's
start-up, storage or network, so treat it as an order of magnitude. Local training runs on this
machine: no charge.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.catalogue import list_price


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
    hourly = hardware["hourly_usd"] if "hourly_usd" in hardware else list_price(machine)
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
