"""landscope service: HTTP API, Celery workers and the pure-torch numerical core."""

__version__ = "0.1.0"
