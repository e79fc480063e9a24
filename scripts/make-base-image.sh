#!/usr/bin/env bash
# Build a local stand-in for a public base image when no registry can be reached: a
# minimal Debian/Ubuntu root filesystem with the flavour's packages and ca-certificates,
# made with debootstrap from this machine's own apt mirror and imported with
# `docker import`. The flavour (env FLAVOUR) says which public image it stands in for:
#
#   FLAVOUR   stands in for     packages                    default TAG                 CMD
#   python    python:3.12-slim  python3, ca-certificates    cde-local/python:3-<suite>  python3
#   node      node:20-slim      nodejs, ca-certificates     cde-local/node:<suite>      node
#   shell     busybox:1.36      busybox, ca-certificates    cde-local/busybox:<suite>   sh
#
# python is the default. The node flavour has the suite's own nodejs (bookworm: 18, no
# npm); the shell flavour has /bin/sh from the suite (dash on Debian) and the busybox
# applets through `busybox APPLET` (e.g. `busybox wget`), not as plain commands.
#
# Usage: scripts/make-base-image.sh [TAG]        (default TAG: per flavour, above)
# Env:   FLAVOUR  python (default) | node | shell
#        SUITE    distribution suite   (default: VERSION_CODENAME from /etc/os-release)
#        MIRROR   apt mirror URI       (default: taken from this machine's apt sources)
#
# Every image made is labelled cde.base=true (and cde.base.suite=<suite>). Idempotent:
# if TAG already exists it is not rebuilt. The tag is printed on the last line of stdout;
# everything else goes to stderr.
set -euo pipefail

log() { echo "make-base-image: $*" >&2; }
# shellcheck source=scripts/progress.sh
. "$(dirname "${BASH_SOURCE[0]}")/progress.sh"
die() { log "error: $*"; exit 1; }

command -v docker >/dev/null || die "docker is not installed"

# shellcheck disable=SC1091
SUITE="${SUITE:-$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")}"
[ -n "$SUITE" ] || die "cannot tell the suite: no VERSION_CODENAME in /etc/os-release (set SUITE=...)"
FLAVOUR="${FLAVOUR:-python}"
case "$FLAVOUR" in
    python) PACKAGES=python3,ca-certificates; DEFAULT_TAG="cde-local/python:3-${SUITE}"; CMD='["python3"]' ;;
    node)   PACKAGES=nodejs,ca-certificates;  DEFAULT_TAG="cde-local/node:${SUITE}";       CMD='["node"]' ;;
    shell)  PACKAGES=busybox,ca-certificates; DEFAULT_TAG="cde-local/busybox:${SUITE}";    CMD='["sh"]' ;;
    *) die "unknown FLAVOUR=$FLAVOUR (python, node or shell)" ;;
esac
TAG="${1:-$DEFAULT_TAG}"

if docker image inspect "$TAG" >/dev/null 2>&1; then
    log "$TAG already exists"
    echo "$TAG"
    exit 0
fi

# The machine's apt mirror: prefer the source that serves "$SUITE" itself (not
# "$SUITE-security"), from deb822 *.sources files, one-line *.list files and
# /etc/apt/sources.list.
find_mirror() {
    local files=() f
    for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list; do
        [ -f "$f" ] && files+=("$f")
    done
    [ ${#files[@]} -gt 0 ] || return 0
    awk -v suite="$SUITE" '
        function flush() {
            if (uris != "" && types ~ /(^|[ \t])deb([ \t]|$)/ && enabled != "no") {
                split(uris, u, /[ \t]+/)
                if ((" " suites " ") ~ (" " suite " ")) { if (best == "") best = u[1] }
                else if (any == "") any = u[1]
            }
            uris = ""; suites = ""; types = ""; enabled = ""
        }
        FNR == 1 { flush() }
        /^[ \t]*#/ { next }
        /^[ \t]*$/ { flush(); next }
        /^URIs:/    { sub(/^URIs:[ \t]*/, "");    uris = $0;   next }
        /^Suites:/  { sub(/^Suites:[ \t]*/, "");  suites = $0; next }
        /^Types:/   { sub(/^Types:[ \t]*/, "");   types = $0;  next }
        /^Enabled:/ { sub(/^Enabled:[ \t]*/, ""); enabled = tolower($0); next }
        $1 == "deb" {   # one-line format: deb [options] uri suite components...
            i = 2
            if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; i++ }
            if ($(i + 1) == suite) { if (best == "") best = $i }
            else if (any == "") any = $i
        }
        END { flush(); print (best != "" ? best : any) }
    ' "${files[@]}"
}
MIRROR="${MIRROR:-$(find_mirror)}"
[ -n "$MIRROR" ] || die "no apt mirror found in /etc/apt/sources* (set MIRROR=...)"

if ! command -v debootstrap >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing debootstrap"
        apt-get install -y -qq --no-install-recommends debootstrap >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null 2>&1 &&
              apt-get install -y -qq --no-install-recommends debootstrap >/dev/null 2>&1; } ||
            die "could not install debootstrap"
    else
        die "debootstrap is needed: apt-get install -y debootstrap (as root)"
    fi
fi
[ "$(id -u)" = 0 ] || die "debootstrap must run as root"

ROOTFS="$(mktemp -d "${TMPDIR:-/var/tmp}/cde-base.XXXXXX")"
cleanup() {
    # debootstrap may leave /proc or /sys mounted inside the target when it fails:
    # unmount (deepest first) before removing anything.
    awk -v r="$ROOTFS" 'index($2, r "/") == 1 { print $2 }' /proc/mounts | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
    if awk -v r="$ROOTFS" 'index($2, r "/") == 1 { found = 1 } END { exit !found }' /proc/mounts; then
        log "warning: $ROOTFS still has mounts, not removed"
    else
        rm -rf --one-file-system "$ROOTFS"
    fi
    rm -f "$ROOTFS.log"
}
trap cleanup EXIT

log "debootstrap $SUITE ($FLAVOUR: $PACKAGES) from $MIRROR into $ROOTFS"
start=$SECONDS
run_step "make-base-image: debootstrap (about a minute)" "$ROOTFS.log" \
    debootstrap --variant=minbase --include="$PACKAGES" \
        "$SUITE" "$ROOTFS" "$MIRROR" || die "debootstrap failed"

# Trim what a container does not need (docs, translations, caches, apt lists, device
# nodes: the engine provides /dev).
rm -rf "${ROOTFS:?}"/usr/share/doc/* "${ROOTFS:?}"/usr/share/man/* "${ROOTFS:?}"/usr/share/info/* \
       "${ROOTFS:?}"/usr/share/locale/*/ "${ROOTFS:?}"/var/cache/debconf/*-old \
       "${ROOTFS:?}"/var/cache/apt/*.bin "${ROOTFS:?}"/var/cache/apt/archives/*.deb \
       "${ROOTFS:?}"/var/lib/apt/lists/* "${ROOTFS:?}"/var/log/*.log "${ROOTFS:?}"/dev/*

import_rootfs() {
    tar -C "$ROOTFS" --numeric-owner -c . | docker import \
        --change "CMD $CMD" \
        --change 'ENV LANG=C.UTF-8' \
        --change 'LABEL cde.base=true' \
        --change "LABEL cde.base.suite=$SUITE" \
        --message "cde local $FLAVOUR base ($SUITE, debootstrap minbase)" \
        - "$TAG"
}
run_step "make-base-image: importing as $TAG" "$ROOTFS.log" import_rootfs ||
    die "docker import failed"
log "done in $((SECONDS - start))s"
echo "$TAG"
