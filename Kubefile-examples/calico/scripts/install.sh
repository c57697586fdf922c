#!/usr/bin/env bash
set -euo pipefail
namespace=${1:-tigera-operator}
helm upgrade -i calico charts/calico -n "$namespace" --create-namespace
kubectl apply -f manifests/custom-resources.yaml
