#!/usr/bin/env bash
# The whole test suite: protocol unit and property tests; functional, wire, deadline and multi-process
# tests against real workers on loopback; cluster tests against a real redis-server; the sample; and the chaos
# (50 rounds) and load runs. Needs the .NET SDK; installs the Debian packages below when missing, and restores
# and builds everything it runs. Extra arguments go to `dotnet test`.
set -euo pipefail
cd "$(dirname "$0")"
# Debian packages the tests use: python3 with python3-msgpack, python3-grpcio and python3-protobuf (ENVELOPE.md's Python
# sketch and the Python client, whose stubs protoc and grpc_python_plugin generate from protos/ here); a JDK with Debian's
# grpc-java, protobuf-java and msgpack-java (the Java client, compiled with javac by clients/java/build.sh); nodejs and
# npm (the envelope checked in Node); redis-server (the cluster's directory); iproute2 (hosts as network namespaces).
# Installed only when missing.
missing=()
/usr/bin/python3 -c 'import msgpack' 2>/dev/null || missing+=(python3 python3-msgpack)
/usr/bin/python3 -c 'import grpc, google.protobuf' 2>/dev/null || missing+=(python3-grpcio python3-protobuf)
command -v protoc >/dev/null 2>&1 && command -v grpc_python_plugin >/dev/null 2>&1 || missing+=(protobuf-compiler protobuf-compiler-grpc)
command -v javac >/dev/null 2>&1 || missing+=(openjdk-17-jdk-headless)
[ -f /usr/share/java/grpc-stub.jar ] && [ -f /usr/share/java/protobuf.jar ] && [ -f /usr/share/java/msgpack-core.jar ] && [ -f /usr/share/java/geronimo-annotation-1.3-spec.jar ] \
  && command -v grpc_java_plugin >/dev/null 2>&1 \
  || missing+=(libgrpc-java libprotobuf-java protobuf-compiler protobuf-compiler-grpc-java-plugin libmsgpack-java libnetty-java libperfmark-java \
               libjsr305-java liberror-prone-java libanimal-sniffer-java libgeronimo-annotation-1.3-spec-java)
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "test.sh: installing ${missing[*]}"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
mkdir -p TestResults
rm -f TestResults/chaos.md TestResults/cluster-chaos.md TestResults/load.md
# The other languages' clients: Node's envelope package from its lock file, the Java client compiled with javac, the
# Python client's gRPC stubs generated from protos/.
npm ci --prefix clients/node --no-audit --no-fund --silent
clients/java/build.sh
clients/python/generate-stubs.sh
echo "test.sh: building the solution (a first build takes a minute or two)"
dotnet build RaySharing.sln -c Release
echo "test.sh: running the tests, a line per test as it ends (the chaos and load runs take a few minutes)"
status=0
# Per-test lines show progress; the closing line below counts only the runner's per-project summaries.
dotnet test RaySharing.sln -c Release --no-build --logger "console;verbosity=normal" "$@" 2>&1 | tee TestResults/dotnet-test.log || status=$?
# The tables the chaos and load runs wrote, pass or fail.
for table in TestResults/chaos.md TestResults/cluster-chaos.md TestResults/load.md; do
  if [ -f "$table" ]; then echo; cat "$table"; fi
done
# One closing line over all test projects.
echo
# At this verbosity each test project closes with a block: "Total tests: N", then "Passed: N",
# "Failed: N", "Skipped: N" (each only when not 0), then "Total time"; only those blocks are counted.
awk '
  /^Total tests: [0-9]+/ { block = 1; next }
  block && /^ +Passed: +[0-9]+ *$/ { p += $2; next }
  block && /^ +Failed: +[0-9]+ *$/ { f += $2; next }
  block && /^ +Skipped: +[0-9]+ *$/ { s += $2; next }
  { block = 0 }
  END { printf "%d passed, %d failed, %d skipped\n", p, f, s }
' TestResults/dotnet-test.log
exit $status
