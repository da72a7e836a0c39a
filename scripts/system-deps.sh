#!/usr/bin/env bash
# Install the system packages the tests need, from Debian, only when they are missing:
# PostgreSQL (a private server per test run), Chromium (checkout page tests), monero (regtest
# node and wallets), litecoind (Litecoin Core 0.21 regtest node for the Bitcoin-family rail),
# wrk (benchmarks), redis-server (the shared rate-limit storage), nodejs and npm (the local Hardhat node of the EVM rail tests; its npm packages are
# installed by tests/support/hardhat_node.py), a CJK font (the Chinese and Japanese checkout screenshots).
set -euo pipefail

missing=()
have_pg() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; }
have_pg || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v monerod >/dev/null 2>&1 && command -v monero-wallet-rpc >/dev/null 2>&1 || missing+=(monero)
[ -x /usr/lib/litecoin/litecoind ] || missing+=(litecoind)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing+=(fonts-wqy-microhei)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "system-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
