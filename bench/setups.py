"""Which gateway served a phase (phase["setup"]); a direct phase carries the setup it is paired with.

Results written before the multi-process rows have no "setup": every phase in them is ONE's.
"""

ONE = "one process"
EDGE = "2 behind nginx"  # bench/edge.py
