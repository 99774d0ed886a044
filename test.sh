#!/usr/bin/env bash
# The whole test suite: protocol unit tests; functional, wire, deadline and multi-process tests against
# real workers on loopback; the sample; and the chaos (50 rounds) and load runs. Needs only the .NET SDK;
# restores and builds everything it runs. Extra arguments go to `dotnet test`.
set -euo pipefail
cd "$(dirname "$0")"
rm -f TestResults/chaos.md TestResults/load.md
dotnet build RaySharing.sln -c Release
status=0
dotnet test RaySharing.sln -c Release --no-build "$@" || status=$?
# The tables the chaos and load runs wrote, pass or fail.
for table in TestResults/chaos.md TestResults/load.md; do
  if [ -f "$table" ]; then echo; cat "$table"; fi
done
exit $status
