#!/usr/bin/env bash
# Copies the header-only dependencies and GoogleTest's sources from this machine's Debian
# packages into .deps/ (ignored by git) so a build works on a machine without a network,
# such as the lent GPU machine. Nothing here is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .deps && mkdir -p .deps/include
cp -r /usr/include/nlohmann /usr/include/CLI /usr/include/fmt /usr/include/toml++ .deps/include/
cp -r /usr/src/googletest .deps/googletest
du -sh .deps
