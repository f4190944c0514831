"""Which kind of evidence a file holds, told from its content alone (never its name: logs
are renamed, zipped, exported and copied around before they reach fastcap).

Each format module answers `looks_like(head)` for its own kind; they are asked in a fixed
order, the most specific shapes first, so that a file is read by exactly one of them."""

from __future__ import annotations

from types import ModuleType

from . import clixml, exchange, fmtlist, postfix, powershell, tracking

__all__ = ["KINDS", "LOG_READERS", "SETTINGS_READERS", "kind_of"]

# The order formats are asked in: headers that name themselves first, free text last.
KINDS = ("exchange-protocol", "message-tracking", "message-trace", "syslog", "powershell-json",
         "powershell-clixml", "powershell-list")

# ---- format kind -> the module that reads it ------------------------------------------
# Log readers export looks_like, conversations and lines_of; settings readers export
# looks_like and read_settings.  The other formats' modules join these tables:
#   "message-tracking": tracking, "message-trace": tracking, "syslog": postfix
#   (conversations from syslog lines), "powershell-json": powershell and
#   "powershell-list": fmtlist (Format-List text), "powershell-clixml": clixml
#   (Export-Clixml) (SETTINGS_READERS).
LOG_READERS: dict[str, ModuleType] = {
    "exchange-protocol": exchange,
    "message-tracking": tracking,
    "message-trace": tracking,
    "syslog": postfix,
}
SETTINGS_READERS: dict[str, ModuleType] = {
    "powershell-json": powershell,
    "powershell-clixml": clixml,
    "powershell-list": fmtlist,
}
# ----------------------------------------------------------------------------------------


def kind_of(head: str) -> str | None:
    """The kind of the file whose first characters are `head`, or None if no reader knows
    it."""
    for kind in KINDS:
        module = LOG_READERS.get(kind) or SETTINGS_READERS.get(kind)
        if module is None or not module.looks_like(head):
            continue
        # a module that reads two kinds (tracking: Exchange logs and Exchange Online
        # exports) says which one this is
        told = getattr(module, "kind_of", None)
        if told is None or told(head) == kind:
            return kind
    return None
