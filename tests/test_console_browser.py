"""The agent console in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by
selenium; ``make test`` installs them): an agent logs in, a call is offered and the page shows the caller's
name, reason and transcript within 1 s while a second agent's browser shows nothing; withdrawn removes it;
after the call the wrap-up view counts down, a disposition and "ready" reach the CallControl; a voicemail
appears for the agent with its skill, its recording loads in the audio element and plays, "mark handled".

The console runs in a thread with its own event loop (selenium blocks), on the real Redis. Set
``ATTENDANT_SCREENSHOT=docs/console.png`` to keep the screenshot of the pop for the README.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis.asyncio as aioredis
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from bot.console import (
    Answered,
    Completed,
    Console,
    ConsoleSettings,
    DeskEvent,
    Offered,
    Withdrawn,
    build_console,
)
from bot.console.demo import DEMO_CONTEXT, seed_call
from telephony.callstate import call_key, voicemail_key
from tests.console_helpers import (
    TOKENS,
    FakeControl,
    add_voicemail,
    drop_voicemails,
    new_call_id,
    roster,
    write_wav,
)

CHROMIUM = os.environ.get("ATTENDANT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("ATTENDANT_CHROMEDRIVER", "/usr/bin/chromedriver")
QUEUE = "attendant-billing"
TEXT_OF = "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';"
SYNCED = "return document.body.dataset.synced === 'true';"
T = TypeVar("T")


class ConsoleThread:
    """The console on a loop of its own, so the blocking browser calls do not stall it."""

    def __init__(self, redis_url: str, vm_dir: Path | None = None) -> None:
        self.redis_url = redis_url
        self.vm_dir = vm_dir
        self.control = FakeControl()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="console", daemon=True)
        self.console: Console | None = None
        self.redis: Any = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> ConsoleThread:
        self.thread.start()

        async def start() -> None:
            self.redis = aioredis.from_url(self.redis_url)
            settings = ConsoleSettings(ping_s=5, voicemail_dir=self.vm_dir)
            self.console = build_console(roster(), self.redis, self.control, settings=settings)
            await self.console.start("127.0.0.1", 0)

        self.run(start())
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self.console is not None
            await self.console.close()
            await self.redis.close()

        self.run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    @property
    def url(self) -> str:
        assert self.console is not None
        return self.console.url

    def feed(self, event: DeskEvent) -> None:
        assert self.console is not None
        self.run(self.console.desk.feed(event))

    def calls(self, kind: str) -> list[tuple[Any, ...]]:
        return [c for c in self.control.calls if c[0] == kind]


@pytest.fixture(scope="module")
def chromium_ready() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        pytest.fail(f"missing {missing}: run 'make test' (it installs Debian's chromium and chromium-driver)")


@pytest.fixture
def browsers(chromium_ready: None, tmp_path: Path) -> Iterator[Callable[[], WebDriver]]:
    """Start headless Chromiums, each with a fresh profile; all quit at the end."""
    started: list[WebDriver] = []

    def start() -> WebDriver:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM  # with both paths given, Selenium Manager downloads nothing
        profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)
        for arg in (
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1440,1000",
            "--force-device-scale-factor=1",
            "--hide-scrollbars",
            "--autoplay-policy=no-user-gesture-required",
            f"--user-data-dir={profile}",
        ):
            options.add_argument(arg)
        driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
        started.append(driver)
        return driver

    yield start
    for driver in started:
        driver.quit()


def log_in(driver: WebDriver, url: str, agent: str) -> None:
    driver.get(url)
    assert driver.current_url.endswith("/login")
    assert driver.find_element(By.CSS_SELECTOR, "label[for=token]").text == "Agent token"
    driver.find_element(By.ID, "token").send_keys(TOKENS[agent])
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(driver, 10).until(lambda d: text_of(d, "body") and d.execute_script(SYNCED))
    WebDriverWait(driver, 5).until(lambda d: d.find_element(By.ID, "conn-text").text == "Live")


def text_of(driver: WebDriver, css: str) -> str:
    """The rendered text of the first match ("" if none), read in one step (cards are rebuilt on updates)."""
    return str(driver.execute_script(TEXT_OF, css))


def test_pop_withdraw_and_wrap_up_in_chromium(
    browsers: Callable[[], WebDriver], redis_url: str, tmp_path: Path
) -> None:
    call_id = new_call_id()
    with ConsoleThread(redis_url) as app:
        app.run(seed_call(app.redis, call_id))
        maya, sam = browsers(), browsers()
        log_in(maya, app.url, "maya")
        log_in(sam, app.url, "sam")
        assert text_of(maya, ".agent-name") == "Maya Chen"
        assert text_of(maya, "#empty-title") == "Waiting for calls"

        # the pop: within a second of AgentCalled
        started = time.monotonic()
        app.feed(Offered("maya", call_id, QUEUE, "1796040783.1", time.time()))
        WebDriverWait(maya, 1.0, poll_frequency=0.02).until(
            lambda d: text_of(d, "article.card #caller-name") == "Hedy Lamarr"
        )
        took = time.monotonic() - started
        print(f"\npop on the page {took * 1000:.0f} ms after Offered")
        assert took < 1.0, took
        card = maya.find_element(By.CSS_SELECTOR, "article.card")
        assert card.get_attribute("data-status") == "ringing"
        assert text_of(maya, ".badge") == "INCOMING CALL"
        facts = text_of(maya, "[data-f=facts]")
        assert "Reason\nrequested" in facts and "Skill\nbilling" in facts and "Waited\n1:14" in facts
        assert "Verified (pin)" in text_of(maya, ".identity")
        transcript = text_of(maya, "[data-f=transcript]")
        assert "hi I want to know why there's a fifteen dollar fee on my account" in transcript
        assert "[redacted]" in transcript
        assert "500001" in text_of(maya, "[data-f=history]")
        assert "ask balance" in text_of(maya, "[data-f=intents]")
        announcer = maya.find_element(By.ID, "announcer")
        assert announcer.get_attribute("aria-live") == "assertive"
        WebDriverWait(maya, 2).until(lambda d: "Incoming call: Hedy Lamarr" in text_of(d, "#announcer"))

        shot = tmp_path / "console.png"
        maya.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("ATTENDANT_SCREENSHOT"):
            shutil.copyfile(shot, os.environ["ATTENDANT_SCREENSHOT"])

        # the other agent's page shows nothing at all
        assert not sam.find_elements(By.CSS_SELECTOR, "article.card")
        assert sam.find_element(By.ID, "empty").is_displayed()
        assert "Hedy" not in sam.find_element(By.TAG_NAME, "body").text
        assert (
            sam.execute_script(  # and the direct URL is refused to sam's session
                "const r = await fetch(arguments[0]); return r.status;", f"/api/calls/{call_id}"
            )
            == 403
        )

        # withdrawn (ring-no-answer): the pop goes
        app.feed(Withdrawn("maya", call_id, "ring-no-answer", time.time()))
        WebDriverWait(maya, 1.0, poll_frequency=0.02).until(
            lambda d: not d.find_elements(By.CSS_SELECTOR, "article.card")
        )
        assert maya.find_element(By.ID, "empty").is_displayed()
        WebDriverWait(maya, 2).until(lambda d: "withdrawn: not answered in time" in text_of(d, "#announcer"))

        # rung again, answered, completed: the wrap-up view
        app.feed(Offered("maya", call_id, QUEUE, "1796040783.1", time.time()))
        app.feed(Answered("maya", call_id, time.time()))
        WebDriverWait(maya, 2).until(lambda d: text_of(d, ".badge") == "ON CALL")
        app.feed(Completed("maya", call_id, QUEUE, talk_s=95, wrapup_s=60, at=time.time()))
        WebDriverWait(maya, 2).until(lambda d: text_of(d, ".badge") == "WRAP-UP")
        assert maya.find_element(By.CSS_SELECTOR, "[data-f=wrapup]").is_displayed()
        first = text_of(maya, "[data-f=countdown]")
        assert first in ("1:00", "0:59"), first
        WebDriverWait(maya, 3).until(lambda d: text_of(d, "[data-f=countdown]") not in ("1:00", first))
        assert app.calls("set_paused") == [("set_paused", "PJSIP/1001", True, "wrap-up")]

        # keyboard: the disposition radios and the note have labels and take keys
        assert text_of(maya, "label[for=disp-3]") == "Callback promised"
        first_radio = maya.find_element(By.ID, "disp-0")
        first_radio.send_keys(Keys.SPACE)  # keyboard only: select, then arrow down the group
        maya.switch_to.active_element.send_keys(Keys.ARROW_DOWN, Keys.ARROW_DOWN, Keys.ARROW_DOWN)
        assert maya.switch_to.active_element.get_attribute("id") == "disp-3"
        assert maya.find_element(By.ID, "disp-3").is_selected()
        note = "<b>not bold</b> call back after 5pm & confirm refund"
        maya.switch_to.active_element.send_keys(Keys.TAB, note)  # the next stop is the labelled note
        assert text_of(maya, "label[for=note]").startswith("Note")
        save = maya.find_element(By.CSS_SELECTOR, "[data-f=save]")
        maya.execute_script("arguments[0].click(); arguments[0].click();", save)  # a double-click
        saved = "Saved: Callback promised."
        WebDriverWait(maya, 3).until(lambda d: saved in text_of(d, "[data-f=form-status]"))
        time.sleep(0.3)
        assert app.calls("queue_log") == [
            ("queue_log", QUEUE, "1796040783.1", "Maya Chen", "DISPOSITION", "callback-promised")
        ]
        assert maya.find_element(By.ID, "note").get_attribute("value") == note
        assert not maya.find_elements(By.CSS_SELECTOR, "article.card b"), "the note is text, not markup"

        maya.find_element(By.CSS_SELECTOR, "[data-f=ready]").click()
        WebDriverWait(maya, 3).until(lambda d: len(app.calls("set_paused")) == 2)
        assert app.calls("set_paused")[-1] == ("set_paused", "PJSIP/1001", False, "")
        # with the disposition saved and the agent ready, the desk waits for the next call
        WebDriverWait(maya, 2).until(lambda d: not d.find_elements(By.CSS_SELECTOR, "article.card"))
        assert "Hedy Lamarr" in text_of(maya, "#recent")
        assert not sam.find_elements(By.CSS_SELECTOR, "article.card")
        assert text_of(sam, "#recent") == ""


def test_the_login_page_refuses_a_wrong_token(browsers: Callable[[], WebDriver], redis_url: str) -> None:
    with ConsoleThread(redis_url) as app:
        driver = browsers()
        driver.get(app.url + "login")
        driver.find_element(By.ID, "token").send_keys("not-a-token")
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        try:
            WebDriverWait(driver, 3).until(lambda d: "not valid" in text_of(d, "#login-error"))
        except TimeoutException:
            pytest.fail(driver.page_source[:2000])
        assert driver.get_cookies() == []


AUDIO = (
    "const a = document.querySelector(arguments[0]);"
    " return a ? {ready: a.readyState, duration: a.duration, error: a.error && a.error.code} : null;"
)


def test_a_voicemail_appears_plays_and_is_handled_in_chromium(
    browsers: Callable[[], WebDriver], redis_url: str, tmp_path: Path
) -> None:
    vm_dir = tmp_path / "vm"
    call_id = new_call_id()
    wav = write_wav(vm_dir / f"{call_id}.wav", 1.6)
    with ConsoleThread(redis_url, vm_dir) as app:
        app.run(seed_call(app.redis, call_id))  # Hedy Lamarr, verified, billing
        maya, priya = browsers(), browsers()
        log_in(maya, app.url, "maya")
        log_in(priya, app.url, "priya")  # no billing skill
        WebDriverWait(maya, 5).until(lambda d: d.execute_script("return document.body.dataset.voicemails"))
        fresh = int((text_of(maya, "#vm-new") or "0 new").split()[0])  # others' in the shared stream

        started = time.monotonic()
        vm_id = app.run(add_voicemail(app.redis, call_id, str(wav), skill="billing", context=DEMO_CONTEXT))
        item = f'li.vm[data-id="{vm_id}"]'
        WebDriverWait(maya, 3, poll_frequency=0.05).until(lambda d: text_of(d, f"{item} [data-f=name]"))
        print(f"\nvoicemail on the page {(time.monotonic() - started) * 1000:.0f} ms after the stream entry")
        assert text_of(maya, f"{item} [data-f=name]") == "Hedy Lamarr"
        assert "billing" in text_of(maya, f"{item} [data-f=meta]")
        assert text_of(maya, f"{item} [data-f=status]").upper() == "NEW"
        assert text_of(maya, f"{item} [data-f=length]") == "0:02"
        assert text_of(maya, "#vm-new") == f"{fresh + 1} new"

        # the browser fetched the recording through the console route and read it
        WebDriverWait(maya, 5).until(
            lambda d: (d.execute_script(AUDIO, f"{item} audio") or {}).get("ready", 0) >= 1
        )
        audio = maya.execute_script(AUDIO, f"{item} audio")
        assert audio["error"] is None and abs(audio["duration"] - 1.6) < 0.05, audio
        maya.execute_script("document.querySelector(arguments[0]).play();", f"{item} audio")
        WebDriverWait(maya, 5).until(lambda d: text_of(d, f"{item} [data-f=status]").upper() == "HEARD")

        # the context, as on a call card
        maya.find_element(By.CSS_SELECTOR, f"{item} details summary").click()
        WebDriverWait(maya, 3).until(
            lambda d: "fifteen dollar fee" in text_of(d, f"{item} [data-f=transcript]")
        )
        assert "C-0005" in text_of(maya, f"{item} [data-f=facts]")

        maya.find_element(By.CSS_SELECTOR, f"{item} [data-f=handle]").click()
        WebDriverWait(maya, 3).until(lambda d: text_of(d, f"{item} [data-f=status]").upper() == "HANDLED")
        assert text_of(maya, f"{item} [data-f=handled]").startswith("Handled by maya")
        state = app.run(app.redis.hgetall(voicemail_key(vm_id)))
        assert state[b"heard_by"] == b"maya" and state[b"handled_by"] == b"maya"
        assert app.run(app.redis.hget(call_key(call_id), "voicemail_handled_by")) == b"maya"

        # the agent without the skill saw none of it, and cannot fetch the recording either
        assert not priya.find_elements(By.CSS_SELECTOR, item)
        assert "Hedy" not in priya.find_element(By.TAG_NAME, "body").text
        url = f"/api/voicemails/{vm_id}/audio"
        assert priya.execute_script("const r = await fetch(arguments[0]); return r.status;", url) == 404
        app.run(drop_voicemails(app.redis, tmp_path))
