"""`ENROLL_TEMPORAL_TLS_*` against a real TLS endpoint: the session's Temporal dev server behind a TLS terminator
that demands a client certificate (as a cluster with mTLS or Temporal Cloud does), with certificates made here."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import ValidationError
from temporalio.service import TLSConfig
from temporalio.testing import WorkflowEnvironment

from domain.settings import Settings
from workflows.client import connect, connection, tls_config

SERVER_NAME = "temporal.enroll.test"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _certificate(
    name: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if name == SERVER_NAME else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()), critical=False
        )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _write(directory: Path, name: str, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    (directory / f"{name}.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@pytest.fixture
def certificates(tmp_path: Path) -> Path:
    """ca.pem, server.pem/.key (for SERVER_NAME), client.pem/.key (signed by the CA), other.pem/.key (self-signed)."""
    ca_key = _key()
    ca = _certificate("Enrollment test CA", ca_key, None)
    _write(tmp_path, "ca", ca, ca_key)
    for name, common_name, issuer in (
        ("server", SERVER_NAME, (ca, ca_key)),
        ("client", "enroll-worker", (ca, ca_key)),
        ("other", "someone-else", None),
    ):
        key = _key()
        _write(tmp_path, name, _certificate(common_name, key, issuer), key)
    return tmp_path


@contextlib.asynccontextmanager
async def tls_terminator(certificates: Path, upstream: str) -> AsyncIterator[int]:
    """TLS with a required client certificate on a free port, forwarding the bytes to `upstream` (plaintext)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates / "server.pem", certificates / "server.key")
    context.load_verify_locations(certificates / "ca.pem")
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    host, _, port = upstream.rpartition(":")
    pumps: set[asyncio.Task[None]] = set()

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def serve(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(host, int(port))
        for task in (pump(client_reader, server_writer), pump(server_reader, client_writer)):
            pumps.add(asyncio.create_task(task))

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in pumps:
            task.cancel()


def make_settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data", **extra)  # type: ignore[arg-type]


def tls_settings(tmp_path: Path, port: int, **files: Path | str) -> Settings:
    return make_settings(tmp_path, temporal_address=f"127.0.0.1:{port}", temporal_tls_server_name=SERVER_NAME, **files)


async def test_mtls_connects_with_the_client_certificate_and_not_without(
    tmp_path: Path, temporal: WorkflowEnvironment, certificates: Path
) -> None:
    upstream = temporal.client.service_client.config.target_host
    async with tls_terminator(certificates, upstream) as port:
        good = tls_settings(
            tmp_path,
            port,
            temporal_tls_ca=certificates / "ca.pem",
            temporal_tls_cert=certificates / "client.pem",
            temporal_tls_key=certificates / "client.key",
        )
        client = await connect(good)
        assert await client.service_client.check_health()
        assert (await client.count_workflows()).count >= 0  # a real call through the tunnel

        refused = [
            # No client certificate: the terminator demands one.
            tls_settings(tmp_path, port, temporal_tls_ca=certificates / "ca.pem"),
            # A client certificate the server's CA did not sign.
            tls_settings(
                tmp_path,
                port,
                temporal_tls_ca=certificates / "ca.pem",
                temporal_tls_cert=certificates / "other.pem",
                temporal_tls_key=certificates / "other.key",
            ),
            # The system's roots do not trust the test CA.
            tls_settings(
                tmp_path,
                port,
                temporal_tls_cert=certificates / "client.pem",
                temporal_tls_key=certificates / "client.key",
            ),
        ]
        for settings in refused:
            with pytest.raises(RuntimeError):
                await asyncio.wait_for(connect(settings), timeout=30)


def test_tls_settings_become_the_sdks_tls_config(tmp_path: Path, certificates: Path) -> None:
    assert tls_config(make_settings(tmp_path)) is False  # the dev server: plaintext
    api_key = make_settings(tmp_path, temporal_api_key="cloud-key")
    assert isinstance(tls_config(api_key), TLSConfig)  # Temporal Cloud's API keys need TLS
    assert connection(api_key)["api_key"] == "cloud-key"
    mtls = tls_config(
        make_settings(
            tmp_path,
            temporal_tls_cert=certificates / "client.pem",
            temporal_tls_key=certificates / "client.key",
            temporal_tls_server_name=SERVER_NAME,
        )
    )
    assert isinstance(mtls, TLSConfig)
    assert mtls.client_cert == (certificates / "client.pem").read_bytes()
    assert mtls.server_root_ca_cert is None and mtls.domain == SERVER_NAME


def test_a_missing_file_or_half_a_pair_is_named(tmp_path: Path, certificates: Path) -> None:
    with pytest.raises(ValidationError, match="ENROLL_TEMPORAL_TLS_CERT and ENROLL_TEMPORAL_TLS_KEY go together"):
        make_settings(tmp_path, temporal_tls_cert=certificates / "client.pem")
    missing = make_settings(
        tmp_path, temporal_tls_cert=tmp_path / "nowhere.pem", temporal_tls_key=certificates / "client.key"
    )
    with pytest.raises(ValueError, match=r"ENROLL_TEMPORAL_TLS_CERT: cannot read .*nowhere\.pem"):
        tls_config(missing)
