"""What the bot tells experts and staff on its own: for now the expert handler's functions."""

from handlers.expert import announce, redeliver, report_stale, tell_staff

__all__ = ["announce", "redeliver", "report_stale", "tell_staff"]
