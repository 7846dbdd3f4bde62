"""Editing the knowledge base under a running bot: valid edits go live, broken ones never do."""

import asyncio
import json
import shutil
import weakref
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from bot import heap, sla
from bot.conversation import Inbound
from bot.knowledge import load_knowledge
from bot.matching import Matcher
from bot.paths import bundled
from bot.reload import reload
from bot.router import route
from bot.runtime import Runtime
from bot.services import Services
from bot.store.models import utcnow
from tests.botapi import BAD_GATEWAY, BotApiEmulator
from tests.conftest import collected_in_full, running, telegram_settings
from tests.conversations import QUESTION

NEW_TEXT = "Yes: this sentence was just written by staff."


@pytest.fixture
def knowledge_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "knowledge"
    shutil.copytree(bundled("knowledge"), folder)
    return folder


@pytest.fixture
async def live_bot(
    emulator: BotApiEmulator, services: Services, knowledge_copy: Path
) -> AsyncIterator[Runtime]:
    settings = telegram_settings(
        emulator, knowledge_dir=knowledge_copy, knowledge_check_seconds=0.2
    )
    services.settings = settings
    services.matcher = Matcher(load_knowledge(knowledge_copy), services.matcher.thresholds)
    await services.tickets.appoint_staff("telegram", "2801")
    async with running(settings, services) as runtime:
        yield runtime


def edit(folder: Path, old: str, new: str, name: str = "agent-exam.yaml") -> None:
    path = folder / name
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


async def test_an_edit_goes_live_and_a_broken_file_never_does(
    live_bot: Runtime, emulator: BotApiEmulator, knowledge_copy: Path
) -> None:
    talent, staff = emulator.phone(3801), emulator.phone(2801)
    edit(knowledge_copy, "Yes, but only under a pilot.", NEW_TEXT)
    [loaded] = await staff.read()
    assert "was reloaded" in loaded.text
    await talent.send(QUESTION)
    [answer] = await talent.read()
    assert NEW_TEXT in answer.text

    edit(knowledge_copy, "    topic: agency-exam\n", "    topic: [agency-exam\n")
    [broken] = await staff.read()
    assert "was NOT loaded" in broken.text
    assert "agent-exam.yaml:" in broken.text
    await talent.send("Can foreigners sit the Chinese patent attorney exam?")
    [still] = await talent.read()
    assert NEW_TEXT in still.text

    edit(knowledge_copy, "    topic: [agency-exam\n", "    topic: agency-exam\n")
    [fixed] = await staff.read()
    assert "valid and unchanged" in fixed.text


async def test_staff_reload_on_demand_and_hear_when_nothing_changed(
    live_bot: Runtime, emulator: BotApiEmulator
) -> None:
    staff = emulator.phone(2801)
    await staff.send("/reload")
    [reply] = await staff.read()
    assert "valid and unchanged" in reply.text


def only_the_question(tmp_path: Path) -> Path:
    """A labelled question set of QUESTION alone, which the bundled set answers."""
    labelled = tmp_path / "questions.jsonl"
    labelled.write_text(
        json.dumps({"q": QUESTION, "expect": "agent-exam.foreigners"}) + "\n", encoding="utf-8"
    )
    return labelled


def delete_the_answer_to_the_question(folder: Path) -> None:
    """An edit that answers `only_the_question` worse: its entry goes, and every link to it."""
    path = folder / "agent-exam.yaml"
    text = path.read_text(encoding="utf-8")
    start = text.index("  - id: agent-exam.foreigners")
    end = text.index("  - id: agent-exam.rules")
    path.write_text(text[:start] + text[end:], encoding="utf-8")
    for name in sorted(folder.glob("*.yaml")):
        body = name.read_text(encoding="utf-8")
        for mention in ("agent-exam.foreigners, ", ", agent-exam.foreigners"):
            body = body.replace(mention, "")
        name.write_text(body.replace("[agent-exam.foreigners]", "[]"), encoding="utf-8")


async def test_a_set_that_answers_worse_is_refused_unless_forced(
    services: Services, knowledge_copy: Path, tmp_path: Path
) -> None:
    services.settings = services.settings.model_copy(
        update={"knowledge_dir": knowledge_copy, "labelled_questions": only_the_question(tmp_path)}
    )
    services.matcher = Matcher(load_knowledge(knowledge_copy), services.matcher.thresholds)
    serving = services.matcher.knowledge.version
    delete_the_answer_to_the_question(knowledge_copy)
    refused = reload(services)
    assert refused.status == "worse"
    assert services.matcher.knowledge.version == serving
    forced = reload(services, force=True)
    assert forced.status == "loaded"
    assert services.matcher.knowledge.get("agent-exam.foreigners") is None


@pytest.mark.usefixtures("unfrozen_afterwards")
async def test_a_reloaded_set_is_settled_and_the_one_it_replaced_is_freed(
    services: Services, knowledge_copy: Path
) -> None:
    services.settings = services.settings.model_copy(
        update={"knowledge_dir": knowledge_copy, "labelled_questions": None}
    )
    replaced = Matcher(load_knowledge(knowledge_copy), services.matcher.thresholds)
    # Whatever cycles the replaced matcher is part of, it is freed all the same.
    vars(replaced)["itself"] = replaced
    services.matcher, gone = replaced, weakref.ref(replaced)
    del replaced
    heap.settle()
    edit(knowledge_copy, "Yes, but only under a pilot.", NEW_TEXT)
    assert reload(services).status == "loaded"
    assert gone() is None
    assert not collected_in_full(services.matcher)


async def test_questions_matched_during_a_swap_all_get_an_answer(
    services: Services, knowledge_copy: Path
) -> None:
    from bot.conversation import Inbound

    services.settings = services.settings.model_copy(
        update={"knowledge_dir": knowledge_copy, "labelled_questions": None}
    )

    async def ask(number: int) -> int:
        inbound = Inbound("test", f"user-{number}", f"key-{number}", QUESTION)
        return len(await route(inbound, services))

    edit(knowledge_copy, "Yes, but only under a pilot.", NEW_TEXT)
    asking = [asyncio.create_task(ask(n)) for n in range(30)]
    await asyncio.sleep(0)
    assert reload(services).status == "loaded"
    assert await asyncio.gather(*asking) == [1] * 30


async def test_staff_told_of_a_reload_while_telegram_was_out_of_reach_hear_of_it_later(
    live_bot: Runtime, emulator: BotApiEmulator, services: Services, knowledge_copy: Path
) -> None:
    staff = emulator.phone(2801)
    emulator.fail("sendMessage", BAD_GATEWAY)
    edit(knowledge_copy, "Yes, but only under a pilot.", NEW_TEXT)
    await emulator.wait_for(lambda: emulator.errors == [("sendMessage", "Bad Gateway")])
    assert await staff.quiet() == []
    await sla.check(services, utcnow() + timedelta(minutes=1))
    [loaded] = await staff.read()
    assert "was reloaded" in loaded.text
    await sla.check(services, utcnow() + timedelta(minutes=2))
    assert await staff.quiet() == []


async def test_a_set_staff_forced_in_one_process_is_served_by_the_others(
    emulator: BotApiEmulator, services: Services, knowledge_copy: Path, tmp_path: Path
) -> None:
    settings = telegram_settings(
        emulator,
        knowledge_dir=knowledge_copy,
        knowledge_check_seconds=0.2,
        labelled_questions=only_the_question(tmp_path),
    )
    services.settings = settings
    services.matcher = Matcher(load_knowledge(knowledge_copy), services.matcher.thresholds)
    # The process staff happen to reach, beside the one serving Telegram here.
    reached = replace(
        services, matcher=Matcher(services.matcher.knowledge, services.matcher.thresholds)
    )
    await services.tickets.appoint_staff("telegram", "2802")
    async with running(settings, services):
        delete_the_answer_to_the_question(knowledge_copy)
        staff = emulator.phone(2802)
        [refused] = await staff.read()
        assert "was NOT loaded" in refused.text
        forced = Inbound(
            channel="telegram", user_key="2802", message_key="force", text="/reload force"
        )
        await route(forced, reached)
        assert reached.matcher.knowledge.get("agent-exam.foreigners") is None
        deadline = asyncio.get_running_loop().time() + 5
        while services.matcher.knowledge.get("agent-exam.foreigners") is not None:
            assert asyncio.get_running_loop().time() < deadline, "the forced set was not followed"
            await asyncio.sleep(0.05)
