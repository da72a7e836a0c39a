"""Storage: SQLAlchemy Core tables, column types, the database handle and migrations."""
