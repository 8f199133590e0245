"""/codec/encode and /codec/decode: the Temporal UI's remote codec, so signed-in staff read encrypted payloads.

Served only when ENROLL_PAYLOAD_KEY is set. Point the UI's Data Encoder (or the dev server's
`--ui-codec-endpoint`, which `enroll up` sets) at `<public url>/codec`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from google.protobuf.json_format import MessageToDict, ParseDict
from temporalio.api.common.v1 import Payloads

from starter.deps import SettingsDep, Staff
from workflows.codec import EncryptionCodec, PayloadKeyError, parse_keys

router = APIRouter(prefix="/codec", tags=["ops"])


async def _payloads(request: Request) -> Payloads:
    try:
        body: Any = await request.json()
        return ParseDict(body, Payloads())
    except Exception as exc:
        raise HTTPException(400, 'The body must be a JSON object of the form {"payloads": [...]}.') from exc


def _codec(settings: SettingsDep) -> EncryptionCodec:
    if not settings.payload_key:
        raise HTTPException(404, "Payload encryption is off (ENROLL_PAYLOAD_KEY is not set).")
    return EncryptionCodec(parse_keys(settings.payload_key.get_secret_value()))


@router.post("/encode")
async def encode(request: Request, user: Staff, settings: SettingsDep) -> JSONResponse:
    payloads = await _payloads(request)
    encoded = await _codec(settings).encode(payloads.payloads)
    return JSONResponse(MessageToDict(Payloads(payloads=encoded)))


@router.post("/decode")
async def decode(request: Request, user: Staff, settings: SettingsDep) -> JSONResponse:
    payloads = await _payloads(request)
    try:
        decoded = await _codec(settings).decode(payloads.payloads)
    except PayloadKeyError as exc:
        raise HTTPException(422, str(exc)) from exc
    return JSONResponse(MessageToDict(Payloads(payloads=decoded)))
