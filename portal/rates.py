"""Rate rules like ``30/m/ip,20/5m/user``: how many events per period, counted per address or
per user. Pure, so that settings can validate them at start-up."""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
RULE = re.compile(r"(\d+)/(\d*)([smhd])/(ip|user)")


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: int
    scope: str  # "ip" or "user"


def parse_rates(text: str) -> list[Rate]:
    """``30/m/ip,20/5m/user`` -> rates; ValueError names the part it can't read."""
    rates = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        match = RULE.fullmatch(part)
        if match is None:
            raise ValueError(f"expected rules like 30/m/ip,20/5m/user, got {part!r}")
        count, times, unit, scope = match.groups()
        rates.append(Rate(int(count), int(times or 1) * _UNITS[unit], scope))
    return rates
