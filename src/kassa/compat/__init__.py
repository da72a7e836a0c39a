"""Fronts that speak the protocols Kassa grew from (shared/seeds), each translating its own wire
format to the service functions: no order rules and no table access of their own."""
