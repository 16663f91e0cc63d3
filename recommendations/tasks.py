"""Celery tasks of the recommendations app (thin: they call services)."""

from celery import shared_task  # noqa: F401
