"""Weather data: the lexicon, the canonical store and its checks, the sample world and the ERA5 readers.

Observation sets (Electricity Maps, ENTSO-E, GEFCom2014, DACF) are in :mod:`carbonsync.data.observations`.
"""

from carbonsync.data.config import DataConfig, ERA5DataConfig, SampleWorldDataConfig, Splits
from carbonsync.data.era5 import open_arco, open_wb2, prepare_canonical, read_era5_file, regrid
from carbonsync.data.lexicon import LexiconError, Variable, canonical_name, convert_units, to_canonical
from carbonsync.data.sample_world import SampleWorldConfig, generate_weather, write_sample_world, write_zone_files, zone_truth
from carbonsync.data.store import STATS_FILE, compute_stats, open_canonical, read_stats, write_canonical, write_stats
from carbonsync.data.validation import WeatherDataError, check_times, check_values, validate_weather

__all__ = [
    "DataConfig",
    "ERA5DataConfig",
    "LexiconError",
    "STATS_FILE",
    "SampleWorldConfig",
    "SampleWorldDataConfig",
    "Splits",
    "Variable",
    "WeatherDataError",
    "canonical_name",
    "check_times",
    "check_values",
    "compute_stats",
    "convert_units",
    "generate_weather",
    "open_arco",
    "open_canonical",
    "open_wb2",
    "prepare_canonical",
    "read_era5_file",
    "read_stats",
    "regrid",
    "to_canonical",
    "validate_weather",
    "write_canonical",
    "write_sample_world",
    "write_stats",
    "write_zone_files",
    "zone_truth",
]
