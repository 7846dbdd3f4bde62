"""`ipbot run` as a real process against the Bot API emulator: killed with SIGKILL in the middle
of a relay it loses nothing and repeats nothing; started while Telegram is out of reach it waits
for it, for a while.
"""

import asyncio
import signal
import socket
import sys
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from bot.services import Services
from bot.store.models import TicketMessage
from tests.botapi import BAD_GATEWAY, ApiError, BotApiEmulator
from tests.conversations import QUESTION
from tests.processes import start_bot


async def test_after_a_kill_every_accepted_message_reaches_the_expert_exactly_once(
    emulator: BotApiEmulator, services: Services, tmp_path: Path
) -> None:
    store = services.store
    expert_user = await services.tickets.enrol("telegram", "2301", "Sun")
    async with store.transaction() as tx:
        talent_user = await tx.user("telegram", "3301", "en")
        ticket, _, _ = await tx.request_expert(talent_user, "A question", "en", None)
    assert await services.tickets.claim(ticket.id, expert_user, limit=3) == "claimed"
    expert, talent = emulator.phone(2301), emulator.phone(3301)
    url = store.engine.url.render_as_string(hide_password=False)

    bot = await start_bot(emulator, url, tmp_path)
    try:
        for number in range(12):
            await talent.send(f"message {number:02}")
        await emulator.wait_for(lambda: len(expert.received) >= 4, within=30)
        await asyncio.sleep(0.5)  # between two sends to the expert's chat, paced at 1 a second
        bot.send_signal(signal.SIGKILL)
        await bot.wait()
        bot = await start_bot(emulator, url, tmp_path)

        async def accepted() -> list[str]:
            async with store.transaction() as tx:
                rows = await tx.session.scalars(
                    select(TicketMessage.text).where(TicketMessage.sender_id == talent_user.id)
                )
                return list(rows)

        stored = await accepted()
        assert len(stored) >= 4
        await emulator.wait_for(lambda: len(expert.received) >= len(stored), within=60)
        await asyncio.sleep(1.5)
    finally:
        bot.send_signal(signal.SIGTERM)
        await bot.wait()
    shown = Counter(message.text.split(": ", 1)[1] for message in expert.received)
    assert set(shown) == set(await accepted())
    assert set(shown.values()) == {1}


async def test_a_bot_started_while_telegram_is_out_of_reach_waits_for_it_then_answers(
    emulator: BotApiEmulator, tmp_path: Path
) -> None:
    emulator.fail("getMe", BAD_GATEWAY, BAD_GATEWAY)
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    bot = await start_bot(emulator, url, tmp_path, stderr=asyncio.subprocess.PIPE)
    try:
        phone = emulator.phone(3302)
        await phone.send(QUESTION)
        [answer] = await phone.read(within=30)
        assert "Foreign Permanent Residence ID Card" in answer.text
    finally:
        bot.terminate()
        _, errors = await bot.communicate()
    lines = errors.decode().splitlines()
    waits = [
        n for n, line in enumerate(lines) if "Telegram is not reachable yet (Bad Gateway)" in line
    ]
    running = [n for n, line in enumerate(lines) if "running on Telegram" in line]
    assert len(waits) == 2
    # It says it is running only once Telegram has answered, and as which bot.
    assert len(running) == 1
    assert running[0] > waits[-1]
    assert lines[running[0]].startswith("ipbot: running on Telegram as @ip_desk_bot (")
    assert bot.returncode == 0


async def test_a_bot_stopped_while_telegram_is_out_of_reach_says_so_without_an_error(
    emulator: BotApiEmulator, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    bot = await start_bot(emulator, url, tmp_path, stderr=asyncio.subprocess.PIPE)
    phone = emulator.phone(3303)
    await phone.send(QUESTION)
    await phone.read(within=30)
    await emulator.stop()
    bot.terminate()
    _, errors = await asyncio.wait_for(bot.communicate(), 30)
    lines = errors.decode().splitlines()
    assert bot.returncode == 0
    # No errors or tracebacks for the poll the stop cut off: nothing is lost, since the inbox
    # keeps every update until it is handled.
    assert not [line for line in lines if "Traceback" in line or line.startswith("ERROR")]


async def test_a_bot_gives_up_on_telegram_out_of_reach_with_one_clear_line(
    emulator: BotApiEmulator, tmp_path: Path
) -> None:
    emulator.fail("getMe", *[BAD_GATEWAY] * 20)
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    bot = await start_bot(
        emulator, url, tmp_path, stderr=asyncio.subprocess.PIPE, START_WAIT_SECONDS="2"
    )
    _, errors = await asyncio.wait_for(bot.communicate(), 30)
    lines = errors.decode().splitlines()
    assert bot.returncode == 1
    assert lines[-1] == f"ipbot: cannot reach Telegram ({emulator.base_url}): Bad Gateway"
    assert not [line for line in lines if "Traceback" in line or "Unclosed" in line]
    assert not (tmp_path / "data" / "ipbot.pid").exists()


async def test_a_token_telegram_refuses_is_said_in_one_line_that_does_not_show_it(
    emulator: BotApiEmulator, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    bot = await start_bot(emulator, url, tmp_path, stderr=asyncio.subprocess.PIPE)
    given, emulator.token = emulator.token, "654321:ANOTHER-BOT"
    _, errors = await asyncio.wait_for(bot.communicate(), 30)
    assert bot.returncode == 2
    assert errors.decode().splitlines()[-1] == (
        "ipbot: Telegram refused TELEGRAM_BOT_TOKEN: check it with @BotFather"
    )
    assert given not in errors.decode()


async def test_a_webhook_telegram_refuses_is_said_in_one_line(
    emulator: BotApiEmulator, tmp_path: Path
) -> None:
    refusal = "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
    emulator.fail("setWebhook", ApiError(400, refusal))
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    bot = await start_bot(
        emulator, url, tmp_path, stderr=asyncio.subprocess.PIPE,
        TELEGRAM_WEBHOOK_URL="http://desk.example.org", TELEGRAM_WEBHOOK_LISTEN="127.0.0.1",
    )  # fmt: skip
    _, errors = await asyncio.wait_for(bot.communicate(), 30)
    assert bot.returncode == 2
    assert errors.decode().splitlines() == [
        "ipbot: Telegram refused TELEGRAM_WEBHOOK_URL (http://desk.example.org): "
        "Bad webhook: an https url must be provided for webhook"
    ]
    assert not (tmp_path / "data" / "ipbot.pid").exists()


async def test_a_webhook_port_another_program_holds_is_said_in_one_line(
    emulator: BotApiEmulator, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
        bot = await start_bot(
            emulator, url, tmp_path, stderr=asyncio.subprocess.PIPE,
            TELEGRAM_WEBHOOK_URL="https://desk.example.org", TELEGRAM_WEBHOOK_LISTEN="127.0.0.1",
            TELEGRAM_WEBHOOK_PORT=str(port),
        )  # fmt: skip
        _, errors = await asyncio.wait_for(bot.communicate(), 30)
    assert bot.returncode == 2
    assert errors.decode().splitlines() == [
        f"ipbot: cannot listen on WEB_LISTEN:WEB_PORT (127.0.0.1:{port}): Address already in use"
    ]


async def ipbot(*arguments: str, cwd: Path) -> tuple[int, str]:
    """An `ipbot` command's exit status and standard output and error together."""
    command = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *arguments, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await command.communicate()
    assert command.returncode is not None
    return command.returncode, output.decode()


async def test_kb_reload_signals_the_running_bot_never_a_program_a_stale_pid_file_names(
    emulator: BotApiEmulator, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    bot = await start_bot(emulator, url, tmp_path)
    try:
        phone = emulator.phone(3303)
        await phone.send(QUESTION)
        await phone.read(within=30)
        status, output = await ipbot("kb", "reload", cwd=tmp_path)
        assert status == 0
        assert f"asked the bot (process {bot.pid})" in output
    finally:
        bot.kill()
        await bot.wait()
    # Killed, the bot left its pid file, and its number now belongs to another program.
    other = await asyncio.create_subprocess_exec("sleep", "30")
    try:
        (tmp_path / "data" / "ipbot.pid").write_text(str(other.pid))
        status, output = await ipbot("kb", "reload", cwd=tmp_path)
        await asyncio.sleep(0.2)
        assert other.returncode is None
    finally:
        other.kill()
        await other.wait()
    assert status == 1
    assert "no running bot found" in output


async def test_a_pid_file_that_cannot_be_written_is_said_in_one_line(
    emulator: BotApiEmulator, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    bot = await start_bot(
        emulator, url, tmp_path, stderr=asyncio.subprocess.PIPE, PID_FILE="/proc/nope/ipbot.pid"
    )
    _, errors = await asyncio.wait_for(bot.communicate(), 30)
    assert bot.returncode == 2
    assert errors.decode().splitlines() == [
        "ipbot: cannot write PID_FILE (/proc/nope/ipbot.pid): No such file or directory"
    ]
