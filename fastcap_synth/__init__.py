"""Synthetic capture generation for tests, benchmarks and examples.

Real captures of the TLS client-certificate failures fastcap diagnoses are rare and private, so
everything needed to exercise the scanner is built here: raw packet bytes (``packets``), pcap and
pcapng files (``writers``), a throw-away PKI (``certs``), genuine OpenSSL handshakes (``tlsgen``)
in a chosen TLS 1.2 or 1.3 suite with their key logs (``suites``), whole SMTP/STARTTLS
conversations (``smtpgen``) and key logs that go wrong on purpose or grow huge (``keylogs``).
Import the submodules directly; this package re-exports nothing so that importing ``packets``
never pulls in ``cryptography`` or ``ssl``.

It sits at the repository root, outside ``src/``, so ``pip install`` never ships test-data
generators to users: pytest finds it through ``pythonpath`` in pyproject.toml, and the scripts in
``benchmarks/`` and ``examples/`` put the repository root on ``sys.path`` themselves. It imports
nothing from ``fastcap``: what it writes is an independent view of the formats fastcap reads.
"""
