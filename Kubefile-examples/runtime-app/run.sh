#!/bin/bash
# The application CMD: records its working directory and arguments (the second one verbatim in `extra`).
echo "app $(pwd) $*" >> "$MARKER_DIR/order"
printf '%s' "$2" > "$MARKER_DIR/extra"
