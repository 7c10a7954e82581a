#!/usr/bin/env bash
# The web demo's real-browser test: builds the binary, installs playwright-core from the
# lockfile, and drives headless Chromium (/usr/bin/chromium, Debian's `chromium`).
set -euo pipefail
cd "$(dirname "$0")"
cargo build --quiet --bin recagent
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund
node demo.test.js
