"""Where a prompt's audio comes from: shipped WAVs, the config's own WAVs, or espeak-ng.

Text prompts are looked up by their text in the shipped manifest first (so the demo lab runs
without espeak-ng), then in a cache under the data dir, and only then synthesised. Tones map
to the generated beep and hold music.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

from media.prompts import DEFAULT_AUDIO_DIR, PromptError, load_manifest, prompt_path, synthesise
from telephony.center.config import InstanceConfig, Prompt

log = logging.getLogger("qconnect.prompts")


def _normalise(text: str) -> str:
    # "Transferring to agent" in a flow is the shipped "Transferring to agent." prompt.
    return " ".join(re.sub(r"[^\w\s]", " ", text).split()).casefold()


class PromptLibrary:
    def __init__(
        self, config: InstanceConfig, cache_dir: Path, audio_dir: Path = DEFAULT_AUDIO_DIR
    ) -> None:
        self.config = config
        self.cache_dir = cache_dir
        self.audio_dir = audio_dir
        self._by_text = {
            _normalise(str(entry["text"])): audio_dir / str(entry["file"])
            for entry in load_manifest(audio_dir).values()
            if entry.get("text")
        }

    @property
    def beep(self) -> Path:
        return prompt_path("beep", self.audio_dir)

    @property
    def hold_music(self) -> Path:
        return prompt_path("hold_music", self.audio_dir)

    def named(self, ref: str) -> Path:
        """The WAV of the prompt a config or flow names (name, id or ARN)."""
        found = self.config.prompt(ref)
        if found is None:
            raise PromptError(f"no prompt named {ref!r}")
        return self.of(found[1])

    def of(self, prompt: Prompt) -> Path:
        if prompt.tone == "beep":
            return self.beep
        if prompt.tone == "music":
            return self.hold_music
        if prompt.wav is not None:
            path = self.config.prompt_path(prompt)
            assert path is not None
            return path
        assert prompt.text is not None
        return self.text(prompt.text)

    def text(self, text: str) -> Path:
        """Speech for `text` (a flow's MessageParticipant, the queue name of a whisper)."""
        shipped = self._by_text.get(_normalise(text))
        if shipped is not None:
            return shipped
        digest = hashlib.sha256(_normalise(text).encode()).hexdigest()[:16]
        path = self.cache_dir / f"tts-{digest}.wav"
        if not path.exists():
            log.info("synthesising %r -> %s", text, path.name)
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            synthesise(text, path)
        return path
