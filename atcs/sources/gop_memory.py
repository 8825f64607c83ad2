"""What a camera's decoding settled on, kept across reopenings of its source.

A looped recording or a reconnected stream is read by a new :class:`AvGrabber` each time.
Without a memory every opening starts from nothing: keyframes only until the GOP is
measured, then, on a stream whose GOP is too long, the fall back to every frame and its
warning once more, every loop or reconnect. :class:`GopMemory` lives as long as the
camera's reader: a new opening starts in the mode the last one settled on, and a decision
is reported for logging only when it differs from the one last logged. The grabber still
measures the GOP of every opening, so a stream whose GOP really changed (a camera
reconfigured) still switches mode, and that switch is a decision to log.
"""

from __future__ import annotations

from dataclasses import dataclass

from atcs.sources.av_grabber import DecodeMode, DecodePolicy


@dataclass
class GopMemory:
    """A camera's measured GOP and decoding mode, for the life of its reader.

    ``policy`` is the camera's ``decode`` setting; ``gop_s`` the last GOP measured (s,
    None until one was); ``mode`` the mode the source was last decoded in (None before the
    first frame); ``logged`` the decision last reported for logging.
    """

    policy: DecodePolicy
    gop_s: float | None = None
    mode: DecodeMode | None = None
    logged: DecodeMode | None = None

    def start_mode(self) -> DecodeMode:
        """Return the mode a new opening of the source starts in.

        ``full`` and ``keyframes`` are fixed; ``auto`` starts where the last opening ended
        (keyframes only when nothing is known yet).
        """
        if self.policy == "full":
            return DecodeMode.FULL
        if self.policy == "keyframes" or self.mode is None:
            return DecodeMode.KEYFRAMES
        return self.mode

    def observe(self, mode: DecodeMode, gop_s: float | None) -> bool:
        """Note the current ``mode`` and the GOP measured in this opening (s, or None).

        Returns True when this is a decision to log: a mode other than the one last
        logged, except ``auto`` decoding keyframes with no GOP measured yet in this
        opening (a start, not a decision: the GOP may still prove too long).
        """
        if gop_s is not None:
            self.gop_s = gop_s
        self.mode = mode
        if mode is self.logged:
            return False
        if self.policy == "auto" and mode is DecodeMode.KEYFRAMES and gop_s is None:
            return False
        self.logged = mode
        return True
