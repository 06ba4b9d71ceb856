#!/usr/bin/env bash
# `npm test`: sets up what the suite needs on a fresh Debian host (the same way
# as quickstart), then runs every tier:
#   1. unit specs (pure logic, beside the code),
#   2. end-to-end specs against real Postgres, Redis, Docker and Chromium,
#   3. the terminal and browser images' own smoke tests (alongside the others).
# Ends with one summary line, "Tests: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test] %s\n' "$*"; }

if [ ! -x node_modules/.bin/jest ]; then
  log "installing npm dependencies"
  npm ci --no-audit --no-fund
fi
bash scripts/ensure-services.sh
eval "$(bash scripts/service-urls.sh berth_test TEST_)"
export TEST_DATABASE_URL TEST_REDIS_URL
bash scripts/ensure-chromium.sh
bash scripts/build-images.sh
log "compiling (the shutdown tests run the built entry points)"
npx nest build

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
status=0

# The images' smoke tests need nothing of the rest: they run alongside, one after the other.
log "terminal and browser image smoke tests (in the background; their output follows the e2e tier)"
( bash terminal-container/smoke-test.sh > "$results/smoke.txt" 2>&1; t=$?
  bash browser-container/smoke-test.sh > "$results/browser-smoke.txt" 2>&1; b=$?
  [ "$t" -eq 0 ] && [ "$b" -eq 0 ] ) &
smoke_pid=$!
log "unit tests"
npx jest --selectProjects unit --json --outputFile="$results/unit.json" || status=1
# Two workers: each has a database and a port range of its own (test/support/berth-harness.ts).
log "end-to-end tests (real Postgres, Redis, Docker engine, Chromium; ${BERTH_E2E_WORKERS:-2} files at a time)"
npx jest --selectProjects e2e --maxWorkers="${BERTH_E2E_WORKERS:-2}" --json --outputFile="$results/e2e.json" || status=1
wait "$smoke_pid" || status=1
log "terminal image smoke test output"
cat "$results/smoke.txt"
log "browser image smoke test output"
cat "$results/browser-smoke.txt"

node - "$results" <<'JS'
const fs = require('fs');
const dir = process.argv[2];
let passed = 0, failed = 0;
for (const name of ['unit.json', 'e2e.json']) {
  try {
    const report = JSON.parse(fs.readFileSync(`${dir}/${name}`, 'utf8'));
    passed += report.numPassedTests;
    failed += report.numFailedTests + (report.numRuntimeErrorTestSuites || 0);
  } catch {
    failed += 1; // the runner did not even report
  }
}
for (const name of ['smoke.txt', 'browser-smoke.txt']) {
  let text = '';
  try { text = fs.readFileSync(`${dir}/${name}`, 'utf8'); } catch {}
  const smoke = text.match(/(\d+) passed, (\d+) failed/);
  if (smoke) { passed += Number(smoke[1]); failed += Number(smoke[2]); } else { failed += 1; }
}
console.log(`Tests: ${passed} passed, ${failed} failed`);
JS
exit $status
