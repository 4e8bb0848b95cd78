"""Pure helpers both sides of the Rasa boundary use: the Rasa-side plugin (``bot/rasa/``), the actions, the
gateway and the tools. Nothing here imports ``rasa``, ``rasa_sdk``, the gateway (``bot``) or the rest of
``actions``; ``tests/test_layers.py`` checks it.

- ``numerals``: the one set of number, ordinal, weekday and month word tables; numbers said and heard;
- ``speech``: spoken forms (money, dates, times, digits, lists) and fillers;
- ``when`` (dates and times as callers say them), ``dob`` (dates of birth);
- ``vault``: PINs and dates of birth put aside in Redis, read once;
- ``handoff``: the one handoff payload builder, with the call-state ``Reason`` and ``Skill``;
- ``faq``: ``nlu-data/faq.yml`` read, validated and matched;
- ``yamlfile`` (YAML with line numbers in errors), ``paths`` (the repository root).
"""
