"""The hub's error tree. Driver errors are translated into these once, at the edge.

HubError
├── PermanentError          bad data or a broken business rule: reject, never retry
│   ├── ValidationFailed    the message does not match the contract (every field error listed)
│   │   ├── Unreadable      not even readable: not JSON/XML, bad encoding, too deep, a DTD
│   │   │   (mappings: XmlRejected for a SOAP body, UnreadableFile for a whole batch file)
│   │   └── InvalidInput    a value given to a command (a party's IBAN, a client's role) is wrong
│   ├── DataRejected        the database refused the message's values while applying it
│   ├── RuleBroken          a domain rule refused the message (rule name and reason)
│   ├── ConflictError       same sender and message_id, different payload
│   ├── InvoiceNotPossible  a settlement's invoice cannot be built (details missing, a credit)
│   └── NotAllowed          the sender may not send or see this (scope)
├── AuthenticationFailed    no or wrong credentials
├── NotFound                the thing asked for does not exist (or is not the caller's)
├── AlreadyExists           the thing to create exists already (a unique key refused it)
└── TransientError          database or broker unavailable, dependency not arrived: retry
    ├── Unavailable         the hub cannot store the message durably right now
    └── Waiting             the message depends on one that has not arrived yet
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One problem with one field: `field` is a dotted path such as `payload.client.hetu`."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        """The JSON form used in problem documents and message records."""
        return {"field": self.field, "message": self.message}


class HubError(Exception):
    """Root of every error the hub raises on purpose."""


class PermanentError(HubError):
    """The message can never be applied as it is: reject it, do not retry."""

    def __init__(self, reason: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errors: list[FieldError] = list(errors or [])


class ValidationFailed(PermanentError):
    """The input breaks the contract; `errors` lists every problem found."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("invalid message", errors)


class Unreadable(ValidationFailed):
    """The input cannot be read at all (bad encoding, not well-formed, too deep, a DTD)."""

    def __init__(self, reason: str, field: str = "") -> None:
        super().__init__([FieldError(field, reason)])
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class InvalidInput(ValidationFailed):
    """A value given to a command or an admin call is invalid; `str()` says which and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__([FieldError(field, reason)])
        self.reason = reason

    @classmethod
    def of(cls, errors: list[FieldError]) -> InvalidInput:
        """One InvalidInput listing several bad values at once; `str()` joins their reasons."""
        if not errors:
            raise ValueError("InvalidInput.of needs at least one error")  # a caller's mistake
        exc = cls(errors[0].field, "; ".join(e.message for e in errors))
        exc.errors = list(errors)
        return exc

    def __str__(self) -> str:
        return self.reason


class InvoiceNotPossible(PermanentError):
    """A settlement's Finvoice invoice cannot be built as things are (a party's details are
    missing, the rows do not add up, a credit note would be needed)."""


class DataRejected(PermanentError):
    """The database refused a value while applying a message (a data error, not an outage):
    the same message would fail the same way every time, so it is rejected, not retried."""


class RuleBroken(PermanentError):
    """A domain rule refused the message; `rule` names the rule."""

    def __init__(self, rule: str, reason: str, field: str | None = None) -> None:
        super().__init__(reason, [FieldError(field, reason)] if field else [])
        self.rule = rule


class ConflictError(PermanentError):
    """The sender reused a message_id with a different payload."""

    def __init__(self, reason: str, hub_id: str) -> None:
        super().__init__(reason)
        self.hub_id = hub_id


class NotAllowed(PermanentError):
    """The authenticated sender is outside the scope of what it tries to do."""


class AuthenticationFailed(HubError):
    """Missing or wrong credentials."""


class NotFound(HubError):
    """The requested record does not exist or is not visible to the caller."""


class AlreadyExists(HubError):
    """A row with the same key exists already: the database's unique key `constraint` refused it."""

    def __init__(self, reason: str, constraint: str) -> None:
        super().__init__(reason)
        self.constraint = constraint


class TransientError(HubError):
    """A temporary condition: the operation may succeed when retried."""


class Unavailable(TransientError):
    """The database or the broker cannot be reached."""


class Waiting(TransientError):
    """The message depends on another that has not arrived yet."""
