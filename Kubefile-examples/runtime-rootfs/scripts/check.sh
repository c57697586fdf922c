#!/bin/bash
# Records that the check step ran, where, and with which arguments.
mkdir -p "$MARKER_DIR"
echo "check $(pwd) $*" >> "$MARKER_DIR/order"
echo "check ran"
