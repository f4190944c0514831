"""Chains from which no path to a trusted root is built (an untrusted root sent, a missing
intermediate, a self-signed leaf, a chain sent out of order, a cross-signed chain), held to
`openssl verify -show_chain -verbose`: its errors and depths, and the words the verdict gives
for them, so that an admin can find the same failure in `openssl verify` or Postfix's log."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization

from fastcap.judge.x509check import Analyzer, TrustStore

from .openssl_oracle import OPENSSL, openssl_errors
from .test_x509path import NOW, Made, issue

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")

PEM = serialization.Encoding.PEM


def _pem(*certs: Made) -> bytes:
    return b"".join(c.cert.public_bytes(PEM) for c in certs)


def _check(store: list[Made], leaf: Made, sent: list[Made], role: str = "client"):
    analyzer = Analyzer(TrustStore([c.cert for c in store]), today=NOW)
    return analyzer.check([leaf.der, *(c.der for c in sent)], role=role, at=NOW)


def test_an_issuer_sent_above_a_store_intermediate_is_not_called_another_key(tmp_path):
    """The trust store holds the intermediate (not self-signed, so no anchor) and the peer sends
    the root that signed it.  OpenSSL takes the intermediate from the store and then looks for
    its issuer only there: "unable to get issuer certificate" at depth 1.  The note said the
    root was sent "with another key", though its key is the very one; it is sent, and unused."""
    root = issue("Mail Root", None, ca=True)
    inter = issue("Mail Issuing CA", root, ca=True)
    leaf = issue("mail.fabrikam.com", inter, ca=False)
    said = openssl_errors(tmp_path, _pem(inter), _pem(leaf), _pem(root), at=NOW)
    assert said == [("unable to get issuer certificate", 1)]
    check = _check([inter], leaf, [root])
    assert list(check.path_errors) == said
    assert "another key" not in check.detail, check.detail
    assert "looks for the issuer of a trust-store certificate only in the trust store" in (
        check.detail)
    # a sent certificate of that name and another key is still said to be one
    lookalike = issue("Mail Root", None, ca=True)
    check = _check([inter], leaf, [lookalike])
    assert list(check.path_errors) == said
    assert "with another key" in check.detail, check.detail
