"""The zh/en labels are written once, complete for every key the code produces, and read from one place."""

from __future__ import annotations

import doctest
import subprocess
import sys

import pytest

import ecopatch.vocabulary as V
from ecopatch.ledger.model import Colour, SkyTier, Status


def test_doctests():
    assert doctest.testmod(V, raise_on_error=False).failed == 0


@pytest.mark.parametrize(("zh", "en"), [
    (V.CHANGE_TYPE_ZH, V.CHANGE_TYPE_EN), (V.ZONE_ZH, V.ZONE_EN), (V.MINE_STATUS_ZH, V.MINE_STATUS_EN),
    (V.ALERT_ZH, V.ALERT_EN), (V.CASE_STATUS_ZH, V.CASE_STATUS_EN), (V.SKY_TIER_ZH, V.SKY_TIER_EN),
    (V.CODE_ZH, V.CODE_EN),
])
def test_every_key_has_both_languages(zh, en):
    assert list(zh) == list(en)
    assert all(z and e and z != e for z, e in zip(zh.values(), en.values()))


def test_keys_cover_what_the_code_produces():
    assert set(V.CHANGE_TYPE_ZH) == set(V.CHANGE_TYPES)
    assert set(V.ZONE_ZH) == set(V.ZONE_STRICTNESS)
    assert set(V.CASE_STATUS_ZH) == {s.value for s in Status}
    assert set(V.SKY_TIER_ZH) == {t.value for t in SkyTier}
    assert set(V.CODE_ZH) == {c.value for c in Colour}
    # the ledger's enums read their labels from here
    assert [s.zh for s in Status] == list(V.CASE_STATUS_ZH.values())
    assert SkyTier.CONFIRMED.en == V.SKY_TIER_EN["confirmed"] and Colour.RED.zh == V.CODE_ZH["red"]


def test_label_by_kind():
    assert V.label("status", "restored", "en") == "Restored"
    assert V.label("status", "false_alarm", "zh") == "误报"
    assert V.label("change_type", "mystery_change", "en") == "mystery change"
    assert V.label("zone", None, "zh") == ""
    assert V.label("nonsense", "k", "zh") == "k"
    for key, (zh, en) in V.MAP_WORDS.items():
        if "{" not in zh:
            assert V.map_word(key, "zh") == zh and V.map_word(key, "en") == en


def test_headers_are_pairs():
    for table in (V.MINE_HEADERS, V.PATCH_HEADERS, V.CASE_HEADERS, V.PRECISION_HEADERS, V.SUMMARY_HEADERS,
                  V.WEBMAP_FIELDS, V.SENSOR_LABELS):
        assert all(isinstance(v, tuple) and len(v) == 2 and all(v) for v in table.values())


def test_maps_and_reports_do_not_import_the_analyses_for_their_words():
    code = ("import sys, ecopatch.outputs.maps, ecopatch.outputs.report, ecopatch.outputs.webmap; "
            "print(sorted(m for m in sys.modules if m in ('ecopatch.restoration', 'ecopatch.encroachment')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
