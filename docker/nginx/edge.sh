#!/bin/sh
# edge.sh TEMPLATE SITE [nginx's -p/-c arguments]: the edge container's one process.
#
# nginx keeps its connections to the replicas open between requests (the upstream blocks'
# `keepalive`) only for the servers an upstream block lists, and Debian's nginx 1.22 resolves
# those once, when it loads its configuration (`resolve`, which asks again at run time, came in
# 1.27.3). So this script is what asks again. It resolves two names, each a service's name and
# port (Docker's DNS answers with every running replica of it): DRAGONFLY_WEB_UPSTREAM (web:8000,
# the pages) and DRAGONFLY_API_UPSTREAM (api:8000, /v1). It renders TEMPLATE into SITE with one
# `server` line per address (render.sh: DRAGONFLY_WEB_SERVERS, DRAGONFLY_API_SERVERS), runs nginx,
# and every DRAGONFLY_EDGE_RESOLVE_SECONDS (5) resolves both again. When a set of addresses has
# changed (a replica added, removed, or recreated with a new address) it renders again and reloads
# nginx, whose old workers finish the requests they hold; a set nginx refuses is logged once and
# not tried again until the answers change. A name answering no address (the DNS
# server unreachable, every replica of it gone) keeps the set nginx has for it. SIGQUIT, SIGTERM
# and SIGINT go on to nginx, and the script exits with nginx's status.
set -eu
template=$1
site=$2
shift 2
every=${DRAGONFLY_EDGE_RESOLVE_SECONDS:-5}
: "${DRAGONFLY_WEB_UPSTREAM:?set it to the web service's name and port, web:8000}"
: "${DRAGONFLY_API_UPSTREAM:?set it to the api service's name and port, api:8000}"

servers() {
  # servers NAME:PORT [SET]: one `server` line per address NAME resolves to, or SET if none.
  # getent repeats each address once per socket type; nothing printed if the name is unknown.
  found=$({ getent ahostsv4 "${1%:*}" || true; } | awk -v port="${1##*:}" '{ print "server " $1 ":" port ";" }' \
    | sort -u | tr '\n' ' ')
  found=${found% }
  printf '%s' "${found:-${2:-}}"
}

render() {
  DRAGONFLY_WEB_SERVERS=$1 DRAGONFLY_API_SERVERS=$2 "$(dirname "$0")/render.sh" "$template" "$site"
}

until web=$(servers "$DRAGONFLY_WEB_UPSTREAM") && api=$(servers "$DRAGONFLY_API_UPSTREAM") \
  && [ -n "$web" ] && [ -n "$api" ]; do
  echo "edge.sh: $DRAGONFLY_WEB_UPSTREAM or $DRAGONFLY_API_UPSTREAM resolves to no address yet; asking again in ${every} s" >&2
  sleep "$every"
done
render "$web" "$api"
echo "edge.sh: web replicas: $web api replicas: $api" >&2

refused=""
nginx "$@" -g 'daemon off;' &
pid=$!
trap 'kill -QUIT "$pid" 2>/dev/null || true' QUIT
trap 'kill -TERM "$pid" 2>/dev/null || true' TERM INT

while kill -0 "$pid" 2>/dev/null; do
  sleep "$every" &
  wait $! || true # a signal ends the wait at once; its trap has run
  next_web=$(servers "$DRAGONFLY_WEB_UPSTREAM" "$web")
  next_api=$(servers "$DRAGONFLY_API_UPSTREAM" "$api")
  if [ "$next_web;$next_api" = "$web;$api" ] || [ "$next_web;$next_api" = "$refused" ]; then
    continue
  fi
  if render "$next_web" "$next_api" && nginx "$@" -t -q && nginx "$@" -s reload; then
    echo "edge.sh: web replicas now: $next_web api replicas now: $next_api" >&2
    web=$next_web
    api=$next_api
  else
    render "$web" "$api" || true # SITE as nginx runs it, for its next start
    refused="$next_web;$next_api"  # not tried again until the answers change
    echo "edge.sh: keeping web $web api $api (the configuration for web $next_web api $next_api did not load)" >&2
  fi
done
status=0
wait "$pid" || status=$?
exit "$status"
