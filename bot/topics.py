"""The topics a knowledge entry and an expert's specialty can have.

Apart from the knowledge base so that `ipbot` can offer them without loading it.
"""

from typing import Literal, get_args

Topic = Literal[
    "platform",
    "agency-exam",
    "patents",
    "trademarks",
    "copyright",
    "trade-secrets",
    "enforcement",
    "licensing",
    "pledge-financing",
    "digital-trade",
    "service",
]
TOPICS: tuple[str, ...] = get_args(Topic)
