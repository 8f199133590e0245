"""The Temporal client every way in uses: pydantic payloads, encrypted when ENROLL_PAYLOAD_KEY is set."""

from __future__ import annotations

import dataclasses

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter

from domain.settings import Settings
from starter.codec import EncryptionCodec, parse_keys


def data_converter(settings: Settings) -> DataConverter:
    if not settings.payload_key:
        return pydantic_data_converter
    return dataclasses.replace(pydantic_data_converter, payload_codec=EncryptionCodec(parse_keys(settings.payload_key)))


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.effective_temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
    )
