#!/bin/sh
# check_disk_usage.sh — Nagios-style disk usage plugin for pd-watchdog (and any Nagios host).
#
# usage: check_disk_usage.sh [-w PERCENT] [-c PERCENT] [PATH ...]
#   -w  warn when a filesystem is at least PERCENT full (default 80)
#   -c  critical when at least PERCENT full (default 90)
#   PATH  mount points or any path on them (default /)
#
# Exit codes (the Nagios plugin API): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
# Output: one status line, then "|" and perfdata per path:
#   DISK WARNING - / 84% used (41G of 49G) | '/'=84%;80;90;0;100
# POSIX sh and `df -P` only, so it runs unchanged on Linux, BSD and macOS.

set -u
warn=80
crit=90

usage() {
    echo "DISK UNKNOWN - $1 (usage: check_disk_usage.sh [-w PCT] [-c PCT] [PATH ...])"
    exit 3
}

is_percent() {
    case "$1" in
        '' | *[!0-9]*) return 1 ;;
    esac
    [ "$1" -le 100 ]
}

while getopts "w:c:h" opt; do
    case "$opt" in
        w) warn=$OPTARG ;;
        c) crit=$OPTARG ;;
        h) usage "help requested" ;;
        *) usage "unknown option" ;;
    esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || set -- /

is_percent "$warn" || usage "-w must be a whole percentage 0-100, got '$warn'"
is_percent "$crit" || usage "-c must be a whole percentage 0-100, got '$crit'"
[ "$warn" -le "$crit" ] || usage "-w ($warn) must not be above -c ($crit)"

state=0
summary=""
perfdata=""
for path in "$@"; do
    # -P: one line per filesystem, fixed columns; -k: 1K blocks everywhere.
    usage_line=$(df -P -k "$path" 2>/dev/null | awk 'NR == 2 {print $2, $3, $5}')
    case "$usage_line" in
        *[0-9]' '*[0-9]' '*[0-9]%) ;;
        *)
            [ "$state" -eq 0 ] && state=3
            summary="$summary, $path: cannot read usage"
            continue
            ;;
    esac
    size_k=${usage_line%% *}
    rest=${usage_line#* }
    used_k=${rest%% *}
    pct=${rest#* }
    pct=${pct%\%}
    if [ "$pct" -ge "$crit" ]; then
        level=2
    elif [ "$pct" -ge "$warn" ]; then
        level=1
    else
        level=0
    fi
    # UNKNOWN (3) only wins over OK; a real CRITICAL beats an unreadable path.
    if [ "$state" -eq 3 ]; then
        [ "$level" -gt 0 ] && state=$level
    elif [ "$level" -gt "$state" ]; then
        state=$level
    fi
    used_g=$(awk -v k="$used_k" 'BEGIN {printf "%.1f", k / 1048576}')
    size_g=$(awk -v k="$size_k" 'BEGIN {printf "%.1f", k / 1048576}')
    summary="$summary, $path $pct% used (${used_g}G of ${size_g}G)"
    perfdata="$perfdata '$path'=$pct%;$warn;$crit;0;100"
done

case "$state" in
    0) word=OK ;;
    1) word=WARNING ;;
    2) word=CRITICAL ;;
    *) word=UNKNOWN ;;
esac
if [ -n "$perfdata" ]; then
    echo "DISK $word - ${summary#, } |${perfdata}"
else
    echo "DISK $word - ${summary#, }"
fi
exit "$state"
