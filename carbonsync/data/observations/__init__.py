"""Loaders for real observation sets (measured power, zone generation, carbon intensity), with validation.

Each source has its own module (for example :mod:`carbonsync.data.observations.gefcom` for the GEFCom2014
wind and solar tracks); import from those modules directly. Every loader names the file, column and value
at fault when input is malformed, and documents each repair it applies instead of failing.
"""
