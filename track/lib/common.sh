# Sourced by the track's setup, check and solve scripts: where the lab is, and
# short ways to drive it. Every script runs on the lab machine itself.
#
# LAB_DIR              the lab's repository (default /workspace/crashlab)
# COMPOSE_PROJECT_NAME its Compose project (default crashlab, as `make up` names it)

LAB_DIR=${LAB_DIR:-/workspace/crashlab}
COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-crashlab}
export LAB_DIR COMPOSE_PROJECT_NAME

# docker compose, on the lab's Compose file and project.
dc() { docker compose -f "$LAB_DIR/compose/compose.yaml" -p "$COMPOSE_PROJECT_NAME" "$@"; }

# The questions a check asks of Temporal, the bank and Docker (track/lib/labcheck.py).
labcheck() { python3 "$LAB_DIR/track/lib/labcheck.py" "$@"; }

# The one-shot starter, as `make transfer` runs it.
starter() { dc run --rm --no-deps -T starter "$@"; }

# bank METHOD PATH [JSON]: one call to the bank's HTTP API. The hosted lab is published
# on 0.0.0.0, so its fault switch needs the control token `make up` saved (or LAB_TOKEN).
bank() {
  local url token=${LAB_TOKEN:-}
  url=$(labcheck bank-url)
  if [[ -z $token && -f $LAB_DIR/build/bank-control-token ]]; then
    token=$(<"$LAB_DIR/build/bank-control-token")
  fi
  curl -fsS -X "$1" "$url$2" -H 'content-type: application/json' \
    ${token:+-H "Authorization: Bearer $token"} ${3:+-d "$3"} >/dev/null
}

# wait_healthy SERVICE [SECONDS]: until the service's containers pass their healthcheck.
wait_healthy() {
  local deadline=$((SECONDS + ${2:-60})) ids status
  while :; do
    ids=$(dc ps --quiet "$1")
    status=none
    if [[ -n $ids ]]; then
      # shellcheck disable=SC2086 # one argument per container
      status=$(docker inspect -f '{{.State.Health.Status}}' $ids 2>/dev/null | sort -u | xargs)
    fi
    [[ $status == healthy ]] && return 0
    if ((SECONDS > deadline)); then
      echo "$1 did not become healthy within ${2:-60} s (it is: $status)." >&2
      return 1
    fi
    sleep 0.2
  done
}

# The lab's worker, running and ready, and the bank without faults.
worker_up() {
  dc start worker >/dev/null
  wait_healthy worker
}

# A reference id nobody used yet: each transfer gets its own.
new_reference() { echo "$1-$(date +%s)-$RANDOM"; }

# run_check CHALLENGE: the check, answered within a minute; exit 0 on pass, 1 with FAIL: on failure.
run_check() {
  local rc=0
  timeout 55 python3 "$LAB_DIR/track/lib/labcheck.py" check "$1" || rc=$?
  if ((rc == 124)); then
    echo "FAIL: The lab did not answer within a minute. Is it up? (make ps, then make up)"
  fi
  ((rc == 0)) || exit 1
}
