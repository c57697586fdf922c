#!/bin/bash
echo "checking $1"
