"""Connector and certificate settings pasted as `Format-List` text: read where the text says
one thing, refused with one warning naming the line where it could say two.

The texts are as PowerShell's list view writes them: names padded to the longest, " : ", a
long value continued under its column (cut at a space, the space left at the line's end, in
English, French, German, Italian, Portuguese and Spanish cultures; cut anywhere in others),
collections `{a, b}` cut after $FormatEnumerationLimit items with "...", objects between blank
lines."""

from __future__ import annotations

import codecs

from fastcap.evidence import fmtlist
from fastcap.evidence.detect import kind_of
from fastcap.evidence.read import read_evidence

# Get-InboundConnector | fl > inbound.txt, Windows PowerShell 5.1 (UTF-16, CRLF), 80 columns;
# the first list wrapped at a space the copy kept at the line's end
INBOUND = (
    "\r\n\r\n"
    "RunspaceId                   : 1f0b7a3e-4c55-4d0e-9a51-3d8e0f6b7a21\r\n"
    "Enabled                      : True\r\n"
    "ConnectorType                : OnPremises\r\n"
    "Comment                      :\r\n"
    "SenderIPAddresses            : {203.0.113.10, 198.51.100.0/24, 2001:db8::/32, \r\n"
    "                               192.0.2.0/24}\r\n"
    "SenderDomains                : {smtp:*;1}\r\n"
    "RequireTls                   : True\r\n"
    "RestrictDomainsToIPAddresses : False\r\n"
    "TlsSenderCertificateName     : *.contoso.com\r\n"
    "Identity                     : From on-prem contoso\r\n"
    "Name                         : From on-prem contoso\r\n"
    "\r\n"
    "RunspaceId                   : 1f0b7a3e-4c55-4d0e-9a51-3d8e0f6b7a21\r\n"
    "Enabled                      : True\r\n"
    "ConnectorType                : OnPremises\r\n"
    "SenderIPAddresses            : {}\r\n"
    "TlsSenderCertificateName     : mail.contoso.com\r\n"
    "Name                         : From relay1\r\n"
    "\r\n\r\n")

# Get-SendConnector | fl, the certificate name cut at the space in "Let's
# Encrypt" and a smart host list at the space after its first item (the copy dropped the
# spaces at the lines' ends)
SEND = (
    "\n"
    "AddressSpaces          : {SMTP:*.mail.onmicrosoft.com;1}\n"
    "SmartHosts             : {contoso-com.mail.protection.outlook.com,\n"
    "                         10.20.30.40}\n"
    "TlsAuthLevel           : DomainValidation\n"
    "TlsCertificateName     : <I>CN=R3, O=Let's\n"
    "                         Encrypt, C=US<S>CN=mail.contoso.com\n"
    "RequireTLS             : True\n"
    "Enabled                : True\n"
    "Name                   : Outbound to Office 365 - 1b0c\n")


def _write(tmp_path, name: str, text: str, encoding: str = "utf-8", bom: bytes = b""):
    path = tmp_path / name
    path.write_bytes(bom + text.encode(encoding))
    return path


def test_inbound_connectors_from_format_list_are_read(tmp_path):
    path = _write(tmp_path, "inbound.txt", INBOUND, "utf-16-le", codecs.BOM_UTF16_LE)
    ev = read_evidence([path])
    assert ev.warnings == ()
    assert [f.kind for f in ev.files] == ["powershell-list"]
    first, second = ev.settings.inbound
    assert first.sender_ip_addresses == ("203.0.113.10", "198.51.100.0/24", "2001:db8::/32",
                                         "192.0.2.0/24")
    assert first.allows_ip("192.0.2.77") and not first.allows_ip("192.0.3.1")
    assert first.tls_sender_certificate_name == "*.contoso.com"
    assert first.connector_type == "OnPremises" and first.require_tls is True
    assert first.restrict_domains_to_ip is False and first.name == "From on-prem contoso"
    assert second.sender_ip_addresses == () and second.allows_ip("203.0.113.10") is None
    assert second.tls_sender_certificate_name == "mail.contoso.com"
    assert (str(first.where), str(second.where)) == (f"{path} line 3", f"{path} line 16")
    assert ev.settings.expected_name() is None  # two names: no default --expect-name


def test_the_evidence_block_calls_a_format_list_file_settings(tmp_path):
    from fastcap.out.evidence_text import format_evidence

    path = _write(tmp_path, "inbound.txt", INBOUND)
    text = format_evidence(read_evidence([path]), None, [])
    assert f"{path}: powershell-list, settings" in text
    assert "2 inbound connector(s)" in text


def test_wrapped_values_are_joined_as_printed(tmp_path):
    ev = read_evidence([_write(tmp_path, "send.txt", SEND)])
    assert ev.warnings == ()
    (send,) = ev.settings.send
    assert send.tls_cert_issuer == "CN=R3, O=Let's Encrypt, C=US"
    assert send.tls_cert_subject == "CN=mail.contoso.com"
    assert send.smart_hosts == ("contoso-com.mail.protection.outlook.com", "10.20.30.40")
    assert send.tls_auth_level == "DomainValidation" and send.enabled is True


def test_a_console_paste_with_its_prompts_is_read(tmp_path):
    text = ("PS C:\\> Get-InboundConnector | fl\n" + INBOUND.replace("\r\n", "\n")
            + "[PS] C:\\Windows\\system32>Get-SendConnector | fl\n" + SEND + "\nPS C:\\>\n")
    ev = read_evidence([_write(tmp_path, "ticket.txt", text)])
    assert ev.warnings == ()
    assert [c.name for c in ev.settings.inbound] == ["From on-prem contoso", "From relay1"]
    assert [c.name for c in ev.settings.send] == ["Outbound to Office 365 - 1b0c"]


def test_certificates_from_format_list_keep_no_culture_dates(tmp_path):
    text = ("\nCertificateDomains : {mail.contoso.com, autodiscover.contoso.com, owa.contoso.com,"
            "\n                     webmail.contoso.com}"
            "\nIssuer             : CN=R3, O=Let's Encrypt, C=US"
            "\nNotAfter           : 2/1/2026 11:59:59 PM"
            "\nRawData            : {48, 130, 6, 205...}"
            "\nServices           : IMAP, POP, SMTP"
            "\nSubject            : CN=mail.contoso.com"
            "\nThumbprint         : DCBFE993F26AA4EF1F0D18B03E560A88302F8297\n")
    path = _write(tmp_path, "certs.txt", text)
    ev = read_evidence([path])
    (cert,) = ev.settings.certificates
    assert cert.names == ("mail.contoso.com", "autodiscover.contoso.com", "owa.contoso.com",
                          "webmail.contoso.com")
    assert cert.services == ("IMAP", "POP", "SMTP") and cert.not_after_ns is None
    assert cert.thumbprint == "DCBFE993F26AA4EF1F0D18B03E560A88302F8297"
    (warning,) = ev.warnings  # RawData cut short is no matter: fastcap does not read it
    assert warning.startswith(f"{path} line 2: 1 date(s) such as '2/1/2026 11:59:59 PM'")


def test_ambiguous_format_list_is_refused_naming_the_line(tmp_path):
    cases = {
        "cut.txt": (INBOUND.replace("2001:db8::/32, \r\n", "2001:db8::/32...}\r\n").replace(
            "                               192.0.2.0/24}\r\n", ""),
            "line 7: SenderIPAddresses is cut short", "$FormatEnumerationLimit = -1"),
        "cut7.txt": (INBOUND.replace("2001:db8::/32, \r\n", "2001:db8::/32\u2026}\r\n").replace(
            "                               192.0.2.0/24}\r\n", ""),
            "line 7: SenderIPAddresses is cut short", "ConvertTo-Json"),
        "flat.txt": (INBOUND.replace("                               192.0.2.0/24}",
                                     "192.0.2.0/24}"),
                     "line 8: neither \"Name : value\" nor a value continued", "Format-List"),
        "joined.txt": (INBOUND.replace("Name                         : From on-prem contoso"
                                       "\r\n\r\n", "Name                         : x\r\n"),
                       "line 15: RunspaceId a second time in one object", "Format-List"),
    }
    for name, (text, says, how) in cases.items():
        path = _write(tmp_path, name, text, "utf-16-le", codecs.BOM_UTF16_LE)
        ev = read_evidence([path])
        assert not ev.settings, name
        (warning,) = ev.warnings
        assert warning.startswith(f"{path} {says}"), warning
        assert how in warning and "\n" not in warning


def test_format_list_is_told_by_its_content():
    assert kind_of(INBOUND) == "powershell-list" and kind_of(SEND) == "powershell-list"
    assert fmtlist.looks_like(INBOUND) and fmtlist.looks_like("\x1b[32;1mEnabled : \x1b[0mTrue"
                                                              "\nTlsSenderCertificateName : a")
    # list view of something else, a JSON export, a syslog line, prose with a colon
    assert not fmtlist.looks_like("Name    : x\nStatus  : Running\nDisplayName : y\n")
    assert not fmtlist.looks_like('{"TlsSenderCertificateName": "mail.contoso.com"}')
    assert not fmtlist.looks_like("Mar 10 09:31:17 relay1 postfix/smtpd[3001]: connect\n" * 3)
    assert not fmtlist.looks_like("Hello team,\nplease check the ConnectorType: OnPremises\n"
                                  "and TlsSenderCertificateName : x\nthanks\nBob\n")


def _cert_list(*dates: tuple[str, str]) -> str:
    """One Get-ExchangeCertificate | fl object with the given (name, date text) lines."""
    lines = [f"{name:<18} : {value}" for name, value in dates]
    return ("\nIssuer             : CN=R3, O=Let's Encrypt, C=US\n" + "\n".join(lines)
            + "\nSubject            : CN=mail.contoso.com"
            "\nThumbprint         : DCBFE993F26AA4EF1F0D18B03E560A88302F8297\n")


def _utc_ns(*args: int) -> int:
    import datetime as dt
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp()) * 1_000_000_000


def test_culture_dates_are_read_where_their_order_is_certain(tmp_path):
    cases = {  # culture: (NotBefore, NotAfter); each NotAfter is 6 December 2026 15:04:05
        "de-DE": ("07.09.2026 15:04:06", "06.12.2026 15:04:05"),
        "en-US": ("9/13/2026 3:04:06 PM", "12/6/2026 3:04:05 PM"),  # month first: 13 is a day
        "en-GB": ("13/09/2026 15:04:06", "06/12/2026 15:04:05"),  # day first: 13 is a day
        "ja-JP": ("2026/09/13 15:04:06", "2026/12/06 15:04:05"),
        "ko-KR": ("2026-09-13 \uc624\ud6c4 3:04:06", "2026-12-06 \uc624\ud6c4 3:04:05"),
        "zh-TW": ("2026/9/13 \u4e0b\u5348 03:04:06", "2026/12/6 \u4e0b\u5348 03:04:05"),
        "ISO": ("2026-09-13 15:04:06", "2026-12-06T15:04:05"),
    }
    for culture, (before, after) in cases.items():
        path = _write(tmp_path, f"{culture}.txt",
                      _cert_list(("NotAfter", after), ("NotBefore", before)))
        ev = read_evidence([path])
        assert ev.warnings == (), culture
        (cert,) = ev.settings.certificates
        assert cert.not_after_ns == _utc_ns(2026, 12, 6, 15, 4, 5), culture
        assert cert.not_before_ns == _utc_ns(2026, 9, 13 if culture != "de-DE" else 7,
                                             15, 4, 6), culture
    # the printing machine's local time: --log-utc-offset gives its zone
    ev = read_evidence([tmp_path / "de-DE.txt"], utc_offset_s=3600)
    assert ev.settings.certificates[0].not_after_ns == _utc_ns(2026, 12, 6, 14, 4, 5)


def test_a_culture_date_that_could_be_read_two_ways_is_named_not_guessed(tmp_path):
    # en-US writes 6 December as 12/6/2026, en-SG 12 June; nothing else in the file tells
    path = _write(tmp_path, "certs.txt", _cert_list(("NotAfter", "12/6/2026 3:04:05 PM"),
                                                    ("NotBefore", "6-12-2025 15:04:05")))
    ev = read_evidence([path])
    (cert,) = ev.settings.certificates
    assert cert.not_after_ns is None and cert.not_before_ns is None
    (warning,) = ev.warnings
    assert "'12/6/2026 3:04:05 PM'" in warning and "'6-12-2025 15:04:05'" in warning
    assert "day and month" in warning and "ConvertTo-Json" in warning
    # a WhenChanged in the same culture that shows the order settles it
    path = _write(tmp_path, "certs2.txt", _cert_list(("NotAfter", "12/6/2026 3:04:05 PM"),
                                                     ("WhenChanged", "11/23/2026 9:00:00 AM")))
    ev = read_evidence([path])
    assert ev.warnings == ()
    assert ev.settings.certificates[0].not_after_ns == _utc_ns(2026, 12, 6, 15, 4, 5)


def test_blank_lines_inside_a_value_keep_the_object_whole(tmp_path):
    # a Comment of three lines, the second empty: PowerShell writes each line of a value
    # under its column, an empty one as the column's spaces (which a copy strips); a
    # Comment ending in a line break leaves such a line before the next property
    pad = " " * 31
    first = (
        "\nRunspaceId                   : 1f0b7a3e-4c55-4d0e-9a51-3d8e0f6b7a21"
        "\nEnabled                      : True"
        "\nConnectorType                : OnPremises"
        "\nComment                      : Scanners on the third floor."
        "\n@"
        f"\n{pad}Ticket 4711"
        "\nSenderIPAddresses            : {203.0.113.10}"
        "\nTlsSenderCertificateName     : mail.contoso.com"
        "\nName                         : From relay1\n")
    second = (
        "\nRunspaceId                   : 1f0b7a3e-4c55-4d0e-9a51-3d8e0f6b7a21"
        "\nEnabled                      : True"
        "\nConnectorType                : OnPremises"
        "\nComment                      : Ends with a line break"
        "\n@"
        "\nSenderIPAddresses            : {198.51.100.0/24}"
        "\nTlsSenderCertificateName     : relay2.contoso.com"
        "\nName                         : From relay2\n")
    for blank in ("", pad):
        text = (first + second).replace("@", blank)
        ev = read_evidence([_write(tmp_path, "inbound.txt", text)])
        assert ev.warnings == (), repr(blank)
        one, two = ev.settings.inbound
        assert (one.name, one.sender_ip_addresses, one.connector_type) == (
            "From relay1", ("203.0.113.10",), "OnPremises")
        assert (two.name, two.tls_sender_certificate_name) == ("From relay2",
                                                               "relay2.contoso.com")
        assert (one.where.line, two.where.line) == (2, 12)


def test_a_space_lost_at_the_end_of_the_widest_line_is_put_back(tmp_path):
    # English, French, German, Italian, Portuguese and Spanish cultures wrap at spaces and cut
    # a word only when it is wider than the whole column; the copy stripped the space after
    # "07," and no line reaches the console's width, so this line is the widest
    cert = ("<I>CN=Microsoft Azure RSA TLS Issuing CA 07, O=Microsoft Corporation, C=US"
            "<S>CN=mail.contoso.com")
    text = ("\nAddressSpaces          : {SMTP:*.mail.onmicrosoft.com;1}"  # 72 columns
            "\nTlsCertificateName     : <I>CN=Microsoft Azure RSA TLS Issuing CA 07,"
            "\n                         O=Microsoft Corporation,"
            "\n                         C=US<S>CN=mail.contoso.com"
            "\nName                   : Outbound to Office 365\n")
    assert max(len(s) for s in text.splitlines()) == len(text.splitlines()[2])
    (send,) = read_evidence([_write(tmp_path, "send.txt", text)]).settings.send
    assert send.tls_certificate_name == cert
    # a word wider than the column is cut where the line is full: joined as it is
    host = "relay-with-a-rather-long-name.eu-west-2.internal.contoso-corp.example"
    wide = text.replace(
        "\nName", f"\nSmartHosts             : {{{host[:46]}\n{' ' * 25}{host[46:]}}}\nName")
    (send,) = read_evidence([_write(tmp_path, "send2.txt", wide)]).settings.send
    assert send.smart_hosts == (host,) and send.tls_certificate_name == cert
    # a console's prompt line is no line of the listing: it says nothing of the width
    prompt = "PS C:\\Users\\administrator.CONTOSO\\Documents> Get-SendConnector | Format-List\n"
    (send,) = read_evidence([_write(tmp_path, "send3.txt", prompt + wide)]).settings.send
    assert send.smart_hosts == (host,) and send.tls_certificate_name == cert


def test_cultures_that_cut_anywhere_are_joined_without_spaces(tmp_path):
    # ja-JP (and every culture but the six that wrap at spaces) cuts each line where it is
    # full, inside a word or not: every wrapped line is as wide as the console
    text = ("\nSmartHosts         : {contoso-com.mail.protection.outlook.com, 10.20.30.40, 10.2"
            "\n                     0.30.41}"
            "\nTlsCertificateName : <I>CN=R3, O=Let's Encrypt, C=US<S>CN=mail.contoso.com, O=Co"
            "\n                     ntoso"
            "\nName               : Outbound\n")
    assert {len(s) for s in text.splitlines()[1:5:2]} == {80}
    (send,) = read_evidence([_write(tmp_path, "send.txt", text)]).settings.send
    assert send.smart_hosts == ("contoso-com.mail.protection.outlook.com", "10.20.30.40",
                                "10.20.30.41")
    assert send.tls_cert_subject == "CN=mail.contoso.com, O=Contoso"


def test_slashed_dates_in_two_orders_settle_no_other(tmp_path):
    # two cultures' listings pasted into one file: neither order is trusted for a date
    # that could be read either way; dates whose own numbers tell are still read
    text = (_cert_list(("NotAfter", "14/09/2026 10:00:00"), ("NotBefore", "9/13/2025 10:00:00"))
            + _cert_list(("NotAfter", "12/6/2026 3:04:05 PM")).replace("DCBFE9", "ABCDE9"))
    path = _write(tmp_path, "certs.txt", text)
    ev = read_evidence([path])
    first, second = ev.settings.certificates
    assert first.not_after_ns == _utc_ns(2026, 9, 14, 10)
    assert first.not_before_ns == _utc_ns(2025, 9, 13, 10)
    assert second.not_after_ns is None
    (warning,) = ev.warnings
    assert "'12/6/2026 3:04:05 PM'" in warning


def test_a_date_no_other_orders_is_left_unread_with_both_readings_named(tmp_path):
    # 03/04/2026 10:00:00 is how en-GB, fr-FR and most cultures print 3 April, and how the
    # invariant culture (pwsh on a machine with no locale) prints 4 March: with no date in
    # the listing whose day is over 12, no reading is sound, so none is taken - and the
    # warning says so, with both readings, each date under its own name and line
    for first, second in ((("NotAfter", "03/04/2026 10:00:00"),
                           ("NotBefore", "03/01/2026 10:00:00")),
                          (("NotBefore", "03/01/2026 10:00:00"),
                           ("NotAfter", "03/04/2026 10:00:00"))):
        path = _write(tmp_path, "certs.txt", _cert_list(first, second))
        ev = read_evidence([path])
        (cert,) = ev.settings.certificates
        assert cert.not_after_ns is None and cert.not_before_ns is None
        (warning,) = ev.warnings
        assert warning.startswith(f"{path} line 2: 2 date(s)") and "not guessed" in warning
        # in the listing's order, each at its own line
        said = [f"{name} {value!r} (line {n})" for n, (name, value) in enumerate(
            (first, second), 3)]
        assert said[0] in warning and said[1] in warning
        assert warning.index(said[0]) < warning.index(said[1])
        assert "4 March 2026 or 3 April 2026" in warning
        assert "1 March 2026 or 3 January 2026" in warning
        assert "month first" in warning and "day first" in warning
        assert "no date in the listing has a day over 12" in warning


def _ps_cells(ch: str) -> int:
    """Console cells PowerShell counts for one character: two for the East Asian wide and
    fullwidth ranges of its DisplayCells table, and for each half of a surrogate pair one."""
    c = ord(ch)
    if c > 0xFFFF:
        return 2
    wide = c >= 0x1100 and (c <= 0x115F or c in (0x2329, 0x232A)
                            or (0x2E80 <= c <= 0xA4CF and c != 0x303F)
                            or 0xAC00 <= c <= 0xD7A3 or 0xF900 <= c <= 0xFAFF
                            or 0xFE10 <= c <= 0xFE19 or 0xFE30 <= c <= 0xFE6F
                            or 0xFF00 <= c <= 0xFF60 or 0xFFE0 <= c <= 0xFFE6)
    return 2 if wide else 1


def _listing_cut_anywhere(props: list[tuple[str, str]], width: int = 80) -> str:
    """A Format-List object as a culture outside en, fr, de, it, pt, es prints it: each value
    cut where the next character would pass the console's width in cells; a copy strips
    the spaces at the lines' ends."""
    pad = max(len(name) for name, _ in props)
    out = [""]
    for name, value in props:
        lines, line, used = [], "", 0
        for ch in value:
            if used + _ps_cells(ch) > width - pad - 3:
                lines.append(line)
                line, used = "", 0
            line += ch
            used += _ps_cells(ch)
        lines.append(line)
        out.append(f"{name:<{pad}} : {lines[0]}".rstrip())
        out += [(" " * (pad + 3) + s).rstrip() for s in lines[1:]]
    return "\n".join(out) + "\n"


def test_cut_anywhere_counts_wide_characters_as_two_cells(tmp_path):
    # ja-JP: a subject with Japanese names fills its lines with half as many characters; a
    # wide character that does not fit in the last cell starts the next line
    hosts = "{contoso-com.mail.protection.outlook.com, 10.20.30.40, 10.20.30.41}"
    for org in ("コントソ株式会社 東京本社 情報システム部",
                "コントソ株式会社 東京本社 情報システム部門"):
        cert = (f"<I>CN=R3, O=Let's Encrypt, C=US<S>CN=mail.contoso.co.jp, O={org}, L=港区, "
                "S=東京都, C=JP")
        text = _listing_cut_anywhere([("SmartHosts", hosts), ("TlsCertificateName", cert),
                                      ("Name", "東京から Office 365 へ")])
        (send,) = read_evidence([_write(tmp_path, "send.txt", text)]).settings.send
        assert send.smart_hosts == ("contoso-com.mail.protection.outlook.com", "10.20.30.40",
                                    "10.20.30.41"), text
        assert send.tls_certificate_name == cert, text
    # the second subject puts a wide character where one cell is left: that line is 79 cells
    assert any(sum(map(_ps_cells, s)) == 79 for s in text.splitlines()), text


def test_a_word_ending_a_wrapped_line_takes_its_space_in_the_fit(tmp_path):
    # en-US: a word is cut where the line is full when it and the space after it are wider
    # than the column (59 cells here); that space may be the one a copy stripped from the
    # next line's end, before a word too long for what is left of that line
    word = "CN=" + "a" * 16 + "\u6771\u4eac" + "b" * 22 + ".contoso.co.jp"
    assert sum(map(_ps_cells, word)) == 59
    head, cut = "O=Contoso, ", len(word) - len("ntoso.co.jp")
    city = "L=" + "x" * 48
    text = ("\nTlsCertificateName : " + head + word[:cut]
            + "\n" + " " * 21 + word[cut:]
            + "\n" + " " * 21 + city
            + "\nName               : Outbound\n")
    assert sum(map(_ps_cells, text.splitlines()[1])) == 80
    (send,) = read_evidence([_write(tmp_path, "send.txt", text)]).settings.send
    assert send.tls_certificate_name == f"{head}{word} {city}", text


def test_one_cut_in_a_short_word_reads_whole_where_the_listing_shows_east_asian_culture(
        tmp_path):
    # one wrapped line, cut inside "Contoso" where the console (80 cells) is full: cultures
    # that wrap at spaces never cut a word that fits on a line, but with only this line to
    # go by, it could be one cut at a space the copy stripped, on a wider console.  What
    # the listing itself shows of its culture decides: text in wide characters, or a date
    # written year first as zh-CN does (2026/3/6, unpadded: en-ZA's 2026/03/06 is like
    # ja-JP's, and en-ZA wraps at spaces) - those cultures cut anywhere
    value = "<I>CN=R3, O=Let's Encrypt, C=US<S>CN=smtp.contoso.jp, O=Contoso, C=JP"
    field = 80 - 21
    assert value[field - 1:field + 1] == "nt"  # the cut falls inside "Contoso"
    wrapped = value[:field] + "\n" + " " * 21 + value[field:]
    base = ("\nTlsCertificateName : " + wrapped
            + "\nName               : {name}\n")
    for name in ("\u6771\u4eac\u304b\u3089 Office 365 \u3078", "Outbound (2026/3/6 15:04:05)"):
        text = base.format(name=name)
        (send,) = read_evidence([_write(tmp_path, "send.txt", text)]).settings.send
        assert send.tls_certificate_name == value, name
    # without such a sign, the cut is read as one at a space, as before
    for name in ("Outbound", "Outbound (2026/03/06 15:04:05)"):
        text = base.format(name=name)
        (send,) = read_evidence([_write(tmp_path, "send.txt", text)]).settings.send
        assert send.tls_cert_subject == "CN=smtp.contoso.jp, O=Con toso, C=JP", name
