#!/usr/bin/env bash
# The whole test suite: unit, functional (real worker on loopback), multi-process and sample tests.
# Needs only the .NET SDK; restores and builds everything it runs.
set -euo pipefail
cd "$(dirname "$0")"
dotnet build RaySharing.sln -c Release
dotnet test RaySharing.sln -c Release --no-build "$@"
