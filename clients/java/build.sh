#!/usr/bin/env bash
# Builds the Java client with Debian's packages only (no Maven, no Gradle): generates the gRPC stubs from
# protos/raysharing/v1/*.proto with protoc and Debian's grpc-java plugin, compiles them and src/main/java with javac,
# and writes build/classpath.txt (Debian's jars and the classes folder) for `java -cp "$(cat build/classpath.txt)"`.
# Rerunning it when no proto and no source changed does nothing. Needs openjdk-17-jdk-headless, protobuf-compiler,
# protobuf-compiler-grpc-java-plugin, libgrpc-java, libprotobuf-java, libmsgpack-java and their dependencies
# (test.sh installs them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="$here/build"
jars_dir=/usr/share/java

fail() { echo "clients/java/build.sh: $*" >&2; exit 1; }

# What the client and grpc-java 1.41 load at run time. protobuf.jar is libprotobuf-java; geronimo-annotation-1.3-spec
# has javax.annotation.Generated, which the generated stubs are annotated with.
jars=(grpc-api grpc-core grpc-netty grpc-stub grpc-protobuf grpc-protobuf-lite grpc-context protobuf guava
      netty-buffer netty-codec netty-codec-http netty-codec-http2 netty-common netty-handler netty-resolver netty-transport
      perfmark-api jsr305 error_prone_annotations animal-sniffer-annotations geronimo-annotation-1.3-spec msgpack-core)
missing=()
classpath=()
for jar in "${jars[@]}"; do
  if [ -f "$jars_dir/$jar.jar" ]; then classpath+=("$jars_dir/$jar.jar"); else missing+=("$jars_dir/$jar.jar"); fi
done
[ ${#missing[@]} -eq 0 ] || fail "missing jars: ${missing[*]}. Install Debian's libgrpc-java, libprotobuf-java, libmsgpack-java, libnetty-java, libperfmark-java, libjsr305-java, liberror-prone-java, libanimal-sniffer-java and libgeronimo-annotation-1.3-spec-java (test.sh does)."
command -v javac >/dev/null 2>&1 || fail "javac not found: install openjdk-17-jdk-headless (test.sh does)."
[ -x /usr/bin/protoc ] || fail "/usr/bin/protoc not found: install protobuf-compiler (test.sh does)."
[ -x /usr/bin/grpc_java_plugin ] || fail "/usr/bin/grpc_java_plugin not found: install protobuf-compiler-grpc-java-plugin (test.sh does)."

classes="$build/classes"
generated="$build/generated"
stamp="$build/.stamp"
classpath+=("$classes")
classpath_file="$build/classpath.txt"

# Up to date when the stamp is newer than every proto, source and this script, and the classpath is the same.
joined="$(IFS=:; echo "${classpath[*]}")"
if [ -f "$stamp" ] && [ -f "$classpath_file" ] && [ "$(cat "$classpath_file")" = "$joined" ] \
   && [ -z "$(find "$root/protos/raysharing" "$here/src" "$here/build.sh" -newer "$stamp" -print -quit)" ]; then
  echo "clients/java/build.sh: up to date; classpath in $classpath_file"
  exit 0
fi

rm -rf "$generated" "$classes"
mkdir -p "$generated" "$classes"
/usr/bin/protoc -I "$root/protos" --java_out="$generated" \
  --plugin=protoc-gen-grpc-java=/usr/bin/grpc_java_plugin --grpc-java_out="$generated" \
  "$root"/protos/raysharing/v1/*.proto
sources="$build/sources.txt"
find "$generated" "$here/src/main/java" -name '*.java' | sort > "$sources"
# -Xlint without the warnings the generated code always has (deprecated protobuf calls, raw types).
javac --release 17 -encoding UTF-8 -Xlint:all,-deprecation,-rawtypes,-unchecked,-serial,-processing -Werror \
  -cp "$(IFS=:; echo "${classpath[*]:0:${#classpath[@]}-1}")" -d "$classes" @"$sources"
printf '%s' "$joined" > "$classpath_file"
touch "$stamp"
echo "clients/java/build.sh: built $(grep -c . "$sources") sources; classpath in $classpath_file"
