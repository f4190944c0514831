"""Chains from which no path to a trusted root is built (an untrusted root sent, a missing
intermediate, a self-signed leaf, a chain sent out of order, a cross-signed chain), held to
`openssl verify -show_chain -verbose`: its errors and depths, and the words the verdict gives
for them, so that an admin can find the same failure in `openssl verify` or Postfix's log."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from fastcap.cli import main
from fastcap.judge.x509check import Analyzer, TrustStore

from .openssl_oracle import OPENSSL, openssl_errors, openssl_name, openssl_said
from .test_diagnose import run, session, smtp, tls
from .test_x509path import DAY, NOW, Made, issue

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")

PEM = serialization.Encoding.PEM


def _pem(*certs: Made) -> bytes:
    return b"".join(c.cert.public_bytes(PEM) for c in certs)


def _check(store: list[Made], leaf: Made, sent: list[Made], role: str = "client"):
    analyzer = Analyzer(TrustStore([c.cert for c in store]), today=NOW)
    return analyzer.check([leaf.der, *(c.der for c in sent)], role=role, at=NOW)


def _held_to_openssl(store: list[Made], leaf: Made, sent: list[Made], role: str, tmp_path: Path):
    """OpenSSL's errors (as `openssl_said` gives them) and fastcap's check of one chain, whose
    errors and depths must be OpenSSL's."""
    said = openssl_said(tmp_path, _pem(*store), _pem(leaf), _pem(*sent), at=NOW,
                        purpose=f"ssl{role}")
    check = _check(store, leaf, sent, role)
    assert list(check.path_errors) == [(text, depth) for _, depth, text, _ in said]
    return said, check


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


def _cross(subject: Made, signer: Made, *, not_after: dt.datetime = NOW + 300 * DAY) -> Made:
    """``subject``'s name and key, certified by ``signer``: a cross-signed root."""
    b = (x509.CertificateBuilder().subject_name(subject.cert.subject)
         .issuer_name(signer.cert.subject).public_key(subject.key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(NOW - 30 * DAY).not_valid_after(not_after)
         .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject.key.public_key()), False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
             signer.key.public_key()), False))
    return Made(b.sign(signer.key, hashes.SHA256()), subject.key)


def _cases() -> dict[str, tuple[list[Made], Made, list[Made], Made]]:
    """(trust store, leaf, sent, the certificate OpenSSL's first error concerns) of each way
    no path to a trusted root is built."""
    root = issue("Mail Root", None, ca=True)
    inter = issue("Mail Issuing CA", root, ca=True)
    leaf = issue("mail.fabrikam.com", inter, ca=False)
    other = issue("Other Root", None, ca=True)
    self_signed = issue("mail.fabrikam.com", None, ca=False)
    old = issue("Old Root", None, ca=True)
    new = issue("New Root", None, ca=True)
    cross = _cross(old, new)
    old_inter = issue("Old Issuing CA", old, ca=True)
    old_leaf = issue("mail.fabrikam.com", old_inter, ca=False)
    stale = issue("Stale Root", None, ca=True, not_after=NOW - DAY)
    stale_cross = _cross(stale, new)
    stale_inter = issue("Stale Issuing CA", stale, ca=True)
    stale_leaf = issue("mail.fabrikam.com", stale_inter, ca=False)
    return {
        "untrusted root sent": ([other], leaf, [inter, root], root),
        "missing intermediate": ([root], leaf, [], leaf),
        "private CA": ([other], leaf, [], leaf),
        "self-signed leaf": ([root], self_signed, [], self_signed),
        "out of order": ([other], leaf, [root, inter], root),
        # OpenSSL takes the first valid certificate of a name: the old root, self-signed,
        # not the cross-signed copy that leads to the trusted new root
        "cross-signed, self-signed copy first": ([new], old_leaf, [old_inter, old, cross], old),
        "cross-signed, no root trusted": ([other], old_leaf, [old_inter, cross], cross),
        # the self-signed copy sent first has expired: OpenSSL takes the valid cross-signed
        # one, and fails at its issuer
        "cross-signed, expired copy first": ([other], stale_leaf,
                                             [stale_inter, stale, stale_cross], stale_cross),
        "store intermediate": ([inter], leaf, [root], inter),
    }


CASES = _cases()


def _postfix(number: int, depth: int, text: str, issuer: str, role: str) -> str:
    """What Postfix logs for OpenSSL's error (tls_log_verify_error in its tls_verify.c), the
    peer's name and address left out."""
    if number == 18:
        return "certificate verification failed for …: self-signed certificate"
    if number in (19, 20):
        return f"certificate verification failed for …: untrusted issuer {issuer}"
    return (f"{'CA' if depth else role} certificate verification failed for …: "
            f"num={number}:{text}")


@pytest.mark.parametrize("role", ["client", "server"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_verdict_quotes_openssls_first_error(case, role, tmp_path):
    store, leaf, sent, concerned = CASES[case]
    said, check = _held_to_openssl(store, leaf, sent, role, tmp_path)
    number, depth, text, subject = said[0]
    # the case is what it says: its first error is about the certificate named
    assert subject == openssl_name(_pem(concerned), "subject", "RFC2253")
    words = f'openssl verify: "error {number} at {depth} depth lookup: {text}"'
    logged = _postfix(number, depth, text, openssl_name(_pem(concerned)), role)
    chains = (check, None) if role == "client" else (None, check)
    verdicts = [v for v in run(session(smtp(), tls()), *chains)
                if v.code in (f"{role}_cert_untrusted_ca", f"{role}_cert_self_signed",
                              f"{role}_cert_incomplete_chain")]
    assert len(verdicts) == 1, verdicts
    for said_text in (check.detail, verdicts[0].message):
        assert words in said_text and f'Postfix: "{logged}"' in said_text, said_text
    if number in (19, 20):  # fastcap's own words name the issuer not found, as Postfix does
        own = check.detail.split("; openssl verify:")[0]
        assert openssl_name(_pem(concerned), "issuer", "RFC2253") in own, check.detail


def test_json_and_table_quote_it(tmp_path, capsys):
    """The example capture's client certificate from a private CA, through the command line:
    the JSON verdict and chain check and the table's findings carry OpenSSL's first error
    as `openssl verify` prints it for the certificate exported from the capture."""
    examples = Path(__file__).resolve().parents[1] / "examples"
    capture, roots = examples / "all-scenarios.pcapng", examples / "test-root.pem"
    exported = tmp_path / "certs"
    main(["scan", str(capture), "--ca-file", str(roots), "--format", "json", "-j", "1",
          "--export-certs", str(exported)])
    sessions = json.loads(capsys.readouterr().out)["files"][0]["sessions"]
    (s,) = [s for s in sessions if any(v["code"] == "client_cert_untrusted_ca"
                                        for v in s["verdicts"])]
    check = s["client_cert_check"]
    leaf = (exported / f"{check['certs'][0]['sha256']}.pem").read_bytes()
    at = dt.datetime.fromtimestamp(s["first_ts_ns"] // 10**9, dt.UTC)
    number, depth, text, _ = openssl_said(tmp_path, roots.read_bytes(), leaf, at=at)[0]
    words = f'openssl verify: "error {number} at {depth} depth lookup: {text}"'
    logged = _postfix(number, depth, text, openssl_name(leaf), "client")
    (message,) = [v["message"] for v in s["verdicts"] if v["code"] == "client_cert_untrusted_ca"]
    for said_text in (check["detail"], message):
        assert words in said_text and f'Postfix: "{logged}"' in said_text, said_text
    main(["scan", "-v", str(capture), "--ca-file", str(roots), "-j", "1"])
    table = capsys.readouterr().out
    assert f"client_cert_untrusted_ca: {message}" in table
