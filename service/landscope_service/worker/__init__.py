"""Celery app and tasks: thin shells that call the core."""
