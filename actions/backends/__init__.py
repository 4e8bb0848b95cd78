"""Where the actions' customer data comes from: one interface, several backends.

- :mod:`actions.backends.base`: the interface (:class:`~actions.backends.base.CustomerStore`), the records
  it returns, the error tree, phone-number normalisation and salted hashing of PINs and dates of birth.
- :mod:`actions.backends.config`: which store (:class:`~actions.backends.config.StoreConfig`, from the
  environment).
- :mod:`actions.backends.sql`: the interface over SQLite (embedded default) or PostgreSQL, chosen by URL;
  :mod:`actions.backends.schema`: its tables and engines.
- :mod:`actions.backends.http`: the adapter point for a real CRM / service desk reached over HTTP.
- :mod:`actions.backends.seed`: ``python -m actions.backends.seed [--url URL] [--reset]`` creates the schema
  and the demo data (idempotent).

:mod:`actions.store` picks the backend from configuration; the actions import from there only.
Nothing in this package opens a connection or imports a database driver at import time.
"""
