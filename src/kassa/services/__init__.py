"""Core services: the only code that changes state. One transaction per call."""
