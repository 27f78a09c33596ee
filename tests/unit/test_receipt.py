"""A file's receipt keeps its accepted records in columns; what it lists is what was accepted, in
that order, and its bytes are its document written with indent 2."""

from __future__ import annotations

import json
import uuid

from psop_hub.adapters.filedrop import Receipt
from psop_hub.hub.errors import FieldError
from psop_hub.mappings.records import record_message_id

SHA = "ab" * 32


def test_the_receipt_lists_each_accepted_record_as_it_was_accepted() -> None:
    receipt = Receipt(file="päätökset.xml", sha256=SHA, records=5)
    ids = [uuid.uuid4() for _ in range(3)]
    receipt.accept(3, 14, record_message_id(SHA, 3), ids[0], False)
    receipt.accept(1, None, record_message_id(SHA, 1), ids[1], True)  # an XML record has no line
    receipt.accept(4, 20, "not-the-files-own", ids[2], False)  # kept as given, not derived
    receipt.reject(2, 9, [FieldError("Hetu", "tarkiste ei täsmää")])
    receipt.reject(0, 3, [FieldError("", "a\nb"), FieldError("x", "y")])  # refused by the store later
    document = receipt.as_json()
    assert document == {
        "file": "päätökset.xml",
        "sha256": SHA,
        "records": 5,
        "accepted": 3,
        "duplicates": 1,
        "rejected": [
            {
                "record": 0,
                "line": 3,
                "errors": [{"field": "", "message": "a\nb"}, {"field": "x", "message": "y"}],
            },
            {"record": 2, "line": 9, "errors": [{"field": "Hetu", "message": "tarkiste ei täsmää"}]},
        ],
        "messages": [
            {
                "record": 3,
                "line": 14,
                "message_id": f"file-{SHA[:32]}-3",
                "hub_id": str(ids[0]),
                "duplicate": False,
            },
            {
                "record": 1,
                "line": None,
                "message_id": f"file-{SHA[:32]}-1",
                "hub_id": str(ids[1]),
                "duplicate": True,
            },
            {
                "record": 4,
                "line": 20,
                "message_id": "not-the-files-own",
                "hub_id": str(ids[2]),
                "duplicate": False,
            },
        ],
    }
    assert list(document) == ["file", "sha256", "records", "accepted", "duplicates", "rejected", "messages"]
    assert b"".join(receipt.chunks()) == json.dumps(document, indent=2, ensure_ascii=False).encode()
    assert receipt.refused == 2


def test_an_unreadable_files_receipt_ends_with_the_reason() -> None:
    receipt = Receipt(file="x.csv", sha256=SHA)
    receipt.error = "the file is not CSV"
    document = receipt.as_json()
    assert document["messages"] == [] and list(document)[-1] == "error"
    assert json.loads(b"".join(receipt.chunks())) == document
