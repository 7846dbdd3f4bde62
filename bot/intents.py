"""Small talk the conversation handles itself instead of matching it against the knowledge base."""

import re
from typing import Literal

Intent = Literal["hello", "thanks", "expert", "yes"]

# What may follow the words: punctuation, and emoji (😊, 👍, 🙏 …).
_END = r"[\s!！.。,，~～?？:：)）\u2600-\u27bf\U0001f300-\U0001faff]*$"
_COMMA = r"[\s,，、!！.。~～]*"
_GREETING = (
    r"(hi+|hello+|hey+|hiya|greetings|good (morning|afternoon|evening)|"
    r"你好|您好|嗨|哈喽|哈啰|早上好|早安|下午好|晚上好|在吗|在不在)"
)
_THANKS = (
    r"(thanks?( a lot| so much| you( very much| so much)?| u)?|thank u|thx|ty|3q|many thanks|"
    r"cheers|谢谢(你|您)?(的帮助)?(啦|了)?|多谢|谢了|谢啦|感谢(你|您)?(的帮助)?|非常感谢)"
)
_ACKNOWLEDGED = (
    r"(ok|okay|got it|i see|understood|great|perfect|that helps|that helped|bye|goodbye|"
    r"好的|好|明白了|懂了|知道了|了解了|收到|再见|拜拜)"
)
_PATTERNS: tuple[tuple[Intent, re.Pattern[str]], ...] = (
    (
        "hello",
        re.compile(
            rf"^{_GREETING}( there| everyone| bot)?({_COMMA}{_GREETING})?"
            rf"({_COMMA}(i have a question|a question|请问|我有(一)?个问题|我想咨询(一下)?))?"
            + _END,
            re.IGNORECASE,
        ),
    ),
    (
        # A yes to the bot's own question ("Shall I pass it on?"), or a bare "ok".
        "yes",
        re.compile(
            r"^(yes|yeah|yep|sure|ok|okay|please|please do|yes,? please|go ahead|of course|"
            r"要|需要|是|是的|好的|好|可以|行|好啊|麻烦了|麻烦您了|请转|转吧)" + _END,
            re.IGNORECASE,
        ),
    ),
    (
        "thanks",
        re.compile(
            rf"^({_ACKNOWLEDGED}{_COMMA})?{_THANKS}({_COMMA}{_ACKNOWLEDGED})*{_END}"
            rf"|^{_ACKNOWLEDGED}({_COMMA}{_ACKNOWLEDGED})*{_END}",
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
