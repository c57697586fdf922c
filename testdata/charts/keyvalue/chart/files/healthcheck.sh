#!/bin/bash
# Pings the server; exits non-zero when it does not answer PONG in time.
response=$(timeout -s 15 "$1" kv-cli -h localhost -p "$KV_PORT" ping)
if [ "$?" -eq "124" ]; then
  echo "Timed out"
  exit 1
fi
if [ "$response" != "PONG" ]; then
  echo "$response"
  exit 1
fi
