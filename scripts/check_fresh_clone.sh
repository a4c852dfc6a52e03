#!/usr/bin/env bash
# Check the README's promise: from a fresh clone in a new directory, with no environment, the two
# commands work. Usage: scripts/check_fresh_clone.sh [main|test|both]   (default: both)
set -euo pipefail
what="${1:-both}"
src="$(cd "$(dirname "$0")/.." && pwd)"
dir="$(mktemp -d)/carbonsync"
git clone --quiet "$src" "$dir"
cd "$dir"
echo "fresh clone at $dir"
if [[ "$what" == test || "$what" == both ]]; then
  /usr/bin/time -f "make test: %e s" make test
fi
if [[ "$what" == main || "$what" == both ]]; then
  /usr/bin/time -f "make main: %e s" make main
fi
