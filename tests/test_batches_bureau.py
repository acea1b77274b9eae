"""The credit-bureau file: written from D's decisions per the layout file, read back by the
auditors' reader, trailer count and totals verified, gates respected, reruns byte-identical, and a
bureau's layout is a configuration change."""
from __future__ import annotations

import csv
import io
from datetime import date

import pytest

import batches_scenario as scenario
from batches_scenario import D, D0


@pytest.fixture
def decided(engine, tmp_path):
    scenario.build(engine, tmp_path)
    return engine


def day(tmp_path, cycle_date=D, name="out"):
    from arrears.outbox_files import day_folder
    return day_folder(tmp_path / name, cycle_date)


def test_bureau_file_round_trips_and_its_trailer_matches(decided, tmp_path):
    from arrears.batches.bureau import load_layout, verify, write_credit_report
    layout = load_layout("metro2_like")
    result = write_credit_report(decided, day(tmp_path), D, layout=layout)
    assert (result.records, result.amount_total) == (2, "4200.00")
    folder = day(tmp_path) / "credit_report"
    data = (folder / "ARREARS_M2_20261116.txt").read_bytes()
    records = data.split(b"\n")[:-1]
    assert len(records) == 4 and all(len(r) == 426 for r in records)
    parsed = verify(data, layout)
    assert parsed.header["record_identifier"] == "HEADER" and parsed.header["activity_date"] == D
    a2, a3 = parsed.details
    assert (a2["consumer_account_number"], a2["consumer_name"], a2["current_balance"],
            a2["amount_past_due"], a2["late_fee"], a2["days_past_due"], a2["account_status"],
            a2["first_delinquency_date"]) == ("A2", "李娜", 100_000, 100_000, 6_200, 62, "78",
                                              date(2026, 9, 16))
    assert (a3["consumer_account_number"], a3["current_balance"], a3["customer_class"],
            a3["address"]) == ("A3", 320_000, "non_residential", "广州市天河区中山路3号")
    assert parsed.trailer["total_detail_records"] == 2
    assert parsed.trailer["total_current_balance"] == 420_000
    assert b"11162026" in records[0]  # MMDDYYYY, as the layout declares

    rows = list(csv.DictReader(io.StringIO((folder / "manifest.csv").read_text())))
    assert [(r["account_id"], r["record"], r["outstanding"]) for r in rows] == [
        ("A2", "2", "1000.00"), ("A3", "3", "3200.00")]


def test_auditor_command_line_verifies_and_catches_tampering(decided, tmp_path, capsys):
    from arrears.batches.bureau import main, write_credit_report
    write_credit_report(decided, day(tmp_path), D)
    path = day(tmp_path) / "credit_report" / "ARREARS_M2_20261116.txt"
    assert main(["verify", str(path.path)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "2 detail records" in out and "4200.00" in out and "manifest (2 rows)" in out
    assert main(["dump", str(path.path)]) == 0
    assert '"consumer_name": "李娜"' in capsys.readouterr().out

    manifest = path.parent / "manifest.csv"
    good = manifest.read_bytes()
    manifest.write_bytes(good.replace(b"A2,", b"A9,"))
    assert main(["verify", str(path.path)]) == 1
    assert "manifest does not match: row 1: account A9 but record has A2" in capsys.readouterr().err
    manifest.write_bytes(good)

    data = bytearray(path.read_bytes())
    balance = data.index(b"000000000100000")  # A2's current balance, fen
    data[balance + 9] = ord("9")
    path.write_bytes(bytes(data))
    assert main(["verify", str(path.path)]) == 1
    assert "trailer does not match: total_current_balance" in capsys.readouterr().err

    path.write_bytes(bytes(data[:500]))
    assert main(["verify", str(path.path)]) == 1
    assert "FAILED" in capsys.readouterr().err


def test_the_prenotice_gate_and_the_monthly_rule_reach_the_file(decided, tmp_path):
    from arrears.batches.bureau import load_layout, verify, write_credit_report
    # D0: pre-notices only; nobody is reported the day they are warned.
    assert write_credit_report(decided, day(tmp_path, D0), D0).records == 0
    empty = (day(tmp_path, D0) / "credit_report" / "ARREARS_M2_20261106.txt").read_bytes()
    assert verify(empty, load_layout()).trailer["total_detail_records"] == 0
    # D: A7's pre-notice is from today, A6 is disputed: only A2 and A3.
    acts = scenario.actions_on(decided, D)
    assert "credit_prenotice" in acts["A7"] and "credit_report" not in acts["A7"]
    assert "credit_report" not in acts["A6"]
    write_credit_report(decided, day(tmp_path), D)
    data = (day(tmp_path) / "credit_report" / "ARREARS_M2_20261116.txt").read_bytes()
    assert [d["consumer_account_number"] for d in verify(data, load_layout()).details] == ["A2", "A3"]


def test_rerun_is_byte_identical(decided, tmp_path):
    from arrears.batches.bureau import write_credit_report
    write_credit_report(decided, day(tmp_path, name="one"), D)
    write_credit_report(decided, day(tmp_path, name="two"), D)
    one, two = (day(tmp_path, name=n) / "credit_report" for n in ("one", "two"))
    assert {p.name: p.read_bytes() for p in one.iterdir()} == {p.name: p.read_bytes() for p in two.iterdir()}


LOCAL_LAYOUT = """
name = "local_gb"
record_length = 80
encoding = "gb18030"
record_separator = "\\r\\n"
date_format = "%Y%m%d"
file_name = "LOCAL_{cycle_date:%Y%m%d}.dat"
[reporter]
id = "LOC1"
[[header]]
name = "kind"
width = 1
type = "alpha"
value = "H"
[[header]]
name = "date"
width = 8
type = "date"
source = "cycle_date"
[[header]]
name = "filler"
width = 71
type = "alpha"
[[detail]]
name = "kind"
width = 1
type = "alpha"
value = "D"
[[detail]]
name = "account"
width = 12
type = "alpha"
source = "account_id"
[[detail]]
name = "name"
width = 9
type = "alpha"
source = "holder_name"
[[detail]]
name = "balance"
width = 12
type = "amount"
source = "outstanding_fen"
[[detail]]
name = "filler"
width = 46
type = "alpha"
[[trailer]]
name = "kind"
width = 1
type = "alpha"
value = "T"
[[trailer]]
name = "count"
width = 6
type = "numeric"
aggregate = "count"
[[trailer]]
name = "total"
width = 14
type = "amount"
aggregate = "sum:balance"
[[trailer]]
name = "filler"
width = 59
type = "alpha"
"""


def test_another_bureaus_layout_is_a_configuration_change(tmp_path):
    from arrears.batches.bureau import build_file, load_layout, main, verify
    path = tmp_path / "local_gb.toml"
    path.write_text(LOCAL_LAYOUT, encoding="utf-8")
    layout = load_layout(path)
    accounts = [{"account_id": "户号-0001", "holder_name": "欧阳娜娜娜", "dpd": 70,
                 "outstanding_fen": 12_345}, {"account_id": "X2", "holder_name": "Li", "dpd": 40,
                                              "outstanding_fen": 5}]
    data = build_file(D, accounts, layout)
    lines = data.split(b"\r\n")[:-1]
    assert [len(line) for line in lines] == [80] * 4
    parsed = verify(data, layout)
    # 9 bytes of GB18030 hold four Chinese characters: the fifth is cut, never half of one.
    assert [d["name"] for d in parsed.details] == ["欧阳娜娜", "Li"]
    assert parsed.details[0]["account"] == "户号-0001"
    assert (parsed.trailer["count"], parsed.trailer["total"]) == (2, 12_350)
    (tmp_path / "LOCAL_20261116.dat").write_bytes(data)
    assert main(["verify", str(tmp_path / "LOCAL_20261116.dat"), "--layout", str(path)]) == 0


def test_a_layout_that_does_not_add_up_is_refused_with_the_fix(tmp_path):
    from arrears.batches.bureau import LayoutError, load_layout
    path = tmp_path / "bad.toml"
    path.write_text(LOCAL_LAYOUT.replace("width = 46", "width = 40"), encoding="utf-8")
    with pytest.raises(LayoutError, match="detail fields add up to 74 bytes but record_length is 80"):
        load_layout(path)
    with pytest.raises(LayoutError, match="not found"):
        load_layout("no_such_bureau")


def test_an_account_under_an_escalation_hold_is_never_reported(decided, tmp_path):
    from sqlalchemy import text
    from arrears.batches.bureau import write_credit_report
    with decided.begin() as conn:  # a decision row that contradicts its own hold
        conn.execute(text("UPDATE decisions SET holds = 'deceased' WHERE cycle_date = :d AND "
                          "account_id = 'A3'"), {"d": D})
    result = write_credit_report(decided, day(tmp_path), D)
    assert (result.records, result.amount_total) == (1, "1000.00")
