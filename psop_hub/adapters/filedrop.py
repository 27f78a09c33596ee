"""The file drop (INTERFACES §5): batch files from `inbox/<client>/` become messages.

A file is claimed by an atomic rename into `work/<client>/` (two adapters on one inbox: only one
rename succeeds), read as a stream by the reader of its format (`mappings/xmlbatch.py`,
`mappings/csvfiles.py`: pure functions that validate each record and yield the same `Record`),
and its valid records are stored in batches through the same intake as REST and SOAP. A record's
message_id derives from the file's SHA-256 and its position, so a file dropped twice, or re-read
after a crash, applies nothing twice. When done, the receipt
is written (atomically) to `outbox/<client>/receipts/` and the file moved to
`archive/<client>/YYYY-MM-DD/`; the result follows once every record is final
(`adapters/results.py`); a file that cannot be read at all goes to `error/<client>/` with
a receipt that says why. A claimed file whose adapter died is taken over once its lease (the
file's mtime, renewed after every batch) has run out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import uuid
from array import array
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Engine

from psop_hub.adapters.atomic import Streamed, json_document, write_new
from psop_hub.adapters.intake import submit_many
from psop_hub.adapters.results import record_pending
from psop_hub.hub.errors import ConflictError, FieldError, PermanentError, TransientError
from psop_hub.hub.privacy import mask_text
from psop_hub.hub.senders import Sender, by_name
from psop_hub.hub.settings import Settings
from psop_hub.hub.submission import Accepted
from psop_hub.hub.tables import files
from psop_hub.mappings.canonical import Envelope
from psop_hub.mappings.csvfiles import read_records
from psop_hub.mappings.records import UnreadableFile, record_message_id
from psop_hub.mappings.xmlbatch import read_batch

log = logging.getLogger(__name__)
CLAIM = re.compile(r"^[0-9a-f]{32}__(?P<name>.+)$")


@dataclass(frozen=True)
class Stored:
    """A batch of valid records on its way into the store, and what the store will answer."""

    pending: list[tuple[int, int | None, Envelope]]
    results: Future[list[Accepted | PermanentError]]


@dataclass
class Receipt:
    """What the sender gets back for one file."""

    file: str
    sha256: str
    records: int = 0
    accepted: int = 0
    duplicates: int = 0
    error: str | None = None
    # Per accepted record, in columns: where it was (line -1: none), its hub_id (16 bytes) and
    # whether it was a duplicate; 33 bytes a record, against ~400 for a dict of five values (40 MB
    # for a file of 100,000 records). Its message_id is the file's own for that position
    # (`record_message_id`) unless `_message_ids` holds another.
    _records: array[int] = field(default_factory=lambda: array("q"), init=False, repr=False)
    _lines: array[int] = field(default_factory=lambda: array("q"), init=False, repr=False)
    _hub_ids: bytearray = field(default_factory=bytearray, init=False, repr=False)
    _duplicate: bytearray = field(default_factory=bytearray, init=False, repr=False)
    _message_ids: dict[int, str] = field(default_factory=dict, init=False, repr=False)
    # Per refused record: its entry (where it was, its errors) as compact JSON, and its record
    # number; a dict of dicts a refusal was ~2 KB (a file of 100,000 bad records: 200 MB).
    _refused: list[bytes] = field(default_factory=list, init=False, repr=False)
    _refused_records: array[int] = field(default_factory=lambda: array("q"), init=False, repr=False)

    @property
    def refused(self) -> int:
        """How many records were refused."""
        return len(self._refused)

    def head(self) -> dict[str, Any]:
        """The receipt document's members before `rejected`."""
        return {
            "file": self.file,
            "sha256": self.sha256,
            "records": self.records,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
        }

    def tail(self) -> dict[str, Any]:
        """The receipt document's members after `messages`."""
        return {} if self.error is None else {"error": self.error}

    def refusals(self) -> Iterator[dict[str, Any]]:
        """Each refused record's entry, in record order (a batch's refusals by the store come
        after later records' own); made one at a time."""
        for n in sorted(range(len(self._refused)), key=self._refused_records.__getitem__):
            yield json.loads(self._refused[n])

    def messages(self) -> Iterator[dict[str, Any]]:
        """Per accepted record, in the order accepted: where it was, the message_id it got and
        its hub_id (to follow it by REST); made one at a time."""
        for n, record in enumerate(self._records):
            line = self._lines[n]
            yield {
                "record": record,
                "line": None if line < 0 else line,
                "message_id": self._message_ids.get(n) or record_message_id(self.sha256, record),
                "hub_id": str(uuid.UUID(bytes=bytes(self._hub_ids[16 * n : 16 * n + 16]))),
                "duplicate": bool(self._duplicate[n]),
            }

    def as_json(self) -> dict[str, Any]:
        """The receipt document, whole."""
        return {
            **self.head(),
            "rejected": list(self.refusals()),
            "messages": list(self.messages()),
            **self.tail(),
        }

    def chunks(self) -> Iterator[bytes]:
        """The receipt document's bytes, as `as_json` written with indent 2, a record at a time."""
        return json_document(
            {
                **self.head(),
                "rejected": Streamed(self.refusals()),
                "messages": Streamed(self.messages()),
                **self.tail(),
            }
        )

    def accept(
        self, record: int, line: int | None, message_id: str, hub_id: uuid.UUID, duplicate: bool
    ) -> None:
        """Count one record as accepted (`duplicates` counts those among them already taken before)."""
        self.accepted += 1
        self.duplicates += duplicate
        if message_id != record_message_id(self.sha256, record):
            self._message_ids[len(self._records)] = message_id
        self._records.append(record)
        self._lines.append(-1 if line is None else line)
        self._hub_ids += hub_id.bytes
        self._duplicate.append(duplicate)

    def reject(self, record: int, line: int | None, errors: list[FieldError]) -> None:
        """List one record as rejected."""
        entry = {"record": record, "line": line, "errors": [e.as_dict() for e in errors]}
        # compact ASCII JSON (\u escapes): the errors come back from it as they were
        self._refused.append(json.dumps(entry, separators=(",", ":")).encode("ascii"))
        self._refused_records.append(record)


SAFE_FOLDER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def client_folders(root: Path, client: str) -> list[Path] | None:
    """Create a sending client's `inbox/<client>/` and `outbox/<client>/receipts/` under the data
    directory and return them; None (nothing created) for a name that is not one plain folder name."""
    if not SAFE_FOLDER.fullmatch(client):
        return None
    folders = [root / "inbox" / client, root / "outbox" / client / "receipts"]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    return folders


def sha256_of(path: Path) -> str:
    """The file's SHA-256, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _messages(
    path: Path, sender: Sender, sha: str, now: datetime, settings: Settings
) -> Iterator[tuple[int, int | None, Envelope | list[FieldError]]]:
    """Each record of the file: its message as stored, or its errors. The readers validate (and
    refuse a file over the limits before its first record); only the message_id (from the file's
    hash and the position) and the time are set here."""
    xml = path.name.lower().endswith(".xml")
    limit = settings.files_max_records
    with path.open("rb") as stream:
        if xml:
            _, records = read_batch(
                stream,
                max_records=limit,
                max_nodes=settings.max_xml_nodes,
                max_depth=settings.max_xml_depth,
            )
        else:
            _, records = read_records(stream, provider=sender.provider, max_records=limit)
        for record in records:
            envelope = record.stamped(sha, now)
            yield record.index, record.line, envelope if envelope is not None else record.errors


class FileDrop:
    """One file adapter: scans the inboxes, claims files, turns them into messages."""

    def __init__(
        self, settings: Settings, engine: Engine, hand_over: Callable[[list[uuid.UUID]], None]
    ) -> None:
        self.settings = settings
        self.engine = engine
        # Publishes stored records' hub_ids in their order, off this thread (a `Dispatcher`'s
        # submit): the next batch is read while the broker confirms this one.
        self.hand_over = hand_over
        self.root = Path(settings.data_dir)
        self.batch = settings.files_batch

    def scan_once(self) -> int:
        """Claim and process every waiting file (and every abandoned claim); returns how many."""
        done = 0
        for client_dir in sorted(p for p in (self.root / "inbox").glob("*") if p.is_dir()):
            for path in sorted(client_dir.iterdir()):
                if path.name.startswith(".") or path.name.endswith(".part") or not path.is_file():
                    continue
                claimed = self._claim(path, client_dir.name, path.name)
                if claimed is not None:
                    self.process(client_dir.name, claimed, path.name)
                    done += 1
        for work_dir in sorted(p for p in (self.root / "work").glob("*") if p.is_dir()):
            for path in sorted(work_dir.iterdir()):
                match = CLAIM.match(path.name)
                if match is None or time.time() - path.stat().st_mtime < self.settings.files_lease_s:
                    continue
                claimed = self._claim(path, work_dir.name, match["name"])
                if claimed is not None:
                    log.warning(
                        "taking over %s of %s: its claim ran out (its adapter stopped or could not finish)",
                        match["name"],
                        work_dir.name,
                    )
                    self.process(work_dir.name, claimed, match["name"])
                    done += 1
        return done

    def _claim(self, path: Path, client: str, name: str) -> Path | None:
        work = self.root / "work" / client
        work.mkdir(parents=True, exist_ok=True)
        target = work / f"{uuid.uuid4().hex}__{name}"
        try:
            os.rename(path, target)  # atomic: of two adapters, one wins
        except FileNotFoundError:
            return None
        os.utime(target)
        return target

    def process(self, client: str, path: Path, name: str) -> Receipt:
        """Read one claimed file to the end: store its records, write its receipt, move it."""
        sha = sha256_of(path)
        receipt = Receipt(file=name, sha256=sha)
        sender = by_name(self.engine, client)
        try:
            if sender is None:
                raise UnreadableFile(
                    f"there is no client named {client!r}: the folder name must be a client's name"
                )
            if not name.lower().endswith((".xml", ".csv")):
                raise UnreadableFile("unknown file type: a batch file ends in .xml or .csv")
            size, most = path.stat().st_size, self.settings.files_max_bytes
            if size > most:
                raise UnreadableFile(
                    f"the file is {size} bytes, more than the {most} bytes one file may hold: "
                    "split it into several files"
                )
            messages = _messages(path, sender, sha, datetime.now(UTC), self.settings)
            self._store(sender, path, messages, receipt)
        except UnreadableFile as exc:
            receipt.error = exc.reason
            self._finish_or_leave(client, path, name, receipt, self.root / "error" / client)
            return receipt
        except TransientError:
            raise  # the file stays claimed in work/ and is taken over (read again) after its lease
        except Exception as exc:
            # Not silent and not retried for ever: what was stored stays stored (and is counted
            # in the receipt), the rest of the file is refused with the reason.
            log.exception("file %s of %s could not be processed", name, client)
            receipt.error = (
                f"the file could not be processed to the end ({type(exc).__name__}); see the hub log"
            )
            self._finish_or_leave(client, path, name, receipt, self.root / "error" / client)
            return receipt
        archive = self.root / "archive" / client / date.today().isoformat()
        self._finish_or_leave(client, path, name, receipt, archive)
        return receipt

    def _store(
        self,
        sender: Sender,
        path: Path,
        records: Iterator[tuple[int, int | None, Envelope | list[FieldError]]],
        receipt: Receipt,
    ) -> None:
        """Store the valid records in batches, each in one transaction, one batch behind the
        reading: the next batch is read and validated while the last one commits."""
        pending: list[tuple[int, int | None, Envelope]] = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-files-store") as storing:
            in_flight: Stored | None = None
            try:
                for index, line, outcome in records:
                    receipt.records += 1
                    if isinstance(outcome, list):
                        receipt.reject(index, line, outcome)
                    else:
                        pending.append((index, line, outcome))
                    if len(pending) >= self.batch:
                        previous, in_flight = in_flight, None
                        self._settle(previous, path, receipt)
                        in_flight = Stored(pending, storing.submit(self._submit, sender, pending))
                        pending = []
            finally:
                # A batch in flight is stored or fails; either way the receipt says so, also when
                # the reading stopped at an unreadable part of the file.
                self._settle(in_flight, path, receipt)
            if pending:
                self._settle(Stored(pending, storing.submit(self._submit, sender, pending)), path, receipt)

    def _submit(
        self, sender: Sender, pending: list[tuple[int, int | None, Envelope]]
    ) -> list[Accepted | PermanentError]:
        return submit_many(self.engine, sender, [envelope for _, _, envelope in pending], "file")

    def _settle(self, stored: Stored | None, path: Path, receipt: Receipt) -> None:
        """Wait for a stored batch; count its records in the receipt and hand its new messages
        over for publishing."""
        if stored is None:
            return
        fresh: list[tuple[tuple[str, str], uuid.UUID]] = []
        for (index, line, envelope), result in zip(stored.pending, stored.results.result(), strict=True):
            if isinstance(result, ConflictError):
                receipt.reject(index, line, [FieldError("", f"{result.reason} (hub_id {result.hub_id})")])
            elif isinstance(result, PermanentError):
                receipt.reject(index, line, result.errors or [FieldError("", str(result))])
            else:
                receipt.accept(index, line, envelope.message_id, result.hub_id, result.duplicate)
                if not result.duplicate:
                    fresh.append((_lock_key(envelope), result.hub_id))
        # The records are stored (their outbox rows too); publishing now only saves the relay's wait.
        # Voucher by voucher (each one's records in file order): the AMQP messages of one batch
        # then lock vouchers that hardly overlap, instead of every worker thread queueing for the
        # same voucher rows behind each other's transactions.
        fresh.sort(key=lambda item: item[0])
        self.hand_over([hub_id for _, hub_id in fresh])
        os.utime(path)  # renew the lease: this adapter is alive and at work on the file

    def _finish_or_leave(
        self, client: str, path: Path, name: str, receipt: Receipt, destination: Path
    ) -> None:
        """`_finish`; when the data directory cannot take the receipt (a full disk, a read-only
        mount), say so in one line and leave the file claimed: once its lease has run out it is
        read again, its stored records counted as duplicates, and finished then."""
        try:
            self._finish(client, path, name, receipt, destination)
        except OSError as exc:
            log.error(
                "file %s of %s: its %d records are stored, but it could not be finished: %s; it "
                "stays claimed in work/ and is read again (stored records as duplicates) in %gs",
                name,
                client,
                receipt.accepted,
                exc,
                self.settings.files_lease_s,
            )

    def _finish(self, client: str, path: Path, name: str, receipt: Receipt, destination: Path) -> None:
        receipts = self.root / "outbox" / client / "receipts"
        # Archived first, then the receipt, then out of work/: a sender who sees the receipt
        # finds the file in archive/ or error/. When the receipt cannot be written, the archived
        # link is taken back and the file stays claimed in work/ alone.
        destination.mkdir(parents=True, exist_ok=True)
        n, target = 0, destination / name
        while True:  # os.link fails if the name is taken, even by another adapter at this instant
            try:
                os.link(path, target)
                break
            except FileExistsError:
                n += 1
                target = destination / f"{name}.{n}"
        try:
            written = write_new(receipts, name, receipt.chunks())
        except OSError:
            target.unlink(missing_ok=True)
            raise
        os.unlink(path)
        with self.engine.begin() as conn:
            conn.execute(
                insert(files)
                .values(
                    sender=client,
                    sha256=receipt.sha256,
                    name=mask_text(name),  # a sender's file name can hold a HETU (paatos_<HETU>.xml)
                    records=receipt.records,
                    accepted=receipt.accepted,
                    rejected=receipt.refused,
                    outcome="unreadable" if receipt.error else "done",
                )
                # The same file (name and content) dropped again is one row, its last outcome.
                .on_conflict_do_update(
                    constraint=files.primary_key,
                    set_={
                        "finished_at": func.now(),
                        "accepted": receipt.accepted,
                        "outcome": "unreadable" if receipt.error else "done",
                    },
                )
            )
            if receipt.error is None or receipt.records:
                # Its result follows once every record is final (`adapters/results.py`). The
                # archive and the receipt come first; an adapter killed in the moment between
                # them and this commit leaves that one file without a result (never without its
                # receipt or a record).
                record_pending(
                    conn,
                    self.root,
                    client,
                    written.name,
                    {**receipt.head(), "rejected": receipt.refusals(), "messages": receipt.messages()},
                )
        log.info(
            "file %s of %s: %d records, %d accepted (%d duplicates), %d rejected%s",
            name,
            client,
            receipt.records,
            receipt.accepted,
            receipt.duplicates,
            receipt.refused,
            f"; unreadable: {receipt.error}" if receipt.error else "",
        )


def _lock_key(envelope: Envelope) -> tuple[str, str]:
    """The voucher or order a record's message will lock (see consumers.apply.LOCK_ORDER)."""
    payload = envelope.payload
    return payload.organiser or "", next(iter(payload.reference_keys.values()), "")
