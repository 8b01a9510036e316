"""Benchmarks a person runs (`make bench`); they print figures. See bench/README.md."""
