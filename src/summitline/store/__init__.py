"""Storage behind one interface, ``Store``: SQLite (WAL) by default, PostgreSQL by URL."""

from summitline.store.sql import Store, StoreError, open_store

__all__ = ["Store", "StoreError", "open_store"]
