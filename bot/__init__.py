"""migsafe: makes PostgreSQL/Alembic migrations safe to merge."""

__version__ = "0.1.0"
