"""Sending work to the workers by task name: the web tier imports neither the tasks nor the
worker nor the driver, so a web process never loads libvirt."""

from __future__ import annotations

from typing import Any

from portal.celery import app
from vdi import request_log

REQUEST_ID_HEADER = "vdi_request_id"  # read by the worker's task signals for its log lines


def send(task_name: str, args: tuple[Any, ...], queue: str) -> None:
    """Publish ``task_name(*args)`` on ``queue``. Celery retries a lost broker connection
    (``CELERY_TASK_PUBLISH_RETRY_POLICY``) and then raises. The web request's id, if any,
    travels along in a message header."""
    rid = request_log.request_id()
    headers = {REQUEST_ID_HEADER: rid} if rid else None
    app.send_task(task_name, args=args, queue=queue, headers=headers)
