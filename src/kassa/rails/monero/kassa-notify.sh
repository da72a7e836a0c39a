#!/bin/sh
# kassa-notify: wake Kassa's Monero watcher as soon as monero-wallet-rpc sees a transaction.
#
#   monero-wallet-rpc ... --tx-notify "/usr/local/bin/kassa-notify %s"
#
# The wallet runs it with the transaction id (when the transaction reaches the pool, and again when
# it is mined). It only POSTs to /api/v1/payment-methods/monero/notify: Kassa's watcher then reads
# the wallet itself, so the txid is just logged and nothing the script sends is trusted.
#
# Configuration: KASSA_URL and KASSA_API_KEY, from the environment or from the file named by
# KASSA_NOTIFY_ENV (default /etc/kassa/monero-notify.env, `KEY=value` lines; keep it mode 600:
# it holds the merchant's API key). Needs curl. Never blocks the wallet for more than 5 s.
set -u
env_file="${KASSA_NOTIFY_ENV:-/etc/kassa/monero-notify.env}"
if [ -r "$env_file" ]; then
    # shellcheck disable=SC1090
    . "$env_file"
fi
: "${KASSA_URL:?KASSA_URL is not set (see $env_file)}"
: "${KASSA_API_KEY:?KASSA_API_KEY is not set (see $env_file)}"
txid="${1:-}"
case "$txid" in
    *[!0-9a-fA-F]*) txid="" ;;  # only ever log a plain hex txid
esac
printf 'Authorization: Bearer %s\n' "$KASSA_API_KEY" | curl --silent --show-error --fail \
    --max-time 5 --header @- --request POST --output /dev/null \
    "${KASSA_URL%/}/api/v1/payment-methods/monero/notify" \
    || echo "kassa-notify: could not reach Kassa at ${KASSA_URL} (tx ${txid})" >&2
exit 0
