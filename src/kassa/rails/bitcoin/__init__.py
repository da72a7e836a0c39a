"""The Bitcoin-family rail (Bitcoin Core >= 0.21 and its forks, e.g. Litecoin Core)."""
