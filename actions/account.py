"""The account: the balance and the last payment (``utter_balance...`` / ``utter_owed...`` responses)."""

from __future__ import annotations

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.deps import Deps
from actions.shared.speech import say_date, say_money


async def tell_balance(
    deps: Deps, dispatcher: CollectingDispatcher, tracker: Tracker, customer_id: str
) -> list[EventType]:
    """The balance (or what is owed), with the last payment when there is one."""
    account = await deps.store.get_account(customer_id)
    if account is None:
        dispatcher.utter_message(response="utter_no_account")
        return []
    owed = account.balance_cents < 0
    amount = say_money(abs(account.balance_cents))
    if account.last_payment_cents is not None and account.last_payment_date is not None:
        paid = say_money(account.last_payment_cents)
        when = say_date(account.last_payment_date, deps.now().date())
        if owed:
            dispatcher.utter_message(response="utter_owed_and_payment", amount=amount, paid=paid, date=when)
        else:
            dispatcher.utter_message(
                response="utter_balance_and_payment", amount=amount, paid=paid, date=when
            )
    elif owed:
        dispatcher.utter_message(response="utter_balance_owed", amount=amount)
    else:
        dispatcher.utter_message(response="utter_balance", amount=amount)
    return []
