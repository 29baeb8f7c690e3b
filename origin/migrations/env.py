"""Alembic environment: migrations run online against the URL `origin.db.migrate` sets."""

from alembic import context
from sqlalchemy import create_engine

from origin.schema import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "origin.db.migrate sets sqlalchemy.url"
engine = create_engine(url)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
