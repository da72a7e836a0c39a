"""Pure domain rules: money, currencies, the order state machine. No I/O here."""
