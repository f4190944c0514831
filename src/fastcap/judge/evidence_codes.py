"""The codes of the findings that need the mail servers' logs or settings: severity, one-line
description and hint of each.  Kept apart from `evidence`, which makes those findings, because
`diagnose` registers the codes in its table on every scan while the log readers and the join
behind `evidence` are imported only when logs are given."""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

__all__ = ["EVIDENCE_HINTS", "EVIDENCE_TABLE"]

_SET_SEND = ("Set-SendConnector -TlsCertificateName \"<I>issuer<S>subject\" (the issuer and "
             "subject of the certificate to present)")

# code -> (default severity, one-line description)
EVIDENCE_TABLE: Final = MappingProxyType({
    "log_evidence": ("info", "a mail-server log line backs this session"),
    "log_cert_differs": (
        "error", "the certificate the log says was sent is not the one on the wire"),
    "log_cert_not_in_exchange": (
        "warning", "the certificate the log names is not in Get-ExchangeCertificate"),
    "exchange_cert_expired": (
        "error", "the certificate's Get-ExchangeCertificate entry had expired at the session"),
    "connector_name_mismatch": (
        "error", "the wire certificate does not match the inbound connector's "
        "TlsSenderCertificateName"),
    "send_connector_cert_mismatch": (
        "error", "the wire certificate is not the send connector's TlsCertificateName"),
    "sender_ip_not_in_connector": (
        "warning", "the client address is not in the inbound connector's SenderIPAddresses"),
    "log_rejected_after_tls": (
        "error", "the log shows a rejection after STARTTLS that the capture cannot see"),
    "log_names_tls13_cert": (
        "info", "TLS 1.3 hides the client certificate; the log names the one sent"),
    "log_tls_failed": ("warning", "the log records a TLS failure"),
    "log_only_rejected": ("error", "a log without a capture session shows a rejection"),
    "log_only_no_cert": (
        "warning", "a log without a capture session shows TLS without a client certificate"),
})

EVIDENCE_HINTS: Final = MappingProxyType({
    "log_cert_differs": (
        "the server presented another certificate than its log says: check which certificate "
        f"the send connector binds ({_SET_SEND}) and restart the transport service; a TLS "
        "intercepting proxy between the server and the capture point also causes this"),
    "log_cert_not_in_exchange": (
        "install the certificate on the server (Import-ExchangeCertificate) and enable it for "
        "SMTP (Enable-ExchangeCertificate -Thumbprint ... -Services SMTP), or bind one that is "
        "there"),
    "exchange_cert_expired": (
        "renew the certificate, enable the new one for SMTP (Enable-ExchangeCertificate "
        f"-Services SMTP) and bind it to the send connector ({_SET_SEND})"),
    "connector_name_mismatch": (
        "bind a certificate whose subject CN or SAN carries the connector's name, or correct "
        "the connector (Set-InboundConnector -TlsSenderCertificateName <name on the "
        "certificate>)"),
    "send_connector_cert_mismatch": (
        f"point the send connector at the certificate it should present ({_SET_SEND}); the "
        "server fell back to another certificate"),
    "sender_ip_not_in_connector": (
        "add the public address Exchange Online sees to the connector (Set-InboundConnector "
        "-SenderIPAddresses), or find the other route the mail took out"),
    "log_rejected_after_tls": (
        "the rejection came inside TLS: for 5.7.64 check the certificate and the inbound "
        "connector (TlsSenderCertificateName, SenderIPAddresses); capture with keys "
        "(SSLKEYLOGFILE) to see it on the wire"),
    "log_tls_failed": (
        "see the log line: a certificate the peer does not trust, a protocol or cipher the "
        "two ends do not share, or a TLS intercepting device"),
    "log_only_rejected": (
        "for 5.7.64 check the certificate the send connector presents and the inbound "
        "connector (TlsSenderCertificateName, SenderIPAddresses); capture the connection to "
        "see the handshake"),
    "log_only_no_cert": (
        f"bind a certificate to the send connector ({_SET_SEND}); Exchange Online attributes "
        "mail to the tenant by it"),
})
