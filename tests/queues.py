"""Reading what Celery published to a Redis queue, without a worker consuming it."""

from __future__ import annotations

import base64
import json
from typing import Any

import redis
from django.conf import settings


def drain(queue: str) -> list[dict[str, Any]]:
    """Pop every message of ``queue``: a list of {"task": name, "args": [...]}."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    messages = []
    while (raw := client.rpop(queue)) is not None:
        envelope = json.loads(raw)  # type: ignore[arg-type]
        body = json.loads(base64.b64decode(envelope["body"]))
        messages.append({"task": envelope["headers"]["task"], "args": body[0]})
    return messages


def purge(queue: str) -> None:
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(queue)
