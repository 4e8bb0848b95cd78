"""Orders: "where is my order" (by number, read back first, or "my last order") and the order desk (which
product and how many, confirm, one suggestion, then the order is placed).

The words are the editors' (``nlu-data/domain.yml``): the order's status by one response per status, the
confirmation and the suggestion as the forms' questions, with the product, amounts, dates and digits
rendered here.
"""

from __future__ import annotations

import logging
import re
from datetime import date
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.deps import Deps
from actions.heard import match_product, task_text, yes_or_no
from actions.lines import Line, say
from actions.shared.numerals import digits_from_speech, number_words, parse_quantity
from actions.shared.speech import on_day, say_digits, say_list, say_money
from actions.store import Order, OrderLine, Product, StoreError
from actions.verify import TaskForm
from telephony.callstate import Reason

log = logging.getLogger(__name__)

_NUMBER_WORD = re.compile(
    r"\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|couple|pair|dozen|\d+)\b"
)
"""A quantity said in so many words (an "a" alone is no new quantity: "yes that's a good price")."""
_LAST = re.compile(r"\b(last|latest|recent|newest|most recent)\b")

_STATUS_LINES = {
    # status: (response without a delivery date, response with one)
    "received": ("utter_order_received", "utter_order_received_eta"),
    "processing": ("utter_order_processing", "utter_order_processing_eta"),
    "shipped": ("utter_order_shipped", "utter_order_shipped_eta"),
    "delivered": ("utter_order_delivered", "utter_order_delivered"),
    "cancelled": ("utter_order_cancelled", "utter_order_cancelled"),
}
_OTHER_STATUS = ("utter_order_status_other", "utter_order_status_other_eta")
"""A status the store reports that the domain has no response for (an HTTP adapter's own)."""


# --- what is said ---------------------------------------------------------------------------------------


def with_article(name: str) -> str:
    """ "a wireless headset", "an extended warranty"."""
    return ("an " if name[:1].lower() in ("a", "e", "i", "o", "u") else "a ") + name


def plural(name: str) -> str:
    """ "phone chargers", "extended warranties"."""
    if name.lower().endswith("warranty"):
        return name[:-1] + "ies"
    return name if name.endswith("s") else name + "s"


def order_status_line(order: Order, today: date) -> Line:
    """ "Order one zero zero zero zero four, a wireless headset, is on its way and should arrive ..." """
    if len(order.items) == 1:
        item = with_article(order.items[0].name)
    else:
        item = f"{number_words(len(order.items))} items"
    values = {"number": say_digits(order.number), "item": item, "status": order.status}
    plain, dated = _STATUS_LINES.get(order.status, _OTHER_STATUS)
    if order.eta is not None and dated != plain:
        return Line(dated, {**values, "eta": on_day(order.eta, today)})
    return Line(plain, values)


# --- after the forms ------------------------------------------------------------------------------------


async def tell_order_status(
    deps: Deps, dispatcher: CollectingDispatcher, tracker: Tracker, customer_id: str
) -> list[EventType]:
    ref = tracker.get_slot("order_ref")
    if ref == "last":
        order = await deps.store.last_order(customer_id)
        if order is None:
            dispatcher.utter_message(response="utter_no_orders")
            return []
    else:
        order = await deps.store.get_order(str(ref), customer_id)
        if order is None:
            dispatcher.utter_message(response="utter_order_not_found")
            return []
    say(dispatcher, [order_status_line(order, deps.now().date())])
    return []


async def place_order(
    deps: Deps, dispatcher: CollectingDispatcher, tracker: Tracker, customer_id: str
) -> list[EventType]:
    if tracker.get_slot("order_ok") is not True:
        dispatcher.utter_message(response="utter_order_dropped")
        return []
    lines = [OrderLine(str(tracker.get_slot("product")), int(tracker.get_slot("quantity") or 1))]
    if tracker.get_slot("upsell_ok") is True and tracker.get_slot("upsell"):
        lines.append(OrderLine(str(tracker.get_slot("upsell")), 1))
    order = await deps.store.create_order(customer_id, lines)
    log.info("order placed conversation=%s lines=%d", tracker.sender_id, len(lines))
    number = say_digits(order.number)
    if order.eta is None:
        dispatcher.utter_message(response="utter_order_placed_soon", number=number)
    else:
        eta = on_day(order.eta, deps.now().date())
        dispatcher.utter_message(response="utter_order_placed", number=number, eta=eta)
    return []


def _short_answer(answer: bool | None, text: str) -> bool:
    """A yes or a no in a few words ("yes please", "no thanks"), not a new request that starts with one."""
    return answer is not None and len(text.split()) <= 3


# --- order status ---------------------------------------------------------------------------------------


class ValidateOrderStatusForm(TaskForm):
    """ "Where is my order": by number (read back for confirmation) or "my last order"."""

    form = "order_status_form"
    task_slots_reset = ("order_ref", "order_ref_ok", "order_ref_spoken")

    def task_slots(self, tracker: Tracker) -> list[str]:
        ref = tracker.get_slot("order_ref")
        if ref is None:
            return ["order_ref"]
        if ref != "last" and tracker.get_slot("order_ref_ok") is None:
            return ["order_ref_ok"]
        return []

    async def prefill(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = task_text(tracker)
        if _LAST.search(text.lower()) or len(digits_from_speech(text) or "") == 6:
            return self._order_ref(text)
        return {}

    def _order_ref(self, text: str) -> dict[str, Any]:
        digits = digits_from_speech(text) or ""
        if len(digits) == 6:
            return {"order_ref": digits, "order_ref_spoken": say_digits(digits), "misses": 0}
        if _LAST.search(text.lower()):
            return {"order_ref": "last", "misses": 0}
        return {}

    def validate_order_ref(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        found = self._order_ref(str(slot_value or ""))
        escaped = self.escape("order_ref", tracker, answered=bool(found))
        if escaped:
            return escaped
        if found:
            return found
        return self.missed("order_ref", tracker, dispatcher, "utter_rephrase_short")

    def validate_order_ref_ok(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = str(slot_value or "")
        # A different number said instead of yes or no: read that one back.
        other = self._order_ref(text)
        answer = yes_or_no(tracker, text)
        number = other.get("order_ref") not in (None, "last", tracker.get_slot("order_ref"))
        escaped = self.escape("order_ref_ok", tracker, answered=number or _short_answer(answer, text))
        if escaped:
            return escaped
        if number:
            return {**other, "order_ref_ok": None}
        if answer is True:
            return {"order_ref_ok": True, "misses": 0}
        if answer is False:
            return {"order_ref_ok": None, "order_ref": None, "order_ref_spoken": None, "misses": 0}
        return self.missed("order_ref_ok", tracker, dispatcher, "utter_yes_or_no")


# --- order desk -----------------------------------------------------------------------------------------


class ValidateOrderForm(TaskForm):
    """A new order: which product (and how many), confirm, one suggestion, then the order is placed.

    The confirmation (``utter_ask_order_ok``) says ``{order_items}`` ("Two screen protectors") for
    ``{order_total}``; the suggestion (``utter_ask_upsell_ok``) has one variation per ``upsell_kind``:
    ``promotion`` (the store's own sentence about it, ``{upsell_promotion}``) or ``warranty``
    (``{upsell_name}`` for ``{upsell_price}``).
    """

    form = "order_form"
    task_slots_reset = (
        "product",
        "quantity",
        "order_items",
        "order_total",
        "order_ok",
        "upsell",
        "upsell_kind",
        "upsell_promotion",
        "upsell_name",
        "upsell_price",
        "upsell_ok",
    )

    def task_slots(self, tracker: Tracker) -> list[str]:
        if tracker.get_slot("product") is None:
            return ["product"]
        if tracker.get_slot("order_ok") is None:
            return ["order_ok"]
        if tracker.get_slot("order_ok") is False:
            return []
        if tracker.get_slot("upsell") and tracker.get_slot("upsell_ok") is None:
            return ["upsell_ok"]
        return []

    async def prefill(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = task_text(tracker)
        products = await self.deps.store.list_products()
        if text and match_product(text, products):
            return self._product(text, products)
        return {}

    def _product(self, text: str, products: list[Product]) -> dict[str, Any]:
        product = match_product(text, products)
        if product is None:
            return {}
        qty = parse_quantity(text) or 1
        name = product.name if qty == 1 else plural(product.name)
        return {
            "product": product.product_id,
            "quantity": float(qty),
            "order_items": f"{number_words(qty).capitalize()} {name}",
            "order_total": say_money(product.price_cents * qty),
            "misses": 0,
        }

    async def validate_product(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = str(slot_value or "")
        try:
            products = await self.deps.store.list_products()
        except StoreError:
            products = None
        found = self._product(text, products) if products is not None else {}
        escaped = self.escape("product", tracker, answered=bool(found))
        if escaped:
            return escaped
        if products is None:
            return {"product": None, "handoff_reason": Reason.TECHNICAL.value}
        if found:
            return found
        catalogue = say_list([plural(p.name) for p in products])
        return self.missed("product", tracker, dispatcher, "utter_product_unknown", catalogue=catalogue)

    async def validate_order_ok(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = str(slot_value or "")
        answer = yes_or_no(tracker, text)
        # "just the one", "two please", "make it three": how many, said instead of (or with) yes.
        qty = parse_quantity(text) if _NUMBER_WORD.search(text.lower()) else None
        # "just the one" answers the confirmation; "no, actually I want to book an appointment" switches task.
        escaped = self.escape("order_ok", tracker, answered=qty is not None or _short_answer(answer, text))
        if escaped:
            return escaped
        if answer is not False and qty is not None:
            if qty != int(tracker.get_slot("quantity") or 1):
                return await self._requantify(qty, tracker)
            answer = True
        if answer is None:
            return self.missed("order_ok", tracker, dispatcher, "utter_yes_or_no")
        if answer is False:
            return {"order_ok": False, "task_result": "declined", "misses": 0}
        try:
            suggestion = await self._suggestion(str(tracker.get_slot("product")))
        except StoreError:
            suggestion = {}  # a suggestion is optional; the order is not
        return {"order_ok": True, "misses": 0, **suggestion}

    async def _requantify(self, qty: int, tracker: Tracker) -> dict[str, Any]:
        """Another quantity of the same product: the confirmation is asked again with it."""
        try:
            products = await self.deps.store.list_products()
        except StoreError:
            return {"order_ok": None, "handoff_reason": Reason.TECHNICAL.value}
        product = next((p for p in products if p.product_id == tracker.get_slot("product")), None)
        if product is None:
            return {"order_ok": None, "product": None}
        name = product.name if qty == 1 else plural(product.name)
        return {
            "order_ok": None,
            "quantity": float(qty),
            "order_items": f"{number_words(qty).capitalize()} {name}",
            "order_total": say_money(product.price_cents * qty),
            "misses": 0,
        }

    async def _suggestion(self, ordered: str) -> dict[str, Any]:
        """One unobtrusive suggestion: a current promotion on another product, else the warranty."""
        products = await self.deps.store.list_products()
        for product in products:
            if product.product_id == ordered:
                continue
            promo = await self.deps.store.promotion_for(product.product_id)
            if promo is not None:
                text = promo.text.rstrip(".")
                return {"upsell": product.product_id, "upsell_kind": "promotion", "upsell_promotion": text}
        warranty = next((p for p in products if "warranty" in p.name.lower()), None)
        if warranty is not None and warranty.product_id != ordered:
            return {
                "upsell": warranty.product_id,
                "upsell_kind": "warranty",
                "upsell_name": warranty.name,
                "upsell_price": say_money(warranty.price_cents),
            }
        return {}

    def validate_upsell_ok(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        escaped = self.escape("upsell_ok", tracker)
        if escaped:
            return escaped
        answer = yes_or_no(tracker, slot_value)
        if answer is None:
            # Not worth a second try: no means no.
            return {"upsell_ok": False}
        return {"upsell_ok": answer, "misses": 0}
