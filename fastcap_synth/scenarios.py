"""A catalogue of the SMTP/TLS situations fastcap must tell apart.

Each entry mirrors a real cause of "550 5.7.64 TenantAttribution" (or of a failed STARTTLS) when
an on-premises server relays through Exchange Online, so tests, benchmarks and examples all draw
from the same list.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .certs import Issued, make_ca, make_leaf
from .smtpgen import ACCEPTED_COMMANDS, REJECTED_COMMANDS, SERVER_NAME, SmtpScenario
from .tlsgen import client_context, server_context

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
