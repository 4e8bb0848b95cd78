"""Check the editors' data and measure how well it is understood: ``python -m bot.tools.nlucheck [--no-cv]``.

Two steps, the second only when the first finds nothing wrong:

1. **Validation** of ``nlu-data/`` (or ``--data DIR``): our own checks, each problem as ``file:line:
   message`` (:mod:`.checks`, on what :mod:`.data` reads), then Rasa's own validator.
2. **NLU cross-validation**, seeded so two runs on the same data agree (:mod:`.crossval`, which runs Rasa
   in a process of its own through :mod:`.seeded_rasa`), and an HTML report in ``reports/nlu/index.html``
   (:mod:`.report`).

``--no-cv`` stops after step 1 (seconds instead of minutes) for quick edits. The command line is
:mod:`.__main__`. Exit status: 0 valid (and report written), 1 invalid data, 2 cross-validation failed.
"""
