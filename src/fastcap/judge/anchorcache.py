"""A CA bundle's parse kept between runs, so that a small scan does not pay for reading the
whole trust store again: ~20 ms of its start-up went to finding the PEM blocks, fingerprinting
every root, keying their names and indexing them for a missing issuer's evidence.

One file per bundle in ``$XDG_CACHE_HOME/fastcap`` (else ``~/.cache/fastcap``), keyed by the
bundle's path and the SHA-256 of its bytes (reading and hashing them costs under a millisecond,
and no touch or same-size rewrite can then pass off an old parse), and by the code and the
cryptography version that parsed it.
The cache is only ever a shortcut: a missing, stale, corrupt or unwritable file means the bundle
is parsed as before, never an error, and what is read back gives the same store as a parse.
Files are written whole under a temporary name and renamed, so a reader never sees half of one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # both only where a cached store is made or its evidence index used
    from cryptography import x509

    from .issuer_evidence import EvidenceIndex

__all__ = ["Entry", "cache_dir", "lookup", "save"]

FORMAT = 1
# The modules whose code decides what is cached: a change to any of them makes old files stale.
_CODE = ("anchorcache.py", "x509check.py", "x509names.py", "issuer_evidence.py", "x509lenient.py",
         "../proto/tls/der.py")


@dataclass(frozen=True, slots=True)
class Entry:
    """One bundle's place in the cache: where its file is, the key that file must carry, and
    what it held (``payload``; None when there was nothing usable)."""

    file: Path
    key: tuple
    payload: dict[str, Any] | None


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/fastcap``, else ``~/.cache/fastcap`` (not created here)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fastcap"


def _key(bundle: str, data: bytes) -> tuple:
    here = Path(__file__).parent
    code = []
    for name in _CODE:
        try:
            cs = os.stat(here / name)
            code.append([name, cs.st_size, cs.st_mtime_ns])
        except OSError:
            code.append([name, None, None])
    from cryptography import __version__ as crypto_version

    return (FORMAT, os.path.abspath(bundle), len(data), hashlib.sha256(data).hexdigest(),
            crypto_version, code)


def _plain(value: Any) -> Any:
    """The key as JSON gives it back (tuples become lists), for comparing with a read one."""
    return json.loads(json.dumps(value))


def lookup(bundle: str, data: bytes) -> Entry:
    """The cache entry of ``bundle``, whose bytes are ``data``, with what it holds when that
    was cached from these very bytes."""
    key = _key(bundle, data)
    name = hashlib.sha256(os.path.abspath(bundle).encode("utf-8", "surrogateescape"))
    file = cache_dir() / f"anchors-{name.hexdigest()[:24]}.json"
    return Entry(file, key, _read(file, key))


def _read(file: Path, key: tuple) -> dict[str, Any] | None:
    """Header line (format, key, digest of the rest), then the payload; anything amiss: None."""
    try:
        data = file.read_bytes()
        head, _, body = data.partition(b"\n")
        header = json.loads(head)
        if header.get("key") != _plain(key):
            return None
        if header.get("sha256") != hashlib.sha256(body).hexdigest():
            return None
        payload = json.loads(body)
        if not isinstance(payload, dict) or not isinstance(payload.get("ders"), list):
            return None
        return payload
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def save(entry: Entry, roots: Sequence[x509.Certificate], subjects: Sequence[tuple | None],
         index: EvidenceIndex | None = None, written: Mapping[bytes, bytes] | None = None
         ) -> None:
    """Write the parse of the entry's bundle (its unique roots, in order, with their canonical
    subjects, and the evidence index when one was built); silently nothing when the cache
    directory cannot be written.  ``written``: a re-encoded root's DER -> the bytes of the
    bundle it was read from (`x509lenient`), which are cached in its place."""
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        payload: dict[str, Any] = {
            "ders": [base64.b64encode((written or {}).get(d, d)).decode()
                     for d in (c.public_bytes(Encoding.DER) for c in roots)],
            "subjects": list(subjects),
        }
        if index is not None:
            payload["index"] = index_to_plain(index, roots)
        body = json.dumps(payload, separators=(",", ":")).encode()
    except Exception:  # a root that will not re-encode: nothing worth caching
        return
    header = json.dumps({"key": entry.key, "sha256": hashlib.sha256(body).hexdigest()})
    import tempfile  # with shutil and random behind it: only a run that writes needs it

    tmp = None
    try:
        entry.file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=entry.file.parent, prefix=".anchors-", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(header.encode() + b"\n" + body)
        os.replace(tmp, entry.file)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def ders(payload: dict[str, Any]) -> list[bytes]:
    """The cached roots' DER, in the store's order (ValueError/TypeError when malformed)."""
    return [base64.b64decode(d, validate=True) for d in payload["ders"]]


def subjects(payload: dict[str, Any], count: int) -> list[tuple | None] | None:
    """The cached canonical subjects (``x509names.canon_name``) as tuples; None when absent or
    not one per root."""
    got = payload.get("subjects")
    if not isinstance(got, list) or len(got) != count:
        return None
    return [None if s is None else tuple(tuple(tuple(p) for p in rdn) for rdn in s)
            for s in got]


# --- the evidence index ----------------------------------------------------------------------
# Its name-keyed maps hold root subjects: a key is kept as the position of the first root with
# that subject and becomes that root's subject again when read.


def index_to_plain(index: EvidenceIndex, roots: Sequence[x509.Certificate]) -> dict[str, Any]:
    first: dict[x509.Name, int] = {}
    for i, cert in enumerate(roots):
        try:
            first.setdefault(cert.subject, i)
        except Exception:
            continue
    return {
        "anchor_names": [[first[n], v] for n, v in index.anchor_names.items()],
        "by_org": [[k, list(v)] for k, v in index.by_org.items()],
        "by_org_key": [[k, list(v)] for k, v in index.by_org_key.items()],
        "domains": [[k, v] for k, v in index.domains.items()],
        "known_by_name": [[first[n], v] for n, v in index.known_by_name.items()],
        "known_by_keyid": [[k.hex(), v] for k, v in index.known_by_keyid.items()],
    }


def index_from_plain(plain: dict[str, Any], roots: Sequence[x509.Certificate],
                     subject_keys: Sequence[tuple | None]) -> EvidenceIndex:
    """The index back (KeyError/TypeError/ValueError/IndexError when malformed); its maps keyed
    by name decode a root's subject only when a name like it is looked up."""
    from types import MappingProxyType

    from .issuer_evidence import EvidenceIndex

    def by_root(pairs: list) -> SubjectMap:
        if any(not 0 <= i < len(roots) for i, _ in pairs):
            raise IndexError("no such root")
        return SubjectMap(roots, subject_keys, [(i, str(v)) for i, v in pairs])

    def texts(pairs: list) -> MappingProxyType:
        return MappingProxyType({str(k): (str(a), str(b)) for k, (a, b) in pairs})

    return EvidenceIndex(
        by_root(plain["anchor_names"]),
        texts(plain["by_org"]),
        texts(plain["by_org_key"]),
        MappingProxyType({str(k): str(v) for k, v in plain["domains"]}),
        by_root(plain["known_by_name"]),
        MappingProxyType({bytes.fromhex(k): str(v) for k, v in plain["known_by_keyid"]}),
    )


class SubjectMap(Mapping):
    """A read-only map from root subjects (``x509.Name``) to text, as `EvidenceIndex` holds
    them, whose keys are found by canonical subject first: equal names have equal canonical
    forms, so only the roots named alike have their subjects decoded and compared."""

    __slots__ = ("_roots", "_by_key", "_entries")

    def __init__(self, roots: Sequence[x509.Certificate], subject_keys: Sequence[tuple | None],
                 entries: list[tuple[int, str]]) -> None:
        self._roots = roots
        self._entries = entries  # (root, value), one per distinct subject, in index order
        self._by_key: dict[tuple, list[tuple[int, str]]] = {}
        for i, value in entries:
            key = subject_keys[i]
            if key is None:
                raise ValueError("a cached subject without its key")
            self._by_key.setdefault(key, []).append((i, value))

    def __getitem__(self, name: object) -> str:
        from .x509names import canon_name

        key = canon_name(name)  # type: ignore[arg-type]  # None for what is no name
        for i, value in self._by_key.get(key, ()) if key is not None else ():
            if self._roots[i].subject == name:
                return value
        raise KeyError(name)

    def __iter__(self) -> Iterator[x509.Name]:
        return (self._roots[i].subject for i, _ in self._entries)

    def __len__(self) -> int:
        return len(self._entries)
