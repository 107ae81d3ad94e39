"""The bot's own state database: its Alembic migrations and shared queries (bot.store.db)."""
