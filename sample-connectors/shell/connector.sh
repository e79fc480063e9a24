#!/bin/sh
# Sample CDE data source in POSIX sh: appends COUNT generated products to the run's
# `output` file through the Container API. HTTP is `busybox wget` (run as `busybox wget`
# so that it works in the busybox image and in a Debian image with the busybox package);
# nothing else beyond POSIX sh, sed, tr and mktemp.
#
#   sh connector.sh                   the run: options from the environment (see README.md)
#   sh connector.sh --health-check    exits 0 at once, touching nothing
#
# Exit status: 0 success; 1 a bad option value or the Container API refused a request
# or did not answer (message on STDERR and, when the API takes it, at `error` level);
# 143 (130) stopped by SIGTERM (SIGINT).
set -u

case "${1:-}" in --health-check) exit 0 ;; esac

API="${CONTAINER_API_URL:-http://cde-container-api}"
API="${API%/}"
COUNT="${COUNT-5}"
PREFIX="${PREFIX-item}"
DELAY_SECS="${DELAY_SECS-0}"
BATCH_SIZE=1000      # records per POST /output/output
TIMEOUT=5            # seconds a request may take, as the Productsup clients allow

written=0            # records the API has accepted
CHILD=               # the request (or sleep) being waited for

# A line on STDERR: the runner records it at `error` level.
say() { printf 'shell-source: %s\n' "$*" >&2; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/shell-source.XXXXXX")" ||
    { say "error: cannot make a temporary directory"; exit 1; }
cleanup() {
    [ -n "$CHILD" ] && kill "$CHILD" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

# The JSON string content for $1: backslashes and quotes escaped, control characters
# (newlines, tabs, ...) made spaces.
json_escape() {
    printf '%s' "$1" | tr '\001-\037\177' ' ' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g'
}

# post PATH FILE [SECS]: POSTs the JSON in FILE; status 0 when the API answered 2xx.
# wget's complaint (e.g. "server returned error: HTTP/1.1 400 Bad Request") is left in
# $TMP/err; 143 means no answer within SECS (default $TIMEOUT). The request runs in the
# background and is waited for, so a SIGTERM is handled at once, not after it.
post() {
    busybox timeout "${3:-$TIMEOUT}" busybox wget -q -Y off -O /dev/null \
        --header 'Content-Type: application/json' --post-file "$2" "$API$1" \
        >/dev/null 2>"$TMP/err" &
    CHILD=$!
    wait "$CHILD" 2>/dev/null    # (dash tells of a job killed by a signal on STDERR)
    set -- $?
    CHILD=
    return "$1"
}

# log LEVEL MESSAGE [SECS]: POST /logs/LEVEL.
log() {
    printf '{"message":"%s"}' "$(json_escape "$2")" >"$TMP/log"
    post "/logs/$1" "$TMP/log" "${3:-}"
}

# Why the last request failed, in words.
why() {
    case "$1" in
        143) echo "no answer within $TIMEOUT s" ;;
        *) set -- "$(tr '\n' ' ' <"$TMP/err" | sed -e 's/^wget: //' -e 's/ *$//')"
           echo "${1:-wget failed}" ;;
    esac
}

# api_failed STATUS WHAT: the Container API refused WHAT or did not answer. Never retried:
# the message goes to STDERR (recorded even when the API is gone) and, if the API
# still takes it, to the error log; then exit 1.
api_failed() {
    set -- "$2 failed: $(why "$1") (after $written of $COUNT records)"
    say "error: $1"
    log error "$1" 2 || true
    exit 1
}

# invalid MESSAGE: a bad option value. Logged at `error` level (on STDERR only when the
# API does not take it); exit 1.
invalid() {
    log error "$1" || say "error: $1"
    exit 1
}

# on_signal NAME STATUS: stop at once, say so, exit 128 + the signal's number.
on_signal() {
    trap - TERM INT    # a second signal ends it at once; no '' (children would ignore it too)
    [ -n "$CHILD" ] && kill "$CHILD" 2>/dev/null
    CHILD=
    set -- "stopped by SIG$1 after $written of $COUNT records" "$2"
    log warning "$1" 1 || say "$1"
    exit "$2"
}
trap 'on_signal TERM 143' TERM
trap 'on_signal INT 130' INT

# --- options ------------------------------------------------------------------------
case "$COUNT" in
    '' | *[!0-9]* | 0*) invalid "COUNT must be a whole number from 1 to 100000, got \"$COUNT\"" ;;
esac
[ "${#COUNT}" -le 6 ] && [ "$COUNT" -le 100000 ] ||
    invalid "COUNT must be a whole number from 1 to 100000, got \"$COUNT\""
case "$PREFIX" in
    '') invalid "PREFIX must not be empty" ;;
    *[[:cntrl:]]*) invalid "PREFIX must not contain control characters (newlines, tabs)" ;;
esac
[ "${#PREFIX}" -le 100 ] || invalid "PREFIX must be at most 100 characters long"
case "$DELAY_SECS" in
    [0-9] | [1-5][0-9] | 60) ;;
    *) invalid "DELAY_SECS must be a whole number from 0 to 60, got \"$DELAY_SECS\"" ;;
esac
P="$(json_escape "$PREFIX")"   # quotes and backslashes in PREFIX are fine, escaped

# --- the run ------------------------------------------------------------------------
# write_batch FROM TO: the body of POST /output/output with records FROM..TO in $TMP/body.
write_batch() {
    i=$1
    {
        printf '{"data":['
        while [ "$i" -le "$2" ]; do
            [ "$i" -gt "$1" ] && printf ','
            cents=$(( (i * 7919) % 99900 + 99 ))    # 0.99 .. 999.98, the same every run
            printf '{"id":"%s-%d","title":"%s %d","price":%d.%02d}' \
                "$P" "$i" "$P" "$i" $((cents / 100)) $((cents % 100))
            i=$((i + 1))
        done
        printf ']}'
    } >"$TMP/body"
}

log info "writing $COUNT records with prefix \"$PREFIX\"" || api_failed $? "POST /logs/info"
from=1
while [ "$from" -le "$COUNT" ]; do
    to=$((from + BATCH_SIZE - 1))
    [ "$to" -gt "$COUNT" ] && to=$COUNT
    write_batch "$from" "$to"
    post /output/output "$TMP/body" || api_failed $? "POST /output/output (records $from to $to)"
    written=$to
    from=$((to + 1))
    if [ "$DELAY_SECS" -gt 0 ] && [ "$from" -le "$COUNT" ]; then
        sleep "$DELAY_SECS" >/dev/null 2>&1 &
        CHILD=$!
        wait "$CHILD" 2>/dev/null
        CHILD=
    fi
done
log success "wrote $written records" || api_failed $? "POST /logs/success"
exit 0
