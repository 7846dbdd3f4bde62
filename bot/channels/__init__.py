"""Channels: how users reach the bot (console, Telegram) and how its replies reach them."""

import re

# A user id as Telegram gives it: a number of 64 bits at most.
TELEGRAM_USER_ID = re.compile(r"[0-9]{1,19}")
