"""The Temporal client every way in uses: pydantic payloads, encrypted when ENROLL_PAYLOAD_KEY is set; TLS (with
a client certificate) or an API key as the cluster asks; the tracing interceptor while tracing is on."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter
from temporalio.client import Client
from temporalio.contrib.pydantic import (
    PydanticJSONPlainPayloadConverter,
    PydanticPayloadConverter,
    pydantic_data_converter,
)
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.runtime import Runtime
from temporalio.service import RetryConfig, TLSConfig

from domain.settings import Settings
from observability import tracing
from workflows.codec import EncryptionCodec, parse_keys

RPC_TIMEOUT = timedelta(seconds=8)
"""The deadline of each start, update, query and signal a request waits on."""
COURTESY_TIMEOUT = timedelta(seconds=2)
"""The deadline of a call whose outcome nobody waits for (the form's `opened` signal)."""
# Someone is waiting on the answer: retry an unreachable server for about 2 s, not the SDK's 10 s, so the
# request answers 503 well within 10 s. (Workers keep the SDK's longer retries.)
REQUEST_RETRY = RetryConfig(max_elapsed_time_millis=3000)
CONNECT_TIMEOUT = timedelta(seconds=3)


TYPE_ADAPTERS = 512
"""Pydantic type adapters kept for the whole process (the types our workflows and activities take and give)."""
_shared_type_adapter = functools.lru_cache(maxsize=TYPE_ADAPTERS)(TypeAdapter)


class SharedTypeAdaptersPayloadConverter(PydanticPayloadConverter):
    """`pydantic_data_converter`'s payload converter, with one cache of type adapters for the process.

    The SDK makes a new payload converter for every workflow run the worker starts or brings back into its cache,
    and each comes with an empty cache: the run's first payload of each type built its pydantic adapter afresh
    (1.7 ms for `EnrollmentInput`; 7% of the worker's CPU per create, docs/performance.md). The types are our
    models, imported once and passed through the sandbox, so an adapter made once serves every run; the cache is
    bounded, and thread-safe (workflow tasks run in the SDK's threads). A type defined in a workflow module is
    made again in each run's sandbox: it keeps the run's own cache, so that no adapter keeps a finished run's
    modules alive."""

    def __init__(self) -> None:
        super().__init__()
        for converter in self.converters.values():
            if isinstance(converter, PydanticJSONPlainPayloadConverter):
                own = converter._type_adapter
                converter._type_adapter = functools.partial(_type_adapter, own)  # type: ignore[assignment]


def _type_adapter(own: Callable[[Any], TypeAdapter[Any]], hint: Any) -> TypeAdapter[Any]:
    if getattr(hint, "__module__", "").startswith(_SANDBOXED):
        return own(hint)
    return _shared_type_adapter(hint)


_SANDBOXED = f"{__name__.partition('.')[0]}."


converter_with_shared_type_adapters = dataclasses.replace(
    pydantic_data_converter, payload_converter_class=SharedTypeAdaptersPayloadConverter
)
"""`pydantic_data_converter`, but with `SharedTypeAdaptersPayloadConverter`: every client of ours uses it."""


def data_converter(settings: Settings) -> DataConverter:
    if not settings.payload_key:
        return converter_with_shared_type_adapters
    # Failure messages and stack traces can quote personal data: they go through the codec too.
    return dataclasses.replace(
        converter_with_shared_type_adapters,
        payload_codec=EncryptionCodec(parse_keys(settings.payload_key.get_secret_value())),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def _read(path: Path, variable: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{variable}: cannot read {path}: {exc.strerror or exc}") from exc


def tls_config(settings: Settings) -> TLSConfig | bool:
    """`ENROLL_TEMPORAL_TLS_*` as the SDK takes it: False (plaintext, the dev server), or TLS with the system's
    roots or `ENROLL_TEMPORAL_TLS_CA`, and the client certificate of mTLS (Temporal Cloud's or a cluster's)."""
    if not settings.temporal_uses_tls:
        return False
    cert, key, ca = settings.temporal_tls_cert, settings.temporal_tls_key, settings.temporal_tls_ca
    return TLSConfig(
        server_root_ca_cert=_read(ca, "ENROLL_TEMPORAL_TLS_CA") if ca else None,
        domain=settings.temporal_tls_server_name,
        client_cert=_read(cert, "ENROLL_TEMPORAL_TLS_CERT") if cert else None,
        client_private_key=_read(key, "ENROLL_TEMPORAL_TLS_KEY") if key else None,
    )


def connection(settings: Settings) -> dict[str, Any]:
    """What every client of ours is connected with, besides its retries and timeouts."""
    return {
        "namespace": settings.temporal_namespace,
        "data_converter": data_converter(settings),
        "tls": tls_config(settings),
        "api_key": settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None,
        "interceptors": tracing.client_interceptors(),
    }


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """The worker's client (on `runtime`, which serves its metrics, when given)."""
    return await Client.connect(settings.effective_temporal_address, runtime=runtime, **connection(settings))


async def connect_for_requests(settings: Settings) -> Client:
    """The client of the API and the CLI: it connects on its first call, so they start (and serve what the store
    holds) while Temporal is down, and an unreachable server fails a call within seconds. A call that cannot
    connect raises RuntimeError; one that loses the server raises RPCError UNAVAILABLE."""
    return await Client.connect(
        settings.effective_temporal_address,
        **connection(settings),
        lazy=True,
        retry_config=REQUEST_RETRY,
        connect_timeout=CONNECT_TIMEOUT,
    )
