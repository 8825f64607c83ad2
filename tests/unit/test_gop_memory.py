"""A camera's GOP memory: the mode a reopened source starts in, and which decisions to log."""

from __future__ import annotations

from atcs.sources.av_grabber import DecodeMode
from atcs.sources.gop_memory import GopMemory

KEYS, FULL = DecodeMode.KEYFRAMES, DecodeMode.FULL


def test_auto_starts_with_keyframes_then_where_the_last_opening_ended() -> None:
    memory = GopMemory("auto")
    assert memory.start_mode() is KEYS
    memory.observe(KEYS, None)
    memory.observe(FULL, None)  # no keyframe within the limit: fell back
    memory.observe(FULL, 4.995)
    assert memory.start_mode() is FULL
    assert memory.gop_s == 4.995
    memory.observe(KEYS, 1.0)  # two GOPs fitted again
    assert memory.start_mode() is KEYS


def test_fixed_policies_start_in_their_own_mode_whatever_was_seen() -> None:
    full, keys = GopMemory("full"), GopMemory("keyframes")
    keys.observe(FULL, 5.0)  # cannot happen with a fixed policy; still not followed
    full.observe(KEYS, 1.0)
    assert full.start_mode() is FULL
    assert keys.start_mode() is KEYS


def test_a_long_gop_is_decided_once_over_many_reopenings() -> None:
    memory = GopMemory("auto")
    decisions = []
    for opening in range(5):
        mode = memory.start_mode()
        decisions.append(memory.observe(mode, None))  # first frame of the opening
        if mode is KEYS:  # only the first opening has to fall back
            decisions.append(memory.observe(FULL, None))
        decisions.append(memory.observe(FULL, 5.0))  # second keyframe: GOP measured
        assert opening == 0 or mode is FULL
    assert decisions.count(True) == 1
    assert memory.logged is FULL


def test_keyframes_are_a_decision_only_once_the_gop_is_measured() -> None:
    memory = GopMemory("auto")
    assert not memory.observe(KEYS, None)  # a start: the GOP may still prove too long
    assert memory.gop_s is None
    assert memory.observe(KEYS, 1.0)
    assert not memory.observe(KEYS, 1.0)
    assert not memory.observe(KEYS, None)  # reopened, not measured again yet: same decision
    assert memory.gop_s == 1.0  # the last measured GOP is kept meanwhile


def test_a_gop_that_really_changes_is_logged_each_time() -> None:
    memory = GopMemory("auto")
    assert memory.observe(FULL, None)
    assert memory.observe(KEYS, 1.0)  # camera reconfigured to a 1 s GOP
    assert not memory.observe(KEYS, 1.0)
    assert memory.observe(FULL, None)  # and back to a long one
    assert memory.start_mode() is FULL


def test_a_fixed_policy_logs_its_mode_at_the_first_frame() -> None:
    keys, full = GopMemory("keyframes"), GopMemory("full")
    assert keys.observe(KEYS, None)
    assert full.observe(FULL, None)
    assert not keys.observe(KEYS, 5.0)
    assert not full.observe(FULL, None)
