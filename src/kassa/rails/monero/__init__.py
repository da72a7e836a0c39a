"""The Monero rail: watches a view-only monero-wallet-rpc for payments to per-order subaddresses."""
