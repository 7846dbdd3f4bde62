"""Replies for channels without markup or buttons (the console, WeChat): the reply markup as
plain text, and choices as numbered lines the user answers by number."""

from html.parser import HTMLParser

from bot.conversation import OutMessage


class _PlainText(HTMLParser):
    """The reply markup as text: tags dropped, links followed by their address."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href:
            self.parts.append(f" ({self._href})")
            self._href = None

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def plain_text(markup: str) -> str:
    """What a reply's text reads as without markup."""
    parser = _PlainText()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts)


def rendered(message: OutMessage) -> str:
    """A reply as plain text, each choice on a numbered line below it."""
    lines = [plain_text(message.text)]
    lines += [f"  {number}) {button.label}" for number, button in enumerate(message.buttons, 1)]
    return "\n".join(lines)
