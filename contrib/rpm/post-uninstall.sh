# cte-agent %postun ($1: 0 on erase, 1 on upgrade). Erasing never deletes agent.conf, the pem
# store, its keys, the renewal journal or the logs: they hold this host's identity.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
ROOT=/opt/vormetric/DataSecurityExpert/agent
if [ "$1" -eq 0 ] && { [ -d "$ROOT/vmd" ] || [ -d /var/log/vormetric ]; }; then
    echo "cte-agent: erase leaves this host's identity and logs in place:"
    echo "  $ROOT/vmd/etc/agent.conf, $ROOT/vmd/pem, $ROOT/vmd/keys, $ROOT/vmd/run, /var/log/vormetric"
    echo "  Once the client is deleted on the manager, remove them with:"
    echo "  rm -rf $ROOT/vmd /var/log/vormetric/vorvmd_root.log*"
fi
