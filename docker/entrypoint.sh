#!/bin/sh
# Files the portal creates are private (umask 077); its secrets folder exists, 0700.
set -eu
umask 077
secrets="${VDI_SECRETS_DIR:-${VDI_DATA_DIR:-/var/lib/vdi-portal}/secrets}"
mkdir -p "$secrets" && chmod 700 "$secrets"
exec "$@"
