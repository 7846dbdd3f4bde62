"""A settled heap: what lives as long as the bot is left out of full garbage collections."""

import gc

import pytest

from bot import heap
from tests.conftest import collected_in_full


@pytest.mark.usefixtures("unfrozen_afterwards")
def test_what_is_alive_when_the_heap_settles_is_left_out_of_full_collections() -> None:
    long_lived = {"entries": [{"id": number} for number in range(100)]}
    assert collected_in_full(long_lived)
    heap.settle()
    assert not collected_in_full(long_lived)
    made_since = [{"update": 1}]
    assert collected_in_full(made_since)


@pytest.mark.usefixtures("unfrozen_afterwards")
def test_a_settled_heap_collects_the_youngest_objects_less_often() -> None:
    heap.settle()
    assert gc.get_threshold()[0] == heap.YOUNGEST_THRESHOLD > 700
