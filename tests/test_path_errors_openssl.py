"""Every problem on a path, as `openssl verify` lists them: its callback forgives an expired
certificate, a purpose, a CA flag, a path length and a critical extension and goes on, so
one chain can fail several checks.  fastcap named only the first; an admin who fixes it then
meets the next one only on the next try."""

from __future__ import annotations

import itertools

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from fastcap.judge.x509check import Analyzer, TrustStore
from fastcap.judge.x509path import BUILD_REASONS

from .openssl_oracle import OPENSSL, openssl_errors
from .test_diagnose import run, session, smtp, tls
from .test_x509path import DAY, NOW, issue

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")

PROBLEMS = ("leaf_expired", "leaf_not_yet_valid", "inter_expired", "inter_not_yet_valid",
            "untrusted_root", "no_client_auth", "name_constraint", "path_length",
            "inter_not_ca", "inter_no_cert_sign")
CLASHES = {frozenset({"leaf_expired", "leaf_not_yet_valid"}),
           frozenset({"inter_expired", "inter_not_yet_valid"})}
CASES = [frozenset(c) for n in (1, 2) for c in itertools.combinations(PROBLEMS, n)
         if frozenset(c) not in CLASHES]
CASES += [frozenset({"inter_expired", "no_client_auth", "name_constraint", "inter_not_ca"}),
          frozenset({"leaf_expired", "inter_no_cert_sign", "path_length", "no_client_auth"})]


def _dates(case: frozenset, who: str) -> dict:
    if f"{who}_expired" in case:
        return {"not_before": NOW - 30 * DAY, "not_after": NOW - DAY}
    if f"{who}_not_yet_valid" in case:
        return {"not_before": NOW + DAY, "not_after": NOW + 30 * DAY}
    return {}


def _chain(case: frozenset):
    """(trusted root, leaf, intermediate) with the problems of ``case``."""
    nc = [(x509.NameConstraints(permitted_subtrees=[x509.DNSName("contoso.com")],
                                excluded_subtrees=None), True)] if "name_constraint" in case else []
    root = issue("Mail Root", None, ca=True, extra=nc,
                 bc=x509.BasicConstraints(ca=True, path_length=0 if "path_length" in case
                                          else None))
    inter = issue("Mail Issuing CA", root, ca=True, **_dates(case, "inter"),
                  bc=x509.BasicConstraints(ca="inter_not_ca" not in case, path_length=None),
                  ku={"crl_sign"} if "inter_no_cert_sign" in case else "default")
    eku = [ExtendedKeyUsageOID.SERVER_AUTH] if "no_client_auth" in case else "default"
    leaf = issue("mail.fabrikam.com", inter, ca=False, eku=eku, **_dates(case, "leaf"))
    trusted = issue("Mail Root", None, ca=True) if "untrusted_root" in case else root
    return trusted, leaf, inter


def _said_and_checked(case: frozenset, tmp_path):
    """What `openssl verify` prints for the chain of ``case``, and fastcap's check of it."""
    trusted, leaf, inter = _chain(case)
    pem = serialization.Encoding.PEM
    said = openssl_errors(tmp_path, trusted.cert.public_bytes(pem), leaf.cert.public_bytes(pem),
                          inter.cert.public_bytes(pem), at=NOW)
    check = Analyzer(TrustStore([trusted.cert]), today=NOW).check(
        [leaf.der, inter.der], role="client", at=NOW)
    return said, check


@pytest.mark.parametrize("case", CASES, ids=lambda c: "+".join(sorted(c)))
def test_every_error_openssl_lists_in_its_order(case, tmp_path):
    said, check = _said_and_checked(case, tmp_path)
    assert list(check.path_errors) == said
    assert (check.path_error, check.path_error_depth) == said[0]  # the verdict stays the first
    # the message names them all but the one the verdict words itself: the first, or the
    # leaf's own problem (its usage, its dates) when that is the verdict
    unsaid = [e for e in said if f"{e[0]} at depth {e[1]}" not in check.detail]
    assert len(unsaid) <= 1 and all(e == said[0] or e[1] == 0 for e in unsaid), check.detail


# the leaf's own problems, each a verdict of its own; any other error fails the path
LEAF_CODES = {("unsuitable certificate purpose", 0): "client_cert_no_client_auth_eku",
              ("certificate has expired", 0): "client_cert_expired",
              ("certificate is not yet valid", 0): "client_cert_not_yet_valid"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: "+".join(sorted(c)))
def test_the_verdicts_say_openssls_first_error_first(case, tmp_path):
    """A leaf's own problem beside a CA's (an expired intermediate, a path length, a name
    constraint): the verdicts named the leaf's problem alone, though OpenSSL fails the path
    at the CA first and a renewed leaf would be refused all the same."""
    said, check = _said_and_checked(case, tmp_path)
    out = [v for v in run(session(smtp(), tls()), check, None)
           if v.code.startswith("client_cert_")]
    assert out[0].code == LEAF_CODES.get(said[0], "client_cert_untrusted_ca"), out
    assert {LEAF_CODES[e] for e in said if e in LEAF_CODES} <= {v.code for v in out}
    chain = " ".join(v.message for v in out if v.code == "client_cert_untrusted_ca")
    # a path that failed its building is worded by the verdict (no trusted root reached)
    named = [e for e in said if e not in LEAF_CODES and e[0] not in BUILD_REASONS]
    assert all(f"{text} at depth {depth}" in chain for text, depth in named), out


@pytest.mark.parametrize("case", [frozenset(c) for n in (0, 1, 2) for c in itertools.combinations(
    ("leaf_expired", "no_client_auth"), n)] + [frozenset({"leaf_not_yet_valid", "no_client_auth"})],
    ids=lambda c: "+".join(sorted(c)) or "alone")
def test_a_self_signed_leaf_is_checked_on(case, tmp_path):
    """OpenSSL forgives a self-signed leaf and goes on to its purpose and dates."""
    root = issue("Mail Root", None, ca=True)
    eku = [ExtendedKeyUsageOID.SERVER_AUTH] if "no_client_auth" in case else "default"
    leaf = issue("mail.fabrikam.com", None, ca=False, eku=eku, **_dates(case, "leaf"))
    pem = serialization.Encoding.PEM
    said = openssl_errors(tmp_path, root.cert.public_bytes(pem), leaf.cert.public_bytes(pem),
                          at=NOW)
    check = Analyzer(TrustStore([root.cert]), today=NOW).check([leaf.der], role="client", at=NOW)
    assert list(check.path_errors) == said
    assert check.problem == "self_signed"
    assert all(f"{text} at depth 0" in check.detail for text, _ in said[1:])
