"""The EVM rail (Ethereum and EVM chains: ETH and ERC-20 tokens), read through a node's JSON-RPC."""
