"""Pure helpers both sides of the Rasa boundary use: the Rasa-side plugin (``bot/rasa/``), the actions, the
gateway and the tools. Nothing here imports ``rasa``, ``rasa_sdk``, the gateway (``bot``) or the rest of
``actions``; ``tests/test_layers.py`` checks it."""
