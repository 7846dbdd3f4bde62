"""Channels: how users reach the bot (console, Telegram) and how its replies reach them."""
