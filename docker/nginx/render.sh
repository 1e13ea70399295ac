#!/bin/sh
# render.sh TEMPLATE OUTPUT: fill TEMPLATE's ${DRAGONFLY_*} variables from the environment (only
# those: nginx's own $variables are left alone) and refuse, writing nothing, if one is unset or empty.
# The nginx image runs it before nginx; the topology test (tests/deploy/) runs it the same way.
set -eu
template=$1
output=$2
# Only variables set to something: an empty one would leave a broken directive behind.
names=$(env | sed -n 's/^\(DRAGONFLY_[A-Z0-9_]*\)=..*/${\1}/p' | tr '\n' ' ')
rendered=$(envsubst "$names" < "$template")
missing=$(printf '%s\n' "$rendered" | grep -o '\${DRAGONFLY_[A-Z0-9_]*}' | sort -u | tr '\n' ' ' || true)
if [ -n "$missing" ]; then
  echo "render.sh: $template needs $missing(set them in the environment)" >&2
  exit 1
fi
printf '%s\n' "$rendered" > "$output"
