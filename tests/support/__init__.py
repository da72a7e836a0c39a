"""Test support: harnesses for real payment counterparts (monerod regtest, ...) and their fixtures."""
