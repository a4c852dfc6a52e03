"""CarbonSync: weather-aware compute.

Global weather forecasts (an SFNO backbone and an AFNO irradiance diagnostic) become zone renewable-share
forecasts, which rank regions and time windows for training jobs.
"""

__version__ = "0.1.0"
