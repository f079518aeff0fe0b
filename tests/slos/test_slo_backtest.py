"""manage.py slo_backtest: a CSV of per-minute good/total counts replayed through the default policy.

Assumes the "slos" app is in INSTALLED_APPS (command discovery needs it). No database is touched. Each CSV
is written by the test into tmp_path; the expected minutes are worked out by hand in the comments.
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command


def write_csv(path: Path, rows: list[tuple[int, int, int]], header: str = "minute,good,total") -> Path:
    path.write_text(header + "\n" + "".join(f"{m},{g},{t}\n" for m, g, t in rows), encoding="utf-8")
    return path


def outage_csv(tmp_path: Path) -> Path:
    """One day of 1000 events a minute, every event bad during minutes 600…659."""
    rows = [(m, 0 if 600 <= m < 660 else 1000, 1000) for m in range(1440)]
    return write_csv(tmp_path / "outage.csv", rows)


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("slo_backtest", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_one_hour_full_outage_on_a_999_30_day_slo_as_json(tmp_path: Path) -> None:
    out, err = run("--csv", str(outage_csv(tmp_path)), "--objective", "0.999", "--window", "30d", "--json")
    # page 14.4 (1h/5m): one bad minute of 60 is 1.67% > 1.44% → 600; the 5m window is clean at 664.
    # ticket 1 (3d/6h): 1 bad minute of the 601 so far is 0.17% > 0.1% → 600; 6h window clean at 1019.
    # ticket 3 (1d/2h): 2 bad minutes of 602 is 0.33% > 0.3% → 601; 2h window clean at 779.
    # page 6 (6h/30m): 3 bad minutes of 360 is 0.83% > 0.6% (2 is 0.56%) → 602; 30m window clean at 689.
    assert json.loads(out) == [
        {"severity": "page", "burn_rate_threshold": 14.4, "long_window": 60, "short_window": 5,
         "fired_at": 600, "cleared_at": 664},
        {"severity": "ticket", "burn_rate_threshold": 1, "long_window": 4320, "short_window": 360,
         "fired_at": 600, "cleared_at": 1019},
        {"severity": "ticket", "burn_rate_threshold": 3, "long_window": 1440, "short_window": 120,
         "fired_at": 601, "cleared_at": 779},
        {"severity": "page", "burn_rate_threshold": 6, "long_window": 360, "short_window": 30,
         "fired_at": 602, "cleared_at": 689},
    ]  # fmt: skip
    assert err == ""


def test_thresholds_follow_the_window(tmp_path: Path) -> None:
    # 7 days: thresholds 3.36 / 1.4 / 0.7 / 0.2333. A 30-day budget share spent in 1 h is reached sooner.
    out, _ = run("--csv", str(outage_csv(tmp_path)), "--objective", "0.999", "--window", "7d", "--json")
    got = {(i["long_window"], i["burn_rate_threshold"]): (i["fired_at"], i["cleared_at"]) for i in json.loads(out)}
    # page 3.36 / 1h: 1 bad minute of 60 → 600; 5m window: 0.336% of 5000 = 16.8 bad → clean at 664.
    # page 1.4 / 6h: 1 bad minute of 360 is 0.28% > 0.14% → 600; the 30m window is clean at 689.
    # ticket 0.7 / 1d: 1 of 601 minutes is 0.166% > 0.07% → 600; 2h clean at 779.
    # ticket 0.2333 / 3d: same → 600; 6h clean at 1019.
    assert got == {(60, 3.36): (600, 664), (360, 1.4): (600, 689), (1440, 0.7): (600, 779),
                   (4320, 0.2333): (600, 1019)}  # fmt: skip


def test_still_firing_at_the_end_is_null(tmp_path: Path) -> None:
    # Every event bad from minute 0 to the last (9): every rule fires at 0 and is still firing.
    path = write_csv(tmp_path / "down.csv", [(m, 0, 50) for m in range(10)])
    out, _ = run("--csv", str(path), "--objective", "0.99", "--window", "28d", "--json")
    assert [(i["burn_rate_threshold"], i["fired_at"], i["cleared_at"]) for i in json.loads(out)] == [
        (13.44, 0, None), (5.6, 0, None), (2.8, 0, None), (0.9333, 0, None)]  # fmt: skip


def test_missing_minutes_have_no_events(tmp_path: Path) -> None:
    # Minutes 0…4 all bad, nothing from 5 to 99, good traffic at 100…109: the silence neither clears nor
    # fires; the 5m window of the page rule is clean at 100 → cleared at 100, not at 9.
    rows = [(m, 0, 10) for m in range(5)] + [(m, 10, 10) for m in range(100, 110)]
    out, _ = run("--csv", str(write_csv(tmp_path / "gap.csv", rows)), "--objective", "0.999", "--json")
    page = [i for i in json.loads(out) if i["burn_rate_threshold"] == 14.4]
    assert page == [{"severity": "page", "burn_rate_threshold": 14.4, "long_window": 60, "short_window": 5,
                     "fired_at": 0, "cleared_at": 100}]  # fmt: skip


def test_readable_table(tmp_path: Path) -> None:
    out, _ = run("--csv", str(outage_csv(tmp_path)), "--objective", "0.999", "--window", "30d")
    assert out.splitlines() == [
        "Objective 99.9% over 30d: 1440 minutes, 1440000 events, 60000 bad.",
        "severity  threshold  long  short  fired_at  cleared_at  duration",
        "page      14.4       1h    5m     600       664         64m",
        "ticket    1          3d    6h     600       1019        419m",
        "ticket    3          1d    2h     601       779         178m",
        "page      6          6h    30m    602       689         87m",
    ]


def test_table_for_a_quiet_series_and_a_rule_still_firing(tmp_path: Path) -> None:
    quiet = write_csv(tmp_path / "quiet.csv", [(m, 100, 100) for m in range(30)])
    out, _ = run("--csv", str(quiet), "--objective", "0.95")
    assert out.splitlines() == ["Objective 95% over 30d: 30 minutes, 3000 events, 0 bad.", "No rule would have fired."]
    # Every event bad at minutes 0…2: burn 20 at 95%, above every threshold from minute 0 to the end.
    down = write_csv(tmp_path / "down.csv", [(0, 0, 100), (1, 0, 100), (2, 0, 100)])
    out, _ = run("--csv", str(down), "--objective", "0.95")
    assert out.splitlines()[1:3] == [
        "severity  threshold  long  short  fired_at  cleared_at    duration",
        "page      14.4       1h    5m     0         still firing  3m+",
    ]


def test_a_default_rule_that_cannot_fire_is_a_warning(tmp_path: Path) -> None:
    # At 90% the highest burn rate is 10: the 14.4 page rule can never fire; the others are replayed.
    path = write_csv(tmp_path / "down.csv", [(m, 0, 10) for m in range(3)])
    out, err = run("--csv", str(path), "--objective", "0.9", "--json")
    assert err.startswith(
        "Warning: page when the burn rate exceeds 14.4 over 1h and over 5m: At a 90% objective the error budget "
        "is 10% of events, so the highest possible burn rate (every event bad) is 10;"
    )
    assert [i["burn_rate_threshold"] for i in json.loads(out)] == [6, 3, 1]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("minute,good\n0,1\n", "line 1: the header must name the columns minute, good and total; missing: total"),
        ("minute,good,total\n0,1,1\n1,x,2\n", "line 3: good must be a whole number, got 'x'"),
        ("minute,good,total\n0,1,1.0\n", "line 2: total must be a whole number, got '1.0'"),
        ("minute,good,total\n0,5,4\n", "line 2: good (5) is more than total (4)"),
        ("minute,good,total\n0,-1,4\n", "line 2: good cannot be negative, got -1"),
        ("minute,good,total\n0,1,1\n1,1,1\n0,1,1\n", "line 4: minute 0 appears twice (first on line 2)"),
        ("", "The CSV is empty"),
    ],
)
def test_bad_csv_is_a_command_error_with_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CommandError) as caught:
        run("--csv", str(path), "--objective", "0.999")
    assert str(caught.value).startswith(f"{path}: {message}"), str(caught.value)


def test_csv_with_a_byte_order_mark_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfminute,good,total\r\n0,0,10\r\n1,10,10\r\n")
    out, _ = run("--csv", str(path), "--objective", "0.999", "--json")
    assert json.loads(out)[0]["fired_at"] == 0


def test_missing_or_undecodable_file(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=r"^--csv: no such file: .*nope\.csv$"):
        run("--csv", str(tmp_path / "nope.csv"), "--objective", "0.999")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"minute,good,total\n\xff\xfe\n")
    with pytest.raises(CommandError, match="not UTF-8 text"):
        run("--csv", str(binary), "--objective", "0.999")


@pytest.mark.parametrize(
    ("objective", "message"),
    [
        ("abc", "--objective must be a number between 0 and 1 such as 0.999, got 'abc'."),
        ("99.9", "--objective: The objective is a fraction between 0 and 1, not a percentage: did you mean 0.999"),
        ("1", "--objective: The objective must be below 1 (100%), got 1"),
        ("0", "--objective: The objective must be above 0, got 0"),
        ("nan", "--objective: The objective must be a number between 0 and 1"),
    ],
)
def test_bad_objective(tmp_path: Path, objective: str, message: str) -> None:
    with pytest.raises(CommandError) as caught:
        run("--csv", str(outage_csv(tmp_path)), "--objective", objective)
    assert str(caught.value).startswith(message), str(caught.value)


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ("14d", "--window: The SLO window must be 7, 28 or 30 days (7d, 28d or 30d), got 14d."),
        ("720h", ""),  # 720 h is 30 days: accepted
        ("30", "--window: '30' is not a duration: write a whole number followed by m, h or d, e.g. 5m, 1h or 30d."),
        ("1w", "--window: '1w' is not a duration"),
    ],
)
def test_bad_window(tmp_path: Path, window: str, message: str) -> None:
    args = ("--csv", str(outage_csv(tmp_path)), "--objective", "0.999", "--window", window, "--json")
    if not message:
        assert len(json.loads(run(*args)[0])) == 4
        return
    with pytest.raises(CommandError) as caught:
        run(*args)
    assert str(caught.value).startswith(message), str(caught.value)
