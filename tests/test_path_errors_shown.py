"""Every error `openssl verify` prints for a chain is shown, in its order and with its depth,
where the first one is: the report's page data and `scan -v`'s findings.  (The browser's view
of the same chain: test_report_browser.)"""

from __future__ import annotations

import datetime as dt

import pytest

from fastcap import cli
from fastcap.judge.x509check import Analyzer, TrustStore
from fastcap.out.html import decode_sessions, page_data
from fastcap.run.scanner import scan

from .openssl_oracle import OPENSSL
from .two_path_errors import TwoErrors, two_path_errors

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")


@pytest.fixture(scope="module")
def two(tmp_path_factory) -> TwoErrors:
    return two_path_errors(tmp_path_factory.mktemp("two"))


def test_the_oracle_lists_two_errors(two: TwoErrors) -> None:
    assert len(two.said) == 2, two.said


def test_page_data_holds_every_path_error_only_where_there_are_several(two: TwoErrors) -> None:
    analyzer = Analyzer(TrustStore([two.root]), today=dt.datetime.now(dt.UTC))
    run = scan(two.capture, analyzer=analyzer, jobs=1)
    sessions = list(run)
    page = page_data([(str(two.capture), sessions, run.summary)])
    (d,) = decode_sessions(page)
    client = page["chains"][d["client_chain"]]
    assert client["path_errors"] == [list(e) for e in two.said]
    assert client["path_error"] == two.said[0][0]
    # a chain with one error or none carries no list: path_error says it all
    server = page["chains"][d["server_chain"]]
    assert "path_errors" not in server


def test_scan_details_list_every_path_error_in_order(two: TwoErrors, capsys) -> None:
    cli.main(["scan", "-v", str(two.capture), "--ca-file", str(two.ca_file)])
    out = capsys.readouterr().out
    shown = "; ".join(f"{e} at depth {d}" for e, d in two.said)
    assert f"client path (OpenSSL): {shown}" in out, out
