"""Drafts of new knowledge-base entries from what experts answered.

A draft lands in `KNOWLEDGE_DIR/drafts/`, which the loader does not read: staff check it,
write the other language, cite the official source, and move it in. The talent's wording is
written to `drafts/questions.jsonl` in the labelled-set format, to join the set as a test.
"""

import json
from datetime import date
from pathlib import Path

import yaml

from bot.knowledge import DRAFT_ID_PREFIX, DRAFT_PLACEHOLDER, DRAFT_SOURCE_NOTE, TOPICS

DRAFTS = "drafts"


def write_draft(
    knowledge_dir: Path, ticket: int, question: str, answer: str, topic: str | None, language: str
) -> Path:
    """Write the draft entry for a closed ticket and queue its question for the labelled set."""
    folder = knowledge_dir / DRAFTS
    folder.mkdir(parents=True, exist_ok=True)
    entry_id = f"{DRAFT_ID_PREFIX}ticket-{ticket}"
    other = "zh" if language == "en" else "en"
    entry = {
        "id": entry_id,
        "topic": topic if topic in TOPICS else "service",
        language: {"question": question, "alternates": [], "answer": answer},
        other: {"question": DRAFT_PLACEHOLDER, "alternates": [], "answer": DRAFT_PLACEHOLDER},
        "sources": [
            {"title": f"Volunteer expert's answer to ticket #T-{ticket}: {DRAFT_SOURCE_NOTE}"}
        ],
        "reviewed": date.today(),
        "related": [],
    }
    path = folder / f"ticket-{ticket}.yaml"
    path.write_text(
        yaml.safe_dump({"entries": [entry]}, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    with (folder / "questions.jsonl").open("a", encoding="utf-8") as labelled:
        labelled.write(json.dumps({"q": question, "expect": entry_id}, ensure_ascii=False) + "\n")
    return path
