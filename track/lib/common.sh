# Sourced by the track's setup, check and solve scripts: where the lab is, and short
# ways to drive it with its own tools. Every script runs on the lab machine itself.
#
# LAB_DIR              the lab's repository (default /workspace/crashlab)
# COMPOSE_PROJECT_NAME its Compose project (default crashlab, as `make up` names it)
# LAB_BIND_ADDRESS     where a setup that has to start the lab again publishes it
#                      (default 0.0.0.0: the tabs reach the VM's ports from outside)

LAB_DIR=${LAB_DIR:-/workspace/crashlab}
COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-crashlab}
LAB_BIND_ADDRESS=${LAB_BIND_ADDRESS:-0.0.0.0}
export LAB_DIR COMPOSE_PROJECT_NAME LAB_BIND_ADDRESS

if [[ ! -x $LAB_DIR/.venv/bin/python ]]; then
  echo "FAIL: The lab's tools are missing ($LAB_DIR/.venv). Run make up in $LAB_DIR."
  exit 1
fi

# docker compose, on the lab's Compose file and project.
dc() { docker compose -f "$LAB_DIR/compose/compose.yaml" -p "$COMPOSE_PROJECT_NAME" "$@"; }

# The levers (python -m crashlab: kill, start, pause, fault...) and the track's own setup and
# checks (python -m crashlab.track), from the lab's directory and its .venv.
lab() { (cd "$LAB_DIR" && .venv/bin/python -m crashlab --project "$COMPOSE_PROJECT_NAME" "$@"); }
track() { (cd "$LAB_DIR" && .venv/bin/python -m crashlab.track --project "$COMPOSE_PROJECT_NAME" "$@"); }

# The one-shot starter, as `make transfer` runs it.
starter() { dc run --rm --no-deps -T starter "$@"; }

# A reference id nobody used yet: each transfer gets its own.
new_reference() { echo "$1-$(date +%s)-$RANDOM"; }

# run_check CHALLENGE: the check, answered within a minute; exit 0 on pass, 1 with FAIL: on failure.
run_check() {
  local rc=0
  (cd "$LAB_DIR" && exec timeout 55 .venv/bin/python -m crashlab.track \
    --project "$COMPOSE_PROJECT_NAME" check "$1") || rc=$?
  if ((rc == 124)); then
    echo "FAIL: The lab did not answer within a minute. Is it up? (make ps, then make up)"
  fi
  ((rc == 0)) || exit 1
}
