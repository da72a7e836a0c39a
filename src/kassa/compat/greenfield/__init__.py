"""BTCPay Server's Greenfield API (docs/compat/greenfield.md): its invoice, store and webhook calls
translated to Kassa's services, so shops wired to BTCPay switch by changing the URL and the key."""
