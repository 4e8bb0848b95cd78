"""``python -m telephony.sim``: see :mod:`telephony.sim.cli`."""

import sys

from telephony.sim.cli import main

sys.exit(main())
