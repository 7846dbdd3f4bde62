"""Telegram's side of the channel contract: how the bot's messages reach Telegram chats.

A neutral `OutMessage` becomes Telegram HTML (the reply markup is a subset of it) with its
choices as an inline keyboard, split into several messages where it is longer than Telegram
allows; a photo or document a user sent goes on by Telegram's own file id.
"""

from dataclasses import replace

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import MessageLimit, ParseMode
from telegram.error import BadRequest, Forbidden

from bot.conversation import OutMessage, Recipient, Unreachable

_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


class TelegramSender:
    """Sends `OutMessage`s to Telegram chats."""

    def __init__(self, bot: Bot) -> None:
        self._bot = bot

    async def send(self, to: Recipient, message: OutMessage) -> str | None:
        """Send to a user's private chat (its id is the user's); the last part's message id."""
        if not to.external_id.lstrip("-").isdecimal():
            # A talent who asked to be forgotten keeps no Telegram id.
            raise Unreachable(f"no Telegram chat: {to.external_id}")
        try:
            return str(await self.send_to_chat(int(to.external_id), message))
        except (Forbidden, BadRequest) as error:
            if isinstance(error, BadRequest) and "chat not found" not in error.message.lower():
                raise
            raise Unreachable(str(error)) from error

    async def edit(self, to: Recipient, ref: str, message: OutMessage) -> None:
        try:
            await self._bot.edit_message_text(
                message.text,
                chat_id=int(to.external_id),
                message_id=int(ref),
                parse_mode=ParseMode.HTML,
                reply_markup=_keyboard(message),
            )
        except Forbidden as error:
            raise Unreachable(str(error)) from error
        except BadRequest as error:
            # Already edited so (the edit is done again after a crash): nothing to change.
            if "not modified" not in error.message.lower():
                raise

    async def send_to_chat(self, chat_id: int, reply: OutMessage) -> int:
        """Send one reply as HTML; text over Telegram's limit goes out in several messages, the
        buttons with the last. Returns the last message's id."""
        attachment = reply.attachment
        if attachment is not None and attachment.file_id:
            return await self._send_file(chat_id, reply, attachment.kind, attachment.file_id)
        parts = split_html(reply.text)
        for part in parts[:-1]:
            await self._send_text(chat_id, part, None)
        return await self._send_text(chat_id, parts[-1], _keyboard(reply))

    async def _send_text(
        self, chat_id: int, text: str, keyboard: InlineKeyboardMarkup | None
    ) -> int:
        sent = await self._bot.send_message(
            chat_id,
            text,
            parse_mode=ParseMode.HTML,
            link_preview_options=_NO_PREVIEW,
            reply_markup=keyboard,
        )
        return sent.message_id

    async def _send_file(self, chat_id: int, reply: OutMessage, kind: str, file_id: str) -> int:
        """A photo or document (by `kind`) with the reply as its caption; a reply too long for
        a caption goes first, as text. Returns the file's message id."""
        caption: str | None = reply.text
        if len(reply.text) > MessageLimit.CAPTION_LENGTH:
            await self.send_to_chat(chat_id, replace(reply, attachment=None, buttons=()))
            caption = None
        # Telegram takes back a file it handed this bot by its id: nothing is downloaded.
        send = self._bot.send_photo if kind == "photo" else self._bot.send_document
        sent = await send(
            chat_id,
            file_id,
            caption=caption,
            parse_mode=ParseMode.HTML,
            reply_markup=_keyboard(reply),
        )
        return sent.message_id


def split_html(text: str, limit: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    """`text` in parts of at most `limit` characters, cut between paragraphs where possible,
    then between lines, then between words, never inside a tag's line."""
    if len(text) <= limit:
        return [text]
    parts: list[str] = []
    current = ""
    for piece in _pieces(text, limit):
        joined = f"{current}\n\n{piece}" if current else piece
        if len(joined) <= limit:
            current = joined
        else:
            parts.append(current)
            current = piece
    if current:
        parts.append(current)
    return parts


_LONGEST_ENTITY = len("&#x1f600;")


def _pieces(text: str, limit: int) -> list[str]:
    pieces: list[str] = []
    for paragraph in text.split("\n\n"):
        if len(paragraph) <= limit:
            pieces.append(paragraph)
            continue
        line_group = ""
        for word in paragraph.replace("\n", " \n ").split(" "):
            for chunk in _chunks(word, limit):
                candidate = f"{line_group} {chunk}" if line_group else chunk
                if len(candidate) > limit:
                    pieces.append(line_group.strip())
                    line_group = chunk
                else:
                    line_group = candidate
        if line_group.strip():
            pieces.append(line_group.strip())
    return pieces


def _chunks(word: str, limit: int) -> list[str]:
    """A word longer than `limit` (a long link; Chinese, which has no spaces) in parts that
    fit, never cut inside an HTML entity such as `&amp;`."""
    chunks: list[str] = []
    while len(word) > limit:
        cut = limit
        entity = word.rfind("&", max(0, cut - _LONGEST_ENTITY), cut)
        if entity > 0 and ";" not in word[entity:cut]:
            cut = entity
        chunks.append(word[:cut])
        word = word[cut:]
    chunks.append(word)
    return chunks


def _keyboard(reply: OutMessage) -> InlineKeyboardMarkup | None:
    """The reply's choices as an inline keyboard: one button a row."""
    if not reply.buttons:
        return None
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(button.label, callback_data=button.payload)]
            for button in reply.buttons
        ]
    )
