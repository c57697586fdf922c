#!/bin/bash
# Records that the init-cri step ran, where, and with which arguments.
mkdir -p "$MARKER_DIR"
echo "init-cri $(pwd) $*" >> "$MARKER_DIR/order"
echo "init-cri ran"
