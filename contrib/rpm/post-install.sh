# cte-agent %post ($1: 1 on install, 2 on upgrade). Creates the agent root's folders (0700) that
# are missing, repairs a wider mode, refuses a link or another owner's folder; agent.conf, the pem store (vmd/pem, vmd/keys: the
# keystore creates them at registration), the renewal journal and the logs are never touched.
# DPKG_ROOT is never set by rpm; the package test sets it to run this script against a tree.
ROOT="${DPKG_ROOT:-}/opt/vormetric/DataSecurityExpert/agent"
# The agent's folders: made 0700 when missing; a wider mode is repaired (and said); a link, a
# non-folder or a folder of another owner is refused with the fix (the install stops), as the
# agent itself refuses them. The checks run on a name that is not a link (tested first).
agent_folder() {
    if [ -L "$1" ]; then
        echo "cte-agent: $1 is a symbolic link; the agent never follows one there: remove it (rm $1), then reinstall" >&2
        return 1
    fi
    if [ -e "$1" ] && [ ! -d "$1" ]; then
        echo "cte-agent: $1 is not a folder: remove it, then reinstall" >&2
        return 1
    fi
    if [ ! -d "$1" ]; then
        mkdir -p "$(dirname "$1")"
        mkdir -m 0700 "$1"
        return 0
    fi
    owner=$(stat -c %u "$1")
    if [ "$owner" != "$(id -u)" ]; then
        echo "cte-agent: $1 belongs to uid $owner, who could replace the agent's files: remove it or run chown root:root $1, then reinstall" >&2
        return 1
    fi
    mode=$(stat -c %a "$1")
    if [ "$mode" != 700 ]; then
        chmod 0700 "$1"
        echo "cte-agent: $1 had mode $mode; it is now 0700"
    fi
}
for folder in "$ROOT/vmd/etc" "$ROOT/vmd/run" "$ROOT/vmd/log" "${DPKG_ROOT:-}/var/log/vormetric"; do
    agent_folder "$folder" || exit 1
done
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 2 ]; then
        systemctl try-restart vmd.service >/dev/null 2>&1 || :
    fi
fi
if [ "$1" -eq 1 ]; then
    echo "cte-agent: register this host with register_host (see register_host(1)), then: systemctl enable --now vmd"
fi
