"""The bare FastAPI endpoint of the raw limits: parse and validate 1 KiB of JSON, answer 202.

Run by bench/limits.py as `uvicorn bare_app:app` in its own process (`--app-dir bench`). Nothing
is stored or sent: this is what the framework alone costs per request on this machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fastapi import FastAPI

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from granted import VoucherGranted

app = FastAPI()


@app.post("/messages", status_code=202)
async def accept(message: VoucherGranted) -> dict[str, str]:
    return {"message_id": message.message_id, "status": "accepted"}
