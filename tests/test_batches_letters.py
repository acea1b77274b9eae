"""Lawyer letters: text a PDF reader finds, embedded CJK font, manifest hashes, byte-identical
reruns (also across worker processes), atomic batches on a local folder and an object store,
replay marking, and the clear error when the font is missing."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import types
from datetime import datetime, timezone

import pytest
from pypdf import PdfReader

import batches_scenario as scenario
from batches_scenario import D, D0


@pytest.fixture
def decided(engine, tmp_path):
    scenario.build(engine, tmp_path)
    return engine


def letters_folder(tmp_path, name="out"):
    from arrears.outbox_files import day_folder
    return day_folder(tmp_path / name, D)


def write(engine, folder, **kw):
    from arrears.batches.letters import write_lawyer_letters
    return write_lawyer_letters(engine, folder, D, **kw)


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def embedded_fonts(data: bytes) -> dict[str, bool]:
    """BaseFont -> whether the PDF carries the font program (FontFile2: TrueType)."""
    fonts = {}
    for page in PdfReader(io.BytesIO(data)).pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            descriptor = font.get("/FontDescriptor")
            fonts[str(font["/BaseFont"])] = bool(descriptor and "/FontFile2" in descriptor.get_object())
    return fonts


def files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_letters_only_for_accounts_the_policy_chose(decided):
    assert "lawyer_letter" in scenario.actions_on(decided, D)["A2"]
    chosen = sorted(a for a, acts in scenario.actions_on(decided, D).items() if "lawyer_letter" in acts)
    assert chosen == ["A2", "A3"]


def test_chinese_letter_text_and_embedded_font(decided, tmp_path):
    folder = letters_folder(tmp_path)
    assert write(decided, folder).letters == 2
    pdf = (folder / "lawyer_letters" / "A2.pdf").read_bytes()
    text = pdf_text(pdf)
    for expected in ("律", "李娜", "上海市浦东新区建设路2号", "LL-20261116-A2", "1,000.00",  # holder, amount
                     "62.00", "1,062.00", "2026-09-15", "2026-08", "2026年11月16日",       # fee, total, dates
                     "2026年12月1日", "民法典"):
        assert expected in text, expected
    fonts = embedded_fonts(pdf)
    cjk = [name for name in fonts if "WenQuanYi" in name]
    assert cjk and all(fonts[name] for name in cjk), fonts  # glyphs travel with the file: no tofu
    assert PdfReader(io.BytesIO(pdf)).metadata.title == "LL-20261116-A2"


def test_english_letter_text_and_chinese_address(decided, tmp_path):
    folder = letters_folder(tmp_path)
    write(decided, folder)
    pdf = (folder / "lawyer_letters" / "A3.pdf").read_bytes()
    text = pdf_text(pdf)
    # 3000.00 of 2025-12 at 0.3%/day for 67 days = 603.00; 200.00 at 0.2% for 57 days = 22.80
    for expected in ("LAWYER'S LETTER", "Acme & Trading <HK>", "3,000.00", "200.00", "3,200.00",
                     "603.00", "22.80", "625.80", "3,825.80", "2026-09-10", "2026-09-20",
                     "16 November 2026", "1 December 2026", "广州市天河区中山路3号"):
        assert expected in text, expected
    fonts = embedded_fonts(pdf)
    assert any("WenQuanYi" in name and embedded for name, embedded in fonts.items()), fonts


def test_manifest_lists_every_letter_with_its_hash(decided, tmp_path):
    from arrears.batches.manifest import main, verify
    folder = letters_folder(tmp_path)
    write(decided, folder)
    batch = folder / "lawyer_letters"
    raw = (batch / "manifest.csv").read_bytes().decode()
    rows = list(csv.DictReader(io.StringIO(raw)))
    assert raw.splitlines()[0] == "account_id,file,outstanding,late_fee,sha256"
    assert [(r["account_id"], r["file"], r["outstanding"], r["late_fee"]) for r in rows] == [
        ("A2", "A2.pdf", "1000.00", "62.00"), ("A3", "A3.pdf", "3200.00", "625.80")]
    for row in rows:
        assert hashlib.sha256((batch / row["file"]).read_bytes()).hexdigest() == row["sha256"]
    assert verify(batch) == rows
    assert main(["verify", str(batch.path)]) == 0
    # One changed byte and the auditor's check fails.
    pdf = bytearray((batch / "A3.pdf").read_bytes())
    pdf[-10] ^= 1
    (batch / "A3.pdf").write_bytes(bytes(pdf))
    assert main(["verify", str(batch.path)]) == 1


def test_rerun_gives_identical_bytes(decided, tmp_path):
    first, again = letters_folder(tmp_path, "one"), letters_folder(tmp_path, "two")
    write(decided, first)
    write(decided, again)
    write(decided, first)                              # a rerun over the published batch
    assert files(first / "lawyer_letters") == files(again / "lawyer_letters")
    assert not [p.name for p in first.iterdir() if p.name.startswith(".")]  # no staging left over


def test_worker_processes_draw_the_same_bytes_in_the_same_order(monkeypatch):
    from arrears.batches import letters
    batch = [letters.Letter(D, f"A{n}", holder, "上海市", lang, 70 + n, 30_000 + n, 2_100 + n,
                            (letters.LetterBill("2026-08", 30_000 + n, D0, 70 + n, 2_100 + n),))
             for n, (holder, lang) in enumerate([("李娜", "zh-CN"), ("Acme", "en"), ("王伟", "zh-CN")])]
    serial = [(letter.account_id, pdf) for letter, pdf in letters.rendered(batch, workers=1)]
    monkeypatch.setattr(letters, "PARALLEL_FROM", 1)   # three letters are enough to use the pool
    monkeypatch.setattr(letters, "LETTERS_PER_TASK", 1)
    pooled = [(letter.account_id, pdf) for letter, pdf in letters.rendered(batch, workers=2)]
    assert pooled == serial and [a for a, _ in serial] == ["A0", "A1", "A2"]


def test_a_crash_mid_batch_keeps_the_previous_complete_batch(decided, tmp_path, monkeypatch):
    from arrears.batches import letters
    from arrears.batches.store import is_complete
    folder = letters_folder(tmp_path)
    with pytest.raises(RuntimeError):
        _crash_on_second_letter(monkeypatch, letters, lambda: write(decided, folder))
    assert not (folder / "lawyer_letters").exists()   # first run crashed: nothing there at all

    monkeypatch.undo()
    write(decided, folder)
    before = files(folder / "lawyer_letters")
    with pytest.raises(RuntimeError):
        _crash_on_second_letter(monkeypatch, letters, lambda: write(decided, folder))
    assert is_complete(folder / "lawyer_letters")
    assert files(folder / "lawyer_letters") == before
    assert [p.name for p in folder.iterdir()] == ["lawyer_letters"]


def _crash_on_second_letter(monkeypatch, letters, run):
    real, calls = letters.render_letter, []

    def flaky(letter):
        calls.append(letter.account_id)
        if len(calls) == 2:
            raise RuntimeError("worker died mid-batch")
        return real(letter)
    monkeypatch.setattr(letters, "render_letter", flaky)
    return run()


def test_object_store_batch_is_complete_only_with_its_manifest(decided, monkeypatch):
    """On an object store (fsspec memory:// here) the manifest is the last object written."""
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem
    from arrears.batches.manifest import verify
    attach("memory", fs=MemoryFileSystem())  # what a provider does for s3:// or gs://
    from arrears.batches.store import is_complete
    from arrears.outbox_files import as_storage_path, day_folder
    root = as_storage_path(f"memory://outbox-{decided.dialect.name}-{id(decided)}")
    folder = day_folder(root, D)
    write(decided, folder)
    assert [r["account_id"] for r in verify(folder / "lawyer_letters")] == ["A2", "A3"]

    real, copies = ObjectStoragePath.copy, []

    def copy_then_die(self, target, *args, **kw):
        copies.append(self.name)
        if len(copies) == 2:
            raise OSError("connection reset while copying into the bucket")
        return real(self, target, *args, **kw)
    monkeypatch.setattr(ObjectStoragePath, "copy", copy_then_die)
    with pytest.raises(OSError):
        write(decided, folder)
    assert not is_complete(folder / "lawyer_letters")   # a half batch never looks complete
    monkeypatch.undo()
    write(decided, folder)
    assert len(verify(folder / "lawyer_letters")) == 2


def test_missing_font_fails_naming_the_package(decided, tmp_path, monkeypatch):
    from arrears.batches import letters
    monkeypatch.setattr(letters, "CJK", "ArrearsCJKNotRegistered")
    monkeypatch.setattr(letters, "CJK_FONT_FILE", tmp_path / "no-such-font.ttc")
    with pytest.raises(letters.LetterFontError, match="fonts-wqy-zenhei"):
        write(decided, letters_folder(tmp_path))
    assert not (letters_folder(tmp_path) / "lawyer_letters").exists()


def test_file_names_are_safe_for_any_account_id():
    from arrears.batches.letters import file_name
    assert file_name("A-1.x") == "A-1.x.pdf"
    odd = file_name("../户号/7")
    assert "/" not in odd and not odd.startswith(".") and odd != file_name(".._户号_7")


def _context(run_type: str):
    dag_run = types.SimpleNamespace(run_id=f"{run_type}__2026-11-16", run_type=run_type,
                                    run_after=None, start_date=None)
    return {"dag_run": dag_run, "logical_date": datetime(2026, 11, 16, 0, 30, tzinfo=timezone.utc),
            "params": {}, "ti": types.SimpleNamespace(try_number=1, task_id="lawyer_letters")}


def test_tasks_write_under_the_day_and_a_replay_is_marked_and_kept_apart(engine, db_url, tmp_path,
                                                                          monkeypatch):
    from arrears.batches import tasks
    from arrears.batches.manifest import verify
    scenario.build(engine, tmp_path)
    outbox = tmp_path / "outbox"
    monkeypatch.setenv("AIRFLOW_VAR_ARREARS_OUTBOX", str(outbox))
    monkeypatch.setenv("AIRFLOW_CONN_ARREARS_DB", json.dumps(_conn(db_url)))
    if db_url.startswith("postgresql"):
        monkeypatch.setattr("arrears.orchestration.engine", lambda: engine)
    normal = tasks.lawyer_letters(_context("scheduled"))
    assert normal["letters"] == 2 and normal["replay"] is False
    sent = files(outbox / D.isoformat() / "lawyer_letters")

    # The replay decides D into its own storage, then its batches read those decisions.
    from arrears.cycle.decide import decide_cycle
    from arrears.cycle.run import CycleRun
    from arrears.policy import load_policy
    from arrears.policy.business_days import BusinessCalendar
    run_id = _context("backfill")["dag_run"].run_id
    decide_cycle(engine, CycleRun(D, run_id=run_id, run_type="backfill"), load_policy(),
                 BusinessCalendar.for_policy(load_policy()))
    replay = tasks.lawyer_letters(_context("backfill"))
    assert replay["replay"] is True
    own = outbox / D.isoformat() / "replays" / run_id
    replayed = own / "lawyer_letters"
    assert "replay" in (replayed / "REPLAY").read_text().lower()
    assert len(verify(replayed)) == 2
    assert files(outbox / D.isoformat() / "lawyer_letters") == sent   # the handed-over batch is untouched
    tasks.credit_report(_context("backfill"))
    tasks.agent_lists(_context("backfill"))
    assert (own / "credit_report" / "REPLAY").exists()
    assert (own / "call_list.csv").exists()
    assert not (outbox / D0.isoformat()).exists()


def _conn(db_url: str) -> dict:
    if db_url.startswith("sqlite"):
        return {"conn_type": "sqlite", "host": db_url.removeprefix("sqlite:///")}
    return {"conn_type": "postgres", "host": "127.0.0.1", "login": "postgres", "schema": "test"}


def test_no_line_of_a_chinese_letter_starts_with_closing_punctuation():
    from arrears.batches import letters
    letter = letters.Letter(D, "3100123456", "李娜", "上海市浦东新区建设路2号501室", "zh-CN", 77,
                            168_050, 10_779, (letters.LetterBill("2026-07", 96_020, D0, 77, 7_394),))
    lines = pdf_text(letters.render_letter(letter)).splitlines()
    assert not [line for line in lines if line[:1] in letters.CN_CANNOT_START], lines


def test_a_day_without_letters_is_an_empty_complete_batch(decided, tmp_path):
    from arrears.batches.letters import write_lawyer_letters
    from arrears.outbox_files import day_folder
    folder = day_folder(tmp_path / "out", D0)
    assert write_lawyer_letters(decided, folder, D0).letters == 0   # D0: nobody at DPD 60 yet
    batch = folder / "lawyer_letters"
    assert [p.name for p in batch.iterdir()] == ["manifest.csv"]
    assert (batch / "manifest.csv").read_text() == "account_id,file,outstanding,late_fee,sha256\n"


def test_letters_are_drawn_in_process_when_no_worker_may_start(monkeypatch, caplog):
    from arrears import processes
    from arrears.batches import letters
    from factories import DaemonicPool
    batch = [letters.Letter(D, f"A{n}", "李娜", "上海市", "zh-CN", 70, 30_000, 2_100, ()) for n in range(2)]
    serial = [pdf for _, pdf in letters.rendered(batch, workers=1)]
    monkeypatch.setattr(processes, "ProcessPoolExecutor", DaemonicPool)
    monkeypatch.setattr(letters, "PARALLEL_FROM", 1)
    assert [pdf for _, pdf in letters.rendered(batch, workers=2)] == serial
    assert "lawyer letters: no worker processes" in caplog.text
