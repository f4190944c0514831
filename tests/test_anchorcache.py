"""The per-user cache of a CA bundle's parse: a store read back from it is the store a parse
gives (same roots in the same order, same keys, same evidence index, same verdicts), and a
stale, corrupt or unwritable cache only means parsing again, never an error."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from fastcap.judge import anchorcache, x509check
from fastcap.judge.x509check import Analyzer, TrustStore
from fastcap_synth.certs import Issued, make_ca, make_leaf

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
SENDER = "mail.fabrikam.com"


@pytest.fixture(scope="module")
def pki() -> dict[str, Issued]:
    root = make_ca("Tailspin Root CA", org="Tailspin Toys")
    inter = make_ca("Tailspin Issuing CA 09", parent=root, org="Tailspin Toys")
    return {"root": root, "inter": inter}


@pytest.fixture
def bundle(tmp_path, pki, monkeypatch) -> Path:
    """certifi's bundle with a synthetic root and its intermediate in front, standing in as
    the Mozilla store; the cache goes to a directory of the test's own."""
    path = tmp_path / "cacert.pem"
    extra = b"".join(pki[k].cert.public_bytes(Encoding.PEM) for k in ("root", "inter"))
    path.write_bytes(extra + Path(x509check._certifi_bundle()).read_bytes())
    monkeypatch.setattr(x509check, "_certifi_bundle", lambda: str(path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return path


def _cache_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "cache" / "fastcap").glob("anchors-*.json"))


def _chains(pki) -> list[list[bytes]]:
    """Chains that reach every part of the store: a trusted path, a missing intermediate known
    by name, a private CA, organisations of public roots, a self-signed leaf, a public root."""
    known = make_ca("Tailspin Issuing CA 09", org="Tailspin Toys")  # the name, another key
    twin = make_ca("Tailspin Root CA", org="Tailspin Toys")  # a trusted root's name
    digicert = make_ca("DigiCert Global G2 TLS RSA SHA256 2020 CA1", org="DigiCert Inc")
    private = make_ca("Contoso-DC01-CA", org="Contoso Ltd")
    chains = [
        [make_leaf(pki["inter"], SENDER, sans=[SENDER]).der, pki["inter"].der],
        [make_leaf(pki["inter"], SENDER, sans=[SENDER]).der],
        [make_leaf(known, SENDER, sans=[SENDER]).der],
        [make_leaf(twin, SENDER, sans=[SENDER]).der],
        [make_leaf(digicert, SENDER, sans=[SENDER]).der],
        [make_leaf(private, SENDER, sans=[SENDER]).der, private.der],
        [private.der],
    ]
    mozilla = TrustStore([x509.load_pem_x509_certificate(b) for b in x509check._PEM_CERT.findall(
        Path(x509check._certifi_bundle()).read_bytes())[:3]])
    chains += [[c.public_bytes(Encoding.DER)] for c in mozilla.roots]
    return chains


def _verdicts(store: TrustStore, chains) -> list:
    a = Analyzer(store, today=NOW)
    return [a.check(c, role=role, at=NOW, expected_name=SENDER)
            for c in chains for role in ("client", "server")]


def _same_store(a: TrustStore, b: TrustStore) -> None:
    assert [c.public_bytes(Encoding.DER) for c in a.roots] == [
        c.public_bytes(Encoding.DER) for c in b.roots]
    assert a.source == b.source
    assert a.subject_keys() == b.subject_keys()
    assert a.anchor_index() == b.anchor_index()


def test_a_cached_store_is_the_parsed_store(bundle, tmp_path, pki):
    chains = _chains(pki)
    parsed = TrustStore._from_pem_bytes(bundle.read_bytes(), str(bundle), strict=False)
    first = TrustStore.mozilla()  # parses, then caches roots and keys
    assert len(_cache_files(tmp_path)) == 1
    assert "index" not in json.loads(_cache_files(tmp_path)[0].read_bytes().split(b"\n")[1])
    first_verdicts = _verdicts(first, chains)  # builds the evidence index: cached too
    assert "index" in json.loads(_cache_files(tmp_path)[0].read_bytes().split(b"\n")[1])
    warm = TrustStore.mozilla()
    assert warm._cache is not None and warm._cache.payload is not None  # read, not parsed
    _same_store(parsed, warm)
    assert _verdicts(warm, chains) == first_verdicts == _verdicts(parsed, chains)
    problems = {v.problem for v in first_verdicts}
    assert {None, "missing_intermediate", "untrusted_root"} <= problems
    details = " ".join(v.detail or "" for v in first_verdicts)
    for evidence in ("(by name)", "a trusted root has this name", "O=DigiCert Inc"):
        assert evidence in details  # each part of the cached index was consulted


def test_fingerprints_of_cached_roots_are_their_sha256(bundle):
    """The cache keys roots by hashlib's SHA-256 of their DER, as ``fingerprint`` does."""
    TrustStore.mozilla()
    store = TrustStore.mozilla()
    assert store._cache.payload is not None
    for cert in store.roots:
        assert cert.fingerprint(hashes.SHA256()) in store._ders
        assert store.contains(cert)


def test_a_changed_bundle_is_parsed_again(bundle, tmp_path, pki):
    before = TrustStore.mozilla()
    data = bundle.read_bytes()
    bundle.write_bytes(data[data.index(b"-----BEGIN", 1):])  # the synthetic root removed
    after = TrustStore.mozilla()
    assert len(after) == len(before) - 1
    assert pki["root"].cert not in after.roots and pki["inter"].cert in after.roots
    assert after._cache.payload is None  # the old parse was not used
    again = TrustStore.mozilla()
    assert again._cache.payload is not None
    _same_store(after, again)


@pytest.mark.parametrize("damage", [
    lambda b: b"",
    lambda b: b[: len(b) // 2],
    lambda b: b"\x00" * 64,
    lambda b: b.replace(b'"ders"', b'"DERS"', 1),  # the digest no longer fits
    lambda b: b.split(b"\n")[0] + b"\n[]",
])
def test_a_corrupt_cache_file_is_ignored_and_replaced(bundle, tmp_path, pki, damage):
    reference = TrustStore.mozilla()
    _verdicts(reference, _chains(pki)[:3])  # with the index in the file
    (file,) = _cache_files(tmp_path)
    file.write_bytes(damage(file.read_bytes()))
    store = TrustStore.mozilla()
    assert store._cache.payload is None
    _same_store(reference, store)
    assert TrustStore.mozilla()._cache.payload is not None  # written again, whole


def test_well_formed_but_wrong_contents_are_not_trusted(bundle, tmp_path):
    """A file whose digest fits but whose DER or index do not load: parsed again."""
    TrustStore.mozilla()
    (file,) = _cache_files(tmp_path)
    head = json.loads(file.read_bytes().split(b"\n")[0])
    for payload in ({"ders": ["not base64!"]}, {"ders": [123]},
                    {"ders": ["AAAA"], "subjects": []}):
        body = json.dumps(payload).encode()
        head["sha256"] = anchorcache.hashlib.sha256(body).hexdigest()
        file.write_bytes(json.dumps(head).encode() + b"\n" + body)
        store = TrustStore.mozilla()
        assert len(store) > 100 and store._cache.payload is None
    reference = TrustStore._from_pem_bytes(bundle.read_bytes(), str(bundle), strict=False)
    store = TrustStore.mozilla()
    plain = anchorcache.index_to_plain(reference.anchor_index(), reference.roots)
    plain["anchor_names"][0][0] = 10**6  # no such root
    assert store._cache.payload is not None
    store._cache.payload["index"] = plain
    assert store.anchor_index() == reference.anchor_index()  # built, not read


def test_an_unwritable_cache_directory_changes_nothing(bundle, tmp_path, pki, monkeypatch,
                                                       capsys):
    reference = TrustStore._from_pem_bytes(bundle.read_bytes(), str(bundle), strict=False)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    chains = _chains(pki)
    for _ in range(2):
        store = TrustStore.mozilla()
        assert store._cache.payload is None
        _same_store(reference, store)
        assert _verdicts(store, chains) == _verdicts(reference, chains)
    assert capsys.readouterr() == ("", "")
    assert blocker.read_text() == ""


def test_the_cache_directory_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert anchorcache.cache_dir() == tmp_path / "fastcap"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert anchorcache.cache_dir() == tmp_path / "home" / ".cache" / "fastcap"


def test_stores_of_other_origins_are_not_cached(tmp_path, monkeypatch, pki):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    pem = tmp_path / "ca.pem"
    pem.write_bytes(pki["root"].cert.public_bytes(Encoding.PEM))
    store = TrustStore.from_pem_file(pem).plus(TrustStore([pki["inter"].cert]))
    store.anchor_index()
    assert not (tmp_path / "cache").exists()


def test_a_rewrite_of_the_same_size_and_time_is_parsed_again(bundle, tmp_path, pki):
    """The key is the bundle's content: two roots swapped, size and mtime kept, still seen."""
    TrustStore.mozilla()
    data = bundle.read_bytes()
    second = data.index(b"-----BEGIN", 1)
    third = data.index(b"-----BEGIN", second + 1)
    st = bundle.stat()
    bundle.write_bytes(data[second:third] + data[:second] + data[third:])
    os.utime(bundle, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert bundle.stat().st_size == st.st_size and bundle.stat().st_mtime_ns == st.st_mtime_ns
    swapped = TrustStore.mozilla()
    assert swapped._cache.payload is None
    assert swapped.roots[:2] == (pki["inter"].cert, pki["root"].cert)


def _fresh(store: TrustStore) -> TrustStore:
    """The same roots, in the same order, as a store that knows nothing in advance."""
    return TrustStore(list(store.roots), store.source)


def test_a_cached_store_plus_a_ca_file_is_the_store_built_from_scratch(bundle, tmp_path, pki,
                                                                       monkeypatch):
    """`plus` reuses the fingerprints and the canonical subjects the cached Mozilla store
    read, and decodes only the added roots' subjects: the merged store is still the one a
    parse of both gives (order, duplicates dropped, lookups, verdicts)."""
    TrustStore.mozilla()  # the cache is written
    cached = TrustStore.mozilla()
    assert cached._cache.payload is not None
    extra = make_ca("Woodgrove Private Root", org="Woodgrove Bank")
    ca_file = TrustStore([extra.cert, pki["root"].cert], "ca.pem")  # one already in the store
    decoded = []
    real = x509check.x509path.subject_key
    monkeypatch.setattr(x509check.x509path, "subject_key",
                        lambda cert: decoded.append(cert) or real(cert))
    merged = cached.plus(ca_file)
    leaf = make_leaf(extra, SENDER, sans=[SENDER])
    assert merged.issuer_of(leaf.cert) == extra.cert  # a lookup by subject
    assert decoded == [extra.cert, pki["root"].cert]  # the cached store's roots: not again
    monkeypatch.setattr(x509check.x509path, "subject_key", real)
    scratch = TrustStore([*cached.roots, extra.cert, pki["root"].cert])
    assert merged.roots == scratch.roots and len(merged) == len(cached) + 1
    assert merged.roots[-1] == extra.cert
    assert merged.subject_keys() == tuple(map(real, scratch.roots))
    assert merged.source == f"{cached.source} + ca.pem"
    assert merged.contains(extra.cert) and merged.contains(cached.roots[7])
    chains = [*_chains(pki), [leaf.der]]
    assert _verdicts(merged, chains) == _verdicts(scratch, chains)


def test_a_store_that_has_not_decoded_its_subjects_merges_without_decoding(pki, monkeypatch):
    """Where neither store has worked out its subjects, `plus` leaves them to the first lookup
    that needs them, as before: a capture without certificates never pays for them."""
    extra = make_ca("Woodgrove Private Root", org="Woodgrove Bank")
    first, second = TrustStore([pki["root"].cert, pki["inter"].cert]), TrustStore([extra.cert])
    decoded = []
    real = x509check.x509path.subject_key
    monkeypatch.setattr(x509check.x509path, "subject_key",
                        lambda cert: decoded.append(cert) or real(cert))
    merged = first.plus(second).plus(TrustStore([pki["inter"].cert]))
    assert decoded == []
    assert merged.roots == (pki["root"].cert, pki["inter"].cert, extra.cert)
    assert merged.issuer_of(make_leaf(extra, SENDER).cert) == extra.cert
    assert len(decoded) == 3  # decoded once, when the lookup needed them
    assert merged.subject_keys() == tuple(map(real, merged.roots))
    assert _fresh(merged).subject_keys() == merged.subject_keys()
