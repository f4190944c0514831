"""The self-contained HTML report: page data from the scan's results (`data`), the ladder
of each session (`ladder`), and the page rendered and written (`writer`)."""

from .data import ScanFacts, decode_sessions, frames_wanted, page_data
from .ladder import Arrow, ladder
from .writer import embed_json, render_report, write_report

__all__ = ["Arrow", "ScanFacts", "decode_sessions", "embed_json", "frames_wanted", "ladder",
           "page_data", "render_report", "write_report"]
