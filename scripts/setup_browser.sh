#!/usr/bin/env bash
# Browser-test prerequisites: Debian's chromium and npm's playwright-core (no browser download).
# Safe to rerun; skips what is already there. Browser tests skip with a reason if this fails.
set -u
if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "setup_browser: could not install chromium; browser tests will skip"
  fi
fi
if [ -f package.json ] && command -v npm >/dev/null 2>&1 && [ ! -d node_modules/playwright-core ]; then
  npm install --no-audit --no-fund --silent || echo "setup_browser: npm install failed; browser tests will skip"
fi
exit 0
