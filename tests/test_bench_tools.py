"""The benchmark's own instruments: where the cores' time went (bench/cpu_share.py) and the
sampled profile's summary (bench/sampled_profile.py). A wrong split would point the next
engineer at the wrong cost."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import cpu_share  # noqa: E402
from databases import PG_URL  # noqa: E402
import sampled_profile  # noqa: E402
from cpu_share import Reading, Share  # noqa: E402


def reading(at, ours, server, busy, stolen=0.0, cores=2) -> Reading:
    return Reading(at, ours, server, busy, stolen, cores)


def test_share_splits_the_cores_time_into_parts_that_add_up():
    share = Share.between(reading(100.0, 5.0, 10.0, 50.0), reading(110.0, 12.0, 16.0, 66.0, 0.5))
    assert (share.wall, share.ours, share.server, share.stolen) == (10.0, 7.0, 6.0, 0.5)
    assert share.other == pytest.approx(16.0 - 7.0 - 6.0)
    assert share.idle == pytest.approx(20.0 - 16.0 - 0.5)
    assert share.ours + share.server + share.other + share.stolen + share.idle == pytest.approx(20.0)
    assert share.label() == "ours 35% · server 30% · other 15% · stolen 2% · idle 18%"


def test_processes_at_once_span_the_first_start_to_the_last_end_with_their_cpu_summed():
    first = (reading(100.0, 1.0, 0.0, 10.0).as_dict(), reading(104.0, 4.0, 3.0, 18.0).as_dict())
    second = (reading(101.0, 2.0, 1.0, 12.0).as_dict(), reading(106.0, 6.5, 5.0, 21.0).as_dict())
    share = Share.of_processes([first, second])
    assert share.wall == 6.0
    assert share.ours == pytest.approx(3.0 + 4.5)
    assert share.server == 5.0          # 0 at the first start, 5 at the last end
    assert share.other == 0.0          # busy 11 < ours 7.5 + server 5: never negative
    assert share.idle == pytest.approx(12.0 - 11.0)


def test_a_query_s_cpu_is_the_servers_not_ours():
    engine = create_engine(PG_URL)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))  # the backend's start-up outside the window
        before = Reading.now()
        conn.execute(text("SELECT count(*) FROM generate_series(1, 4000000) g WHERE g % 7 = 3"))
        after = Reading.now()
    engine.dispose()
    share = Share.between(before, after)
    assert share.server > 0.1
    assert share.ours < share.server
    assert share.server <= share.wall * share.cores + 0.05


@pytest.mark.parametrize(("file", "area"), [
    ("arrears/policy/stages.py", "arrears.policy"),
    ("arrears/settings.py", "arrears"),
    ("psycopg/cursor.py", "psycopg"),
    ("csv.py", "csv"),
    ("<frozen importlib._bootstrap>", "imports"),
])
def test_a_frame_s_area_is_its_package(file, area):
    assert sampled_profile.area_of(file) == area


def test_the_profile_counts_each_sample_by_its_innermost_frame(tmp_path):
    raw = tmp_path / "decide.txt"
    raw.write_text(
        'process 1:"python steps.py decide";<module> (steps.py:1);decide_account'
        " (arrears/policy/decide.py:40);late_fee (arrears/policy/fees.py:12) 30\n"
        'process 1:"python steps.py decide";<module> (steps.py:1);fetchmany (psycopg/cursor.py:9) 10\n'
        'process 1:"python steps.py decide";process 2:"python -c spawn";<module> (<string>:1);'
        "decide_account (arrears/policy/decide.py:41) 20\n"
        'process 1:"python steps.py decide" 40\n'
        "a line that is not a sample\n")
    summary = sampled_profile.Summary.read(raw)
    assert summary.samples == 100
    assert summary.areas == {"arrears.policy": 50, "psycopg": 10,
                             "(no Python frame: exit, native threads)": 40}
    assert summary.functions["late_fee (arrears/policy/fees.py)"] == 30
    assert summary.functions["decide_account (arrears/policy/decide.py)"] == 20
    both = sampled_profile.Summary.read_all([raw, raw])
    assert both.samples == 200 and both.areas["psycopg"] == 20
    text_ = summary.markdown("postgresql: decisions")
    assert "arrears.policy 50%" in text_ and "| `late_fee (arrears/policy/fees.py)` | 30.0% |" in text_


def test_the_charts_are_pictures(tmp_path):
    share = Share.between(reading(0.0, 0.0, 0.0, 0.0), reading(10.0, 8.0, 6.0, 15.0))
    cores = cpu_share.chart([("postgresql: decisions", share), ("postgresql: ingest", share)],
                            tmp_path / "cores.png", "where the cores' time went")
    raw = tmp_path / "p.txt"
    raw.write_text('process 1:"x";f (arrears/cycle/decide.py:1) 5\n')
    profile = sampled_profile.chart([("decisions", sampled_profile.Summary.read(raw))],
                                    tmp_path / "profile.png", "our CPU")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert sampled_profile.chart([("staging", sampled_profile.Summary.read(empty))],
                                 tmp_path / "none.png", "our CPU") is None
    assert not (tmp_path / "none.png").exists()
    for png in (cores, profile):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
