"""Small talk the conversation handles itself instead of matching it against the knowledge base."""

import re
from typing import Literal

Intent = Literal["hello", "thanks", "expert"]

_END = r"[\s!！.。,，~～?？:：)）]*$"
_PATTERNS: tuple[tuple[Intent, re.Pattern[str]], ...] = (
    (
        "hello",
        re.compile(
            r"^(hi+|hello+|hey+|hiya|greetings|good (morning|afternoon|evening)|"
            r"你好|您好|嗨|哈喽|哈啰|早上好|早安|下午好|晚上好|在吗|在不在)"
            r"( there| everyone| bot)?" + _END,
            re.IGNORECASE,
        ),
    ),
    (
        "thanks",
        re.compile(
            r"^(thanks?( a lot| so much| you( very much| so much)?)?|thx|ty|many thanks|cheers|"
            r"谢谢(你|您)?|多谢|谢了|感谢|非常感谢|好的谢谢|ok,? thanks)" + _END,
            re.IGNORECASE,
        ),
    ),
    (
        "expert",
        re.compile(
            r"^((i want to |i'd like to |can i |let me |please let me )?"
            r"(talk|speak|chat) (to|with) (a |an )?(real )?(person|human|expert|someone|agent)"
            r"( please)?|(a )?(real )?(human|person|expert),? please|human|人工|转人工|人工服务|"
            r"人工客服|找专家|我要找专家|咨询专家|联系专家|真人|我要人工)" + _END,
            re.IGNORECASE,
        ),
    ),
)


def recognise(text: str) -> Intent | None:
    """The small-talk intent of a whole message, if it is nothing more than that."""
    candidate = " ".join(text.split())
    for intent, pattern in _PATTERNS:
        if pattern.match(candidate):
            return intent
    return None
