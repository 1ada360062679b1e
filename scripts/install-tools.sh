#!/usr/bin/env bash
# Install the OS tools that the tool tests drive (casacore-tools, wsclean, aoflagger, systemd-analyze,
# and ip from iproute2 for the multi-host tests' network namespaces).
# Best effort: where this is impossible (not root, no apt-get), the tests that need them skip with a reason.
set -u
need=()
command -v showtableinfo >/dev/null || need+=(casacore-tools)
command -v wsclean >/dev/null || need+=(wsclean)
command -v aoflagger >/dev/null || need+=(aoflagger)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v ip >/dev/null || need+=(iproute2)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "install-tools: cannot install ${need[*]} (need root and apt-get); tests that use them will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 \
    || echo "install-tools: apt-get install ${need[*]} failed; tests that use them will skip" >&2
exit 0
