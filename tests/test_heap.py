"""A settled heap: what lives as long as the bot is left out of full garbage collections."""

import gc
from collections.abc import Iterator

import pytest

from bot import heap


@pytest.fixture(autouse=True)
def unfrozen_afterwards() -> Iterator[None]:
    yield
    gc.unfreeze()


def collected_in_full(thing: object) -> bool:
    """Whether a full garbage collection walks `thing`."""
    return any(tracked is thing for tracked in gc.get_objects())


def test_what_is_alive_when_the_heap_settles_is_left_out_of_full_collections() -> None:
    long_lived = {"entries": [{"id": number} for number in range(100)]}
    assert collected_in_full(long_lived)
    heap.settle()
    assert not collected_in_full(long_lived)
    made_since = [{"update": 1}]
    assert collected_in_full(made_since)
