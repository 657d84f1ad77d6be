"""Alembic migrations shared by the SQLite and PostgreSQL stores."""
