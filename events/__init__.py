"""The event catalog, the envelope every event travels in, and the event log it is appended to."""
