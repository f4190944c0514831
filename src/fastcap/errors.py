"""Errors and warnings that name the file and the byte offset, so a user can find the spot."""

from __future__ import annotations

from dataclasses import dataclass


class FastcapError(Exception):
    """Base of every error fastcap raises on purpose; anything else is a bug."""


class CaptureError(FastcapError):
    """The input cannot be read as a capture at all (not a capture, unreadable, empty...)."""

    def __init__(self, path: str, message: str, offset: int | None = None) -> None:
        self.path = path
        self.offset = offset
        self.message = message
        where = f" at offset {offset}" if offset is not None else ""
        super().__init__(f"{path}: {message}{where}")

    def __reduce__(self):  # rebuilt from its parts when it crosses to another process
        return (type(self), (self.path, self.message, self.offset))


@dataclass(frozen=True, slots=True)
class CaptureWarning:
    """Something the reader had to skip or stop at; reading continued or ended cleanly."""

    path: str
    offset: int
    kind: str  # stable code: truncated_record, corrupt_record, corrupt_block, bad_interface, ...
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} at offset {self.offset}"
