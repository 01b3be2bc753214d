"""Where ollacord's state lives: which database (DATABASE_URL), the PostgreSQL backend, and moving between them.

SQLite in DATA_DIR is the embedded default (bot/channel_settings/store.py); PostgreSQL lets several
instances share one state and coordinate through it (bot/leadership.py). Discord-free.
"""
