"""Synthetic capture generation for tests, benchmarks and examples.

Real captures of the TLS client-certificate failures fastcap diagnoses are rare and private, so
everything needed to exercise the scanner is built here: raw packet bytes (``packets``), pcap and
pcapng files (``writers``), a throw-away PKI (``certs``), genuine OpenSSL handshakes (``tlsgen``)
and whole SMTP/STARTTLS conversations (``smtpgen``). Import the submodules directly; this package
re-exports nothing so that importing ``packets`` never pulls in ``cryptography`` or ``ssl``.
"""
