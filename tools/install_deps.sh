#!/bin/sh
# Installs routelab's Debian build dependencies when one is missing. Needs root (CI runs as
# root); otherwise prints the apt-get line to run.
PKGS="gcc make libopenblas-openmp-dev libpcre2-dev libutf8proc-dev libcjson-dev libinih-dev libxxhash-dev libdnnl-dev gnuplot-nox python3 clang libclang-rt-14-dev libomp-14-dev"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "routelab: missing Debian packages:$missing" >&2
    echo "routelab: run: sudo apt-get update && sudo apt-get install -y$missing" >&2
    exit 1
fi
echo "routelab: installing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get install -y -qq $missing >/dev/null
