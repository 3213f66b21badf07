"""Durable state in SQL: SQLite embedded by default, PostgreSQL for scale."""
