#!/bin/bash
# The rootfs CMD: records its working directory and arguments, that the hosts' PATH is in force, and the PATH.
echo "cmd $(pwd) $*" >> "$MARKER_DIR/order"
command -v cat >/dev/null && echo "path-ok" > "$MARKER_DIR/path"
echo "$PATH" > "$MARKER_DIR/path-value"
echo "$GREETING" > "$MARKER_DIR/greeting"
