"""Where the bundled knowledge base and templates live, in a checkout or an installed wheel."""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def bundled(name: str) -> Path:
    """The bundled folder `name` (`knowledge` or `templates`).

    A checkout (and an editable install) keeps them beside the package; a wheel carries them
    inside it, under `bot/bundled/`.
    """
    beside = _PACKAGE.parent / name
    if beside.is_dir():
        return beside
    return _PACKAGE / "bundled" / name


def package_path(*parts: str) -> Path:
    """A path inside the `bot` package."""
    return _PACKAGE.joinpath(*parts)


def bundled_questions() -> Path | None:
    """The labelled question set of a checkout, if there is one."""
    path = _PACKAGE.parent / "tests" / "data" / "questions.jsonl"
    return path if path.is_file() else None
