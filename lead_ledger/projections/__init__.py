"""Read models folded from the event log: one path for live (inline) updates and rebuilds."""
