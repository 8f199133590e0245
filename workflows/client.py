"""The Temporal client every way in uses: pydantic payloads, encrypted when ENROLL_PAYLOAD_KEY is set."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.service import RetryConfig

from domain.settings import Settings
from workflows.codec import EncryptionCodec, parse_keys

RPC_TIMEOUT = timedelta(seconds=8)
"""The deadline of each start, update, query and signal a request waits on."""
COURTESY_TIMEOUT = timedelta(seconds=2)
"""The deadline of a call whose outcome nobody waits for (the form's `opened` signal)."""
# Someone is waiting on the answer: retry an unreachable server for about 2 s, not the SDK's 10 s, so the
# request answers 503 well within 10 s. (Workers keep the SDK's longer retries.)
REQUEST_RETRY = RetryConfig(max_elapsed_time_millis=3000)
CONNECT_TIMEOUT = timedelta(seconds=3)


def data_converter(settings: Settings) -> DataConverter:
    if not settings.payload_key:
        return pydantic_data_converter
    # Failure messages and stack traces can quote personal data: they go through the codec too.
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(parse_keys(settings.payload_key)),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.effective_temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
    )


async def connect_for_requests(settings: Settings) -> Client:
    """The client of the API and the CLI: it connects on its first call, so they start (and serve what the store
    holds) while Temporal is down, and an unreachable server fails a call within seconds. A call that cannot
    connect raises RuntimeError; one that loses the server raises RPCError UNAVAILABLE."""
    return await Client.connect(
        settings.effective_temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        lazy=True,
        retry_config=REQUEST_RETRY,
        connect_timeout=CONNECT_TIMEOUT,
    )
