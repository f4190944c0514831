"""Stage 6, judging: a session's facts in, checks and verdicts out.

In: a `Session` (read, never written) and an `Analyzer` holding the trust store and the day.
Out: a frozen `Judgement`: the `ChainCheck` of each presented chain (path validation as
OpenSSL does it, `x509path`; profile notes, `x509profile`; evidence for a private CA or a
missing intermediate, `issuer_evidence`) and the session's `Verdict`s (`diagnose`), each naming
the evidence it rests on.  `crosssession` links a session to earlier ones (resumption, servers
that asked for a certificate).  No I/O except loading the trust store, whose parse
`anchorcache` keeps per user; Mozilla's roots, and the X.509 code, are loaded only when the
first certificate is checked (`judging.MozillaAnalyzer`).

Imports `session`, `proto` and the earlier stages' types, and the base modules.
"""
