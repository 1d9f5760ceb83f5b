#!/usr/bin/env bash
# Browser prerequisites of the guidance page and its test (tests/cluster/test_guidance_page.py):
#   - Debian's chromium (playwright-core drives it; no browser download),
#   - npm packages from package.json into ./node_modules (gitignored): playwright-core and
#     @mediapipe/pose, whose bundled model files the app serves at /vendor/pose/ (no CDN).
# Run from anywhere: bash scripts/setup_browser.sh. Safe to rerun; skips what is already there.
# Browser tests skip with a reason when something here could not be installed; under
# PHYSIO_REQUIRE_ALL=1 (`make test`, .ci/run) they fail with that reason instead (tests/conftest.py).
set -u
cd "$(dirname "$0")/.." || exit 0
if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "setup_browser: could not install chromium; browser tests will skip (fail under PHYSIO_REQUIRE_ALL=1)"
  else
    echo "setup_browser: no chromium and no apt-get; browser tests will skip (fail under PHYSIO_REQUIRE_ALL=1)"
  fi
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "setup_browser: npm not found; browser tests will skip (fail under PHYSIO_REQUIRE_ALL=1) and the page has no pose model"
elif [ ! -f node_modules/playwright-core/package.json ] || [ ! -f node_modules/@mediapipe/pose/pose.js ]; then
  if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund --silent || npm install --no-audit --no-fund --silent \
      || echo "setup_browser: npm install failed; browser tests will skip (fail under PHYSIO_REQUIRE_ALL=1)"
  else
    npm install --no-audit --no-fund --silent || echo "setup_browser: npm install failed; browser tests will skip (fail under PHYSIO_REQUIRE_ALL=1)"
  fi
fi
exit 0
