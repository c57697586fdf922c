#!/bin/bash
# The rootfs CMD: records its working directory and arguments, and that the hosts' PATH is in force.
echo "cmd $(pwd) $*" >> "$MARKER_DIR/order"
command -v cat >/dev/null && echo "path-ok" > "$MARKER_DIR/path"
echo "$GREETING" > "$MARKER_DIR/greeting"
