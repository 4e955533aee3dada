"""Versioned schema of the SQL stores: each step moves the schema one version forward.

A database records its version in `agnt5_meta`; opening it applies every later step in one
transaction. Steps are only ever appended, so a database written by this version opens in the next.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE kv (
            namespace TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            version INTEGER NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (namespace, key)
        );
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            app_name TEXT,
            user_id TEXT,
            metadata TEXT NOT NULL DEFAULT '{}',
            retention TEXT NOT NULL DEFAULT '{}',
            ttl_days REAL,
            immutable INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            expires_at REAL,
            next_seq INTEGER NOT NULL DEFAULT 1,
            active_count INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX sessions_by_update ON sessions (updated_at, id);
        CREATE INDEX sessions_by_user ON sessions (app_name, user_id, updated_at, id);
        CREATE INDEX sessions_by_expiry ON sessions (expires_at) WHERE expires_at IS NOT NULL;
        CREATE TABLE messages (
            session_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            pos REAL NOT NULL,
            id TEXT NOT NULL,
            created_at REAL NOT NULL,
            role TEXT NOT NULL,
            body TEXT,
            metadata TEXT NOT NULL DEFAULT '{}',
            tokens INTEGER NOT NULL,
            pruned_by TEXT,
            PRIMARY KEY (session_id, seq)
        ) WITHOUT ROWID;
        CREATE INDEX messages_by_pos ON messages (session_id, pos);
        CREATE INDEX messages_active ON messages (session_id, pos) WHERE pruned_by IS NULL;
        CREATE TABLE state (
            scope TEXT NOT NULL,
            owner TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (scope, owner, key)
        ) WITHOUT ROWID;
        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id TEXT NOT NULL,
            created_at REAL NOT NULL,
            type TEXT NOT NULL,
            data TEXT NOT NULL
        );
        CREATE INDEX events_by_session ON events (session_id, created_at, id);
        """,
    ),
]

LATEST_VERSION = MIGRATIONS[-1][0]
