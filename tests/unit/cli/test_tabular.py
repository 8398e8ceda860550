"""Tables and ages look exactly like kubectl's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from meshgate.cli.tabular import age, format_table, human_duration


def test_columns_are_longest_cell_plus_three_and_last_is_not_padded() -> None:
    text = format_table([["NAME", "HOSTS", "AGE"], ["external-svc-http", '["aliyun.com"]', "5s"]])
    assert text.splitlines() == [
        "NAME                HOSTS            AGE",
        'external-svc-http   ["aliyun.com"]   5s',
    ]


def test_narrow_columns_have_minimum_width_six() -> None:
    assert format_table([["A", "B"], ["x", "y"]]).splitlines() == ["A     B", "x     y"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (200, "3m20s"),
        (600, "10m"),
        (3 * 3600, "3h"),
        (5 * 3600 + 600, "5h10m"),
        (30 * 3600, "30h"),
        (3 * 86400 + 3600 * 4, "3d4h"),
        (20 * 86400, "20d"),
        (3 * 365 * 86400 + 86400, "3y1d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_age_of_timestamp() -> None:
    now = datetime(2024, 5, 1, 10, 0, 30, tzinfo=UTC)
    assert age("2024-05-01T10:00:00Z", now) == "30s"
    assert age(None, now) == "<unknown>"
    assert age("not a time", now) == "<unknown>"
