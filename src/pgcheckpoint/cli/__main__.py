"""``python -m pgcheckpoint.cli``."""

from . import main

main()
