"""Stage 5 (beside the capture): what the mail servers' own logs and settings say.

In: log files and PowerShell JSON exports (`--evidence`), of a kind told from their content.
Out: `LogConversation`s (one SMTP connection, or one message, as one log tells it) and
`Settings` (connectors and certificates), then their join to capture sessions (`join`).
May import the base modules, the capture stages before it, and `session`; the judge
(`fastcap.judge.evidence`) turns the joins into verdicts.
"""
