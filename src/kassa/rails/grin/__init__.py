"""The Grin rail: clients of the grin-wallet foreign/owner APIs and the grin node API, slate parsing."""
