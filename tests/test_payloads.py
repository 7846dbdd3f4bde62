"""Button payloads: what a button carries comes back as it was made, old buttons still work,
and anything else is refused."""

import pytest

from bot.payloads import (
    AskExpert,
    ChooseLanguage,
    Claim,
    Consent,
    Draft,
    Forget,
    Helpful,
    MoreOn,
    NoneOfThese,
    NotHelpful,
    PassOn,
    Payload,
    Rate,
    Release,
    ShowEntry,
    Withdraw,
    unpack,
)

# The largest number a ticket or message id can have.
LARGEST_ID = 2**31 - 1
# The longest entry id the knowledge base allows.
LONGEST_ENTRY_ID = "a" * 48

EVERY_KIND: list[Payload] = [
    ShowEntry("agent-exam.foreigners"),
    MoreOn("patent.fees"),
    Helpful(12),
    NotHelpful(12),
    AskExpert(),
    AskExpert(34),
    PassOn(),
    PassOn(34),
    NoneOfThese(56),
    ChooseLanguage("zh"),
    Forget(confirmed=True),
    Forget(confirmed=False),
    Withdraw(),
    Withdraw(7),
    Consent("contacts"),
    Rate(7, 5),
    Claim(7),
    Release(7),
    Draft(7),
]

# As buttons sent before payloads were typed carry them: they are in users' chats.
SENT_BEFORE = {
    "1:e:agent-exam.foreigners": ShowEntry("agent-exam.foreigners"),
    "1:m:agent-exam.foreigners": MoreOn("agent-exam.foreigners"),
    "1:y:120": Helpful(120),
    "1:n:120": NotHelpful(120),
    "1:x": AskExpert(None),
    "1:x:118": AskExpert(118),
    "1:p": PassOn(None),
    "1:p:118": PassOn(118),
    "1:o:118": NoneOfThese(118),
    "1:l:en": ChooseLanguage("en"),
    "1:l:zh": ChooseLanguage("zh"),
    "1:f:yes": Forget(confirmed=True),
    "1:f:no": Forget(confirmed=False),
    "1:w": Withdraw(None),
    "1:w:9": Withdraw(9),
    "1:k:name": Consent("name"),
    "1:k:contacts": Consent("contacts"),
    "1:s:9:1": Rate(9, 1),
    "1:s:9:5": Rate(9, 5),
    "1:c:9": Claim(9),
    "1:r:9": Release(9),
    "1:d:9": Draft(9),
}

FORGED = [
    "",
    "garbage",
    "1",
    "1:",
    "1:zz",
    "0:e:agent-exam.foreigners",
    "2:c:9",
    "1:e:",
    "1:e:one:two",
    "1:y:abc",
    "1:y:",
    "1:y:-3",
    "1:y:²",
    f"1:y:{LARGEST_ID + 1}",
    "1:x:abc",
    "1:l:fr",
    "1:l:EN",
    "1:f:maybe",
    "1:k:email",
    "1:s:9",
    "1:s:9:0",
    "1:s:9:6",
    "1:s:9:five",
    "1:s:9:5:5",
    "1:c:",
    "1:c:9:9",
    "1:w:abc",
]


@pytest.mark.parametrize("payload", EVERY_KIND, ids=repr)
def test_every_kind_of_button_comes_back_as_it_was_made(payload: Payload) -> None:
    assert unpack(payload.pack()) == payload


@pytest.mark.parametrize(("packed", "payload"), SENT_BEFORE.items())
def test_buttons_already_in_users_chats_keep_working(packed: str, payload: Payload) -> None:
    assert unpack(packed) == payload
    assert payload.pack() == packed


@pytest.mark.parametrize("packed", FORGED)
def test_forged_or_garbled_payloads_are_refused(packed: str) -> None:
    assert unpack(packed) is None


def test_the_longest_payloads_fit_in_a_telegram_button() -> None:
    longest = [
        ShowEntry(LONGEST_ENTRY_ID),
        MoreOn(LONGEST_ENTRY_ID),
        Rate(LARGEST_ID, 5),
        AskExpert(LARGEST_ID),
    ]
    assert all(len(payload.pack().encode()) <= 64 for payload in longest)
