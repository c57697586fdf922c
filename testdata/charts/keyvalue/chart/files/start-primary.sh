#!/bin/bash
[[ -f $KV_PASSWORD_FILE ]] && export KV_PASSWORD="$(< "${KV_PASSWORD_FILE}")"
if [[ -f /opt/kv/mounted-etc/primary.conf ]];then
    cp /opt/kv/mounted-etc/primary.conf /opt/kv/etc/primary.conf
fi
ARGS=("--port" "${KV_PORT}")
ARGS+=("--include" "/opt/kv/etc/primary.conf")
exec kv-server "${ARGS[@]}"
