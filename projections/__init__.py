"""Read models built from the event log, and the runtime that applies events to them exactly once."""
