"""Speaking: the bot's voice for one call, synthesised off the loop, paced out, stopped by barge-in.

Text goes to :class:`bot.tts.Speech` (Piper in a worker thread, one sentence at a time, fixed phrases from the
prompt cache) and each sentence into the :class:`bot.pacer.Pacer`, which sends one 20 ms frame every 20 ms
(silence when idle) for the whole call. :meth:`Speaker.pause` holds the voice while a possible
interruption is confirmed (:meth:`Speaker.resume` goes on). :meth:`Speaker.stop` drops what is queued: the
bot falls silent within one frame, and synthesis still running for the interrupted text is abandoned (an
epoch counter tells the loop the text it is feeding is stale).
"""

from __future__ import annotations

import logging

from bot.pacer import Pacer
from bot.tts import Speech

log = logging.getLogger(__name__)


class Speaker:
    """One call's outbound voice."""

    def __init__(self, speech: Speech, pacer: Pacer) -> None:
        self._speech = speech
        self.pacer = pacer
        self._epoch = 0
        self.barge_ins = 0
        """Times the caller interrupted the bot."""

    @property
    def speaking(self) -> bool:
        """Bot audio is queued or playing."""
        return self.pacer.speaking

    async def say(self, text: str, *, fixed: bool = False) -> None:
        """Synthesise ``text`` and queue it; returns when it is all queued or it was interrupted.

        ``fixed``: one of the gateway's own phrases (cached on disk); else an assistant reply (cached in
        memory only: it may hold account data). Synthesis errors propagate.
        """
        epoch = self._epoch
        async for audio in self._speech.say(text, self.pacer.rate, cache="disk" if fixed else "memory"):
            if self._epoch != epoch:
                break
            self.pacer.enqueue(audio)

    def pause(self) -> bool:
        """The caller may be interrupting: fall silent from the next frame, keeping the rest queued. Whether
        the bot was talking."""
        if not self.pacer.speaking:
            return False
        self.pacer.hold()
        return True

    def resume(self) -> None:
        """It was not an interruption (echo, a backchannel): go on where the voice paused."""
        self.pacer.release()

    def stop(self) -> int:
        """Barge-in: drop everything queued and abandon the text being synthesised. Returns the
        milliseconds of bot audio dropped (0 when the bot was not talking: nothing happens)."""
        if not self.pacer.speaking:
            self.pacer.release()
            return 0
        dropped = self.pacer.clear()
        self._epoch += 1
        self.barge_ins += 1
        return dropped
