"""The shared test helpers that decide a verdict are themselves tested."""

from __future__ import annotations

from tests.conftest import shows_value


def test_a_value_is_seen_where_it_stands_alone() -> None:
    assert shows_value('{"code": "271004"}', "271004")
    assert shows_value("SAMPLE JIRO,271004,大阪府", "271004")
    assert shows_value("row 2: 271004 is outside", "271004")
    assert shows_value("氏名 SAMPLE JIRO さん", "SAMPLE JIRO")


def test_a_value_inside_a_longer_number_or_hash_is_not_a_leak() -> None:
    assert not shows_value('"time_ns": 1796456627100455081', "271004")
    assert not shows_value("t-ab271004cd", "271004")
    digest = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert not shows_value(f'"sha256": "{digest}"', "4649")
