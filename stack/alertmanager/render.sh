#!/bin/sh
# Render an Alertmanager configuration template, then (optionally) run a command.
#
#   render.sh TEMPLATE OUTPUT [COMMAND ARGS...]
#
# Alertmanager reads no environment variables in its configuration (upstream's
# choice), so this fills the ${NAME} and ${NAME:-default} placeholders of the
# template from the environment; an unset or empty NAME takes the default.
# Values are escaped for a double-quoted YAML string, so a placeholder belongs
# inside "..." (booleans aside). Comment lines are copied unchanged.
# POSIX sh and awk only: it runs in the busybox of the prom/alertmanager image
# (docker-compose.yml) and on a developer machine (the native tests).
set -eu

if [ $# -lt 2 ]; then
  echo "usage: render.sh TEMPLATE OUTPUT [COMMAND ARGS...]" >&2
  exit 2
fi
template=$1
output=$2
shift 2

# The output holds webhook URLs and the SMTP password.
umask 077
awk '
function yaml_escape(value,    i, c, out) {
  out = ""
  for (i = 1; i <= length(value); i++) {
    c = substr(value, i, 1)
    if (c == "\\" || c == "\"") out = out "\\"
    out = out c
  }
  return out
}
function expand(inner,    sep, name, fallback, value) {
  sep = index(inner, ":-")
  if (sep > 0) {
    name = substr(inner, 1, sep - 1)
    fallback = substr(inner, sep + 2)
  } else {
    name = inner
    fallback = ""
  }
  value = (name in ENVIRON) ? ENVIRON[name] : ""
  if (value == "") value = fallback
  return yaml_escape(value)
}
/^[ \t]*#/ { print; next }
{
  rest = $0
  out = ""
  # Left to right, so a value that itself contains "${" is never expanded again.
  while (match(rest, /[$][{][A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?[}]/)) {
    out = out substr(rest, 1, RSTART - 1) expand(substr(rest, RSTART + 2, RLENGTH - 3))
    rest = substr(rest, RSTART + RLENGTH)
  }
  print out rest
}
' "$template" >"$output.tmp"
mv "$output.tmp" "$output"

if [ $# -gt 0 ]; then
  exec "$@"
fi
