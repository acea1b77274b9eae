"""The utility's identity has one source (include/utility.toml): messages, lawyer letters and the
bureau file's reporter all name the same utility, and a change there reaches each of them."""
from __future__ import annotations

from datetime import date

from arrears.batches import bureau, letters
from arrears.delivery.render import message_data, render
from arrears.utility import identity


def test_messages_letters_and_the_bureau_name_the_same_utility():
    name = identity()["name"]
    for lang in ("zh-CN", "en"):
        data = message_data(account_id="A1", holder_name="王伟", language=lang, kinds=("reminder",),
                            cycle_date=date(2026, 11, 16), outstanding_fen=20000, late_fee_fen=0, dpd=3,
                            bills=(("2026-10", date(2026, 11, 13), 20000, 3, 0),))
        assert name[lang] in render("email", data).text
    bank = letters._texts()["bank"]
    assert (bank["beneficiary_zh"], bank["beneficiary_en"]) == (name["zh-CN"], name["en"])
    assert bureau.load_layout().reporter["name"] == identity()["bureau_reporter"]["name"] == name["en"]


def test_no_second_copy_of_the_identity_in_the_templates():
    from arrears.paths import INCLUDE
    for path in INCLUDE.rglob("*"):
        if path.is_file() and path.suffix in {".toml", ".j2", ".html"} and path.name != "utility.toml":
            text = path.read_text(encoding="utf-8")
            for value in (*identity()["name"].values(), identity()["bank"]["account_no"]):
                assert value not in text, f"{path} repeats {value!r}: read include/utility.toml instead"
