"""The PostgreSQL translation of agnt5/store/migrations.py: the same steps, version for version.

Every SQLite step has a step here with the same number (a test checks the two lists match), so
a schema version means the same tables on either store. Differences are only in types and
physical layout:

- REAL → DOUBLE PRECISION (times stay float epoch seconds, as on SQLite), INTEGER counters →
  BIGINT, BLOB → BYTEA (memory vectors: the same little-endian float32 bytes).
- JSON stays TEXT: the exact text agnt5 wrote comes back (jsonb would reorder keys and refuse
  `\\u0000`). Memory content, free text, is stored as a JSON string too (from version 5): TEXT
  cannot hold NUL.
- `messages` and `pruned_messages` carry a `role` column, written with the entry: the pruning
  queries filter and sum by role over whole histories, which SQLite does with json_extract.
- Keys and ids that are sorted (`kv.key`, `sessions.id`, `memories.key`) use COLLATE "C", so
  they sort by code point as on SQLite, whatever the database's locale.
- `sessions` has fillfactor 70: an append updates its counters (no indexed column), and free
  room in the page keeps those updates HOT (no index writes).

Applied by PostgresStore inside one transaction, under a transaction-scoped advisory lock.
"""

from __future__ import annotations

POSTGRES_MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE kv (
            namespace TEXT NOT NULL,
            key TEXT COLLATE "C" NOT NULL,
            value TEXT NOT NULL,
            version BIGINT NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (namespace, key)
        );
        CREATE TABLE sessions (
            id TEXT COLLATE "C" PRIMARY KEY,
            app_name TEXT,
            user_id TEXT,
            metadata TEXT NOT NULL DEFAULT '{}',
            retention TEXT NOT NULL DEFAULT '{}',
            ttl_days DOUBLE PRECISION,
            immutable SMALLINT NOT NULL DEFAULT 0,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION,
            next_seq BIGINT NOT NULL DEFAULT 1,
            next_event BIGINT NOT NULL DEFAULT 1,
            active_count BIGINT NOT NULL DEFAULT 0
        ) WITH (fillfactor = 70);
        CREATE INDEX sessions_by_update ON sessions (updated_at, id);
        CREATE INDEX sessions_by_user ON sessions (app_name, user_id, updated_at, id);
        CREATE INDEX sessions_by_expiry ON sessions (expires_at) WHERE expires_at IS NOT NULL;
        CREATE TABLE messages (
            session_id TEXT NOT NULL,
            pos DOUBLE PRECISION NOT NULL,
            seq BIGINT NOT NULL,
            event_id BIGINT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            tokens INTEGER NOT NULL,
            role TEXT NOT NULL,
            entry TEXT NOT NULL,
            PRIMARY KEY (session_id, pos)
        );
        CREATE TABLE pruned_messages (
            session_id TEXT NOT NULL,
            pos DOUBLE PRECISION NOT NULL,
            seq BIGINT NOT NULL,
            event_id BIGINT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            tokens INTEGER NOT NULL,
            role TEXT NOT NULL,
            entry TEXT NOT NULL,
            pruned_by TEXT NOT NULL,
            pruned_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (session_id, pos)
        );
        CREATE TABLE state (
            scope TEXT NOT NULL,
            owner TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (scope, owner, key)
        );
        CREATE TABLE events (
            session_id TEXT NOT NULL,
            id BIGINT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            type TEXT NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (session_id, id)
        );
        """,
    ),
    # --- 2: long-term memory (agnt5.memory) ---------------------------------------------------
    (
        2,
        """
        CREATE TABLE memories (
            namespace TEXT NOT NULL,
            key TEXT COLLATE "C" NOT NULL,
            content TEXT NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{}',
            content_hash TEXT NOT NULL,
            model TEXT,
            dim INTEGER,
            vector BYTEA,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (namespace, key)
        );
        CREATE TABLE memory_namespaces (
            namespace TEXT PRIMARY KEY,
            version BIGINT NOT NULL
        );
        """,
    ),
    # --- 3: pruning (agnt5.pruning) -------------------------------------------------------------
    (
        3,
        """
        CREATE TABLE message_scores (
            session_id TEXT NOT NULL,
            seq BIGINT NOT NULL,
            score DOUBLE PRECISION NOT NULL,
            model TEXT NOT NULL,
            scored_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (session_id, seq)
        );
        """,
    ),
    # --- 4: SQLite's appends stop writing the session row --------------------------------------
    # No change here: PostgreSQL appends still move the session row's counters under its row
    # lock. The step keeps the version numbers of the two stores in step.
    (
        4,
        """
        INSERT INTO agnt5_meta (key, value) VALUES ('session_counters', 'session_row')
        ON CONFLICT (key) DO UPDATE SET value = excluded.value;
        """,
    ),
]

# --- 5: user-state owners that cannot collide; memory content that round-trips ----------------
# As SQLite's step 5 (the owners are rewritten by the store's data step in the same transaction).
# Also: memory content is stored as JSON text (a JSON string), as every other value here, since a
# TEXT column cannot hold NUL ("\x00"); existing content is converted in place.
POSTGRES_MIGRATIONS.append(
    (
        5,
        """
        INSERT INTO agnt5_meta (key, value) VALUES ('user_state_owner', 'json_pair')
        ON CONFLICT (key) DO UPDATE SET value = excluded.value;
        INSERT INTO agnt5_meta (key, value) VALUES ('memory_content', 'json_string')
        ON CONFLICT (key) DO UPDATE SET value = excluded.value;
        UPDATE memories SET content = to_json(content)::text;
        """,
    )
)

POSTGRES_LATEST_VERSION = POSTGRES_MIGRATIONS[-1][0]
