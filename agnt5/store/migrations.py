"""Versioned schema of the SQL stores: each step moves the schema one version forward.

Messages live in `messages` while active and move to `pruned_messages` (content removed) when
pruned, so the active table holds only what history reads. An append writes no session column
(since version 4; see agnt5/store/_sqlite_counters.py). A message's `message_appended` audit event is the
message row itself (its `event_id` is numbered with the session's other events), so an append
writes one message row.

A database records its version in `agnt5_meta`; opening it applies every later step in one
transaction. Steps are only ever appended, so a database written by this version opens in the next.

Every step here has its PostgreSQL translation, with the same version number, in
agnt5/store/migrations_postgres.py (tests/store/test_postgres.py checks the two lists match).
"""

from __future__ import annotations

from collections.abc import Iterable

from agnt5.store.base import user_owner

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
            next_event INTEGER NOT NULL DEFAULT 1,
            active_count INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX sessions_by_update ON sessions (updated_at, id);
        CREATE INDEX sessions_by_user ON sessions (app_name, user_id, updated_at, id);
        CREATE INDEX sessions_by_expiry ON sessions (expires_at) WHERE expires_at IS NOT NULL;
        CREATE TABLE messages (
            session_id TEXT NOT NULL,
            pos REAL NOT NULL,
            seq INTEGER NOT NULL,
            event_id INTEGER NOT NULL,
            created_at REAL NOT NULL,
            tokens INTEGER NOT NULL,
            entry TEXT NOT NULL,
            PRIMARY KEY (session_id, pos)
        ) WITHOUT ROWID;
        CREATE TABLE pruned_messages (
            session_id TEXT NOT NULL,
            pos REAL NOT NULL,
            seq INTEGER NOT NULL,
            event_id INTEGER NOT NULL,
            created_at REAL NOT NULL,
            tokens INTEGER NOT NULL,
            entry TEXT NOT NULL,
            pruned_by TEXT NOT NULL,
            pruned_at REAL NOT NULL,
            PRIMARY KEY (session_id, pos)
        ) WITHOUT ROWID;
        CREATE TABLE state (
            scope TEXT NOT NULL,
            owner TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (scope, owner, key)
        ) WITHOUT ROWID;
        CREATE TABLE events (
            session_id TEXT NOT NULL,
            id INTEGER NOT NULL,
            created_at REAL NOT NULL,
            type TEXT NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (session_id, id)
        ) WITHOUT ROWID;
        """,
    ),
    # --- 2: long-term memory (agnt5.memory) ---------------------------------------------------
    # One row per (namespace, key). `vector` is the float32 embedding (little-endian, `dim`
    # values) made by `model` from the content whose sha256 is `content_hash`; NULL for services
    # that keep no vectors. A rowid table (not WITHOUT ROWID): rows carry multi-KB blobs.
    # `memory_namespaces.version` moves on every write to a namespace, so a process holding a
    # cached index sees in one lookup whether another process changed it.
    (
        2,
        """
        CREATE TABLE memories (
            namespace TEXT NOT NULL,
            key TEXT NOT NULL,
            content TEXT NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{}',
            content_hash TEXT NOT NULL,
            model TEXT,
            dim INTEGER,
            vector BLOB,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (namespace, key)
        );
        CREATE TABLE memory_namespaces (
            namespace TEXT PRIMARY KEY,
            version INTEGER NOT NULL
        ) WITHOUT ROWID;
        """,
    ),
    # --- 3: pruning (agnt5.pruning) -------------------------------------------------------------
    # Importance scores `keep_important` got from a model, one per message (by seq), so a later
    # prune does not score the same message again. They outlive the message's pruning (audit).
    (
        3,
        """
        CREATE TABLE message_scores (
            session_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            score REAL NOT NULL,
            model TEXT NOT NULL,
            scored_at REAL NOT NULL,
            PRIMARY KEY (session_id, seq)
        ) WITHOUT ROWID;
        """,
    ),
    # --- 4: appends stop writing the session row (agnt5/store/_sqlite_counters.py) -------------
    # No table changes: from this version `sessions.next_seq`, `next_event` and `active_count`
    # are a floor that appends no longer move; agnt5 reads past it to the newest message and
    # event. A version before this one would number from the stale floor, so it must refuse the
    # file; the step records how the file is numbered.
    (
        4,
        """
        INSERT INTO agnt5_meta (key, value) VALUES ('session_counters', 'floor_and_newest_rows')
        ON CONFLICT (key) DO UPDATE SET value = excluded.value;
        """,
    ),
]

# --- 5: user-state owners that cannot collide ----------------------------------------------------
# The owner of 'user' state was f"{app}\x1f{user}", shared by ("x", "y\x1fz") and ("x\x1fy", "z").
# From this version it is the JSON pair of agnt5.store.base.user_owner. The step's data part
# (USER_OWNER_VERSION, run by each store in the same transaction) rewrites the old owners; an
# older agnt5 must refuse the file, since it would read and write the old owners.
USER_OWNER_VERSION = 5
MIGRATIONS.append(
    (
        USER_OWNER_VERSION,
        """
        INSERT INTO agnt5_meta (key, value) VALUES ('user_state_owner', 'json_pair')
        ON CONFLICT (key) DO UPDATE SET value = excluded.value;
        """,
    )
)

LATEST_VERSION = MIGRATIONS[-1][0]


def user_owner_moves(owners: Iterable[str], users: Iterable[tuple[str | None, str]]) -> dict[str, list[str]]:
    """For each old-style user-state owner in `owners`, the owners its rows move to.

    `users` are the (app_name, user_id) pairs of the stored sessions. An old owner names the
    pairs whose f"{app or ''}\x1f{user}" it equals: one, normally; several when the old key had
    already collided (each then keeps a copy of the state it saw); none when no session is left,
    then it is split at its first \x1f. An owner without \x1f is already new-style and stays.
    """
    by_old: dict[str, set[str]] = {}
    for app_name, user_id in users:
        by_old.setdefault(f"{app_name or ''}\x1f{user_id}", set()).add(user_owner(app_name, user_id))
    moves: dict[str, list[str]] = {}
    for old in owners:
        if "\x1f" not in old or old in moves:
            continue
        targets = by_old.get(old)
        if not targets:
            app_name, user_id = old.split("\x1f", 1)
            targets = {user_owner(app_name, user_id)}
        moves[old] = sorted(targets)
    return moves
