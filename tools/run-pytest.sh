#!/usr/bin/env bash
# Runs the suite; a run that collected no tests (pytest exit 5) is a failure, not a pass.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/../.venv/bin/pytest" "$@"
rc=$?
if [[ $rc -eq 5 ]]; then
  echo "run-pytest: no tests were collected; that is a failure" >&2
  exit 1
fi
exit $rc
