#!/bin/bash
# Records that the init step ran, where, and with which arguments.
mkdir -p "$MARKER_DIR"
echo "init $(pwd) $*" >> "$MARKER_DIR/order"
echo "init ran"
