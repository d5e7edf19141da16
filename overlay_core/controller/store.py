"""The controller's SQLite database, `<home>/controller.db`, and its schema migrations.

Settings, chosen once per connection:

* WAL journal: readers (the API listing members) never block the writer (a member's config
  request) and a commit is one append to the log.
* synchronous=FULL: in WAL mode NORMAL may lose the last commits on power loss. Here a
  commit is a promise made to someone: an admin saw "approved", a member was handed an IP
  in a signed config. Forgetting an approval re-pends a member; forgetting an assignment
  hands the same IP to the next member while the first still uses it; forgetting a
  deauthorization readmits someone who was thrown out. One fsync per change is cheap.
* foreign_keys=ON: SQLite leaves them off by default; the cascades below depend on them.

File mode: the database holds every member's address, name and IPs, and with --api-group
the home is group-readable (0750), so the file is 0600 whatever the umask: it is created
0600 before SQLite opens it, and an existing one (from an older ztui) is put back to 0600.
SQLite creates `-wal` and `-shm` with the mode of the database file (its unix VFS fchmods
them to it, past the umask), so they follow; leftover ones from a crash are fixed too.

Migrations: MIGRATIONS[i] is the list of statements taking the schema from version i to
i + 1; `PRAGMA user_version` records how far a file has come. Each step runs in its own
BEGIN IMMEDIATE transaction together with the version bump, so a crash mid-migration leaves
the file at the previous version, never half-built. Add a step, never edit a shipped one.

Ids are stored as hex text (nwid 16 digits, addresses 10): a 64-bit nwid does not fit
SQLite's signed INTEGER, and the text is what an admin types into the sqlite3 shell.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

DB_NAME = "controller.db"
BUSY_TIMEOUT_MS = 5000
DB_FILE_MODE = 0o600
# Files SQLite keeps beside the database; they hold the same rows as the database itself.
SIDE_FILE_SUFFIXES = ("-wal", "-shm", "-journal")

_V1 = (
    """CREATE TABLE networks (
        nwid TEXT PRIMARY KEY CHECK (length(nwid) = 16),
        number INTEGER NOT NULL UNIQUE CHECK (number BETWEEN 0 AND 16777215),
        name TEXT NOT NULL,
        private INTEGER NOT NULL CHECK (private IN (0, 1)),
        mtu INTEGER NOT NULL CHECK (mtu BETWEEN 1280 AND 9000),
        mss TEXT NOT NULL,
        broadcast INTEGER NOT NULL CHECK (broadcast IN (0, 1)),
        multicast_limit INTEGER NOT NULL,
        rules TEXT NOT NULL,    -- JSON list of the network's own rules
        presets TEXT NOT NULL,  -- JSON list of preset names, applied before the rules
        pools TEXT NOT NULL,    -- JSON list of "CIDR" or "first-last"
        routes TEXT NOT NULL,   -- JSON list of [target, via or null]
        revision INTEGER NOT NULL,
        created REAL NOT NULL,
        updated REAL NOT NULL
    ) STRICT""",
    """CREATE TABLE members (
        nwid TEXT NOT NULL REFERENCES networks (nwid) ON DELETE CASCADE,
        address TEXT NOT NULL CHECK (length(address) = 10),
        authorized INTEGER NOT NULL DEFAULT 0 CHECK (authorized IN (0, 1)),
        name TEXT NOT NULL DEFAULT '',
        active_bridge INTEGER NOT NULL DEFAULT 0 CHECK (active_bridge IN (0, 1)),
        created REAL NOT NULL,
        last_seen REAL,
        last_authorized REAL,
        last_deauthorized REAL,
        version TEXT,
        physical_address TEXT,
        PRIMARY KEY (nwid, address)
    ) STRICT""",
    # The primary key is the guarantee that no IP is ever handed to two members of a
    # network, whatever the Python above it gets wrong.
    """CREATE TABLE ip_assignments (
        nwid TEXT NOT NULL,
        ip TEXT NOT NULL,
        address TEXT NOT NULL,
        PRIMARY KEY (nwid, ip),
        FOREIGN KEY (nwid, address) REFERENCES members (nwid, address) ON DELETE CASCADE
    ) STRICT""",
    "CREATE INDEX ip_assignments_by_member ON ip_assignments (nwid, address)",
    # Small settings that outlive rows, such as the next network number to hand out.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value ANY) STRICT",
)

# Path reports (controller/reports.py): the newest from each member, dropped with it.
_V2 = (
    """CREATE TABLE path_reports (
        nwid TEXT NOT NULL,
        address TEXT NOT NULL,
        received REAL NOT NULL,
        sequence INTEGER NOT NULL,
        report TEXT NOT NULL,  -- JSON: overlay_core.proto.report.PathReport.to_json()
        PRIMARY KEY (nwid, address),
        FOREIGN KEY (nwid, address) REFERENCES members (nwid, address) ON DELETE CASCADE
    ) STRICT""",
)

MIGRATIONS: Sequence[Sequence[str]] = (_V1, _V2)


class StoreError(Exception):
    """The database cannot be used: newer schema than this code, or not a SQLite file."""


def db_path(home: Path) -> Path:
    return home / DB_NAME


def make_private(path: Path) -> None:
    """Create `path` (if missing) and any SQLite side files present as DB_FILE_MODE.

    os.open's mode is cut by the umask (0o277 would leave 0400, unwritable for a non-root
    owner), and an existing file keeps its old mode, so fchmod sets exactly 0600 either way.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, DB_FILE_MODE)
        try:
            os.fchmod(fd, DB_FILE_MODE)
        finally:
            os.close(fd)
        for suffix in SIDE_FILE_SUFFIXES:
            # Missing is the usual case: SQLite removes them when the last connection closes.
            with contextlib.suppress(FileNotFoundError):
                os.chmod(f"{path}{suffix}", DB_FILE_MODE)
    except OSError as exc:
        raise StoreError(f"{path}: {exc.strerror or exc}") from exc


class Store:
    """One connection with the settings above, migrated to the latest schema on open."""

    def __init__(self, path: Path, migrations: Sequence[Sequence[str]] = MIGRATIONS) -> None:
        make_private(path)
        # isolation_level=None: the sqlite3 module starts no transactions of its own; every
        # change goes through `transaction()`, so what is atomic is written down here.
        self.conn = sqlite3.connect(path, isolation_level=None)
        try:
            self.conn.row_factory = sqlite3.Row
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(f"{path}: cannot use WAL journal mode (got {mode})")
            self.conn.execute("PRAGMA synchronous = FULL")
            self.conn.execute("PRAGMA foreign_keys = ON")
            self.migrate(migrations)
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise StoreError(f"{path}: {exc}") from exc
        except BaseException:
            self.conn.close()
            raise

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self, migrations: Sequence[Sequence[str]]) -> None:
        if self.schema_version > len(migrations):
            raise StoreError(
                f"schema version {self.schema_version} is newer than this ztui knows "
                f"({len(migrations)}); upgrade ztui"
            )
        for target, statements in enumerate(migrations, start=1):
            with self.transaction():
                # Read again under the write lock: another process may have migrated.
                if self.schema_version >= target:
                    continue
                for statement in statements:
                    self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {target}")

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception. IMMEDIATE takes the
        write lock up front, so read-then-write sequences (pick a free IP, insert it) cannot
        interleave with another writer. write=False: a consistent snapshot for reading."""
        self.conn.execute("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:  # also when COMMIT itself failed
                self.conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.conn.close()
