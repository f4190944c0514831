"""SMTP, from the two reassembled byte streams of one connection to the facts judged about it.

The contract: the bytes of each direction (with the gaps the capture lost) go in, and an
``SmtpDialogue`` comes out: plain facts (greeting, EHLO, STARTTLS offered, asked and answered,
where TLS begins, relay denials, anomalies), each with the frame that carried it, and never a
credential. Peer bytes never raise. The package imports nothing outside ``fastcap.proto`` and the
base modules, so every later stage may read it.

One layer per module, each importing only the ones before it:

- ``events``: the event and value classes, the protocol words and codes, ANOMALY_KINDS;
- ``machine``: the caps, the per-direction byte buffers and ``SmtpConversation``, the sans-I/O
  state machine (``feed`` / ``next_event``) that turns bytes into events;
- ``dialogue``: ``SmtpDialogue``, its records, and the fold of events into it;
- ``tunnel``: the proxy tunnels (HTTP CONNECT, SOCKS) a connection may open with before its SMTP;
- ``parse``: ``parse_dialogue``, the production entry, with its fast path for the usual dialogue.

The names below are re-exported for readers; a test that patches a cap or ``_parse_plain``
must patch the module that reads it (``machine`` for MAX_*, ``parse`` for FEED_CHUNK and
``_parse_plain``, ``dialogue`` for MAX_ITEMS), since a re-export is only a copy of the name.
"""

from __future__ import annotations

# A module of re-exports: the names outside __all__ (caps, protocol words, _parse_plain) are
# here for the modules and tests that read them, not for `import *`.
# ruff: noqa: F401
from .dialogue import (
    MAX_ITEMS,
    AnomalyRecord,
    CommandRecord,
    GapRecord,
    ReplyRecord,
    SmtpDialogue,
)
from .events import (
    ANOMALY_KINDS,
    AUTH_VERBS,
    EXO_SUFFIX,
    GREETING_CODES,
    KNOWN_VERBS,
    NEED_DATA,
    TLS_VERBS,
    Anomaly,
    AuthResponse,
    Banner,
    Closed,
    Command,
    CutStart,
    DataBody,
    Direction,
    Event,
    Gap,
    Reply,
    StartTls,
    ZeekBadReply,
    ZeekTail,
    is_relay_denied,
    names_exchange_online,
    turned_detail,
)
from .machine import (
    MAX_ANOMALIES,
    MAX_BAD_LINES,
    MAX_BUFFER,
    MAX_LINE,
    MAX_PIECES,
    MAX_REPLY_LINES,
    SmtpConversation,
)
from .parse import FEED_CHUNK, StreamLike, _parse_plain, parse_dialogue

__all__ = [
    "ANOMALY_KINDS", "NEED_DATA", "Anomaly", "AnomalyRecord", "AuthResponse", "Banner", "Closed",
    "Command", "CommandRecord", "CutStart", "DataBody", "Direction", "Event", "Gap", "GapRecord",
    "Reply", "ReplyRecord", "SmtpConversation", "SmtpDialogue", "StartTls", "StreamLike",
    "ZeekBadReply", "ZeekTail", "is_relay_denied", "names_exchange_online", "parse_dialogue",
]  # fmt: skip
