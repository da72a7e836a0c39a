"""Background work: expiry and monitoring windows, housekeeping, rail watchers."""
