"""The tooling around the bot, no part of a call: what `make run`, `make model`, `make nlu-check` and
`make agents` run.

- :mod:`bot.tools.launch` — ``make run``: Redis, the Vosk model, Rasa and the action server, the gateway.
- :mod:`bot.tools.stack` — :class:`~bot.tools.stack.RasaStack`, Rasa and the action server as child processes.
- :mod:`bot.tools.train` — training only when the inputs' fingerprint changed, never on invalid data.
- :mod:`bot.tools.modelfetch` — the Vosk model: resumable download, pinned SHA-256, safe unpacking.
- :mod:`bot.tools.rasayaml` — Rasa's YAML files read as Rasa reads them, with line numbers.
- :mod:`bot.tools.nlucheck` — the editors' check: ``file:line`` messages, cross-validation, HTML report.
- :mod:`bot.tools.agents` — the supervisor's agents file applied to Asterisk's queues over AMI (no reload).

The gateway (``python -m bot``) never imports anything from here.
"""
