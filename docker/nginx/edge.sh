#!/bin/sh
# edge.sh TEMPLATE SITE [nginx's -p/-c arguments]: the edge container's one process.
#
# nginx keeps its connections to the web replicas open between requests (the upstream block's
# `keepalive`) only for the servers an upstream block lists, and Debian's nginx 1.22 resolves
# those once, when it loads its configuration (`resolve`, which asks again at run time, came in
# 1.27.3). So this script is what asks again: it resolves DRAGONFLY_WEB_UPSTREAM's name (web:8000:
# Docker's DNS answers with every running replica), renders TEMPLATE into SITE with one `server`
# line per address (render.sh, DRAGONFLY_WEB_SERVERS), runs nginx, and every
# DRAGONFLY_EDGE_RESOLVE_SECONDS (5) resolves again. When the set of addresses has changed (a
# replica added, removed, or recreated with a new address) it renders again and reloads nginx,
# whose old workers finish the requests they hold. An answer with no address (the DNS server
# unreachable, every replica gone) keeps the set nginx has. SIGQUIT, SIGTERM and SIGINT go on to
# nginx, and the script exits with nginx's status.
set -eu
template=$1
site=$2
shift 2
every=${DRAGONFLY_EDGE_RESOLVE_SECONDS:-5}
: "${DRAGONFLY_WEB_UPSTREAM:?set it to the web service's name and port, web:8000}"
name=${DRAGONFLY_WEB_UPSTREAM%:*}
port=${DRAGONFLY_WEB_UPSTREAM##*:}

servers() {
  # getent repeats each address once per socket type; nothing printed if the name is unknown.
  { getent ahostsv4 "$name" || true; } | awk -v port="$port" '{ print "server " $1 ":" port ";" }' \
    | sort -u | tr '\n' ' '
}

render() {
  DRAGONFLY_WEB_SERVERS=$1 "$(dirname "$0")/render.sh" "$template" "$site"
}

current=$(servers)
while [ -z "$current" ]; do
  echo "edge.sh: $name resolves to no address yet; asking again in ${every} s" >&2
  sleep "$every"
  current=$(servers)
done
render "$current"
echo "edge.sh: web replicas: $current" >&2

nginx "$@" -g 'daemon off;' &
pid=$!
trap 'kill -QUIT "$pid" 2>/dev/null || true' QUIT
trap 'kill -TERM "$pid" 2>/dev/null || true' TERM INT

while kill -0 "$pid" 2>/dev/null; do
  sleep "$every" &
  wait $! || true # a signal ends the wait at once; its trap has run
  next=$(servers)
  if [ -z "$next" ] || [ "$next" = "$current" ]; then
    continue
  fi
  if render "$next" && nginx "$@" -t -q && nginx "$@" -s reload; then
    echo "edge.sh: web replicas now: $next" >&2
    current=$next
  else
    render "$current" || true # SITE as nginx runs it, for its next start
    echo "edge.sh: keeping $current: the configuration for $next did not load" >&2
  fi
done
status=0
wait "$pid" || status=$?
exit "$status"
