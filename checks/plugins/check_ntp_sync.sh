#!/bin/sh
# check_ntp_sync.sh — Nagios-style plugin: is the system clock synchronized?
#
# usage: check_ntp_sync.sh
#
# Asks systemd-timedated (`timedatectl show`), which reports the kernel's own "clock is
# synchronized" flag, whichever daemon keeps time: systemd-timesyncd, chronyd or ntpd.
#
# Exit codes (the Nagios plugin API):
#   0 OK        the clock is synchronized
#   2 CRITICAL  it is not (time sync off, or no time server reached yet)
#   3 UNKNOWN   it cannot tell: no timedatectl (not a systemd host), timedatectl failed
#               (no D-Bus, timedated not reachable, "not booted with systemd"), or an
#               answer it does not understand. Never OK when it cannot see the clock.
# POSIX sh and shell built-ins only, apart from timedatectl itself.

set -u

if ! command -v timedatectl >/dev/null 2>&1; then
    echo "NTP UNKNOWN - timedatectl not found: cannot tell whether the clock is synchronized (not a systemd host?)"
    exit 3
fi

answer=$(timedatectl show -p NTPSynchronized -p NTP 2>&1)
status=$?
if [ "$status" -ne 0 ]; then
    first_line=$(printf '%s\n' "$answer" | while IFS= read -r line; do
        [ -n "$line" ] && { printf '%s' "$line"; break; }
    done)
    echo "NTP UNKNOWN - timedatectl failed (exit $status): ${first_line:-no output}"
    exit 3
fi

synchronized=""
ntp=""
while IFS='=' read -r key value; do
    case "$key" in
        NTPSynchronized) synchronized=$value ;;
        NTP) ntp=$value ;;
    esac
done <<EOF
$answer
EOF

case "$synchronized" in
    yes)
        echo "NTP OK - system clock synchronized"
        exit 0
        ;;
    no)
        if [ "$ntp" = no ]; then
            echo "NTP CRITICAL - system clock not synchronized: network time sync is off (timedatectl set-ntp true, or start chronyd/ntpd)"
        else
            echo "NTP CRITICAL - system clock not synchronized (no time server reached yet?)"
        fi
        exit 2
        ;;
    *)
        echo "NTP UNKNOWN - timedatectl gave no NTPSynchronized=yes|no: ${answer:-empty output}"
        exit 3
        ;;
esac
