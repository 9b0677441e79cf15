"""Alert lifecycle, notifications and their delivery channels (DESIGN.md §7)."""
