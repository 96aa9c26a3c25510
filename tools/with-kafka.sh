#!/usr/bin/env bash
# Run a command with a Kafka broker: the one named by KAFKA_BOOTSTRAP_SERVERS when it is set, else the local
# broker of tools/kafka/kafka.sh, started for the command and stopped after it (unless it was already
# running). Exits with the command's status.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kafka="$here/kafka/kafka.sh"

if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
  echo "with-kafka: using the broker at KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS" >&2
  exec "$@"
fi

started=0
if ! "$kafka" status >/dev/null 2>&1; then
  started=1
fi
line="$("$kafka" up | tail -1)" || { echo "with-kafka: the local broker did not start (see above)" >&2; exit 1; }
export "$line"
stop() { if [[ $started -eq 1 ]]; then "$kafka" down; fi; }
trap 'stop; exit 130' INT TERM
"$@"
rc=$?
stop
exit $rc
