"""The shipped 総務省 list of local government codes and the designated cities' ward blocks."""

from __future__ import annotations

from collections import Counter

import pytest

from policies import local_governments as lg
from policies.checkdigits import is_valid_local_government_code


def test_the_list_has_every_prefecture_and_municipality_once_with_valid_check_digits() -> None:
    prefectures = lg.prefectures()
    assert [p.prefecture_code for p in prefectures] == [f"{n:02d}" for n in range(1, 48)]
    assert all(p.prefecture[-1] in "都道府県" for p in prefectures)
    everyone = [g for p in prefectures for g in (p, *lg.municipalities(p.prefecture_code))]
    assert len(everyone) == 47 + 1741
    assert len({g.code for g in everyone}) == len(everyone)
    assert all(is_valid_local_government_code(g.code) for g in everyone)
    # 792 cities, 743 towns, 183 villages and Tokyo's 23 special wards
    kinds = Counter(g.name[-1] for g in everyone if not g.is_prefecture)
    assert kinds == {"市": 792, "町": 743, "村": 183, "区": 23}


def test_each_municipality_sits_in_the_prefecture_its_code_names() -> None:
    for prefecture in lg.prefectures():
        for town in lg.municipalities(prefecture.prefecture_code):
            assert town.prefecture == prefecture.prefecture
            assert town.code[2:5] != "000"


@pytest.mark.parametrize(
    ("code", "full_name"),
    [
        ("130001", "東京都"),
        ("131016", "東京都千代田区"),
        ("141003", "神奈川県横浜市"),
        ("011002", "北海道札幌市"),
        ("402311", "福岡県那珂川市"),  # a town that became a city on 2018-10-01
        ("473821", "沖縄県与那国町"),
    ],
)
def test_lookup_names_real_codes(code: str, full_name: str) -> None:
    found = lg.lookup(code)
    assert found is not None and found.full_name == full_name


@pytest.mark.parametrize(
    "code",
    [
        "131997",  # valid check digit, 東京都, no such body
        "999997",  # no prefecture 99
        "131042",  # 新宿区 with a wrong check digit
        "141011",  # a ward: not a local government
        "13104",
        "",
    ],
)
def test_lookup_refuses_codes_not_in_the_list(code: str) -> None:
    assert lg.lookup(code) is None


@pytest.mark.parametrize(
    ("ward", "city"),
    [("141011", "横浜市"), ("011011", "札幌市"), ("271276", "大阪市"), ("401315", "福岡市")],
)
def test_a_ward_code_names_its_designated_city(ward: str, city: str) -> None:
    found = lg.city_of_ward(ward)
    assert found is not None and found.name == city


@pytest.mark.parametrize(
    "code",
    ["141003", "131016", "141012", "141194", "999997"],  # a city, a ward-less body, bad digit, gap
)
def test_codes_that_are_no_ward(code: str) -> None:
    assert lg.city_of_ward(code) is None


def test_ward_blocks_hold_no_listed_local_government() -> None:
    for city, (first, last) in lg._ward_blocks().items():
        found = lg.lookup(city)
        assert found is not None and found.name.endswith("市")
        for body in range(int(first), int(last) + 1):
            assert not any(lg.lookup(f"{body:05d}{d}") for d in range(10))
