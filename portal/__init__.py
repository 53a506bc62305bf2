"""The Django project of the VDI portal: settings, ASGI entry, Celery app, URL root."""

from portal.celery import app as celery_app

__all__ = ["celery_app"]
