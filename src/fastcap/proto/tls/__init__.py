"""Sans-I/O TLS handshake parser for one TCP connection's two reassembled byte streams.

Contract: the bytes of the two directions (and where TLS starts in each) go in; a frozen
:class:`TlsHandshake` of facts comes out. Nothing here raises on any input (an exception
escaping is a bug) and nothing here judges: oddities become anomalies with stable dotted codes,
and deciding what they mean is ``fastcap.judge``'s job. Of fastcap, the package imports only
its own modules and the base modules (not even the rest of ``fastcap.proto``).

fastcap has to tell a mail admin whether the sending MTA presented a client certificate, so the
parser keeps exactly the facts that decide it: versions, cipher, the server chain, the
CertificateRequest (and its CA names), the client ``Certificate`` message (absent, empty, or a
chain), alerts, and where encryption started. Everything else stays raw.

One layer per module, each importing only the ones before it:

- :mod:`.const` code points and their names; :mod:`.ja` JA3/JA4 fingerprints;
  :mod:`.der` DER elements read and written (shared with the certificate code);
  :mod:`.dn` DER distinguished names as text;
  :mod:`.wirenames` the hellos' names (SNI, ALPN) as printable text, and back;
- :mod:`.messages` the handshake messages fastcap reads, and their wire parsers;
- :mod:`.events` and :mod:`.records`: one direction, bytes -> records -> messages -> events;
- :mod:`.facts` the frozen result types; :mod:`.fold` both directions' events in time order;
  :mod:`.outcome` what they add up to; :mod:`.handshake` the entry points;
- :mod:`.inference` whether a TLS 1.3 client sent a certificate, from record sizes alone.
"""

from .const import TLS13
from .dn import dn_to_text
from .events import (
    Alert,
    Anomaly,
    ChangeCipherSpec,
    EncryptedRecord,
    HandshakeMessage,
    Stopped,
    TlsEvent,
)
from .facts import AlertInfo, EncryptedTraffic, StreamStop, TlsAnomaly, TlsHandshake, Where
from .fold import MAX_HISTORY, MAX_SIZES, MAX_TICKETS
from .handshake import (
    FrameAt,
    ReassembledStream,
    TlsConnection,
    parse_flights,
    parse_handshake,
)
from .messages import (
    MAX_CAS,
    MAX_CERTS,
    Certificate,
    CertificateRequest,
    ClientHello,
    Extension,
    NewSessionTicket,
    ParsedBody,
    Problems,
    ServerHello,
    parse_certificate,
    parse_certificate_request,
    parse_client_hello,
    parse_new_session_ticket,
    parse_server_hello,
    parse_sslv2_client_hello,
)
from .outcome import SERVER_ALERT_SUSPECTED
from .records import MAX_ANOMALIES, MAX_HANDSHAKE, MAX_RECORD, TlsStream

# The limits are re-exported for reading: the modules above read their own, so a test that
# changes one patches the module that defines it.
__all__ = [
    "MAX_ANOMALIES", "MAX_CAS", "MAX_CERTS", "MAX_HANDSHAKE", "MAX_HISTORY", "MAX_RECORD",
    "MAX_SIZES", "MAX_TICKETS", "SERVER_ALERT_SUSPECTED", "TLS13",
    "Alert", "AlertInfo", "Anomaly", "Certificate", "CertificateRequest", "ChangeCipherSpec",
    "ClientHello", "EncryptedRecord", "EncryptedTraffic", "Extension", "FrameAt",
    "HandshakeMessage", "NewSessionTicket", "ParsedBody", "Problems", "ReassembledStream",
    "ServerHello", "Stopped", "StreamStop", "TlsAnomaly", "TlsConnection", "TlsEvent",
    "TlsHandshake", "TlsStream", "Where",
    "dn_to_text", "parse_certificate", "parse_certificate_request", "parse_client_hello",
    "parse_flights", "parse_handshake", "parse_new_session_ticket", "parse_server_hello",
    "parse_sslv2_client_hello",
]
