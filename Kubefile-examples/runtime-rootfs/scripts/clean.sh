#!/bin/bash
# Records that the clean step ran, where, and with which arguments.
mkdir -p "$MARKER_DIR"
echo "clean $(pwd) $*" >> "$MARKER_DIR/order"
echo "clean ran"
