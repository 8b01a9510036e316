#!/usr/bin/env bash
# Debian's Pebble rebuilt with bench/pebble-patches (lock-order and lock-leak
# fixes; see bench/README.md, "Pebble hangs"), for the throughput benchmark,
# built once: bench/pebble_build.sh [folder, default var/pebble-lockfix].
# Everything comes from the Debian archive: the source package (through a
# deb-src list kept in the folder, the system's lists are not touched) and the
# Go toolchain and libraries it builds with. The tests keep Debian's binary.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
folder="$(mkdir -p "${1:-var/pebble-lockfix}" && cd "${1:-var/pebble-lockfix}" && pwd)"
if [[ -x "$folder/pebble" ]]; then
    exit 0
fi
. /etc/os-release
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends dpkg-dev debhelper dh-golang golang-any \
    golang-github-letsencrypt-challtestsrv-dev golang-github-miekg-dns-dev \
    golang-gopkg-square-go-jose.v2-dev >/dev/null

work="$folder/build"
rm -rf "$work" && mkdir -p "$work/lists/partial"
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
     "http://deb.debian.org/debian $VERSION_CODENAME main" > "$work/sources.list"
apt_source=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
            -o "Dir::State::Lists=$work/lists")
apt-get "${apt_source[@]}" update -qq
(cd "$work" && apt-get "${apt_source[@]}" source --download-only -qq pebble)
dpkg-source -x "$work"/pebble_*.dsc "$work/pebble" >/dev/null
# dpkg-source -x applied Debian's own patches; ours go on top, in order, and
# each must apply cleanly or this stops here.
for patch in $(cat "$here/pebble-patches/series"); do
    patch -d "$work/pebble" -p1 --quiet --forward < "$here/pebble-patches/$patch"
done
(cd "$work/pebble" && dh_auto_configure --buildsystem=golang >/dev/null 2>&1 \
    && dh_auto_build --buildsystem=golang >/dev/null 2>&1)
cp "$(find "$work/pebble" -path '*/bin/pebble' -type f | head -n 1)" "$folder/pebble"
echo "built $folder/pebble (Debian's source with $(wc -l < "$here/pebble-patches/series") patches)"
