"""Stage 4, protocols: the bytes of a connection's two directions in, frozen facts out.

`smtp` reads the dialogue (and where STARTTLS hands over to TLS), `tls` reads the records and
the handshake (`TlsHandshake`), `midstart` finds where each direction of a connection cut by
a late capture start becomes readable.  Hostile bytes become anomalies in the facts, never
exceptions.  Nothing here judges: certificates are carried as the DER bytes that were sent.

Imports only the base modules (and siblings inside `proto`).
"""
