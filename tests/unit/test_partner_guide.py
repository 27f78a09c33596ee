"""docs/partner-guide.md is kept true: its message types, fields, senders, rules, statuses and SOAP
types are compared with the code's own registries, both ways.

The code's side is read from where the hub itself decides: the payload models (`PAYLOAD_MODELS`),
who may send what (`hub.senders`), every `RuleBroken(...)` raised anywhere in `psop_hub/` (found in
the source by its syntax tree, so a new rule cannot be added without the guide noticing), the
status list of the store, and the SOAP mapping tables.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

import psop_hub
from psop_hub.hub.senders import PROVIDER_TYPES, SYSTEM_TYPES
from psop_hub.hub.store import FINAL_STATUSES, STATUSES
from psop_hub.mappings.payloads import MESSAGE_TYPES, PAYLOAD_MODELS
from psop_hub.mappings.soap import DECISIONS, ORDERS

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "partner-guide.md"
PACKAGE = Path(psop_hub.__file__).resolve().parent
ROW = re.compile(r"^\| `([^`]+)` \|(.*)$")


def guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


def section(number: int) -> str:
    """The text of `## N. ...` up to the next `## ` heading."""
    match = re.search(rf"^## {number}\. .*?(?=^## |\Z)", guide(), re.M | re.S)
    assert match, f"the guide has no section {number}"
    return match.group(0)


def first_cells(text: str) -> list[tuple[str, list[str]]]:
    """Table rows whose first cell is `code`: (that code, the other cells)."""
    rows = []
    for line in text.splitlines():
        match = ROW.match(line)
        if match:
            rows.append((match.group(1), [c.strip() for c in match.group(2).split("|")][:-1]))
    return rows


def type_sections() -> dict[str, str]:
    """Each `### \\`type\\`` subsection of section 4, by type."""
    parts = re.split(r"^### `([^`]+)`$", section(4), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def model_fields(model: type[BaseModel], prefix: str = "") -> dict[str, bool]:
    """Every field of a payload model, nested models flattened to dotted names: required or not."""
    fields: dict[str, bool] = {}
    for name, info in model.model_fields.items():
        nested = info.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            fields.update(model_fields(nested, f"{prefix}{name}."))
        else:
            fields[f"{prefix}{name}"] = info.is_required()
    return fields


def rules_in_code() -> set[str]:
    """The rule name of every `RuleBroken(...)` call in the package, read from the syntax tree.

    A rule name must be a string literal (or a conditional between literals): a computed name could
    not be checked against the guide, so it fails this test."""
    names: set[str] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "RuleBroken"):
                continue
            first = node.args[0] if node.args else None
            choices = [first.body, first.orelse] if isinstance(first, ast.IfExp) else [first]
            for choice in choices:
                assert isinstance(choice, ast.Constant) and isinstance(choice.value, str), (
                    f"{path.name}:{node.lineno}: a rule name must be a string literal"
                )
                names.add(choice.value)
    return names


def test_the_rule_scanner_finds_the_rules_it_should() -> None:
    found = rules_in_code()
    # Spot checks that the scan reaches every module and both arms of a conditional name.
    assert {"within_quantity", "approved_provider", "amount_matches", "voucher_unit", "order_unit"} <= found
    assert "month_begun" in found and "supported_type" in found


def test_every_message_type_is_in_the_guide_and_no_other() -> None:
    assert list(type_sections()) == list(MESSAGE_TYPES)


@pytest.mark.parametrize("message_type", MESSAGE_TYPES)
def test_every_field_of_each_type_is_in_the_guide_with_whether_it_is_required(message_type: str) -> None:
    text = type_sections()[message_type]
    documented = {name: cells[0] == "yes" for name, cells in first_cells(text)}
    assert all(cells[0] in ("yes", "no") for _, cells in first_cells(text)), text
    assert documented == model_fields(PAYLOAD_MODELS[message_type])


@pytest.mark.parametrize("message_type", MESSAGE_TYPES)
def test_who_may_send_each_type_is_as_the_guide_says(message_type: str) -> None:
    match = re.search(r"^Sent by: ([a-z]+(?: or [a-z]+)*)\b", type_sections()[message_type], re.M)
    assert match, f"{message_type}: no 'Sent by:' line"
    said = set(match.group(1).split(" or "))
    actual = {"system"} if message_type in SYSTEM_TYPES else set()
    actual |= {"provider"} if message_type in PROVIDER_TYPES else set()
    assert said == actual


def test_every_rule_in_the_code_is_in_the_guide_and_the_other_way_round() -> None:
    documented = [name for name, _ in first_cells(section(6))]
    assert len(documented) == len(set(documented)), "a rule is listed twice"
    assert set(documented) == rules_in_code()


def test_every_rule_names_the_types_it_applies_to() -> None:
    for name, cells in first_cells(section(6)):
        types = set(re.findall(r"`([a-z]+\.[a-z]+)`", cells[0]))
        assert types <= set(MESSAGE_TYPES), (name, types)
        assert types or cells[0].startswith(("any", "`hub ")), name


def test_statuses_are_those_of_the_store() -> None:
    text = section(5)
    assert [name for name, _ in first_cells(text)] == list(STATUSES)
    final = re.search(r"The final statuses are (.*?)\.", text)
    assert final and set(re.findall(r"`([a-z]+)`", final.group(1))) == FINAL_STATUSES


def test_soap_decision_and_order_types_map_as_the_guide_says() -> None:
    rows = re.findall(
        r"^\| `(DecisionType|OrderType)` `([A-Z]+)` \| `([a-z.]+)` \| (.*) \|$", section(9), re.M
    )
    documented = {
        (kind, name): (message_type, re.findall(r"`([A-Za-z]+)`", used))
        for kind, name, message_type, used in rows
    }
    actual = {("DecisionType", k): (t, list(f)) for k, (t, f) in DECISIONS.items()}
    actual |= {("OrderType", k): (t, list(f)) for k, (t, f) in ORDERS.items()}
    # The guide spells out Client's and Service's children too; the mapping names the parents.
    children = {"Hetu", "HomeMunicipality", "Code", "Name"}
    assert {k: (t, [f for f in used if f not in children]) for k, (t, used) in documented.items()} == actual


def test_the_readme_points_at_the_guide_not_outside_the_repository() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/partner-guide.md" in readme
    assert "../shared" not in readme


@pytest.mark.parametrize("record", ["VoucherDecision", "ServiceOrder", "ProviderApproval"])
def test_the_soap_element_order_is_the_schemas(record: str) -> None:
    from lxml import etree

    xsd = etree.parse(str(PACKAGE / "mappings" / "wsdl" / "psop-hub-v1.xsd"))
    names = xsd.xpath(f"//*[local-name()='complexType'][@name='{record}']/*[local-name()='sequence']/*/@name")
    line = re.search(rf"^- `{record}`: (.*)$", section(9), re.M)
    assert line, record
    assert re.findall(r"`([A-Za-z]+)`", line.group(1)) == list(names)
