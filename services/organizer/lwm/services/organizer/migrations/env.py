"""Alembic environment of the organizer's metadata database.

Run by MetadataStore on start (upgrade to head) with the connection passed in
`config.attributes["connection"]`; `alembic -x url=... upgrade head` also works.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from lwm.services.organizer.metadata import Base

connection = context.config.attributes.get("connection")
if connection is None:
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("alembic: no database URL (pass -x url=... or set sqlalchemy.url)")
    with create_engine(url).connect() as own_connection:
        context.configure(connection=own_connection, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        own_connection.commit()
else:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
