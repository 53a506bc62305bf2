"""Warm top-up and trim arithmetic."""

from __future__ import annotations

import pytest

from vdi.services.capacity import Plan, plan


@pytest.mark.parametrize(
    ("total", "ready", "pending", "min_ready", "max_size", "draining", "expected"),
    [
        (0, 0, 0, 2, 5, False, Plan(create=2, remove=0)),    # empty pool fills up
        (2, 0, 2, 2, 5, False, Plan(create=0, remove=0)),    # on their way already
        (2, 2, 0, 2, 5, False, Plan(create=0, remove=0)),    # steady
        (4, 1, 0, 2, 5, False, Plan(create=1, remove=0)),    # one claimed: replace it
        (5, 0, 0, 2, 5, False, Plan(create=0, remove=0)),    # full: never above max_size
        (4, 0, 0, 3, 5, False, Plan(create=1, remove=0)),    # room for one only
        (5, 4, 0, 2, 5, False, Plan(create=0, remove=2)),    # released ones: trim surplus
        (6, 1, 0, 1, 4, False, Plan(create=0, remove=1)),    # above max_size (lowered)
        (3, 2, 1, 2, 5, True, Plan(create=0, remove=2)),     # draining: give warm ones up
        (3, 0, 0, 0, 5, False, Plan(create=0, remove=0)),    # no warm capacity wanted
    ],
)
def test_plan(total, ready, pending, min_ready, max_size, draining, expected):
    assert plan(total, ready, pending, min_ready, max_size, draining) == expected
