"""The synthetic generator: seeded, realistic, every hold and customer type represented."""
import csv
from datetime import date

from devtools.datagen import generate


def read(path):
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_same_seed_same_bytes_and_every_case_represented(tmp_path):
    first = date(2026, 11, 16)
    generate(tmp_path / "a", first, 2, 3000, seed=11)
    generate(tmp_path / "b", first, 2, 3000, seed=11)
    for name in ("accounts.csv", "open_items.csv", "payments.csv", "case_events.csv"):
        for day in ("2026-11-16", "2026-11-17"):
            assert (tmp_path / "a" / day / name).read_bytes() == (tmp_path / "b" / day / name).read_bytes()

    accounts = read(tmp_path / "a" / "2026-11-16" / "accounts.csv")
    assert {a["customer_class"] for a in accounts} >= {"residential", "non_residential"}
    assert {a["language"] for a in accounts} >= {"zh-CN", "en"}
    protections = {p for a in accounts for p in a["protections"].split(";") if p}
    assert protections == {"medical_device", "low_income", "five_guarantee"}
    assert {o for a in accounts for o in a["opt_out"].split(";") if o} == {"email", "sms"}
    assert any("\u4e00" <= a["holder_name"][0] <= "\u9fff" for a in accounts)   # Chinese names
    events = read(tmp_path / "a" / "2026-11-16" / "case_events.csv")
    assert {e["event_type"] for e in events} >= {"dispute_opened", "promise_to_pay", "payment_plan", "deceased"}
    assert read(tmp_path / "a" / "2026-11-17" / "payments.csv")
    bills = read(tmp_path / "a" / "2026-11-16" / "open_items.csv")
    assert 1.1 < len(bills) / len(accounts) < 1.5     # ~1.3 bills per account


def test_another_seed_gives_other_data(tmp_path):
    generate(tmp_path / "a", date(2026, 11, 16), 1, 200, seed=1)
    generate(tmp_path / "b", date(2026, 11, 16), 1, 200, seed=2)
    assert (tmp_path / "a/2026-11-16/accounts.csv").read_bytes() != (tmp_path / "b/2026-11-16/accounts.csv").read_bytes()
