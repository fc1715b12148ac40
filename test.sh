#!/usr/bin/env bash
# Run hutch's whole test suite (unit, integration, e2e) with the venv that
# install.sh made. Integration and e2e tests need root. Extra arguments go to
# pytest:  bash test.sh -k lifecycle -x
#
# HUTCH_TEST_RUNTIME=runc runs the runtime tests against runc instead of
# hutch-runtime; HUTCH_TEST_TIMEOUT sets the per-test timeout (seconds, 300).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$repo"
[[ -x .venv/bin/python ]] || { echo "test.sh: no .venv here: run 'bash install.sh' first" >&2; exit 1; }

rc=0
.venv/bin/python -m pytest -p no:cacheprovider \
    --timeout="${HUTCH_TEST_TIMEOUT:-300}" \
    -o tmp_path_retention_policy=failed \
    "$@" || rc=$?
if [[ $rc -eq 5 ]]; then
    echo "test.sh: no tests ran (pytest exit code 5): that is a failure" >&2
fi
exit "$rc"
