"""Stage 8, output: judged sessions in, text for people and programs out.

The table, details and summary, JSON, JSON lines and CSV (`report`), the problems grouped by
cause that head the table and the JSON (`triage`), the `follow` view of one session, and
`textsafe`, which makes bytes from packets safe to print.  Nothing here changes a
result.

Imports every earlier stage.
"""
