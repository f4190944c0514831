"""Stage 7, running: the only stage that knows about processes, files and order.

In: paths and a `ScanOptions`.  Out: judged `Session`s in number order, per file, with a
`ScanSummary`.  One process (`scanner`), worker processes reading byte ranges (`streamed`,
`ranges`), runs of ring-buffer files, and executors such as a Dask cluster (`parallel`,
`distributed`) all give the same sessions, numbered and framed as one process would.

Imports every earlier stage.
"""
