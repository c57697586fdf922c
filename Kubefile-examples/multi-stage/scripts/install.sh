#!/bin/bash
kubectl apply -f /manifests/
