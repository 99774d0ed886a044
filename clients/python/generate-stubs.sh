#!/usr/bin/env bash
# Generates the Python gRPC stubs of protos/raysharing/v1/*.proto into raysharing/v1/ (not committed: protos/ is the
# contract, the stubs are made from it). Uses Debian's protoc (protobuf-compiler) with grpc_python_plugin
# (protobuf-compiler-grpc), whose protobuf 3.21 matches the python3-protobuf runtime. Debian 12's python3-grpc-tools
# is not used: it bundles protoc 3.5.1, which predates proto3 `optional` (objects.proto's PutRequest.checksum).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
protos="$here/../../protos"
for tool in protoc grpc_python_plugin; do
  command -v "$tool" >/dev/null 2>&1 || { echo "generate-stubs.sh: $tool is missing: apt-get install protobuf-compiler protobuf-compiler-grpc (test.sh does)" >&2; exit 1; }
done
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
protoc -I "$protos" --python_out="$out" --grpc_python_out="$out" \
  --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" "$protos"/raysharing/v1/*.proto
printf '"""gRPC stubs generated from protos/raysharing/v1 by generate-stubs.sh; do not edit."""\n' > "$out/raysharing/v1/__init__.py"
rm -rf "$here/raysharing/v1"
mv "$out/raysharing/v1" "$here/raysharing/v1"
echo "generate-stubs.sh: stubs in $here/raysharing/v1"
