"""Every sentence a user sees comes from a Jinja2 template in `templates/<language>/`.

Autoescaping is on: answers go out as Telegram HTML, and user text must never become markup.
"""

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from bot.knowledge import Language


class Templates:
    """The message templates of both languages."""

    def __init__(self, directory: Path) -> None:
        self._environment = Environment(
            loader=FileSystemLoader(directory),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=False,
            lstrip_blocks=False,
            keep_trailing_newline=False,
            # Templates change with a release, not while the bot runs: no file check per message.
            auto_reload=False,
        )

    def render(self, language: Language, name: str, /, **context: Any) -> str:
        """The message `name` in `language`, filled in with `context`."""
        template = self._environment.get_template(f"{language}/{name}.html")
        return template.render(**context).strip()

    def label(self, language: Language, name: str, /, **context: Any) -> str:
        """A short label (a button's text) from `labels.html` in `language`."""
        macro = getattr(self._environment.get_template(f"{language}/labels.html").module, name)
        return str(macro(**context)).strip()
