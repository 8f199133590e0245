"""Reading a manufacturer's PSKC file (RFC 6030): the file-level checks that reject a whole batch, and the keys
with their key-level problems.

`check_file` runs before anything parses the document: the size against `ENROLL_PSKC_MAX_BYTES`, then a
streaming scan (defusedxml over expat) up to the root element that refuses any DTD, entity declaration or
external reference — the XML bomb and external-entity attacks need one of them — and that the root is a PSKC
`KeyContainer`. `read_keys` then parses with python-pskc (on a parser that resolves no entity and reaches no
network), checks the signature when there is one, decrypts with the pre-shared key or the PBKDF2 passphrase and
checks every value's MAC.

Nothing secret (a seed, a key, a passphrase, the file's bytes) is ever part of a `BatchRejected` reason or a
`KeyEntry.problem`: the reasons are this module's own sentences, naming at most a serial, an index or an
algorithm.
"""

from __future__ import annotations

import copy
import datetime
import hmac
import io
import re
import string
import xml.sax.handler
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

from defusedxml.common import DefusedXmlException, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.expatreader import DefusedExpatParser
from lxml import etree
from pskc import PSKC
from pskc.exceptions import DecryptionError, KeyDerivationError, PSKCError
from pskc.key import EncryptedValue, Key
from pskc.parser import PSKCParser
from pskc.xml import remove_namespaces
from signxml.exceptions import SignXMLException

MAX_BYTES_DEFAULT = 50 * 1024 * 1024
"""ENROLL_PSKC_MAX_BYTES's default: 50 MiB."""

PSKC_NAMESPACE = "urn:ietf:params:xml:ns:keyprov:pskc"
_DSIG_NAMESPACE = "http://www.w3.org/2000/09/xmldsig#"

HOTP = "HOTP"
TOTP = "TOTP"
_ALGORITHMS = {
    "urn:ietf:params:xml:ns:keyprov:pskc:hotp": HOTP,
    "urn:ietf:params:xml:ns:keyprov:pskc#hotp": HOTP,
    "http://www.ietf.org/keyprov/pskc#hotp": HOTP,
    "urn:ietf:params:xml:ns:keyprov:pskc:totp": TOTP,
    "urn:ietf:params:xml:ns:keyprov:pskc#totp": TOTP,
    "http://www.ietf.org/keyprov/pskc#totp": TOTP,
}
"""The algorithm URIs read as HOTP (RFC 4226) or TOTP (RFC 6238): RFC 6030's and the PSKC drafts' spellings."""

MIN_SECRET_BYTES = 16
"""RFC 4226 §4 R6: the shared secret is at least 128 bits."""
DIGITS = (6, 8)
DEFAULT_PERIOD = 30
MAX_PERIOD = 3600
MAX_SERIAL_LENGTH = 64
MAX_PBKDF2_ITERATIONS = 10_000_000
"""Above this a file could hold a worker for minutes deriving its key: it is refused instead."""
_SHA1_SUITES = {"hmac-sha1", "hmac-sha-1", "sha1", "sha-1"}
_SERVER_PIN_USAGES = {"prepend", "append", "algorithmic"}
_LOOK_AHEAD = 8
"""How many keys after a first failure are tried, to tell a wrong key from one damaged value."""

_SCAN_CHUNK = 64 * 1024
_XML_PARSER_OPTIONS: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
}


class BatchRejected(Exception):
    """A file-level problem: the whole batch is rejected. `reason` is one clear sentence, never a secret."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class KeyEntry:
    """One key of the file. `problem` set: the key is rejected (and `secret` is None); the batch goes on."""

    index: int
    serial: str | None
    algorithm: str
    digits: int | None
    counter: int | None
    period: int | None
    secret: bytes | None = field(repr=False)
    problem: str | None = None


# -- check_file: before any parsing -------------------------------------------------------------------------------


class _Hostile(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _RootFound(Exception):
    def __init__(self, name: tuple[str | None, str]) -> None:
        super().__init__(name)
        self.name = name


_DTD_REASON = (
    "The file has a document type declaration (<!DOCTYPE>). PSKC needs none, and a DTD is how entity-expansion "
    "and external-entity attacks work, so the file is refused unread."
)


class _Scanner(DefusedExpatParser):
    """defusedxml's expat reader, refusing entity declarations and external references as it does, and any DTD
    at all: stopped at the root element's start tag, after which a DTD can no longer come."""

    def __init__(self) -> None:
        super().__init__(namespaceHandling=1, forbid_dtd=True, forbid_entities=True, forbid_external=True)

    def defused_start_doctype_decl(
        self, name: str, sysid: str | None, pubid: str | None, has_internal_subset: bool
    ) -> None:
        if sysid or pubid:
            raise _Hostile(
                "The file refers to an external DTD (<!DOCTYPE … SYSTEM/PUBLIC>), which would make the reader "
                "fetch a file or reach the network; the file is refused unread."
            )
        # an internal subset: its entity declarations (refused by defusedxml) come before its end, where the DTD
        # itself is refused
        self._parser.EndDoctypeDeclHandler = self._end_doctype  # type: ignore[attr-defined]

    def _end_doctype(self) -> None:
        raise _Hostile(_DTD_REASON)


class _RootHandler(xml.sax.handler.ContentHandler):
    def startElementNS(self, name: tuple[str | None, str], qname: str | None, attrs: object) -> None:
        raise _RootFound(name)


def _root_element(data: bytes) -> tuple[str | None, str]:
    scanner = _Scanner()
    scanner.setContentHandler(_RootHandler())
    try:
        for start in range(0, len(data), _SCAN_CHUNK):
            scanner.feed(data[start : start + _SCAN_CHUNK])
        scanner.close()
    except _RootFound as found:
        return found.name
    except _Hostile as hostile:
        raise BatchRejected(hostile.reason) from None
    except EntitiesForbidden as entity:
        if entity.sysid or entity.pubid:
            raise BatchRejected(
                "The file declares an external entity, which would make the reader fetch a file or reach the "
                "network; the file is refused unread."
            ) from None
        raise BatchRejected(
            "The file declares XML entities, which allow entity-expansion attacks (an XML bomb); the file is "
            "refused unread."
        ) from None
    except ExternalReferenceForbidden:
        raise BatchRejected(
            "The file refers to an external entity, which would make the reader fetch a file or reach the network; "
            "the file is refused unread."
        ) from None
    except (xml.sax.SAXException, DefusedXmlException, ValueError):
        pass
    raise BatchRejected("The file is not PSKC: it is not well-formed XML.")


def _size_text(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MiB".replace(".0 MiB", " MiB")
    if size >= 1024:
        return f"{size / 1024:.1f} KiB".replace(".0 KiB", " KiB")
    return f"{size} bytes"


def check_file(data: bytes, *, max_bytes: int) -> None:
    """The checks made before parsing: the size (over `max_bytes`), hostile XML (a DTD, entity declarations,
    external references), and that the root element is a PSKC `KeyContainer`. Raises `BatchRejected`."""
    if len(data) > max_bytes:
        raise BatchRejected(
            f"The file is {_size_text(len(data))}, over the limit of {_size_text(max_bytes)} "
            "(ENROLL_PSKC_MAX_BYTES); split the batch into smaller files."
        )
    if not data or data.isspace():
        raise BatchRejected("The file is empty.")
    if _root_element(data) != (PSKC_NAMESPACE, "KeyContainer"):
        raise BatchRejected(
            f"The file is not PSKC: its root element is not a KeyContainer in the {PSKC_NAMESPACE} namespace "
            "(RFC 6030)."
        )


# -- parse_decryption: the API's inputs ----------------------------------------------------------------------------

_HEX_SEPARATORS = re.compile(r"[\s:-]")
MAX_PASSPHRASE_LENGTH = 1024


def parse_decryption(preshared_key: str | None, passphrase: str | None) -> tuple[bytes | None, str | None]:
    """`(key, None)` or `(None, passphrase)` from the upload's fields: exactly one, an empty field counting as
    absent. The key is hex (spaces, colons and dashes between digits allowed) of 16, 24 or 32 bytes. A ValueError
    names the field and never quotes it."""
    key_text = _HEX_SEPARATORS.sub("", preshared_key or "")
    has_passphrase = bool(passphrase and passphrase.strip())
    if key_text and has_passphrase:
        raise ValueError("preshared_key: give either a pre-shared key or a passphrase, not both")
    if not key_text and not has_passphrase:
        raise ValueError("preshared_key: the file's pre-shared key (hex) or its passphrase is required")
    if has_passphrase:
        assert passphrase is not None
        if len(passphrase) > MAX_PASSPHRASE_LENGTH:
            raise ValueError(f"passphrase: at most {MAX_PASSPHRASE_LENGTH} characters")
        return None, passphrase
    if key_text.lower().startswith("0x"):
        key_text = key_text[2:]
    if not key_text or any(c not in string.hexdigits for c in key_text) or len(key_text) % 2:
        raise ValueError("preshared_key: must be hexadecimal digits (32, 48 or 64 of them)")
    key = bytes.fromhex(key_text)
    if len(key) not in (16, 24, 32):
        raise ValueError(
            f"preshared_key: must be a 128-, 192- or 256-bit key (32, 48 or 64 hex digits); it has {len(key_text)}"
        )
    return key, None


# -- read_keys ---------------------------------------------------------------------------------------------------


def read_keys(
    data: bytes,
    *,
    preshared_key: bytes | None = None,
    passphrase: str | None = None,
    max_bytes: int | None = None,
) -> list[KeyEntry]:
    """Every key of the file, in file order, each decrypted or carrying its `problem`.

    File-level problems raise `BatchRejected`: those of `check_file` (its size check only when `max_bytes` is
    given: the upload checks it against ENROLL_PSKC_MAX_BYTES), a file that is not PSKC or has no key, a secret
    in plain text, an invalid signature, a policy element this service does not understand, the wrong key or
    passphrase, a MAC that does not verify, an encryption or key derivation it does not support."""
    return list(iter_keys(data, preshared_key=preshared_key, passphrase=passphrase, max_bytes=max_bytes))


def iter_keys(
    data: bytes,
    *,
    preshared_key: bytes | None = None,
    passphrase: str | None = None,
    max_bytes: int | None = None,
) -> Iterator[KeyEntry]:
    """`read_keys` one entry at a time, for a reader that stores as it goes: a `BatchRejected` can still come
    after entries were yielded (a MAC that fails at the 90,000th key), so what was stored must then be dropped.

    An unsigned file is read as a stream, one KeyPackage at a time, so memory grows with nothing but what the
    caller keeps; a signed one is parsed whole, since its signature covers the whole document."""
    if preshared_key is not None and passphrase is not None:
        raise ValueError("give either a pre-shared key or a passphrase, not both")
    check_file(data, max_bytes=len(data) if max_bytes is None else max_bytes)
    if _maybe_signed(data):
        return _read_signed(data, preshared_key, passphrase)
    return _read_stream(data, preshared_key, passphrase)


_SIGNATURE_TAG = re.compile(rb"<([A-Za-z_][\w.-]*:)?Signature[\s/>]")


def _maybe_signed(data: bytes) -> bool:
    """Whether the file may hold a Signature element: its start tag in the bytes, or an encoding that is not
    ASCII-compatible (UTF-16, UTF-32), where a byte search sees nothing."""
    head = data[:4]
    return b"\x00" in head or head.startswith((b"\xff\xfe", b"\xfe\xff")) or bool(_SIGNATURE_TAG.search(data))


_CHILD = re.compile(r"^\{" + re.escape(PSKC_NAMESPACE) + r"\}(EncryptionKey|MACMethod|KeyPackage)$")
_SIGNATURE = f"{{{_DSIG_NAMESPACE}}}Signature"


def _not_well_formed(error: etree.XMLSyntaxError) -> BatchRejected:
    line = error.position[0] if error.position else None
    where = f" (line {line})" if line else ""
    return BatchRejected(f"The file is not PSKC: it is not well-formed XML{where}.")


def _not_pskc() -> BatchRejected:
    return BatchRejected("The file is not PSKC: its content does not follow RFC 6030.")


def _check_version(container: Any) -> None:
    version = container.get("Version") or container.get("version")
    if version and version not in ("1", "1.0"):
        raise BatchRejected(f"The file is PSKC version {version[:10]!r}; only version 1.0 (RFC 6030) is supported.")


def _read_stream(data: bytes, preshared_key: bytes | None, passphrase: str | None) -> Iterator[KeyEntry]:
    document = PSKC()
    reader = _Reader(document, preshared_key, passphrase)
    root = None
    events = etree.iterparse(io.BytesIO(data), events=("start", "end"), **_XML_PARSER_OPTIONS)
    try:
        for event, element in events:
            if root is None:
                root = element
                _check_version(root)
                continue
            if event != "end" or element.getparent() is not root:
                continue
            tag = element.tag if isinstance(element.tag, str) else ""
            if tag == _SIGNATURE:  # not seen by _maybe_signed: an encoding it does not know
                raise BatchRejected("The file is signed in a text encoding whose signature cannot be checked.")
            match = _CHILD.match(tag)
            if match:
                remove_namespaces(element)
                try:
                    if match.group(1) == "KeyPackage":
                        device = document.add_device()
                        PSKCParser.parse_key_package(device, element)
                        document.devices.clear()
                    elif reader.count:
                        raise _not_pskc()  # the header comes before the keys (RFC 6030's sequence)
                    elif match.group(1) == "EncryptionKey":
                        PSKCParser.parse_encryption(document.encryption, element)
                    else:
                        PSKCParser.parse_mac_method(document.mac, element)
                except (PSKCError, ValueError, TypeError, AttributeError):
                    raise _not_pskc() from None
                if match.group(1) == "KeyPackage":
                    for key in device.keys:
                        entry = reader.add(key)
                        if entry is not None:
                            yield entry
            element.clear()  # drop what was read: memory stays flat, whatever the file's size
            while element.getprevious() is not None:
                del root[0]
    except etree.XMLSyntaxError as error:
        raise _not_well_formed(error) from None
    reader.finish()


def _read_signed(data: bytes, preshared_key: bytes | None, passphrase: str | None) -> Iterator[KeyEntry]:
    try:
        tree = etree.parse(io.BytesIO(data), etree.XMLParser(**_XML_PARSER_OPTIONS))
    except etree.XMLSyntaxError as error:
        raise _not_well_formed(error) from None
    root = tree.getroot()
    _check_version(root)
    signed = root.find(_SIGNATURE) is not None
    document = PSKC()
    if signed:
        document.signature.tree = copy.deepcopy(tree)
    try:
        PSKCParser.parse_document(document, root)
    except (PSKCError, ValueError, TypeError, AttributeError):
        raise _not_pskc() from None
    del tree, root
    if signed:
        document = _verified(document)
    reader = _Reader(document, preshared_key, passphrase)
    for key in document.keys:
        entry = reader.add(key)
        if entry is not None:
            yield entry
    reader.finish()


def _verified(document: PSKC) -> PSKC:
    """The part of a signed file that the signature covers, once the signature verifies against the certificate
    it carries. (Trust in that certificate is not established here: a signature proves the file is the one its
    signer wrote, not who the signer is.)"""
    certificate = document.signature.certificate
    if not certificate:
        raise BatchRejected(
            "The file is signed, but its signature carries no X.509 certificate to check it with; send it unsigned "
            "or signed with the certificate embedded."
        )
    try:
        document.signature.verify(certificate=certificate)
        signed = document.signature.signed_pskc
    except (SignXMLException, PSKCError, ValueError, TypeError):
        raise BatchRejected("The file's XML signature does not verify: the file was altered after signing.") from None
    return signed


def _label(index: int, key: Key) -> str:
    serial = _serial(key)
    return f"key {serial!r}" if serial else f"key number {index + 1}"


def _encrypted(key: Key, name: str) -> EncryptedValue | None:
    value = getattr(key, f"_{name}", None)  # python-pskc keeps a value encrypted until it is read
    return value if isinstance(value, EncryptedValue) else None


_FIELDS = ("secret", "counter", "time_offset", "time_interval", "time_drift")
_Outcome = Literal["ok", "mac", "undecryptable"]


class _Reader:
    """The keys, one at a time: each checked, decrypted and turned into its entry. The decryption key is set up
    at the first encrypted value. A first value that does not open, before any did, waits for up to
    `_LOOK_AHEAD` more keys: none opening means the wrong key or passphrase, others opening that this one is
    damaged or its MAC altered. Either way the file is refused: nothing is returned after such a value."""

    def __init__(self, document: PSKC, preshared_key: bytes | None, passphrase: str | None) -> None:
        self.document = document
        self.preshared_key = preshared_key
        self.passphrase = passphrase
        self.count = 0
        self.seen: set[str] = set()
        self.keyed = False
        self.verified_any = False
        self.pending: list[tuple[int, Key, _Outcome]] = []
        self.now = datetime.datetime.now(datetime.UTC)

    def add(self, key: Key) -> KeyEntry | None:
        """The key's entry; None while a value that did not open waits for the keys after it."""
        index = self.count
        self.count += 1
        if key.policy.unknown_policy_elements:
            raise BatchRejected(
                f"The file's {_label(index, key)} has a policy element this service does not understand; "
                "RFC 6030 says such a key must not be used, so the file is refused."
            )
        encrypted = [name for name in _FIELDS if _encrypted(key, name)]
        if not encrypted and key.secret:
            raise BatchRejected(
                f"The file's {_label(index, key)} has its secret in plain text; the service accepts only files "
                "whose secrets are encrypted with a pre-shared key or a passphrase."
            )
        if encrypted and not self.keyed:
            _set_up_key(self.document, self.preshared_key, self.passphrase)
            _set_up_mac_key(self.document, self.passphrase)
            self.keyed = True
        secret = _encrypted(key, "secret")
        if secret is not None and not secret.mac_value and _needs_mac(self.document):
            raise BatchRejected(
                f"The file's {_label(index, key)} carries no MAC (ValueMAC) for its encrypted secret; RFC 6030 "
                "requires one with CBC encryption, so the file is refused."
            )
        outcome: _Outcome = _open(self.document, key) if encrypted else "ok"
        if self.pending or outcome != "ok":
            self.pending.append((index, key, outcome))
            if self.verified_any or outcome == "ok" or len(self.pending) > _LOOK_AHEAD:
                self._refuse()
            return None
        if encrypted:
            self.verified_any = True
        return self._entry(index, key)

    def _refuse(self) -> NoReturn:
        index, key, outcome = self.pending[0]
        following = [o for _, _, o in self.pending[1:]]
        if not self.verified_any and "ok" not in following and "undecryptable" in (outcome, *following):
            raise BatchRejected(_wrong_key_reason(self.passphrase))
        if outcome == "mac":
            raise BatchRejected(
                f"The MAC of the file's {_label(index, key)} does not verify: the file was altered or damaged "
                "after it was made."
            )
        raise BatchRejected(f"The file's {_label(index, key)} does not decrypt although others do: it is damaged.")

    def _entry(self, index: int, key: Key) -> KeyEntry:
        serial = _serial(key)
        algorithm = _algorithm(key)
        digits = key.response_length
        counter: int | None = None
        period: int | None = None
        secret: bytes | None = key.secret
        if algorithm == HOTP:
            counter = key.counter if key.counter is not None else 0
        elif algorithm == TOTP:
            period = key.time_interval if key.time_interval is not None else DEFAULT_PERIOD
        problem = _problem(key, serial, algorithm, digits, counter, period, secret, self.seen, self.now)
        if serial is not None:
            self.seen.add(serial)
        return KeyEntry(
            index=index,
            serial=serial,
            algorithm=algorithm,
            digits=digits,
            counter=counter,
            period=period,
            secret=None if problem else secret,
            problem=problem,
        )

    def finish(self) -> None:
        if self.pending:
            self._refuse()
        if not self.count:
            raise BatchRejected("The file holds no keys.")


def _wrong_key_reason(passphrase: str | None) -> str:
    if passphrase is not None:
        return "The passphrase is wrong: the file's secrets do not decrypt with it."
    return "The pre-shared key is wrong: the file's secrets do not decrypt with it."


def _set_up_key(document: PSKC, preshared_key: bytes | None, passphrase: str | None) -> None:
    encryption = document.encryption
    derived = encryption.derivation.algorithm is not None
    if preshared_key is None and passphrase is None:
        raise BatchRejected(
            "The file's secrets are encrypted: give its " + ("passphrase." if derived else "pre-shared key.")
        )
    if derived and passphrase is None:
        raise BatchRejected(
            "The file is protected by a passphrase (PBKDF2), not a pre-shared key: give the passphrase."
        )
    if not derived and passphrase is not None:
        raise BatchRejected(
            "The file is protected by a pre-shared key, not a passphrase: give the pre-shared key (hex)."
        )
    try:
        lengths = encryption.algorithm_key_lengths
    except DecryptionError:
        raise BatchRejected(
            f"The file's encryption algorithm ({_algorithm_name(encryption.algorithm)}) is not supported."
        ) from None
    if passphrase is not None:
        derivation = encryption.derivation
        if not derivation.algorithm or not derivation.algorithm.endswith("#pbkdf2"):
            raise BatchRejected("The file's key derivation is not supported: only PBKDF2 is.")
        if (derivation.pbkdf2_iterations or 0) > MAX_PBKDF2_ITERATIONS:
            raise BatchRejected(
                f"The file's PBKDF2 iteration count is over {MAX_PBKDF2_ITERATIONS:,}; the file is refused."
            )
        if derivation.pbkdf2_key_length is not None and derivation.pbkdf2_key_length not in lengths:
            raise BatchRejected("The file's PBKDF2 key length does not fit its encryption algorithm.")
        try:
            encryption.derive_key(passphrase)
        except KeyDerivationError:
            raise BatchRejected(
                "The file's PBKDF2 parameters are incomplete or use an unsupported pseudorandom function."
            ) from None
    else:
        assert preshared_key is not None
        if len(preshared_key) not in lengths:
            wanted = " or ".join(str(n * 8) for n in lengths)
            raise BatchRejected(
                f"The pre-shared key is {len(preshared_key) * 8} bits; the file's encryption "
                f"({_algorithm_name(encryption.algorithm)}) needs {wanted}."
            )
        encryption.key = preshared_key


def _algorithm_name(uri: str | None) -> str:
    return (uri or "none").rsplit("#", 1)[-1]


def _needs_mac(document: PSKC) -> bool:
    algorithm = document.encryption.algorithm or ""
    return algorithm.endswith("-cbc")


def _set_up_mac_key(document: PSKC, passphrase: str | None) -> None:
    """Decrypt the file's MAC key once (python-pskc would decrypt it again for every value); a MAC key that does
    not decrypt means the wrong key."""
    mac = document.mac
    if not mac.algorithm:
        return
    try:
        key = mac.key
    except DecryptionError:
        raise BatchRejected(_wrong_key_reason(passphrase)) from None
    if not key:
        return
    mac.key = key
    try:
        mac.generate_mac(b"")
    except DecryptionError:
        raise BatchRejected(f"The file's MAC algorithm ({_algorithm_name(mac.algorithm)}) is not supported.") from None


def _open(document: PSKC, key: Key) -> _Outcome:
    """Decrypt and MAC-check the key's encrypted values; when they all verify, the key holds them in plain from
    then on (python-pskc would decrypt and MAC them again at every read)."""
    plain: dict[str, bytes | int] = {}
    for name in _FIELDS:
        value = _encrypted(key, name)
        if value is None:
            continue
        try:
            plaintext = document.encryption.decrypt_value(value.cipher_value, value.algorithm)
        except (DecryptionError, ValueError):
            return "undecryptable"
        if value.mac_value:
            # RFC 6030 MACs the ciphertext; python-pskc also accepts an early draft's MAC over the plaintext
            try:
                if not hmac.compare_digest(
                    value.mac_value, document.mac.generate_mac(value.cipher_value)
                ) and not hmac.compare_digest(value.mac_value, document.mac.generate_mac(plaintext)):
                    return "mac"
            except DecryptionError:
                return "mac"
        plain[name] = plaintext if name == "secret" else _integer(plaintext)
    for name, opened in plain.items():
        setattr(key, name, opened)
    return "ok"


def _integer(value: bytes) -> int:
    """An encrypted integer value as python-pskc reads it: ASCII digits, else big-endian."""
    return int(value) if value.isdigit() else int.from_bytes(value, "big")


# -- the entries --------------------------------------------------------------------------------------------------


def _serial(key: Key) -> str | None:
    serial = key.serial or key.id
    if serial is None:
        return None
    text = str(serial).strip()
    return text or None


def _algorithm(key: Key) -> str:
    uri = (key.algorithm or "").strip()
    return _ALGORITHMS.get(uri.lower(), uri)


def _problem(
    key: Key,
    serial: str | None,
    algorithm: str,
    digits: int | None,
    counter: int | None,
    period: int | None,
    secret: bytes | None,
    seen: set[str],
    now: datetime.datetime,
) -> str | None:
    """The first reason this key cannot be imported, or None."""
    if serial is None:
        return "serial missing: the key has neither a DeviceInfo SerialNo nor a Key Id"
    if len(serial) > MAX_SERIAL_LENGTH:
        return f"serial longer than {MAX_SERIAL_LENGTH} characters"
    if not serial.isprintable():
        return "serial has control characters"
    if serial in seen:
        return "serial repeated within the file"
    if algorithm not in (HOTP, TOTP):
        shown = algorithm[:100] if algorithm else "none"
        return f"algorithm {shown!r} is not supported: only HOTP and TOTP are"
    suite = (key.algorithm_suite or "").strip().lower()
    if suite and suite not in _SHA1_SUITES:
        return f"algorithm suite {suite[:40]!r} is not supported: only HMAC-SHA1 is"
    if not secret:
        return "secret missing"
    if len(secret) < MIN_SECRET_BYTES:
        return f"secret is {len(secret) * 8} bits: at least 128 bits are required (RFC 4226)"
    if digits is None:
        return "digits missing (ResponseFormat Length): only 6 or 8 are supported"
    if digits not in DIGITS:
        return f"digits {digits}: only 6 or 8 are supported"
    if key.response_encoding and key.response_encoding.upper() != "DECIMAL":
        return f"response encoding {key.response_encoding[:20]!r}: only DECIMAL is supported"
    if counter is not None and counter < 0:
        return "counter is negative"
    if period is not None and not 0 < period <= MAX_PERIOD:
        return f"time step {period} s: it must be between 1 and {MAX_PERIOD} s"
    policy = key.policy
    if policy.key_usage and "OTP" not in policy.key_usage:
        return "the key's policy does not allow OTP use"
    if (policy.pin_usage or "").lower() in _SERVER_PIN_USAGES:
        return "the key's policy needs a PIN checked by the server, which is not supported"
    if policy.expiry_date and _aware(policy.expiry_date) < now:
        return f"the key expired on {policy.expiry_date.date().isoformat()}"
    return None


def _aware(moment: datetime.datetime) -> datetime.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


__all__ = [
    "MAX_BYTES_DEFAULT",
    "BatchRejected",
    "KeyEntry",
    "check_file",
    "iter_keys",
    "parse_decryption",
    "read_keys",
]
