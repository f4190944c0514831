"""What a TLS alert tells a mail admin, by who sent it and when.

An alert's code is the peer's reason in one number, and the same number means different
things from each side: a server's unknown_ca after the client's Certificate says it could not
chain the client certificate to a CA it trusts; a client's unknown_ca says the sending server
distrusts the receiver's certificate. The reasons below are the ones OpenSSL (Postfix, Exim)
sends for each certificate verification error (``ssl_verify_alarm_type``), so the diagnosis
can name the likely cause and the fix instead of a generic "check the certificate".
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

# description -> (what a receiving server means by it, sent right after a client certificate;
# the fix on the sending side).
SERVER_ON_CLIENT_CERT: Final = MappingProxyType({
    42: ("the server rejected the certificate itself (OpenSSL sends bad_certificate for a "
         "certificate not yet valid, or a key or digest too weak for its security level)",
         "check the certificate's start date and the sending server's clock, its key (RSA "
         "2048 bits or more, or EC P-256) and its signature digest (SHA-256)"),
    43: ("the server does not accept it for client authentication (OpenSSL sends "
         "unsupported_certificate when the extended key usage lacks clientAuth)",
         "reissue the certificate with Client Authentication (1.3.6.1.5.5.7.3.2) in its "
         "extended key usage, or without an extended key usage restriction"),
    44: ("the server holds the certificate as revoked",
         "replace the certificate with a newly issued one"),
    45: ("the server found the certificate, or a CA certificate above it, expired",
         "renew the certificate and bind the new one to the send connector "
         "(Set-SendConnector -TlsCertificateName; Postfix: smtp_tls_cert_file)"),
    46: ("the server could not accept the certificate and gave no reason (certificate_unknown)",
         "read the receiving server's log for the reason, if you can; check the certificate's "
         "issuer, chain, dates and names"),
    48: ("the server could not chain the certificate to a CA it trusts: a private or "
         "self-signed CA, or an intermediate CA the client did not send",
         "send the full chain (the intermediate CA after the leaf) of a CA the receiving "
         "server trusts (Exchange Online: a publicly trusted CA)"),
    49: ("the server understood the certificate but its policy denies this client "
         "(access_denied)",
         "ask the receiving server's administrator which certificates it admits"),
    51: ("a signature did not verify (decrypt_error): on a certificate of the chain, or the "
         "client's CertificateVerify, when the private key does not belong to the certificate",
         "check that the sending server's private key belongs to its certificate and that the "
         "chain it sends is the one that issued it"),
})

# A server alert before any client Certificate: what it refuses in the client's hello.
SERVER_ON_HELLO: Final = MappingProxyType({
    40: "the server found no TLS version, cipher or signature algorithm it shares with the "
        "client (handshake_failure)",
    70: "the server does not accept the client's TLS version (protocol_version)",
    71: "the server wants a stronger cipher or version than the client offered "
        "(insufficient_security)",
    112: "the server does not know the host name the client asked for in SNI "
         "(unrecognized_name)",
})

# description -> what the sending server means by it: it judged the receiver's certificate or
# found nothing in common with the receiver.
CLIENT: Final = MappingProxyType({
    40: "the sending server found no TLS version or cipher it shares with the receiver",
    42: "the sending server rejected the receiving server's certificate (bad_certificate: not "
        "yet valid, a weak key or digest, or a name that does not match)",
    43: "the sending server does not accept the receiving server's certificate for a TLS "
        "server (unsupported_certificate: its extended key usage)",
    45: "the sending server found the receiving server's certificate expired",
    46: "the sending server could not accept the receiving server's certificate "
        "(certificate_unknown)",
    48: "the sending server does not trust the CA of the receiving server's certificate "
        "(unknown_ca): with Postfix, smtp_tls_security_level verify or secure, or a "
        "TLS-intercepting device between the servers",
    70: "the sending server does not accept the receiver's TLS version (protocol_version)",
    71: "the sending server wants a stronger cipher or version than the receiver chose "
        "(insufficient_security)",
})
