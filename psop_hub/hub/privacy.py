"""The one HETU masker: every log line, error detail, fault and receipt error passes through it.

A HETU is matched in every spelling the contract accepts (upper or lower case century sign and
check character, the 2023 signs) wherever it stands in a text: inside a file name
(`paatos_131052-308T.xml`), a message id, a voucher number or a driver's message. Anything of that
shape is masked, valid or not: masking a look-alike costs nothing, missing a real one is a leak.
One exception: a UUID (a hub_id) is left whole. Its hex can take the shape (`…a428236a3343`:
`428236`, the sign `A`, `334`, `3`), and a masked hub_id in an answer is an id the sender cannot
use; a UUID holds no personal data.
"""

from __future__ import annotations

import re

__all__ = ["HETU_SHAPE", "mask_hetu", "mask_text"]

# DDMMYY, a century sign (+, -, Y-U, A-F), three digits, a check character; any case. No word
# boundaries: `_` and letters around a HETU (file names, ids) must not hide it. A digit just
# before is excluded so that longer digit runs (UUIDs, amounts) are not cut in the middle.
HETU_SHAPE = re.compile(r"(?<![0-9])([0-9]{6})[-+A-FU-Y][0-9]{3}[0-9A-Y]", re.IGNORECASE)


def mask_hetu(hetu: str) -> str:
    """Show a HETU as its birth date only: `131052-****`."""
    return hetu.strip()[:6] + "-****"


UUID_SHAPE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def mask_text(text: str) -> str:
    """`text` with every HETU-shaped string in it masked as `DDMMYY-****`, UUIDs left whole."""
    if HETU_SHAPE.search(text) is None:
        return text
    parts, last = [], 0
    for uuid in UUID_SHAPE.finditer(text):
        parts += [HETU_SHAPE.sub(r"\1-****", text[last : uuid.start()]), uuid.group()]
        last = uuid.end()
    parts.append(HETU_SHAPE.sub(r"\1-****", text[last:]))
    return "".join(parts)
