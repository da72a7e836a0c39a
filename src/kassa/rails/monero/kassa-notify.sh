#!/bin/sh
# kassa-notify: wake Kassa's watcher as soon as the wallet sees a transaction.
#
#   monero-wallet-rpc ... --tx-notify "/usr/local/bin/kassa-notify /etc/kassa/monero-notify.env %s"
#   bitcoind: walletnotify=/usr/local/bin/kassa-notify /etc/kassa/bitcoin-notify.env %s
#             blocknotify=/usr/local/bin/kassa-notify /etc/kassa/bitcoin-notify.env %s
#
# The wallet runs it with the transaction id (when the transaction reaches the pool, and again when
# it is mined). It only POSTs to /api/v1/payment-methods/monero/notify: Kassa's watcher then reads
# the wallet itself, so the txid is just logged and nothing the script sends is trusted.
#
# Usage: kassa-notify [ENV_FILE] TXID. ENV_FILE (default $KASSA_NOTIFY_ENV, else
# /etc/kassa/monero-notify.env) holds KASSA_URL=... and KASSA_API_KEY=... lines, and KASSA_RAIL=...
# for another rail than monero (bitcoin, litecoin); keep it mode 600,
# it holds the merchant's API key. monero-wallet-rpc starts the script with an EMPTY environment,
# so name the file on the --tx-notify command line (or use the default path). Needs curl; never
# blocks the wallet for more than 5 s.
set -u
if [ $# -ge 2 ]; then
    env_file="$1"
    shift
else
    env_file="${KASSA_NOTIFY_ENV:-/etc/kassa/monero-notify.env}"
fi
if [ -r "$env_file" ]; then
    # shellcheck disable=SC1090
    . "$env_file"
fi
: "${KASSA_URL:?KASSA_URL is not set (see $env_file)}"
: "${KASSA_API_KEY:?KASSA_API_KEY is not set (see $env_file)}"
rail="${KASSA_RAIL:-monero}"
case "$rail" in
    ""|*[!a-z0-9_-]*) echo "kassa-notify: KASSA_RAIL must be a rail name such as bitcoin" >&2; exit 0 ;;
esac
txid="${1:-}"
case "$txid" in
    *[!0-9a-fA-F]*) txid="" ;;  # only ever log a plain hex txid
esac
printf 'Authorization: Bearer %s\n' "$KASSA_API_KEY" | curl --silent --show-error --fail \
    --max-time 5 --header @- --request POST --output /dev/null \
    "${KASSA_URL%/}/api/v1/payment-methods/${rail}/notify" \
    || echo "kassa-notify: could not reach Kassa at ${KASSA_URL} (tx ${txid})" >&2
exit 0
