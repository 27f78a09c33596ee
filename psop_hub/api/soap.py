"""The SOAP 1.1 endpoint of INTERFACES §4: WSDL and XSD, four operations, faults.

Faults are chosen here: bad input, bad credentials, scope and conflicts are `soap:Client`
(the sender must change something); a temporary failure is `soap:Server` (send it again).
"""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from functools import partial
from typing import Any
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from lxml import etree
from lxml.builder import ElementMaker
from starlette.requests import ClientDisconnect

from psop_hub.adapters.intake import prepare
from psop_hub.api.accesslog import note_sender
from psop_hub.api.connection import client_gone
from psop_hub.api.deps import BodyTooLarge, Services, read_body, services_of
from psop_hub.api.metrics import RECEIVED
from psop_hub.hub import store
from psop_hub.hub.errors import (
    AuthenticationFailed,
    ConflictError,
    FieldError,
    PermanentError,
    TransientError,
)
from psop_hub.hub.groupcommit import Intake
from psop_hub.hub.privacy import mask_text
from psop_hub.hub.ratelimit import RateLimited, count_request
from psop_hub.hub.senders import Sender, digest_of, may_read_message
from psop_hub.mappings.soap import (
    NS,
    PASSWORD_TEXT,
    SOAP11,
    SOAP12,
    WSSE,
    local_name,
    soap_errors,
    soap_text,
    to_message,
)
from psop_hub.mappings.xml import WSDL_FILE, XSD_FILE, XmlRejected, parse_xml

log = logging.getLogger(__name__)
router = APIRouter(tags=["soap"])
XML = "text/xml; charset=utf-8"
SOAP_ENV = ElementMaker(namespace=SOAP11, nsmap={"soap": SOAP11, "tns": NS})
T = ElementMaker(namespace=NS, nsmap={"tns": NS})
PLACEHOLDER = b'location="http://localhost:8000/soap/v1"'
# Most errors one fault lists; an ErrorCount element in the detail says how many were found.
MAX_FAULT_ERRORS = 100
# Header blocks the hub processes: a mustUnderstand block of any other kind is a fault.
UNDERSTOOD_HEADERS = frozenset({f"{{{WSSE}}}Security"})
MUST_UNDERSTAND = f"{{{SOAP11}}}mustUnderstand"
# Each Submit operation and the one record element it carries.
SUBMIT_OPERATIONS = {
    "SubmitVoucherDecision": "VoucherDecision",
    "SubmitServiceOrder": "ServiceOrder",
    "SubmitProviderApproval": "ProviderApproval",
}
OPERATIONS = frozenset({*SUBMIT_OPERATIONS, "GetMessageStatus"})
# The UsernameTokens of the Header's Security blocks, in document order (the first counts).
_USERNAME_TOKENS = etree.ETXPath(f"{{{WSSE}}}Security/{{{WSSE}}}UsernameToken")


class SoapFault(Exception):
    """A fault to answer with: code `Client`, `Server` or `VersionMismatch`."""

    def __init__(self, code: str, text: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(text)
        self.code, self.text, self.errors = code, text, errors or []


def _envelope(body: Any) -> Response:
    return Response(
        etree.tostring(SOAP_ENV.Envelope(SOAP_ENV.Body(body)), xml_declaration=True, encoding="utf-8"),
        media_type=XML,
    )


def fault_response(fault: SoapFault) -> Response:
    """A SOAP 1.1 fault, HTTP 500 as the SOAP 1.1 HTTP binding says."""
    element = SOAP_ENV.Fault(
        etree.Element("faultcode"),
        etree.Element("faultstring"),
    )
    element[0].text = f"soap:{fault.code}"
    element[1].text = mask_text(fault.text)  # a HETU sent as a MessageId must not come back
    if fault.errors:
        detail = etree.SubElement(element, "detail")
        for error in fault.errors[:MAX_FAULT_ERRORS]:
            item = etree.SubElement(detail, f"{{{NS}}}Error", field=mask_text(error.field))
            item.text = mask_text(error.message)
        etree.SubElement(detail, f"{{{NS}}}ErrorCount").text = str(len(fault.errors))
    response = _envelope(element)
    response.status_code = 500
    return response


@router.get("/soap/v1", include_in_schema=False)
def wsdl(request: Request) -> Response:
    """`?wsdl`: the WSDL, addressed to this server; `?xsd`: the schema it imports."""
    if "xsd" in request.query_params:
        return Response(XSD_FILE.read_bytes(), media_type=XML)
    # The configured public address; the Host header (anyone's to set) only when none is.
    base = services_of(request).settings.public_url or str(request.base_url).rstrip("/")
    address = base + "/soap/v1"
    text = WSDL_FILE.read_bytes().replace(PLACEHOLDER, f'location="{address}"'.encode())
    return Response(text, media_type=XML)


@router.post("/soap/v1", include_in_schema=False)
async def soap(request: Request) -> Response:
    """One SOAP call: parse safely, authenticate, validate, dispatch; every problem is a fault."""
    services = services_of(request)
    try:
        body = await read_body(request, services.settings.max_body_bytes)
        settings = services.settings
        operation, sender_hint = _operation(request, body, settings.max_xml_nodes, settings.max_xml_depth)
        if await client_gone(request):
            # Gone while its body was read or parsed: validating it (up to HUB_MAX_XML_NODES
            # nodes, tens of ms of CPU) and storing it would answer nobody.
            raise ClientDisconnect
        name = local_name(operation.tag)
        if name in SUBMIT_OPERATIONS:
            return await _submit(services, request, sender_hint, operation)
        sender = await run_in_threadpool(_authenticate_counted, services, request, sender_hint)
        if name == "GetMessageStatus":
            return await run_in_threadpool(_status, services, sender, operation)
        raise SoapFault("Client", f"unknown operation {name}; see the WSDL at /soap/v1?wsdl")
    except SoapFault as fault:
        return fault_response(fault)
    except BodyTooLarge as exc:
        return fault_response(SoapFault("Client", f"the message is over the limit of {exc.limit} bytes"))
    except XmlRejected as exc:
        return fault_response(SoapFault("Client", exc.reason))
    except AuthenticationFailed as exc:
        return fault_response(SoapFault("Client", f"authentication failed: {exc}"))
    except RateLimited as exc:
        answer = fault_response(SoapFault("Client", str(exc)))
        answer.headers["Retry-After"] = str(exc.retry_after_s)
        return answer
    except TransientError:
        return fault_response(
            SoapFault("Server", "the hub cannot take the message durably right now; send it again")
        )
    except ClientDisconnect:
        raise  # nobody to answer: one debug line (api/problems.py), not a traceback
    except Exception:
        # Still a SOAP answer: the sender's stack expects a fault, not a plain 500 page.
        log.exception("SOAP call failed")
        return fault_response(
            SoapFault("Server", "the hub could not process the message; send it again later")
        )


def _operation(request: Request, body: bytes, max_nodes: int, max_depth: int) -> tuple[Any, Any]:
    """The operation element of the Body, and the Header (for WS-Security)."""
    if "application/soap+xml" in request.headers.get("content-type", ""):
        raise SoapFault(
            "VersionMismatch", "this endpoint speaks SOAP 1.1: send text/xml with a SOAP 1.1 envelope"
        )
    root = parse_xml(body, max_nodes, max_depth)
    if root.tag == f"{{{SOAP12}}}Envelope":
        raise SoapFault(
            "VersionMismatch", "this endpoint speaks SOAP 1.1: use the envelope namespace " + SOAP11
        )
    if root.tag != f"{{{SOAP11}}}Envelope":
        raise SoapFault("Client", "the body is not a SOAP 1.1 Envelope")
    header = root.find(f"{{{SOAP11}}}Header")
    for block in [] if header is None else [c for c in header if isinstance(c.tag, str)]:
        if block.get(MUST_UNDERSTAND, "0").strip() in ("1", "true") and block.tag not in UNDERSTOOD_HEADERS:
            raise SoapFault(
                "MustUnderstand",
                f"the header block {etree.QName(block).localname} ({etree.QName(block).namespace}) "
                "must be understood, and this endpoint does not process it",
            )
    soap_body = root.find(f"{{{SOAP11}}}Body")
    operations = [] if soap_body is None else [c for c in soap_body if isinstance(c.tag, str)]
    if len(operations) != 1:
        raise SoapFault("Client", "the SOAP Body must hold exactly one operation element")
    _check_action(request.headers.get("soapaction"), operations[0])
    return operations[0], header


def _check_action(header: str | None, operation: Any) -> None:
    """A SOAPAction that names another operation than the Body holds is refused: the sender's
    stack and the hub would disagree about what was called. Empty or absent is accepted (SOAP
    1.1 makes it optional), and so is the operation's name with or without the WSDL's prefix."""
    action = (header or "").strip().strip('"').strip()
    name = local_name(operation.tag)
    if not action or name not in OPERATIONS:
        return
    named = action[max(action.rfind(c) for c in "#/:") + 1 :]  # after the last # / or :
    if named != name:
        raise SoapFault(
            "Client",
            f"the SOAPAction header names {named[:100] or action[:100]}, but the Body holds {name}: "
            f'send SOAPAction "{NS}#{name}" (the WSDL\'s soapAction for {name}) or none',
        )


def _credentials(request: Request, header: Any) -> tuple[str, str]:
    """The client's name and secret: a WS-Security UsernameToken, else HTTP Basic."""
    tokens = [] if header is None else _USERNAME_TOKENS(header)
    token = tokens[0] if tokens else None
    if token is not None:
        username = token.findtext(f"{{{WSSE}}}Username") or ""
        password = token.find(f"{{{WSSE}}}Password")
        if password is None or password.get("Type", PASSWORD_TEXT) != PASSWORD_TEXT:
            raise AuthenticationFailed("send the UsernameToken password as PasswordText")
        return username.strip(), (password.text or "").strip()
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            name, _, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise AuthenticationFailed("the Basic credentials are not valid base64") from exc
        return name, secret
    raise AuthenticationFailed("send a WS-Security UsernameToken (PasswordText) or HTTP Basic credentials")


def _authenticate(services: Services, request: Request, header: Any) -> Sender:
    return services.authenticator.by_name_and_secret(*_credentials(request, header))


def _authenticate_counted(services: Services, request: Request, sender_hint: str | None) -> Sender:
    """The sender (named in the access log, a rate-limited call too), its call counted against
    the rate limit: one trip to a request thread for both."""
    sender = _authenticate(services, request, sender_hint)
    note_sender(request, sender.name)
    count_request(services.engine, sender.name, services.settings.rate_limit_per_minute)
    return sender


async def _submit(services: Services, request: Request, header: Any, operation: Any) -> Response:
    """A submit operation: the client is looked up (and its rate limit counted) by the intake's
    group commit, in the transaction that stores the message; a call that is not valid is
    judged after its client, so that who is not a client hears `authentication failed` first."""
    client, secret = _credentials(request, header)
    name = local_name(operation.tag)
    root_name = SUBMIT_OPERATIONS[name]
    try:
        envelope = to_message(root_name, operation)
    except PermanentError as exc:
        await run_in_threadpool(_authenticate_counted, services, request, header)
        RECEIVED.labels("soap", root_name, type(exc).__name__).inc()
        text = "the message is not valid; every problem is listed in the detail"
        raise SoapFault("Client", text, exc.errors) from None
    # Stored by the intake's group commit, with the messages of concurrent calls.
    stored = await services.intake.accept_async(
        Intake(partial(prepare, envelope=envelope, channel="soap"), digest=digest_of(secret), name=client)
    )
    if stored.sender is not None:
        note_sender(request, stored.sender.name)
    try:
        accepted = stored.accepted()
    except ConflictError as exc:
        raise SoapFault("Client", f"{soap_text(exc.reason)}; the first message is {exc.hub_id}") from None
    except (AuthenticationFailed, RateLimited):
        raise  # answered as faults by `soap`, as for every operation
    except PermanentError as exc:  # scope
        raise SoapFault("Client", soap_text(str(exc))) from None
    RECEIVED.labels("soap", envelope.type, "duplicate" if accepted.duplicate else "accepted").inc()
    return submit_response(name, accepted.hub_id, envelope.message_id, accepted.duplicate)


# The answer to a submit, as lxml writes the SubmitResult element in the envelope (the same bytes,
# tests/unit/test_soap_answers.py): filled in as text, since building and serialising the tree
# for every call cost more than parsing the call.
_SUBMITTED = (
    "<?xml version='1.0' encoding='utf-8'?>\n"
    f'<soap:Envelope xmlns:soap="{SOAP11}" xmlns:tns="{NS}"><soap:Body><tns:{{name}}Response>'
    "<tns:SubmitResult><tns:HubId>{hub_id}</tns:HubId><tns:MessageId>{message_id}</tns:MessageId>"
    "<tns:Status>{status}</tns:Status></tns:SubmitResult></tns:{name}Response></soap:Body></soap:Envelope>"
)


def submit_response(name: str, hub_id: uuid.UUID, message_id: str, duplicate: bool) -> Response:
    """The SubmitResult of a stored (or duplicate) message, in the envelope."""
    text = _SUBMITTED.format(
        name=name,
        hub_id=hub_id,
        message_id=escape(message_id),
        status="DUPLICATE" if duplicate else "ACCEPTED",
    )
    return Response(text.encode(), media_type=XML)


def _wrap(name: str, child: Any) -> Any:
    element = etree.Element(f"{{{NS}}}{name}", nsmap={"tns": NS})
    element.append(child)
    return element


def _status(services: Services, sender: Sender, operation: Any) -> Response:
    text = (operation.findtext(f"{{{NS}}}HubId") or "").strip()
    try:
        found = store.describe(services.engine, uuid.UUID(text))
    except ValueError:
        found = None
    if found is None or not may_read_message(sender, found["sender"]):
        raise SoapFault("Client", f"no message {text}")
    listed = soap_errors(found["type"], found["errors"])
    errors = T.Errors(*[T.Error(mask_text(e.message), field=mask_text(e.field)) for e in listed])
    status = T.MessageStatus(
        T.HubId(found["hub_id"]),
        T.MessageId(found["message_id"]),
        T.Type(found["type"]),
        T.Status(found["status"].upper()),
        errors,
    )
    return _envelope(_wrap("GetMessageStatusResponse", status))
