"""A 530 5.7.0 "Must issue a STARTTLS command first" (RFC 3207 §4) is the receiver saying it
requires TLS; the plaintext verdicts name it and its frame as evidence."""

from __future__ import annotations

from fastcap.run.scanner import scan
from fastcap_synth.smtpgen import SmtpScenario, smtp_records
from fastcap_synth.writers import write_pcap

REFUSED = (("MAIL FROM:<a@fabrikam.com>", "530 5.7.0 Must issue a STARTTLS command first"),
           ("QUIT", "221 2.0.0 Bye"))


def _verdict(tmp_path, code, **fields):
    cap = tmp_path / "c.pcap"
    write_pcap(cap, smtp_records(SmtpScenario(commands=REFUSED, **fields)))
    (s,) = scan(cap)
    (v,) = [v for v in s.verdicts if v.code == code]
    (reply,) = [r for r in s.smtp.replies if r.code == 530]
    return v, reply.frame


def test_client_that_skipped_starttls_is_told_the_server_requires_it(tmp_path):
    v, frame = _verdict(tmp_path, "plaintext_only")
    assert f"530 5.7.0 Must issue a STARTTLS command first (frame {frame})" in v.message
    assert "answered MAIL" in v.message and "requires TLS" in v.message


def test_required_but_not_offered_points_at_the_path(tmp_path):
    v, frame = _verdict(tmp_path, "starttls_not_offered", starttls_offered=False)
    assert f"(frame {frame})" in v.message and "requires TLS" in v.message
    assert "removed on the way" in v.message
