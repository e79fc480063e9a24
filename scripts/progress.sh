# Sourced by the build scripts: run a long step so that it is never silent.
#
# run_step LABEL LOG COMMAND...
#   Runs COMMAND with its output appended to LOG. On a terminal one status line shows
#   LABEL, the seconds so far and COMMAND's latest output line; elsewhere (a log, CI) a
#   line every 15 seconds. Then one line with the time it took; on failure the last
#   lines of LOG. Returns COMMAND's status.
run_step() {
    local label="$1" log="$2" start=$SECONDS pid status=0 last told=0 elapsed
    shift 2
    "$@" >>"$log" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        elapsed=$((SECONDS - start))
        if [ -t 2 ]; then
            last="$(tail -n 1 "$log" 2>/dev/null | tr -d '\r\t' | cut -c1-70)"
            printf '\r\033[K%s [%ds] %s' "$label" "$elapsed" "$last" >&2
        elif [ "$elapsed" -ge $((told + 15)) ]; then
            told=$elapsed
            printf '%s: still going after %ds\n' "$label" "$elapsed" >&2
        fi
        # Short steps end with little delay, long ones are looked at once a second.
        if [ "$elapsed" -lt 2 ]; then sleep 0.1; else sleep 1; fi
    done
    wait "$pid" || status=$?
    [ -t 2 ] && printf '\r\033[K' >&2
    if [ "$status" -eq 0 ]; then
        printf '%s: done in %ds\n' "$label" $((SECONDS - start)) >&2
    else
        tail -n 30 "$log" >&2
        printf '%s: failed after %ds (status %d; full output in %s)\n' \
            "$label" $((SECONDS - start)) "$status" "$log" >&2
    fi
    return "$status"
}
