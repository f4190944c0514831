"""Cross-signed roots in every order, held to
`openssl verify -show_chain -verbose -untrusted SENT -CAfile STORE LEAF`: the path OpenSSL
builds (each certificate's subject and whether it came from the store), its errors and
their depths, and the verdict that names the end of that path.

The hierarchy: an intermediate issued by root P, and a copy of P (its name and key)
certified by root Q.  The peer sends the intermediate and the cross-signed copy with P's
self-signed certificate, or with Q's (the root the copy leads to), in each of their six
orders; the store holds Q, P, both or neither; one of them may have expired."""

from __future__ import annotations

import itertools

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fastcap.judge.x509check import Analyzer, TrustStore

from .openssl_oracle import OPENSSL, openssl_chain
from .test_diagnose import run, session, smtp, tls
from .test_no_path_openssl import _cross, _pem
from .test_x509path import DAY, NOW, Made, issue

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")

_DER = serialization.Encoding.DER


def _hierarchy(expired: str) -> dict[str, Made]:
    """P (self-signed), its cross-signed copy X under Q, Q, an intermediate I under P, a leaf
    under I, and an unrelated root; ``expired`` names the one out of date, if any."""
    gone = NOW - DAY
    p = issue("Issuing Root", None, ca=True,
              **({"not_after": gone} if expired == "P" else {}))
    q = issue("Cross Root", None, ca=True, **({"not_after": gone} if expired == "Q" else {}))
    x = _cross(p, q, **({"not_after": gone} if expired == "X" else {}))
    i = issue("Issuing CA", p, ca=True)
    leaf = issue("mail.fabrikam.com", i, ca=False)
    other = issue("Other Root", None, ca=True)
    return {"P": p, "Q": q, "X": x, "I": i, "leaf": leaf, "other": other}


STORES = (("Q",), ("P",), ("P", "Q"), ("Q", "P"), ("other",))
EXPIRED = ("", "P", "X", "Q")


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


@pytest.mark.parametrize("expired", EXPIRED, ids=lambda e: f"expired={e or 'none'}")
@pytest.mark.parametrize("store", STORES, ids="+".join)
def test_every_order_follows_openssls_path_and_error(store, expired, tmp_path):
    made = _hierarchy(expired)
    trusted = [made[n] for n in store]
    analyzer = Analyzer(TrustStore([c.cert for c in trusted]), today=NOW)
    by_der = {c.cert.public_bytes(_DER): n for n, c in made.items()}
    for order in [*itertools.permutations("IPX"), *itertools.permutations("IQX")]:
        sent = [made[n] for n in order]
        chain, errors = openssl_chain(tmp_path, _pem(*trusted), _pem(made["leaf"]),
                                      _pem(*sent), at=NOW)
        check = analyzer.check([made["leaf"].der, *(c.der for c in sent)], role="client",
                               at=NOW)
        case = f"store {store}, sent {order}, expired {expired or 'none'}"
        assert list(check.path_errors) == [(t, d) for _, d, t, _ in errors], case
        path = analyzer._verify(made["leaf"].cert, [c.cert for c in sent], "client", NOW)
        names = [by_der[c.public_bytes(_DER)] for c in path.path]
        if chain:  # verified: the same certificates, each from the same place
            assert path.ok, case
            ours = [(_subject(c), i >= len(path.path) - path.anchors)
                    for i, c in enumerate(path.path)]
            assert ours == chain, (case, names)
            continue
        number, depth, _, subject = errors[0]
        assert subject == _subject(path.path[depth]), (case, names)
        verdicts = {v.code: v.message for v in run(session(smtp(), tls()), check, None)}
        if number == 19:  # a self-signed root not trusted ends the path: the verdict names it
            assert names[-1] in ("P", "Q"), (case, names)
            assert "client_cert_untrusted_ca" in verdicts, case
            assert f"chain ends at root {_subject(path.path[-1])}" in check.detail, (
                case, check.detail)
        if number in (2, 20):  # the top's issuer was not found: Q, above the copy X
            top = path.path[-1]
            assert f"issuer {top.issuer.rfc4514_string()}" in check.detail or (
                top.issuer.rfc4514_string() in check.detail), (case, check.detail)
