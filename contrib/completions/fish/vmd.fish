complete -c vmd -l agent-root -d 'The agent root (default: $CTE_AGENT_ROOT or /opt/vormetric/DataSecurityExpert/agent)' -r -F
complete -c vmd -l log-dir -d 'The folder of the log file vorvmd_root.log (default: agent.conf\'s LOG_DIR, else /var/log/vormetric for the product\'s agent root, else <agent root>/vmd/log)' -r -F
complete -c vmd -l proxy -d 'The HTTP proxy to the manager for this run: http://[user:password@]host[:port], or `none` to connect directly. Default: agent.conf\'s PROXY, else HTTPS_PROXY/ALL_PROXY/NO_PROXY' -r
complete -c vmd -l once -d 'Run one renewal check and a heartbeat now, then exit'
complete -c vmd -s h -l help -d 'Print help'
