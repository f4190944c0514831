"""A catalogue of the SMTP/TLS situations fastcap must tell apart.

Each entry mirrors a real cause of "550 5.7.64 TenantAttribution" (or of a failed STARTTLS) when
an on-premises server relays through Exchange Online, so tests, benchmarks and examples all draw
from the same list.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .certs import Issued, make_ca, make_leaf
from .smtpgen import (
    ACCEPTED_COMMANDS,
    REJECTED_COMMANDS,
    SERVER_NAME,
    Conversation,
    SmtpScenario,
    converse,
    render,
)
from .suites import (
    PortableIssued,
    in_tls13_suites,
    issued_from_portable,
    issued_to_portable,
    use_tls12_suite,
)
from .tlsgen import client_context, server_context
from .writers import keylog_bytes, write_pcap, write_pcapng

SCENARIO_NAMES = (
    "ok_client_cert",
    "no_client_cert",
    "cert_not_requested",
    "expired_client_cert",
    "untrusted_ca",
    "name_mismatch",
    "starttls_refused",
    "starttls_not_offered",
    "tls13_client_cert",
)


@dataclass
class Pki:
    """Certificates used by the standard scenarios."""

    root: Issued
    intermediate: Issued
    server: Issued
    client: Issued
    client_expired: Issued
    client_untrusted: Issued
    client_wrong_name: Issued


def make_pki(now: dt.datetime | None = None) -> Pki:
    """Build the scenario PKI (EC keys: milliseconds)."""
    now = now or dt.datetime.now(dt.UTC)
    root = make_ca("Fabrikam Test Root CA")
    inter = make_ca("Fabrikam Test Issuing CA 01", parent=root)
    # A private CA: nothing (not even its organization) ties it to the trusted root.
    rogue = make_ca("Untrusted Self-Made CA", org="Self-Made Lab")
    return Pki(
        root=root,
        intermediate=inter,
        server=make_leaf(inter, SERVER_NAME, sans=[SERVER_NAME, "*.mail.protection.outlook.com"]),
        client=make_leaf(inter, "mail.fabrikam.com", sans=["mail.fabrikam.com"]),
        client_expired=make_leaf(
            inter,
            "mail.fabrikam.com",
            sans=["mail.fabrikam.com"],
            not_before=now - dt.timedelta(days=400),
            not_after=now - dt.timedelta(days=3),
        ),
        client_untrusted=make_leaf(rogue, "mail.fabrikam.com", sans=["mail.fabrikam.com"]),
        client_wrong_name=make_leaf(inter, "smtp.fabrikam.local", sans=["smtp.fabrikam.local"]),
    )


def scenario(name: str, pki: Pki, **overrides: object) -> SmtpScenario:
    """A fresh ``SmtpScenario`` for one catalogue entry; ``overrides`` replace any field."""
    client_cert: Issued | None = None
    auth, max_version, min_version = "optional", "1.2", "1.2"
    commands = REJECTED_COMMANDS
    tls = True
    extra: dict[str, object] = {}
    if name == "ok_client_cert":
        client_cert, commands = pki.client, ACCEPTED_COMMANDS
    elif name == "no_client_cert":
        pass
    elif name == "cert_not_requested":
        client_cert, auth = pki.client, "none"
    elif name == "expired_client_cert":
        client_cert = pki.client_expired
    elif name == "untrusted_ca":
        client_cert = pki.client_untrusted
    elif name == "name_mismatch":
        client_cert = pki.client_wrong_name
    elif name == "starttls_refused":
        extra["starttls_reply"] = "454 4.7.0 Temporary authentication failure"
    elif name == "starttls_not_offered":
        tls = False
        extra["starttls_offered"] = False
    elif name == "tls13_client_cert":
        client_cert, commands = pki.client, ACCEPTED_COMMANDS
        min_version = max_version = "1.3"
    else:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIO_NAMES)}")
    if tls:
        extra["server_ctx"] = server_context(
            pki.server,
            client_auth=auth,
            client_cas=[pki.root],
            min_version=min_version,
            max_version=max_version,
        )
        extra["client_ctx"] = client_context(
            cert=client_cert, min_version=min_version, max_version=max_version
        )
        extra["client_cert"] = client_cert
    fields: dict[str, object] = {"name": name, "commands": commands, **extra, **overrides}
    return SmtpScenario(**fields)  # type: ignore[arg-type]


# --- sessions with key logs: every suite family, with and without a client certificate ---


@dataclass(frozen=True)
class KeyedSpec:
    """What one keyed scenario negotiates: protocol, suite, and whether a certificate is sent.

    The server always asks for a client certificate; without one the client answers with an
    empty Certificate. ``relay_denied`` ends the dialogue with Exchange Online's 550 5.7.64.
    """

    version: str  # "1.2" | "1.3"
    suite: str  # OpenSSL name (TLS 1.2) or IANA name (TLS 1.3)
    client_cert: bool
    relay_denied: bool = False
    etm: bool = True  # TLS 1.2 CBC: encrypt-then-MAC (OpenSSL's default) or MAC-then-encrypt


def _keyed_catalogue() -> dict[str, KeyedSpec]:
    families = (
        ("tls12_gcm", "1.2", "ECDHE-ECDSA-AES128-GCM-SHA256"),
        ("tls12_chacha", "1.2", "ECDHE-ECDSA-CHACHA20-POLY1305"),
        ("tls12_cbc", "1.2", "ECDHE-ECDSA-AES128-SHA"),
        ("tls13_aes128", "1.3", "TLS_AES_128_GCM_SHA256"),
        ("tls13_aes256", "1.3", "TLS_AES_256_GCM_SHA384"),
        ("tls13_chacha", "1.3", "TLS_CHACHA20_POLY1305_SHA256"),
    )
    out = {
        f"keys_{fam}_{'cert' if cert else 'nocert'}": KeyedSpec(version, suite, cert)
        for fam, version, suite in families
        for cert in (True, False)
    }
    out["keys_tls12_cbc384_mte_cert"] = KeyedSpec(
        "1.2", "ECDHE-ECDSA-AES256-SHA384", True, etm=False
    )
    out["keys_tls12_relay_denied"] = KeyedSpec(
        "1.2", "ECDHE-ECDSA-AES128-GCM-SHA256", False, relay_denied=True
    )
    out["keys_tls13_relay_denied"] = KeyedSpec(
        "1.3", "TLS_AES_128_GCM_SHA256", False, relay_denied=True
    )
    return out


KEYED_SCENARIOS: dict[str, KeyedSpec] = _keyed_catalogue()
KEYED_SCENARIO_NAMES = tuple(KEYED_SCENARIOS)


def _keyed_start_ns(pki: Pki) -> int:
    """An hour into the certificates' validity, so the capture's dates judge them valid."""
    start = max(pki.server.cert.not_valid_before_utc, pki.client.cert.not_valid_before_utc)
    return (int(start.timestamp()) + 3600) * 1_000_000_000


def keyed_scenario(name: str, pki: Pki, index: int = 0, **overrides: object) -> SmtpScenario:
    """A keyed catalogue entry as an ``SmtpScenario`` with ``keylog=True``.

    ``index`` spreads sessions of one capture apart: client port 50000 + index, ISNs, and a
    start 10 s after the previous one (the first an hour after the certificates' not-before).
    A TLS 1.3 entry only gets its suite when conversed by :func:`keyed_conversations`
    (OpenSSL configuration of a child process).
    """
    spec = KEYED_SCENARIOS.get(name)
    if spec is None:
        raise ValueError(f"unknown keyed scenario {name!r}; known: {', '.join(KEYED_SCENARIOS)}")
    client_cert = pki.client if spec.client_cert else None
    server_ctx = server_context(
        pki.server,
        client_auth="optional",
        client_cas=[pki.root],
        min_version=spec.version,
        max_version=spec.version,
    )
    client_ctx = client_context(
        cert=client_cert, min_version=spec.version, max_version=spec.version
    )
    if spec.version == "1.2":
        use_tls12_suite(server_ctx, spec.suite, etm=spec.etm)
        use_tls12_suite(client_ctx, spec.suite, etm=spec.etm)
    fields: dict[str, object] = {
        "name": name,
        "commands": REJECTED_COMMANDS if spec.relay_denied else ACCEPTED_COMMANDS,
        "server_ctx": server_ctx,
        "client_ctx": client_ctx,
        "client_cert": client_cert,
        "keylog": True,
        "client_port": 50000 + index,
        "client_isn": 1_000_000_000 + index * 7_919_000,
        "server_isn": 3_000_000_000 + index * 104_729_000,
        "start_ns": _keyed_start_ns(pki) + index * 10_000_000_000,
        **overrides,
    }
    return SmtpScenario(**fields)  # type: ignore[arg-type]


PortablePki = dict[str, PortableIssued]


def pki_to_portable(pki: Pki) -> PortablePki:
    """A picklable form of ``pki`` (for generator child processes)."""
    return {f.name: issued_to_portable(getattr(pki, f.name)) for f in dataclasses.fields(pki)}


def pki_from_portable(data: PortablePki) -> Pki:
    """Inverse of :func:`pki_to_portable`."""
    return Pki(**{name: issued_from_portable(v) for name, v in data.items()})


def _converse_keyed(pki: PortablePki, jobs: Sequence[tuple[str, int]]) -> list[Conversation]:
    """Child side of :func:`keyed_conversations`: converse each (name, index)."""
    restored = pki_from_portable(pki)
    out = []
    for name, index in jobs:
        conv = converse(keyed_scenario(name, restored, index))
        want = KEYED_SCENARIOS[name].suite
        if conv.tls is None or conv.tls.cipher != want:
            got = conv.tls.cipher if conv.tls else None
            raise RuntimeError(f"{name}: asked for {want}, OpenSSL negotiated {got}")
        conv.ssl_session = None  # an OpenSSL object: neither picklable nor needed
        out.append(conv)
    return out


def keyed_conversations(
    pki: Pki, names: Sequence[str] = KEYED_SCENARIO_NAMES
) -> list[tuple[SmtpScenario, Conversation]]:
    """Converse every keyed scenario in ``names`` (index = position), each in its own suite.

    TLS 1.3 entries run in one child process per suite, in parallel with the TLS 1.2 ones here.
    """
    by_suite: dict[str, list[tuple[str, int]]] = {}
    for i, name in enumerate(names):
        spec = KEYED_SCENARIOS.get(name)
        if spec is None:
            raise ValueError(f"unknown keyed scenario {name!r}")
        if spec.version == "1.3":
            by_suite.setdefault(spec.suite, []).append((name, i))
    portable = pki_to_portable(pki)
    calls = [(suite, _converse_keyed, (portable, jobs)) for suite, jobs in by_suite.items()]
    convs: dict[str, Conversation] = {}
    with ThreadPoolExecutor(max_workers=1) as pool:
        children = pool.submit(in_tls13_suites, calls)
        for i, name in enumerate(names):
            if KEYED_SCENARIOS[name].version == "1.2":
                convs[name] = _converse_keyed(portable, [(name, i)])[0]
        for jobs, results in zip(by_suite.values(), children.result(), strict=True):
            for (name, _), conv in zip(jobs, results, strict=True):
                convs[name] = conv
    return [(keyed_scenario(name, pki, i), convs[name]) for i, name in enumerate(names)]


@dataclass(frozen=True)
class KeyedSession:
    """Ground truth for one session of a keyed capture (what a decryptor must recover)."""

    name: str
    client_port: int
    version: str | None  # "TLSv1.2" | "TLSv1.3"
    cipher: str | None  # OpenSSL's name for the negotiated suite
    client_random: bytes | None
    client_cert_der: bytes | None  # the leaf the client sent; None: empty Certificate
    commands: tuple[tuple[str, str], ...]  # the SMTP (command, reply) pairs sent inside TLS
    keylog: tuple[str, ...]


@dataclass(frozen=True)
class KeyedCaptures:
    """The files :func:`write_keyed_captures` wrote, and what each session holds."""

    pcap: Path
    pcapng: Path  # the same frames, with ``keylog``'s bytes in a Decryption Secrets Block
    keylog: Path
    ca_file: Path  # the PKI's root (PEM), for ``fastcap scan --ca-file``
    sessions: tuple[KeyedSession, ...]


def write_keyed_captures(
    directory: str | Path,
    *,
    pki: Pki | None = None,
    names: Sequence[str] = KEYED_SCENARIO_NAMES,
    stem: str = "keyed",
) -> KeyedCaptures:
    """Write ``names`` as one capture: ``stem.pcap`` + ``stem.keys`` (NSS key log), and
    ``stem.pcapng`` with the key log in a DSB as ``editcap --inject-secrets`` writes it; the
    PKI's root goes to ``stem-root.pem`` so the certificates judge as trusted."""
    pki = pki or make_pki()
    d = Path(directory)
    records = []
    sessions = []
    lines: list[str] = []
    for sc, conv in keyed_conversations(pki, names):
        records.extend(render(conv, sc))
        lines.extend(conv.keylog)
        sessions.append(
            KeyedSession(
                name=sc.name,
                client_port=sc.client_port,
                version=conv.tls_version,
                cipher=conv.tls.cipher if conv.tls else None,
                client_random=conv.client_random,
                client_cert_der=sc.client_cert.der if sc.client_cert else None,
                commands=tuple(sc.commands),
                keylog=tuple(conv.keylog),
            )
        )
    keys = keylog_bytes(lines)
    out = KeyedCaptures(
        d / f"{stem}.pcap",
        d / f"{stem}.pcapng",
        d / f"{stem}.keys",
        d / f"{stem}-root.pem",
        tuple(sessions),
    )
    out.keylog.write_bytes(keys)
    out.ca_file.write_bytes(pki.root.pem)
    write_pcap(out.pcap, records)
    write_pcapng(out.pcapng, records, tls_keylog=keys)
    return out
