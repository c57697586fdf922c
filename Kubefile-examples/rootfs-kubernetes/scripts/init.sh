#!/bin/bash
systemctl enable --now kubelet
