# cte-agent %preun ($1: 0 on erase, 1 on upgrade): stop and disable vmd on erase only.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload disable --now vmd.service >/dev/null 2>&1 || :
fi
