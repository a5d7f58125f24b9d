# cte-agent %post ($1: 1 on install, 2 on upgrade). Creates the agent root's folders (0700) that
# are missing, never changing one that exists; agent.conf, the pem store (vmd/pem, vmd/keys: the
# keystore creates them at registration), the renewal journal and the logs are never touched.
ROOT=/opt/vormetric/DataSecurityExpert/agent
for folder in "$ROOT/vmd/etc" "$ROOT/vmd/run" "$ROOT/vmd/log" /var/log/vormetric; do
    if [ ! -d "$folder" ] && [ ! -L "$folder" ]; then
        mkdir -p "$(dirname "$folder")"
        mkdir -m 0700 "$folder"
    fi
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
