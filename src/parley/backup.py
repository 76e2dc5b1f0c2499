"""Backups of a server's data, taken while it runs, and their restore into a new data dir.

A backup is a directory:

    parley-backup.json        the manifest: when, which Parley and schema, counts, hashes
    parley.sqlite3            the database, as one consistent snapshot
    files/blobs/ab/abcd...    every shared file the snapshot refers to (as in the data dir)
    cert.pem, key.pem         the server's certificate and private key

The database is copied with SQLite's online backup API inside one read transaction: in WAL
mode a reader never blocks the server's writers, and holding the snapshot across the copy's
steps keeps SQLite from restarting the copy each time the server commits (which, with a busy
server, would never finish). Shared files are copied after the snapshot, from the list the
snapshot holds: blobs are never changed, only deleted once no record refers to them, so every
blob the snapshot needs is there unless it was deleted after the snapshot was taken (its record
is then dropped from the copy too). Uploads still in progress are left out.

The work is written into a hidden sibling directory and renamed into place at the end, so a
backup that fails leaves nothing that looks like a backup.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import io
import json
import os
import shutil
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

from parley import __version__
from parley.config import ServerConfig
from parley.storage import factory
from parley.storage.sqlite import MIGRATIONS

MANIFEST = "parley-backup.json"
FORMAT = 1
DATABASE = factory.DEFAULT_FILE
BLOBS = Path("files") / "blobs"
TLS_FILES = ("cert.pem", "key.pem")
# About 4 MiB a step with SQLite's default 4 KiB pages.
_PAGES_PER_STEP = 1024
_BUSY_TIMEOUT_SECONDS = 10.0
_CHUNK_BYTES = 1 << 20

Say = Callable[[str], None]


class BackupError(Exception):
    """A backup or restore cannot be done; the message names the path and what to do."""


@dataclasses.dataclass(slots=True)
class Manifest:
    created: str
    parley_version: str
    # None for a backup of the files only (the database is PostgreSQL's, see pg_dump).
    schema_version: int | None
    database_sha256: str | None
    counts: dict[str, int]

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **dataclasses.asdict(self)}, indent=2) + "\n"


# --- backup ----------------------------------------------------------------------------------


def backup(config: ServerConfig, dest: Path, *, files_only: bool, say: Say) -> Manifest:
    """Copy the server's database, shared files, certificate and key into ``dest`` (a new or
    empty directory). Raises BackupError.
    """
    database = factory.sqlite_path(config.database, config.data_dir)
    if database == factory.MEMORY:
        raise BackupError("--database is an in-memory database: there is nothing to back up.")
    if database is None and not files_only:
        assert config.database is not None
        raise BackupError(postgres_advice(config.database))
    if isinstance(database, Path) and files_only:
        raise BackupError(
            "--files-only is for a server whose database is PostgreSQL; this one's is "
            f"{database}, which the backup copies with its files: leave out --files-only."
        )
    with _failing_as_backup_error():
        _check_destination(dest)
    with _failing_as_backup_error(), _work_dir(dest) as work:
        if isinstance(database, Path):
            manifest = _backup_database(config, database, work, say)
        else:
            manifest = _backup_all_files(config, work, say)
        _copy_tls(config, work)
        _write_private(work / MANIFEST, manifest.to_json().encode())
        _fsync_dir(work)
        os.rename(work, dest)  # replaces dest when it is an empty directory
        _fsync_dir(dest.absolute().parent)
    return manifest


def postgres_advice(database: str) -> str:
    """What to run instead, for a server whose database is PostgreSQL."""
    url = _without_password(database)
    return (
        "The database is PostgreSQL, which parley admin backup does not copy. Back it up with\n"
        f"  pg_dump --format=custom --file=parley.dump '{url}'\n"
        "then the shared files, certificate and key with\n"
        "  parley admin backup DEST --files-only   (and the same --config or --data-dir)\n"
        "To restore the database later:\n"
        f"  pg_restore --clean --if-exists --no-owner --dbname='{url}' parley.dump"
    )


def _without_password(database: str) -> str:
    parts = urllib.parse.urlsplit(database)
    if parts.password is None:
        return database
    host = parts.netloc.rsplit("@", 1)[1]
    user = urllib.parse.quote(parts.username or "", safe="")
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}@{host}"))


def _check_destination(dest: Path) -> None:
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise BackupError(f"{dest} exists and is not a directory: give a new directory.")
    if dest.is_dir() and any(dest.iterdir()):
        raise BackupError(
            f"{dest} is not empty: give a new (or empty) directory; a backup never writes "
            "over files already there."
        )


@contextlib.contextmanager
def _work_dir(dest: Path) -> Iterator[Path]:
    """A private directory beside ``dest`` to build the backup in; removed if it fails."""
    parent = dest.absolute().parent
    if parent.exists() and not parent.is_dir():
        raise BackupError(f"{parent} is a file, not a directory: give DEST in a directory.")
    work = parent / f".{dest.name}.incomplete-{os.getpid()}"
    try:
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        work.mkdir(mode=0o700)
    except OSError as exc:
        # Named by DEST, not by the hidden directory beside it the user never asked for.
        raise BackupError(
            f"Cannot write a backup at {dest}: {exc.strerror or exc}. Give DEST in a directory "
            "this user may create and write."
        ) from None
    try:
        yield work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


@contextlib.contextmanager
def _failing_as_backup_error() -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        where = exc.filename or "the backup"
        raise BackupError(
            f"{where}: {exc.strerror or exc}: check that the path exists, is a directory "
            "where needed, and that this user may write there."
        ) from None
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite: {exc}") from None


def _backup_database(config: ServerConfig, database: Path, work: Path, say: Say) -> Manifest:
    if not database.is_file():
        raise BackupError(
            f"There is no database at {database}: check --data-dir, --database or --config."
        )
    snapshot = work / DATABASE
    schema = _snapshot(database, snapshot)
    say(f"Database snapshot taken (schema {schema}).")
    blobs_dir = config.data_dir / BLOBS
    db = sqlite3.connect(snapshot, isolation_level=None)
    try:
        db.execute("PRAGMA foreign_keys = ON")
        # Not part of the backup: uploads still arriving (their records go too, with their
        # readers), then whatever was deleted after the snapshot.
        copied = dropped = size = 0
        shas = []
        if _has_files(db):
            db.execute("DELETE FROM files WHERE complete = 0")
            shas = [row[0] for row in db.execute("SELECT DISTINCT sha256 FROM files")]
        for sha in shas:
            copied_bytes = _copy_blob(blobs_dir, work / BLOBS, sha)
            if copied_bytes is None:
                db.execute("DELETE FROM files WHERE sha256 = ?", (sha,))
                dropped += 1
            else:
                copied += 1
                size += copied_bytes
        if dropped:
            say(
                f"{dropped} shared file(s) were deleted (or damaged) in {blobs_dir} after the "
                "snapshot: left out of the backup."
            )
        _check_integrity(db, snapshot)
        counts = _counts(db)
    finally:
        db.close()
    counts.update(blobs=copied, blob_bytes=size, blobs_left_out=dropped)
    return Manifest(_now(), __version__, schema, _sha256_of(snapshot), counts)


def _snapshot(database: Path, target: Path) -> int:
    """Copy ``database`` to ``target`` as of one moment; returns its schema version."""
    uri = database.absolute().as_uri() + "?mode=rw"
    try:
        source = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=_BUSY_TIMEOUT_SECONDS)
    except sqlite3.Error as exc:
        raise BackupError(f"Cannot open the database {database}: {exc}.") from None
    try:
        source.execute("PRAGMA query_only = ON")
        source.execute("BEGIN")
        try:
            schema: int = source.execute("PRAGMA user_version").fetchone()[0]
            source.execute("SELECT count(*) FROM sqlite_schema").fetchone()  # the snapshot
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"{database} cannot be read as a database: {exc}.") from None
        if schema > len(MIGRATIONS):
            raise BackupError(
                f"{database} was made by a newer Parley (schema {schema}; this one knows up "
                f"to {len(MIGRATIONS)}): run the backup with the server's own parley."
            )
        copy = sqlite3.connect(target)
        try:
            source.backup(copy, pages=_PAGES_PER_STEP)
            copy.execute("PRAGMA journal_mode = DELETE")
        finally:
            copy.close()
        source.execute("COMMIT")
    finally:
        source.close()
    return schema


def _copy_blob(blobs: Path, target: Path, sha: str) -> int | None:
    """Copy one blob, checking its hash; None when it is gone or does not match."""
    source = blobs / sha[:2] / sha
    destination = target / sha[:2] / sha
    destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        reader = source.open("rb")
    except FileNotFoundError:
        return None
    digest = hashlib.sha256()
    size = 0
    with reader, _private_file(destination) as writer:
        while chunk := reader.read(_CHUNK_BYTES):
            digest.update(chunk)
            writer.write(chunk)
            size += len(chunk)
        writer.flush()
        os.fsync(writer.fileno())
    if digest.hexdigest() != sha:
        destination.unlink()
        return None
    return size


def _backup_all_files(config: ServerConfig, work: Path, say: Say) -> Manifest:
    """A PostgreSQL server's files: every complete blob there is (the list is in PostgreSQL)."""
    blobs_dir = config.data_dir / BLOBS
    copied = dropped = size = 0
    if blobs_dir.is_dir():
        for path in sorted(blobs_dir.glob("??/*")):
            copied_bytes = _copy_blob(blobs_dir, work / BLOBS, path.name)
            if copied_bytes is None:
                dropped += 1
            else:
                copied += 1
                size += copied_bytes
    say(f"{copied} shared file(s) copied from {blobs_dir}.")
    counts = {"blobs": copied, "blob_bytes": size, "blobs_left_out": dropped}
    return Manifest(_now(), __version__, None, None, counts)


def _copy_tls(config: ServerConfig, work: Path) -> None:
    """The certificate and key the server uses: its own files, or the pair in the data dir."""
    if config.cert_file is not None and config.key_file is not None:
        pair = (config.cert_file, config.key_file)
    else:
        pair = (config.data_dir / TLS_FILES[0], config.data_dir / TLS_FILES[1])
    for source, name in zip(pair, TLS_FILES, strict=True):
        if source.is_file():
            _write_private(work / name, source.read_bytes())


def _counts(db: sqlite3.Connection) -> dict[str, int]:
    counts = {"files": 0}
    for table in ("accounts", "rooms", "messages", "files"):
        if table != "files" or _has_files(db):
            counts[table] = int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608
    return counts


def _has_files(db: sqlite3.Connection) -> bool:
    """Whether the schema has file sharing's table (the first schema had not)."""
    found = db.execute("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'files'")
    return found.fetchone() is not None


# --- restore ---------------------------------------------------------------------------------


def restore(source: Path, config: ServerConfig, *, force: bool, say: Say) -> Manifest:
    """Restore the backup in ``source`` into ``config``'s data dir (and database file), after
    checking it whole. What is there already is refused, or moved aside with ``force``.
    Raises BackupError.
    """
    manifest = read_manifest(source)
    database = factory.sqlite_path(config.database, config.data_dir)
    if manifest.schema_version is not None and not isinstance(database, Path):
        raise BackupError(
            "The backup holds a SQLite database, but --database is "
            f"{factory.describe(config.database, config.data_dir)}: restore into a data dir "
            "whose database is SQLite (the default)."
        )
    target_db = None
    if manifest.schema_version is not None and isinstance(database, Path):
        target_db = database
    with _failing_as_backup_error():
        present = _check_target(config.data_dir, target_db, force=force)
        _verify(source, manifest)
        what = "the database and " if manifest.schema_version is not None else ""
        say(f"{source} checked: {what}{manifest.counts['blobs']} shared file(s).")
        if present:
            _move_aside(config.data_dir, present, say)
        _put_in_place(source, config, target_db)
    return manifest


def read_manifest(source: Path) -> Manifest:
    path = source / MANIFEST
    if not source.exists():
        raise BackupError(f"{source} does not exist: give the directory a backup made.")
    if not source.is_dir():
        raise BackupError(f"{source} is not a directory: give the directory a backup made.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(
            f"{source} is not a Parley backup (there is no {MANIFEST} in it): give the "
            "directory parley admin backup made."
        ) from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{path} cannot be read ({exc}): the backup is damaged.") from None
    if not isinstance(data, dict) or not isinstance(data.get("format"), int):
        raise BackupError(f"{path} is not a Parley backup manifest: the backup is damaged.")
    if data["format"] > FORMAT:
        raise BackupError(f"{source} was made by a newer Parley: restore it with that version.")
    data.pop("format")
    try:
        manifest = Manifest(**data)
        manifest.counts = {str(key): int(value) for key, value in manifest.counts.items()}
    except (TypeError, ValueError, AttributeError):
        manifest = None
    if manifest is None or "blobs" not in manifest.counts:
        raise BackupError(f"{path} is not a Parley backup manifest: the backup is damaged.")
    if manifest.schema_version is not None and manifest.schema_version > len(MIGRATIONS):
        raise BackupError(
            f"{source} holds a database of schema {manifest.schema_version}, made by a newer "
            f"Parley ({manifest.parley_version}): restore it with that version or a later one."
        )
    return manifest


def _verify(source: Path, manifest: Manifest) -> None:
    """Every hash and count as the manifest says, and a database SQLite finds intact."""
    blobs = _verified_blobs(source / BLOBS)
    if len(blobs) != manifest.counts["blobs"]:
        raise BackupError(
            f"{source / BLOBS} holds {len(blobs)} shared file(s) where the manifest says "
            f"{manifest.counts['blobs']}: the backup is incomplete."
        )
    if manifest.schema_version is None:
        return
    path = source / DATABASE
    if not path.is_file():
        raise BackupError(f"{path} is missing: the backup is incomplete.")
    if _sha256_of(path) != manifest.database_sha256:
        raise BackupError(f"{path} is not the file the backup wrote (its SHA-256 differs).")
    db = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True)
    try:
        _check_integrity(db, path)
        schema = db.execute("PRAGMA user_version").fetchone()[0]
        if schema != manifest.schema_version:
            raise BackupError(f"{path} is schema {schema}, not {manifest.schema_version}.")
        needed = set()
        if _has_files(db):
            needed = {row[0] for row in db.execute("SELECT DISTINCT sha256 FROM files")}
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is damaged: {exc}.") from None
    finally:
        db.close()
    if missing := needed - blobs:
        raise BackupError(
            f"{source / BLOBS} lacks {len(missing)} shared file(s) the database refers to, "
            f"such as {sorted(missing)[0]}: the backup is incomplete."
        )


def _verified_blobs(blobs: Path) -> set[str]:
    found: set[str] = set()
    if not blobs.is_dir():
        return found
    for path in blobs.glob("??/*"):
        digest = hashlib.sha256()
        with path.open("rb") as file:
            while chunk := file.read(_CHUNK_BYTES):
                digest.update(chunk)
        if digest.hexdigest() != path.name:
            raise BackupError(f"{path} does not match its SHA-256: the backup is damaged.")
        found.add(path.name)
    return found


def _check_target(data_dir: Path, database: Path | None, *, force: bool) -> list[Path]:
    """Refuse a target in use, unusable or (without ``force``) holding data; returns what is
    there to move aside.
    """
    if data_dir.exists() and not data_dir.is_dir():
        raise BackupError(f"--data-dir {data_dir} is a file: give a new directory.")
    for parent in data_dir.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise BackupError(f"{parent} is a file, not a directory: give another --data-dir.")
            break
    if database is not None and database.is_file() and _in_use(database):
        raise BackupError(
            f"{database} is open in another program (a running server?): stop the server "
            f"that uses {data_dir} first; a restore never replaces a live database."
        )
    present = [path for path in _restored_paths(data_dir, database) if path.exists()]
    if present and not force:
        what = (
            f"holds a database already ({database})"
            if database is not None and database.exists()
            else f"holds server data already ({present[0]})"
        )
        raise BackupError(
            f"{data_dir} {what}: restore into a new data dir, or give --force to move what is "
            "there aside (nothing is deleted)."
        )
    return present


def _move_aside(data_dir: Path, present: list[Path], say: Say) -> None:
    aside = data_dir / time.strftime("replaced-%Y%m%dT%H%M%SZ", time.gmtime())
    aside.mkdir(mode=0o700)
    for path in present:
        shutil.move(path, aside / path.name)
    say(f"Moved what was in {data_dir} aside into {aside}.")


def _restored_paths(data_dir: Path, database: Path | None) -> list[Path]:
    paths = [data_dir / "files", *(data_dir / name for name in TLS_FILES)]
    if database is not None:
        paths += [
            database,
            *(database.with_name(database.name + tail) for tail in ("-wal", "-shm")),
        ]
    return paths


def _in_use(database: Path) -> bool:
    """True when another connection has ``database`` open (a server holds one all along)."""
    probe = sqlite3.connect(database.absolute().as_uri() + "?mode=rw", uri=True, timeout=0)
    try:
        probe.execute("PRAGMA locking_mode = EXCLUSIVE")
        probe.execute("BEGIN EXCLUSIVE")
        probe.execute("ROLLBACK")
    except sqlite3.OperationalError:
        return True
    except sqlite3.DatabaseError:
        return False  # not a database: moved aside with --force like any other file
    finally:
        probe.close()
    return False


def _put_in_place(source: Path, config: ServerConfig, database: Path | None) -> None:
    """Copy into a private staging dir in the data dir, then rename each piece into place:
    the database last, so a data dir with a database is a complete restore.
    """
    data_dir = config.data_dir
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = data_dir / f".restoring-{os.getpid()}"
    staging.mkdir(mode=0o700)
    try:
        if (source / BLOBS).is_dir():
            shutil.copytree(source / BLOBS, staging / BLOBS, copy_function=_copy_private)
        else:
            (staging / BLOBS).mkdir(mode=0o700, parents=True)
        for name in TLS_FILES:
            if (source / name).is_file():
                _copy_private(source / name, staging / name)
        if database is not None:
            _copy_private(source / DATABASE, staging / DATABASE)
            _raise_history_epoch(staging / DATABASE)
        _fsync_dir(staging)
        os.rename(staging / "files", data_dir / "files")
        for name in TLS_FILES:
            if (staging / name).exists():
                os.rename(staging / name, data_dir / name)
        if database is not None:
            database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            shutil.move(staging / DATABASE, database)
        _fsync_dir(data_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --- helpers ---------------------------------------------------------------------------------


def _raise_history_epoch(path: Path) -> None:
    """A restored database is older than what the server showed since the backup, and its
    seqs will be given out again: its history epoch goes up, so that clients reload their
    history (see Storage.start_run). A backup made before there was one is left as it is.
    """
    db = sqlite3.connect(path)
    try:
        with db:
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'history_epoch'").fetchone():
                db.execute("UPDATE history_epoch SET epoch = epoch + 1, running = ''")
    finally:
        db.close()


def _check_integrity(db: sqlite3.Connection, path: Path) -> None:
    try:
        rows = [row[0] for row in db.execute("PRAGMA integrity_check(5)")]
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is damaged: {exc}.") from None
    if rows != ["ok"]:
        raise BackupError(f"{path} fails SQLite's integrity check: {'; '.join(rows)}.")


@contextlib.contextmanager
def _private_file(path: Path) -> Iterator[io.BufferedWriter]:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        yield file


def _write_private(path: Path, data: bytes) -> None:
    with _private_file(path) as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def _copy_private(source: str | Path, target: str | Path) -> None:
    with open(source, "rb") as reader, _private_file(Path(target)) as writer:
        shutil.copyfileobj(reader, writer, _CHUNK_BYTES)
        writer.flush()
        os.fsync(writer.fileno())


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
