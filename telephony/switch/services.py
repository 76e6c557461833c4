"""Lab services a phone can dial: test lines that play audio, and conference rooms.

A playback line answers, plays its steps (prompts, the beep, hold music, silence) and hangs
up, so a phone's recording shows each item at a known time after the answer. A conference
room joins everyone who dials it into one mix: each hears all the others, never itself.
"""

from __future__ import annotations

import asyncio
import functools
import logging

from media.player import Clip, PlayItem, Silence
from telephony.center.config import (
    ConferenceService,
    InstanceConfig,
    PlaybackService,
    PromptStep,
    SilenceStep,
)
from telephony.switch.endpoint import Incoming, SipEndpoint
from telephony.switch.leg import IncomingLeg, Leg, LegState, prepare_incoming
from telephony.switch.media_engine import MediaEngine
from telephony.switch.prompts import PromptLibrary

log = logging.getLogger("qconnect.services")


class Services:
    def __init__(
        self,
        endpoint: SipEndpoint,
        engine: MediaEngine,
        config: InstanceConfig,
        prompts: PromptLibrary,
        legs: dict[tuple[str, str], Leg],
    ) -> None:
        self.endpoint = endpoint
        self.engine = engine
        self.config = config
        self.prompts = prompts
        self.legs = legs
        self.rooms: dict[str, list[IncomingLeg]] = {}

    def handles(self, number: str) -> bool:
        return number in self.config.services

    async def answer(self, incoming: Incoming, caller: str, number: str) -> None:
        service = self.config.services[number]
        prepared = await prepare_incoming(
            self.endpoint, self.engine, self.legs, incoming, caller, f"{caller}-{number}"
        )
        if prepared is None:
            return
        leg, sdp = prepared
        leg.on_bye = functools.partial(self._gone, number)
        leg.answer(sdp)
        log.info("%s %s: %s dialled %s (%s)", leg.name, leg.call_id, caller, number, service.type)
        if isinstance(service, ConferenceService):
            self._join(number, leg)
        else:
            await self._play(leg, service)

    def _join(self, number: str, leg: IncomingLeg) -> None:
        room = self.rooms.setdefault(number, [])
        room.append(leg)
        self.engine.conference(member.media for member in room)
        log.info("conference %s: %s", number, ", ".join(member.party for member in room))

    def _gone(self, number: str, leg: Leg) -> None:
        room = self.rooms.get(number)
        if room is not None and leg in room:
            room.remove(leg)
            log.info("conference %s: %s left, %d remain", number, leg.party, len(room))
        for key, known in list(self.legs.items()):
            if known is leg:
                del self.legs[key]

    async def _play(self, leg: IncomingLeg, service: PlaybackService) -> None:
        for step in service.play:
            if leg.state is LegState.ENDED:
                return
            item, seconds = self._item(step)
            playback = self.engine.play(leg.media, item, loop=seconds is not None)
            try:
                await asyncio.wait_for(asyncio.shield(playback.done), seconds)
            except TimeoutError:
                playback.stop()
                await playback.done
        await leg.hangup("test line finished")
        self._gone("", leg)

    def _item(self, step: str | SilenceStep | PromptStep) -> tuple[PlayItem, float | None]:
        if isinstance(step, SilenceStep):
            return Silence(step.silence), None
        if isinstance(step, PromptStep):
            return Clip(self.prompts.named(step.prompt)), step.seconds
        return Clip(self.prompts.named(step)), None
