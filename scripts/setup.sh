#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for keel: the -dev packages it builds
# against and the real model files its tests and demo use (cached outside the
# repository, in ${KEEL_CACHE:-~/.cache/keel}). Safe to run again.
set -euo pipefail
pkgs="build-essential pkg-config libopenblas0-openmp libopenblas-openmp-dev libpcre2-dev libcjson-dev
      libyaml-dev libsqlite3-dev libssl-dev unzip python3-pip"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "setup: installing$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
bash "$(dirname "$0")/fetch-models.sh"
