"""Storage behind one interface, ``Store``: SQLite (WAL) by default, PostgreSQL by URL."""

from summitline.store.sql import RecordMoved, Store, StoreError, open_store

__all__ = ["RecordMoved", "Store", "StoreError", "open_store"]
