"""Rasa's command line with numpy's global generator seeded first.

    python -m bot.tools.nlucheck.seeded_rasa SEED test nlu --cross-validation ...

Rasa's cross-validation shuffles the examples into folds with numpy's global generator, which its command
line never seeds; seeded here, two runs on the same data split the same folds (the config seeds its
classifier). :func:`bot.tools.nlucheck.crossval.cross_validate` runs this as a process of its own, so neither
Rasa nor TensorFlow is ever imported into the checker.
"""

from __future__ import annotations

import sys

import numpy


def main(argv: list[str]) -> None:
    """Seed, then run Rasa's own ``main`` with ``argv[1:]`` as its arguments (``argv[0]`` is the seed)."""
    seed, *rasa_args = argv
    numpy.random.seed(int(seed))
    sys.argv = ["rasa", *rasa_args]
    # Imported only now, after seeding, as the program this replaces did: importing Rasa (and TensorFlow)
    # must come after the seed so that nothing can draw from the generator first.
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main(sys.argv[1:])
