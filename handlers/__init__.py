"""What each kind of user can do, written once for every channel (no channel types here)."""
