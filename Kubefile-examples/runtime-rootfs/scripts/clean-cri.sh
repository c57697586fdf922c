#!/bin/bash
# Records that the clean-cri step ran, where, and with which arguments.
mkdir -p "$MARKER_DIR"
echo "clean-cri $(pwd) $*" >> "$MARKER_DIR/order"
echo "clean-cri ran"
