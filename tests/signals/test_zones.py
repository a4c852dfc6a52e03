"""The zone lexicon: any provider's spelling resolves to any other's, and the errors say what is known."""

from __future__ import annotations

import pytest

from carbonsync.signals import ZONES, ZoneLookupError, lookup, resolve
from carbonsync.signals.zones import SCHEMES


def test_codes_resolve_across_schemes():
    assert resolve("US-CAL-CISO", "watttime") == "CAISO_NORTH"
    assert resolve("caiso_north", "caiso_node") == "TH_NP15_GEN-APND"
    assert resolve("CISO", "electricitymaps") == "US-CAL-CISO"
    assert resolve("ES", "entsoe_area") == "10YES-REE------0"
    assert resolve("iberia", "electricitymaps") == "ES"
    assert lookup("great_britain").forecast_zone == "north_sea"


def test_no_code_is_claimed_by_two_zones():
    for scheme in ("id", *SCHEMES):
        codes = [getattr(z, scheme) for z in ZONES if getattr(z, scheme)]
        assert len(codes) == len({c.lower() for c in codes}), scheme


def test_unknown_zones_and_missing_codes_are_named():
    with pytest.raises(ZoneLookupError, match="zone 'Atlantis' is not in the zone lexicon; known: caiso"):
        lookup("Atlantis")
    with pytest.raises(ZoneLookupError, match="zone 'NO' \\(Norway\\) has no watttime code; it has: electricitymaps NO"):
        resolve("NO", "watttime")
    with pytest.raises(ZoneLookupError, match="scheme 'wattime'"):
        resolve("ES", "wattime")
