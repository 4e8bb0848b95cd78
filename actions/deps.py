"""What the actions talk to, passed in: the customer store, the secret stash, the FAQ and the clock.

Every action takes a :class:`Deps` (``ActionHours(deps)``); tests build one with fakes
(``Deps(store=FakeStore(), clock=lambda: MONDAY_10)``). The action server builds actions without arguments
(rasa-sdk instantiates every ``Action`` subclass once), and those share :func:`server_deps`: one set per
process, built on first use from the environment. Nothing connects or loads at import time: the store and
Redis connect on their first call, inside the action server's event loop; the FAQ (and scikit-learn) loads on
the first question (scikit-learn with it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from actions.shared.faq import Faq, load_faq
from actions.shared.paths import NLU_DATA
from actions.shared.vault import SecretStash
from actions.store import CustomerStore, StoreConfig, open_store

FAQ_PATH = NLU_DATA / "faq.yml"


class Deps:
    """The store, the stash and the FAQ, each opened on first use (or given), and the clock."""

    def __init__(
        self,
        *,
        store: CustomerStore | None = None,
        stash: SecretStash | None = None,
        faq: Faq | None = None,
        store_config: StoreConfig | None = None,
        faq_path: Path = FAQ_PATH,
        clock: Callable[[], datetime] = datetime.now,
    ) -> None:
        self._store = store
        self._stash = stash
        self._faq = faq
        self._store_config = store_config
        self._faq_path = faq_path
        self.now = clock
        """Local naive time now (``datetime.now`` unless given)."""

    @property
    def store(self) -> CustomerStore:
        """The customer store (``ATTENDANT_STORE_URL`` etc. unless a config or a store was given)."""
        if self._store is None:
            self._store = open_store(self._store_config or StoreConfig.from_env())
        return self._store

    @property
    def stash(self) -> SecretStash:
        """Where the channel put the PIN or date of birth aside (``REDIS_HOST`` etc.)."""
        if self._stash is None:
            self._stash = SecretStash.from_env()
        return self._stash

    @property
    def faq(self) -> Faq:
        """``nlu-data/faq.yml``, loaded once (editors' changes apply on the next start)."""
        if self._faq is None:
            self._faq = load_faq(self._faq_path)
        return self._faq


@functools.lru_cache(maxsize=1)
def server_deps() -> Deps:
    """The action server's one :class:`Deps`, from the environment, for actions built without one."""
    return Deps()


class UsesDeps:
    """Mixin for actions: ``self.deps`` is what the action was given, else :func:`server_deps`."""

    def __init__(self, deps: Deps | None = None) -> None:
        self._deps = deps

    @property
    def deps(self) -> Deps:
        return self._deps if self._deps is not None else server_deps()
