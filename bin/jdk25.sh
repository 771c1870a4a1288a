# Sourced by the launchers: exports JAVA_HOME pointing at a JDK 25 (the machine default may be older).
_is_jdk25() { [ -x "$1/bin/javac" ] && "$1/bin/java" -version 2>&1 | head -n 1 | grep -q '"25'; }
if [ -n "${JAVA_HOME:-}" ] && _is_jdk25 "$JAVA_HOME"; then
  :
else
  _found=""
  for _d in /usr/lib/jvm/temurin-25* /usr/lib/jvm/*25* /opt/java/*25* /opt/jdk*25* "$HOME"/.sdkman/candidates/java/25*; do
    if [ -d "$_d" ] && _is_jdk25 "$_d"; then _found="$_d"; break; fi
  done
  if [ -z "$_found" ] && command -v java >/dev/null 2>&1; then
    _cand=$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")
    _is_jdk25 "$_cand" && _found="$_cand"
  fi
  if [ -z "$_found" ]; then
    echo "error: JDK 25 not found; install Temurin 25 or set JAVA_HOME to a JDK 25" >&2
    exit 1
  fi
  export JAVA_HOME="$_found"
fi
export PATH="$JAVA_HOME/bin:$PATH"
# Maven itself prints sun.misc.Unsafe warnings on JDK 25; they are harmless.
export MAVEN_OPTS="${MAVEN_OPTS:-} --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow"
