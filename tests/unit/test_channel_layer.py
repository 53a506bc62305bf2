"""The channel layer copes with many pages joining and leaving their groups at once (500 live
pages closing together left most of them behind when its Redis pool had 100 connections)."""

from __future__ import annotations

import asyncio

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

PAGES = 400


def test_many_pages_join_and_leave_a_group_together():
    layer = get_channel_layer()
    group = "test-crowd"

    async def crowd() -> None:
        names = [await layer.new_channel() for _ in range(PAGES)]
        await asyncio.gather(*(layer.group_add(group, name) for name in names))
        await asyncio.gather(*(layer.group_discard(group, name) for name in names))
        await layer.close_pools()

    async_to_sync(crowd)()
    left = redis.Redis.from_url(settings.REDIS_URL).zcard(f"{layer.prefix}:group:{group}")
    assert left == 0
