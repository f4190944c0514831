"""What one direction's record layer (:class:`.records.TlsStream`) reports: frozen events,
each carrying the stream offset of its first byte, which the caller maps to a frame number."""

from __future__ import annotations

from dataclasses import dataclass

from .const import AlertDescription, AlertLevel, HandshakeType, name_of
from .messages import ParsedBody


@dataclass(frozen=True, slots=True)
class HandshakeMessage:
    """A complete plaintext handshake message. ``offset`` is its first header byte's stream
    offset; ``body`` is parsed for the types fastcap needs (None otherwise or if malformed)."""

    offset: int
    msg_type: int
    length: int
    body: ParsedBody | None = None
    # End of the record that completed the message: Wireshark shows the message in the frame
    # carrying that record's last byte, so that is the frame a user should jump to.
    end: int | None = None

    @property
    def name(self) -> str:
        return name_of(HandshakeType, self.msg_type, 2)


@dataclass(frozen=True, slots=True)
class ChangeCipherSpec:
    offset: int


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert. Encrypted ones (after ChangeCipherSpec, TLS <= 1.2) have no level/description;
    ``length`` is the record length for those and 2 otherwise."""

    offset: int
    level: int | None
    description: int | None
    encrypted: bool = False
    length: int = 2

    @property
    def level_name(self) -> str | None:
        return None if self.level is None else name_of(AlertLevel, self.level, 2)

    @property
    def description_name(self) -> str | None:
        return None if self.description is None else name_of(AlertDescription, self.description, 2)


@dataclass(frozen=True, slots=True)
class EncryptedRecord:
    """A record whose body is opaque: application data, or a handshake record after
    ChangeCipherSpec (TLS <= 1.2 Finished). ``length`` excludes the 5-byte header."""

    offset: int
    content_type: int
    length: int


@dataclass(frozen=True, slots=True)
class Anomaly:
    """Something odd; parsing went on (or stopped, see :class:`Stopped`)."""

    offset: int
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Stopped:
    """The direction will parse nothing more: ``reason`` is ``end`` (data ran out), ``gap``
    (bytes missing), ``not_tls``, ``corrupt`` (a record header no TLS peer sends) or ``sslv2``."""

    offset: int
    reason: str
    detail: str


TlsEvent = HandshakeMessage | ChangeCipherSpec | Alert | EncryptedRecord | Anomaly | Stopped
# parse_handshake's streams report their two commonest events as bare tuples (TlsStream._bare):
# an EncryptedRecord as (offset, content_type, length), a HandshakeMessage as (offset,
# msg_type, length, body, end). An object for each was a visible share of the time; only
# _Summary sees them, and it tells them apart by length. parse_handshake(_general=n) folds
# event objects instead, for the tests that prove both forms give one result.
_Opaque = tuple[int, int, int]
_Message = tuple[int, int, int, ParsedBody | None, int | None]
_Bare = _Opaque | _Message
