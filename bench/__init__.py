"""`make bench`: Dragonfly's /v1 hot path against the simulated upstream called directly (issue #8).

Run `python -m bench --help`; docs/performance.md explains the phases and the latest numbers.
"""
