#!/usr/bin/env bash
# The watch that does not depend on the Dagster daemon (README, "Production" > "Alerts").
# Run it from a systemd timer (deploy/data-platform-watch.timer) or cron, preferably on
# another machine. It reads the settings file the services read, and posts to the same
# webhook as the alerts sensor when:
#   1. the daemon's heartbeats are stale (`dagster-daemon liveness-check`), or
#   2. a source has had no successful load for FRESHNESS_HOURS (the tracking tables,
#      which the daemon does not write: a dead daemon cannot hide its own silence).
# Exit status 1 when something is wrong (so the timer's unit shows it failed), 0 otherwise.
set -uo pipefail

ENV_FILE=${ENV_FILE:-/etc/data-platform/env}
# shellcheck disable=SC1090
[ -r "$ENV_FILE" ] && set -a && . "$ENV_FILE" && set +a
DAGSTER_BIN=${DAGSTER_BIN:-/opt/data-platform/.venv/bin}
FRESHNESS_HOURS=${FRESHNESS_HOURS:-26}
problems=()

if ! "$DAGSTER_BIN/dagster-daemon" liveness-check >/dev/null 2>&1; then
    problems+=("the Dagster daemon has not sent a heartbeat recently (sensors, schedules and the run queue are stopped)")
fi

# --- freshness query (tests/integration/test_watch_script.py runs it) ---
FRESHNESS_SQL="
SELECT coalesce(family, source_name) || ' (last success ' || to_char(max(finished_at), 'YYYY-MM-DD HH24:MI TZ') || ')'
FROM data_platform.ingestion_metadata
WHERE status = 'success'
GROUP BY coalesce(family, source_name)
HAVING max(finished_at) < now() - make_interval(hours => :hours)
ORDER BY 1"
# --- end ---

stale=$(PGHOST=${PLATFORM_PGHOST:-${PGHOST:-}} PGPORT=${PLATFORM_PGPORT:-${PGPORT:-5432}} \
    PGUSER=${PLATFORM_PGUSER:-${PGUSER:-}} PGPASSWORD=${PLATFORM_PGPASSWORD:-${PGPASSWORD:-}} \
    PGDATABASE=${PLATFORM_PGDATABASE:-${PGDATABASE:-}} \
    psql -X -q -At -v ON_ERROR_STOP=1 -v hours="$FRESHNESS_HOURS" <<<"$FRESHNESS_SQL" 2>&1)
status=$?
if [ $status -ne 0 ]; then
    problems+=("the tracking database could not be queried: $(head -n1 <<<"$stale")")
elif [ -n "$stale" ]; then
    problems+=("no successful load for ${FRESHNESS_HOURS} h: $(paste -sd ';' <<<"$stale")")
fi

[ ${#problems[@]} -eq 0 ] && exit 0
message="data platform watch on $(hostname): $(printf '%s. ' "${problems[@]}")"
echo "$message" >&2
if [ -n "${ALERT_WEBHOOK_URL:-}" ]; then
    # The URL goes to curl through a config file on stdin, not argv (visible in ps).
    payload=$(python3 -c 'import json, sys; print(json.dumps({"text": ":rotating_light: " + sys.argv[1]}))' "$message")
    printf 'url = "%s"\n' "$ALERT_WEBHOOK_URL" | curl -fsS -m 10 -o /dev/null -K - \
        -H 'Content-Type: application/json' --data-binary "$payload" \
        || echo "posting to the webhook failed" >&2
fi
exit 1
