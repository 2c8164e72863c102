#!/usr/bin/env bash
# Builds the server, the library and its Kotlin bindings, then runs the
# Kotlin tests of mobile-ffi (Maven: kotlin-maven-plugin, JNA,
# kotlinx-coroutines, JUnit 5) against a real `server serve --demo` that each
# test class starts. Needs a JDK 17+ and Maven; the dependencies come from
# Maven Central.
set -euo pipefail
source "$(dirname "$0")/prepare.sh"

cd mobile-ffi/tests/kotlin
exec mvn -B --no-transfer-progress test -Dbindings.dir="$bindings/kotlin" -Dlib.dir="$target/debug"
