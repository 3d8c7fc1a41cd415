"""Blob and artifact storage shared by the API and the workers."""

from .store import LocalStore, ObjectStore, RedisStore, make_store

__all__ = ["LocalStore", "ObjectStore", "RedisStore", "make_store"]
