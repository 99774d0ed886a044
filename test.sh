#!/usr/bin/env bash
# The whole test suite: protocol unit and property tests; functional, wire, deadline and multi-process
# tests against real workers on loopback; the sample; and the chaos (50 rounds) and load runs. Needs only
# the .NET SDK; restores and builds everything it runs. Extra arguments go to `dotnet test`.
set -euo pipefail
cd "$(dirname "$0")"
# ENVELOPE.md's Python sketch is tested with Debian's python3 and python3-msgpack.
if ! /usr/bin/python3 -c 'import msgpack' 2>/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq python3 python3-msgpack >/dev/null
fi
mkdir -p TestResults
rm -f TestResults/chaos.md TestResults/load.md
dotnet build RaySharing.sln -c Release
status=0
dotnet test RaySharing.sln -c Release --no-build "$@" 2>&1 | tee TestResults/dotnet-test.log || status=$?
# The tables the chaos and load runs wrote, pass or fail.
for table in TestResults/chaos.md TestResults/load.md; do
  if [ -f "$table" ]; then echo; cat "$table"; fi
done
# One closing line over all test projects.
echo
grep -E '^(Passed|Failed)!' TestResults/dotnet-test.log \
  | sed -E 's/.*Failed: *([0-9]+), Passed: *([0-9]+), Skipped: *([0-9]+).*/\1 \2 \3/' \
  | awk '{ f += $1; p += $2; s += $3 } END { printf "%d passed, %d failed, %d skipped\n", p, f, s }'
exit $status
