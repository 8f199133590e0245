"""Reading manufacturers' PSKC files (credentials.pskc): files made by python-pskc in each test, read back; every
file-level problem rejects the batch with one clear reason, every key-level one rejects only its key."""

from __future__ import annotations

import base64
import datetime
import io
import os
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from pskc import PSKC

from credentials.pskc import (
    MAX_BYTES_DEFAULT,
    BatchRejected,
    KeyEntry,
    check_file,
    iter_keys,
    parse_decryption,
    read_keys,
)

HOTP = "urn:ietf:params:xml:ns:keyprov:pskc:hotp"
TOTP = "urn:ietf:params:xml:ns:keyprov:pskc:totp"
KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
PASSPHRASE = "a passphrase for the tests"
NS = {"pskc": "urn:ietf:params:xml:ns:keyprov:pskc"}


def make(
    keys: list[dict[str, object]] | int = 3,
    *,
    key: bytes | None = KEY,
    passphrase: str | None = None,
    algorithm: str | None = None,
    plain: bool = False,
) -> tuple[bytes, list[bytes]]:
    """A PSKC file written by python-pskc, and its secrets in key order. `keys`: a count of good HOTP keys, or
    each key's attributes (serial, secret, algorithm, response_length, counter, … as python-pskc names them)."""
    if isinstance(keys, int):
        keys = [{} for _ in range(keys)]
    document = PSKC()
    secrets: list[bytes] = []
    for index, attributes in enumerate(keys):
        values: dict[str, object] = {
            "serial": f"SN{index:06d}",
            "secret": os.urandom(20),
            "algorithm": HOTP,
            "response_length": 6,
            "counter": 0,
        }
        values.update(attributes)
        values = {name: value for name, value in values.items() if value is not None}
        secrets.append(values["secret"])  # type: ignore[arg-type]
        document.add_key(**values)  # type: ignore[arg-type]
    if plain:
        pass
    elif passphrase is not None:
        document.encryption.setup_pbkdf2(passphrase, iterations=1000, algorithm=algorithm)
    else:
        document.encryption.setup_preshared_key(key=key, algorithm=algorithm)
    out = io.BytesIO()
    document.write(out)
    return out.getvalue(), secrets


def edit(data: bytes, change) -> bytes:
    tree = etree.parse(io.BytesIO(data))
    change(tree.getroot())
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")


def rejected(data: bytes, **decryption: object) -> str:
    with pytest.raises(BatchRejected) as caught:
        read_keys(data, **decryption)  # type: ignore[arg-type]
    return caught.value.reason


def no_secret_in(text: str, secrets: list[bytes]) -> None:
    for secret in secrets:
        for form in (secret.hex(), secret.hex().upper(), base64.b64encode(secret).decode()):
            assert form not in text


# -- importing ---------------------------------------------------------------------------------------------------


def test_a_preshared_key_file_imports_every_key_with_its_secret() -> None:
    data, secrets = make(
        [
            {},
            {"algorithm": TOTP, "counter": None, "time_interval": 60, "response_length": 8},
            {"algorithm": TOTP, "counter": None, "serial": None, "id": "key-id-3"},
            {"counter": 42},
        ]
    )
    entries = read_keys(data, preshared_key=KEY)
    assert [e.secret for e in entries] == secrets
    assert [e.problem for e in entries] == [None] * 4
    assert [(e.index, e.serial, e.algorithm, e.digits, e.counter, e.period) for e in entries] == [
        (0, "SN000000", "HOTP", 6, 0, None),
        (1, "SN000001", "TOTP", 8, None, 60),
        (2, "key-id-3", "TOTP", 6, None, 30),  # no SerialNo: the Key Id; no TimeInterval: 30 s
        (3, "SN000003", "HOTP", 6, 42, None),
    ]


@pytest.mark.parametrize("algorithm", [None, "aes256-cbc", "kw-aes128"])
def test_a_pbkdf2_file_imports_every_key_with_its_secret(algorithm: str | None) -> None:
    data, secrets = make(5, passphrase=PASSPHRASE, algorithm=algorithm)
    entries = read_keys(data, passphrase=PASSPHRASE)
    assert [e.secret for e in entries] == secrets
    assert all(e.problem is None for e in entries)


def test_an_aes256_preshared_key_and_a_key_wrap_file_import() -> None:
    key = bytes(range(32))
    for algorithm in ("aes256-cbc", "kw-aes256"):
        data, secrets = make(2, key=key, algorithm=algorithm)
        assert [e.secret for e in read_keys(data, preshared_key=key)] == secrets


def test_the_secret_is_not_in_an_entrys_repr() -> None:
    data, secrets = make(1)
    (entry,) = read_keys(data, preshared_key=KEY)
    assert isinstance(entry, KeyEntry)
    no_secret_in(repr(entry), secrets)
    assert repr(secrets[0]) not in repr(entry)


def test_iter_keys_gives_entries_one_at_a_time_and_a_late_mac_failure_still_rejects() -> None:
    data, _ = make(20)

    def tamper_last(root) -> None:
        mac = root.findall(".//pskc:ValueMAC", NS)[-1]
        mac.text = base64.b64encode(b"\0" * 20).decode()

    keys = iter_keys(edit(data, tamper_last), preshared_key=KEY)
    first = next(keys)
    assert first.serial == "SN000000" and first.problem is None
    with pytest.raises(BatchRejected, match="MAC of the file's key 'SN000019' does not verify"):
        list(keys)


# -- file-level problems: the whole batch ------------------------------------------------------------------------


@pytest.mark.parametrize("which", [0, 1, 2])
def test_a_tampered_mac_rejects_the_batch(which: int) -> None:
    data, secrets = make(3)

    def tamper(root) -> None:
        mac = root.findall(".//pskc:ValueMAC", NS)[which]
        value = bytearray(base64.b64decode(mac.text))
        value[0] ^= 1
        mac.text = base64.b64encode(bytes(value)).decode()

    reason = rejected(edit(data, tamper), preshared_key=KEY)
    assert reason == (
        f"The MAC of the file's key 'SN00000{which}' does not verify: the file was altered or damaged after it was "
        "made."
    )
    no_secret_in(reason, secrets)


def test_a_tampered_mac_in_a_one_key_file_is_a_mac_failure_not_a_wrong_key() -> None:
    data, _ = make(1)

    def tamper(root) -> None:
        root.find(".//pskc:ValueMAC", NS).text = base64.b64encode(b"\1" * 20).decode()

    assert "MAC" in rejected(edit(data, tamper), preshared_key=KEY)


def test_a_changed_ciphertext_is_refused() -> None:
    data, _ = make(3)

    def tamper(root) -> None:
        value = root.findall(".//pskc:Secret//{http://www.w3.org/2001/04/xmlenc#}CipherValue", NS)[1]
        raw = bytearray(base64.b64decode(value.text))
        raw[-1] ^= 0x55
        value.text = base64.b64encode(bytes(raw)).decode()

    assert "'SN000001'" in rejected(edit(data, tamper), preshared_key=KEY)


def test_the_wrong_preshared_key_rejects_the_batch() -> None:
    data, secrets = make(3)
    reason = rejected(data, preshared_key=bytes(16))
    assert reason == "The pre-shared key is wrong: the file's secrets do not decrypt with it."
    no_secret_in(reason, [*secrets, KEY])


def test_the_wrong_key_is_told_apart_from_a_bad_mac_on_many_tries() -> None:
    # a wrong key can decrypt one value to valid padding by chance (1 in 256): the next keys settle it
    data, _ = make(12)
    for _ in range(40):
        assert "pre-shared key is wrong" in rejected(data, preshared_key=os.urandom(16))


def test_the_wrong_passphrase_rejects_the_batch() -> None:
    data, _ = make(3, passphrase=PASSPHRASE)
    reason = rejected(data, passphrase="not the passphrase")
    assert reason == "The passphrase is wrong: the file's secrets do not decrypt with it."
    assert "not the passphrase" not in reason


def test_a_key_of_the_wrong_length_a_passphrase_for_a_key_file_and_the_other_way_round() -> None:
    data, _ = make(1)
    assert rejected(data, preshared_key=bytes(32)) == (
        "The pre-shared key is 256 bits; the file's encryption (aes128-cbc) needs 128."
    )
    assert "pre-shared key, not a passphrase" in rejected(data, passphrase=PASSPHRASE)
    protected, _ = make(1, passphrase=PASSPHRASE)
    assert "passphrase (PBKDF2), not a pre-shared key" in rejected(protected, preshared_key=KEY)
    assert "give its passphrase" in rejected(protected)


def test_secrets_in_plain_text_are_refused() -> None:
    data, secrets = make(2, plain=True)
    reason = rejected(data, preshared_key=KEY)
    assert "plain text" in reason
    no_secret_in(reason, secrets)


def test_an_encrypted_secret_without_a_mac_is_refused() -> None:
    data, _ = make(2)

    def strip_macs(root) -> None:
        for mac in root.findall(".//pskc:ValueMAC", NS):
            mac.getparent().remove(mac)

    assert "carries no MAC" in rejected(edit(data, strip_macs), preshared_key=KEY)


def test_a_huge_pbkdf2_iteration_count_is_refused_before_deriving() -> None:
    data, _ = make(1, passphrase=PASSPHRASE)

    def slow(root) -> None:
        root.find(".//{*}IterationCount").text = "2000000000"

    started = time.monotonic()
    assert "iteration count" in rejected(edit(data, slow), passphrase=PASSPHRASE)
    assert time.monotonic() - started < 2


def test_an_unknown_policy_element_rejects_the_batch() -> None:
    data, _ = make(3)

    def add_policy(root) -> None:
        key = root.findall(".//pskc:Key", NS)[1]
        policy = etree.SubElement(key, "{urn:ietf:params:xml:ns:keyprov:pskc}Policy")
        etree.SubElement(policy, "{urn:ietf:params:xml:ns:keyprov:pskc}MustBeUsedOnTuesdays").text = "true"

    assert rejected(edit(data, add_policy), preshared_key=KEY) == (
        "The file's key 'SN000001' has a policy element this service does not understand; RFC 6030 says such a key "
        "must not be used, so the file is refused."
    )


def test_an_unknown_pin_policy_attribute_rejects_the_batch() -> None:
    data, _ = make(1)

    def add_pin_policy(root) -> None:
        key = root.find(".//pskc:Key", NS)
        policy = etree.SubElement(key, "{urn:ietf:params:xml:ns:keyprov:pskc}Policy")
        etree.SubElement(policy, "{urn:ietf:params:xml:ns:keyprov:pskc}PINPolicy", Colour="blue")

    assert "policy element this service does not understand" in rejected(edit(data, add_pin_policy), preshared_key=KEY)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<KeyContainer xmlns="urn:ietf:params:xml:ns:keyprov:pskc" Version="1.0">
 <KeyPackage><DeviceInfo><SerialNo>&lol9;</SerialNo></DeviceInfo></KeyPackage>
</KeyContainer>
"""


def test_an_xml_bomb_is_refused_before_parsing() -> None:
    started = time.monotonic()
    reason = rejected(BILLION_LAUGHS, preshared_key=KEY)
    assert reason == (
        "The file declares XML entities, which allow entity-expansion attacks (an XML bomb); the file is refused "
        "unread."
    )
    assert time.monotonic() - started < 1
    with pytest.raises(BatchRejected):
        check_file(BILLION_LAUGHS, max_bytes=MAX_BYTES_DEFAULT)


def test_an_external_entity_is_refused_before_parsing(tmp_path) -> None:
    secret_file = tmp_path / "passwd"
    secret_file.write_text("root:x:0:0")
    data = f"""<?xml version="1.0"?>
<!DOCTYPE KeyContainer [ <!ENTITY xxe SYSTEM "file://{secret_file}"> ]>
<KeyContainer xmlns="urn:ietf:params:xml:ns:keyprov:pskc" Version="1.0">
 <KeyPackage><DeviceInfo><SerialNo>&xxe;</SerialNo></DeviceInfo></KeyPackage>
</KeyContainer>""".encode()
    reason = rejected(data, preshared_key=KEY)
    assert "external entity" in reason and "root:x" not in reason


def test_a_dtd_is_refused_before_parsing_even_without_entities() -> None:
    data, _ = make(1)
    with_dtd = data.replace(b"?>\n", b"?>\n<!DOCTYPE KeyContainer [ <!ELEMENT KeyContainer ANY> ]>\n", 1)
    assert with_dtd != data
    assert "document type declaration" in rejected(with_dtd, preshared_key=KEY)
    external = data.replace(b"?>\n", b'?>\n<!DOCTYPE KeyContainer SYSTEM "http://127.0.0.1:9/pskc.dtd">\n', 1)
    assert "external DTD" in rejected(external, preshared_key=KEY)


def test_an_oversized_file_is_refused() -> None:
    data, _ = make(3)
    check_file(data, max_bytes=len(data))
    with pytest.raises(BatchRejected) as caught:
        check_file(data, max_bytes=len(data) - 1)
    assert "ENROLL_PSKC_MAX_BYTES" in caught.value.reason
    assert "over the limit" in rejected(data, preshared_key=KEY, max_bytes=1024)
    with pytest.raises(BatchRejected, match=r"60 MiB, over the limit of 50 MiB"):
        check_file(b" " * (60 * 1024 * 1024), max_bytes=MAX_BYTES_DEFAULT)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "The file is empty."),
        (b"   \n", "The file is empty."),
        (b"PK\x03\x04\x14\x00\x00\x00", "The file is not PSKC: it is not well-formed XML."),
        (b"serial,secret\nSN1,3132\n", "The file is not PSKC: it is not well-formed XML."),
        (b"<html><body>hello</body></html>", "The file is not PSKC: its root element is not a KeyContainer"),
        (b'<KeyContainer Version="1.0"/>', "The file is not PSKC: its root element is not a KeyContainer"),
        (
            b'<KeyContainer xmlns="urn:ietf:params:xml:ns:keyprov:pskc" Version="1.0"><KeyPackage></KeyContainer>',
            "The file is not PSKC: it is not well-formed XML (line 1).",
        ),
        (b'<KeyContainer xmlns="urn:ietf:params:xml:ns:keyprov:pskc" Version="1.0"/>', "The file holds no keys."),
        (b'<KeyContainer xmlns="urn:ietf:params:xml:ns:keyprov:pskc" Version="2.0"/>', "version '2.0'"),
    ],
)
def test_what_is_not_pskc_is_refused_with_one_clear_reason(data: bytes, reason: str) -> None:
    assert rejected(data, preshared_key=KEY).startswith(reason) or reason in rejected(data, preshared_key=KEY)


def test_a_file_in_utf16_is_read() -> None:
    data, secrets = make(2)
    utf16 = data.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")
    assert [e.secret for e in read_keys(utf16, preshared_key=KEY)] == secrets


# -- signatures --------------------------------------------------------------------------------------------------


def signing_material() -> tuple[bytes, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Acme Tokens batch signer")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(private, hashes.SHA256())
    )
    key_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM).decode()


def signed_file(count: int = 2) -> tuple[bytes, list[bytes]]:
    document = PSKC()
    secrets = [os.urandom(20) for _ in range(count)]
    for index, secret in enumerate(secrets):
        document.add_key(serial=f"SIG{index}", secret=secret, algorithm=HOTP, response_length=6, counter=0)
    document.encryption.setup_preshared_key(key=KEY)
    document.signature.sign(*signing_material())
    out = io.BytesIO()
    document.write(out)
    return out.getvalue(), secrets


def test_a_signed_file_whose_signature_verifies_imports() -> None:
    data, secrets = signed_file()
    assert b"Signature" in data
    assert [e.secret for e in read_keys(data, preshared_key=KEY)] == secrets


def test_a_signed_file_altered_after_signing_is_refused() -> None:
    data, _ = signed_file()
    altered = data.replace(b"SIG1", b"SIG9")
    assert altered != data
    assert rejected(altered, preshared_key=KEY) == (
        "The file's XML signature does not verify: the file was altered after signing."
    )


# -- key-level problems: only that key ---------------------------------------------------------------------------


def problems(data: bytes) -> dict[str | None, str | None]:
    return {e.serial: e.problem for e in read_keys(data, preshared_key=KEY)}


def test_repeated_serials_reject_every_occurrence_after_the_first() -> None:
    data, secrets = make([{"serial": "A"}, {"serial": "B"}, {"serial": "A"}, {"serial": "A"}])
    entries = read_keys(data, preshared_key=KEY)
    assert [(e.serial, e.problem) for e in entries] == [
        ("A", None),
        ("B", None),
        ("A", "serial repeated within the file"),
        ("A", "serial repeated within the file"),
    ]
    assert entries[0].secret == secrets[0]
    assert entries[2].secret is None and entries[3].secret is None


def test_a_missing_serial_is_a_key_problem() -> None:
    data, _ = make([{}, {"serial": None}])
    entries = read_keys(data, preshared_key=KEY)
    assert entries[0].problem is None
    assert entries[1].serial is None and entries[1].secret is None
    assert entries[1].problem == "serial missing: the key has neither a DeviceInfo SerialNo nor a Key Id"


def test_short_secrets_are_rejected_key_by_key() -> None:
    data, _ = make([{"secret": os.urandom(10)}, {}, {"secret": os.urandom(15)}, {"secret": os.urandom(16)}])
    assert problems(data) == {
        "SN000000": "secret is 80 bits: at least 128 bits are required (RFC 4226)",
        "SN000001": None,
        "SN000002": "secret is 120 bits: at least 128 bits are required (RFC 4226)",
        "SN000003": None,
    }


def test_digits_other_than_6_or_8_are_rejected_key_by_key() -> None:
    data, _ = make([{"response_length": 7}, {"response_length": 8}, {"response_length": None}, {}])
    assert problems(data) == {
        "SN000000": "digits 7: only 6 or 8 are supported",
        "SN000001": None,
        "SN000002": "digits missing (ResponseFormat Length): only 6 or 8 are supported",
        "SN000003": None,
    }


def test_an_algorithm_other_than_hotp_or_totp_is_rejected_key_by_key() -> None:
    ocra = "urn:ietf:params:xml:ns:keyprov:pskc:OCRA-1:HOTP-SHA512-8:C-QN08"
    data, _ = make([{"algorithm": ocra}, {}, {"algorithm": None}])
    assert problems(data) == {
        "SN000000": f"algorithm {ocra!r} is not supported: only HOTP and TOTP are",
        "SN000001": None,
        "SN000002": "algorithm 'none' is not supported: only HOTP and TOTP are",
    }


def test_keys_that_would_never_check_are_rejected_key_by_key() -> None:
    past = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    data, _ = make(
        [
            {"algorithm_suite": "HMAC-SHA256", "algorithm": TOTP},
            {"algorithm_suite": "HMAC-SHA1"},
            {"policy.key_usage": ["CR"]},
            {"policy.key_usage": ["OTP"]},
            {"policy.expiry_date": past},
            {"policy.pin_usage": "Append"},
            {"policy.pin_usage": "Local"},
            {"response_encoding": "ALPHANUMERIC"},
        ]
    )
    assert problems(data) == {
        "SN000000": "algorithm suite 'hmac-sha256' is not supported: only HMAC-SHA1 is",
        "SN000001": None,
        "SN000002": "the key's policy does not allow OTP use",
        "SN000003": None,
        "SN000004": "the key expired on 2020-01-01",
        "SN000005": "the key's policy needs a PIN checked by the server, which is not supported",
        "SN000006": None,
        "SN000007": "response encoding 'ALPHANUMERIC': only DECIMAL is supported",
    }


# -- the upload's decryption fields ------------------------------------------------------------------------------


def test_parse_decryption_takes_exactly_one_and_names_the_field() -> None:
    assert parse_decryption("00112233445566778899aabbccddeeff", None) == (
        bytes.fromhex("00112233445566778899aabbccddeeff"),
        None,
    )
    assert parse_decryption("00:11:22:33 44-55-66-77 8899AABBCCDDEEFF", "") == (
        bytes.fromhex("00112233445566778899aabbccddeeff"),
        None,
    )
    assert parse_decryption("0x" + "ab" * 32, None) == (bytes([0xAB] * 32), None)
    assert parse_decryption("", " my passphrase ") == (None, " my passphrase ")
    assert parse_decryption(None, "p") == (None, "p")
    for key, passphrase, field in [
        ("00112233445566778899aabbccddeeff", "and a passphrase", "preshared_key"),
        (None, None, "preshared_key"),
        ("", "   ", "preshared_key"),
        ("zz112233445566778899aabbccddeeff", None, "preshared_key"),
        ("001122", None, "preshared_key"),
        ("0" * 33, None, "preshared_key"),
        (None, "x" * 1025, "passphrase"),
    ]:
        with pytest.raises(ValueError, match=f"^{field}: ") as caught:
            parse_decryption(key, passphrase)
        assert "zz1122" not in str(caught.value) and "and a passphrase" not in str(caught.value)
