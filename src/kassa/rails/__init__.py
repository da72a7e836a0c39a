"""Payment rails: adapters that quote, give a destination and report what they observe.

A rail never changes an order; it reports observations and the core decides (DESIGN.md).
"""
