"""``python -m simulator --port 9100``: run the simulated upstream without Django."""

from simulator.cli import main

main()
