"""Channels: how users reach the bot (console, Telegram) and how its replies reach them."""

import re

# The name each channel keeps its users under (its module's `CHANNEL`); a user on any other
# cannot be reached. Named here so that `ipbot` can check one without loading the channels.
CONSOLE = "console"
TELEGRAM = "telegram"
CHANNELS = (CONSOLE, TELEGRAM)

# A user id as Telegram gives it: a number of 64 bits at most.
TELEGRAM_USER_ID = re.compile(r"[0-9]{1,19}")
