"""`fastcap.stats`, the name the documentation uses: `compute_stats` and `FileStats`
(:mod:`fastcap.select.stats`) with `format_text` (:mod:`fastcap.out.stats_text`)."""

from .out.stats_text import format_text as format_text
from .select.stats import FileStats as FileStats
from .select.stats import compute_stats as compute_stats
