"""Attendant's custom actions (rasa-sdk), one module per job. Actions decide; the gateway acts on what they
emit (the contract is in ``bot/rasa/channel.py``): spoken text, ``{"end_call": true}``, or a handoff.

The action server loads every module here (``python -m rasa_sdk --actions actions``). Imports point one way,
down this list:

- ``shared/``: pure helpers also used by the Rasa channel and the tools (numbers, spoken forms, dates, the
  PIN vault, the FAQ file, the handoff payload, YAML with line numbers); imports no Rasa and nothing above;
- ``store.py``, ``backends/``: the customer store; ``deps.py``: the store, stash, FAQ and clock, passed in;
- ``lines.py`` (what is said: responses with values), ``heard.py`` (what the caller said);
- ``handoff.py``: to a person (skills, context, the handoff line); ``action_handoff``;
- ``info.py`` (hours, branches; also answered in the middle of a form), ``faq.py``;
- ``verify.py``: verification and the rules every task form shares (``validate_verify_form``);
- ``account.py``, ``orders.py``, ``bookings.py``, ``support.py``: the tasks, their forms and their endings;
- ``tasks.py``: ``action_resume_task``, the table of tasks;
- ``understanding.py``: turns the classifier was unsure of (a closing, a fault in unexpected words, one
  clarifying question), a caller who is no customer yet; ``conversation.py`` (call start, referral, out of
  scope).

Every sentence the caller hears is a response in ``nlu-data/domain.yml``; code picks the response and renders
the values in it (amounts, dates, digits). Every failure ends with a person: a store or Redis error becomes a
handoff with reason ``technical``. Logs carry the conversation id only: never caller numbers, PINs, balances
or what the caller said.
"""
