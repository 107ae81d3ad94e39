"""migsafe: makes PostgreSQL/Alembic migrations safe to merge."""

__version__ = "0.1.0"

# The project's home: reports link to its documentation here (docs/rules/<id>.md).
HOME_URL = "https://github.com/migsafe/migsafe"
