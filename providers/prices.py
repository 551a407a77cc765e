"""What an endpoint cost: its instance hours times the machine's list price (each cloud's own table).

Each cloud keeps its list prices in its own package (``providers/<cloud>/prices.py``, named by
its catalogue entry); this module turns a table and a serving report's instance hours into an
estimate. The estimates are orders of magnitude, not bills: storage, network, requests and
start-up time are left out.
"""

from __future__ import annotations

from collections.abc import Mapping


def hourly_price(prices: Mapping[str, float], machine: str, override: float | None = None) -> float | None:
    """The price per instance-hour of ``machine`` in ``prices`` (``override`` first), or None if unknown."""
    if override is not None:
        return float(override)
    price = prices.get(machine)
    return None if price is None else float(price)


def serving_cost(
    prices: Mapping[str, float], machine: str, instance_hours: float, override: float | None = None
) -> tuple[float | None, str]:
    """Estimate what an endpoint cost: its instance hours times the machine's list price.

    Returns:
        The estimate in USD (None when no price is known) and a sentence saying how.
    """
    price = hourly_price(prices, machine, override)
    if price is None:
        return None, f"no list price known for {machine} (set hourly_usd in its inference profile)"
    return price * instance_hours, f"{instance_hours:.2f} instance-hours of {machine} at ${price:.3f}/h"
