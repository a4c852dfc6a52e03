"""One zone lexicon: a grid zone's code at each provider, and our forecast zones.

Each :class:`GridZone` names one zone once (``id``) and its code in each naming scheme: Electricity Maps
zones, WattTime regions, CAISO OASIS price nodes, EIA-930 balancing areas and regions (DACF), ENTSO-E areas (EIC
codes) and the forecast zones of our own store. :func:`resolve` turns any of these spellings into the code
a provider needs, with an error that lists what is known.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from carbonsync.core.errors import CarbonSyncError

__all__ = ["SCHEMES", "GridZone", "ZoneLookupError", "ZONES", "resolve", "lookup"]

SCHEMES = ("electricitymaps", "watttime", "caiso_node", "eia_ba", "entsoe_area", "forecast_zone")


class ZoneLookupError(CarbonSyncError, KeyError):
    """A zone no entry of the lexicon knows, or one without a code in the scheme asked for."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class GridZone:
    """A zone and its code in each naming scheme (``None``: the scheme has no such zone)."""

    id: str
    name: str
    electricitymaps: str | None = None
    watttime: str | None = None
    caiso_node: str | None = None
    eia_ba: str | None = None
    entsoe_area: str | None = None
    forecast_zone: str | None = None

    def code(self, scheme: str) -> str | None:
        if scheme not in SCHEMES:
            raise ZoneLookupError(f"naming scheme '{scheme}' is not one of {', '.join(SCHEMES)}")
        return getattr(self, scheme)


# The zones of the shared data and the sample world's geographical counterparts (the sample world's zones
# are synthetic: the mapping says which real grid a run on them stands in for, no more).
ZONES: tuple[GridZone, ...] = (
    GridZone("caiso", "California ISO (north)", electricitymaps="US-CAL-CISO", watttime="CAISO_NORTH",
             caiso_node="TH_NP15_GEN-APND", eia_ba="CISO"),
    GridZone("ercot", "ERCOT (Texas)", electricitymaps="US-TEX-ERCO", eia_ba="ERCO"),
    GridZone("isone", "ISO New England", electricitymaps="US-NE-ISNE", eia_ba="ISNE"),
    GridZone("pjm", "PJM Interconnection", electricitymaps="US-MIDA-PJM", eia_ba="PJM"),
    GridZone("southeast", "Southeast (EIA-930 region SE, as DACF names it)", eia_ba="SE"),
    GridZone("spp_tx", "SPP (Texas panhandle)", watttime="SPP_TX"),
    GridZone("spain", "Spain", electricitymaps="ES", entsoe_area="10YES-REE------0", forecast_zone="iberia"),
    GridZone("france", "France", electricitymaps="FR", entsoe_area="10YFR-RTE------C"),
    GridZone("great_britain", "Great Britain", electricitymaps="GB", entsoe_area="10YGB----------A",
             forecast_zone="north_sea"),
    GridZone("germany", "Germany", electricitymaps="DE", watttime="DE", entsoe_area="10Y1001A1001A83F"),
    GridZone("norway", "Norway", electricitymaps="NO"),
    GridZone("brazil", "Brazil", electricitymaps="BR"),
    GridZone("south_australia", "South Australia", electricitymaps="AUS-SA", watttime="NEM_SA"),
)


def lookup(name: str, zones: tuple[GridZone, ...] = ZONES) -> GridZone:
    """The entry whose ``id`` or any code equals ``name`` (case-insensitive)."""
    key = name.strip().lower()
    for zone in zones:
        if key == zone.id or any((getattr(zone, f.name) or "").lower() == key
                                 for f in fields(zone) if f.name in SCHEMES):
            return zone
    raise ZoneLookupError(f"zone '{name}' is not in the zone lexicon; known: {', '.join(z.id for z in zones)} "
                          "(or any of their provider codes, carbonsync.signals.zones.ZONES)")


def resolve(name: str, scheme: str, zones: tuple[GridZone, ...] = ZONES) -> str:
    """``name`` (an id or any provider's code) as the code ``scheme`` uses."""
    zone = lookup(name, zones)
    code = zone.code(scheme)
    if code is None:
        have = ", ".join(f"{s} {zone.code(s)}" for s in SCHEMES if zone.code(s))
        raise ZoneLookupError(f"zone '{name}' ({zone.name}) has no {scheme} code; it has: {have}")
    return code
