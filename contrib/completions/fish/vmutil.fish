complete -c vmutil -s a -d 'The agent to act on; only `vmd` is supported' -r
complete -c vmutil -s d -d 'The external certificate directory (for checkcerts and updatecerts)' -r -F
complete -c vmutil -l agent-root -d 'The agent root (default: $CTE_AGENT_ROOT or /opt/vormetric/DataSecurityExpert/agent)' -r -F
complete -c vmutil -l proxy -d 'The HTTP proxy to the manager for this run: http://[user:password@]host[:port], or `none` to connect directly. Default: agent.conf\'s PROXY, else HTTPS_PROXY/ALL_PROXY/NO_PROXY' -r
complete -c vmutil -l ca -d 'With checkcerts: the external CA added on the manager (PEM); the chain must lead to it, as the manager checks at registration' -r -F
complete -c vmutil -l json -d 'Print JSON instead of text'
complete -c vmutil -l prometheus -d 'With status: print the metrics in the Prometheus text format (what METRICS_FILE holds), for cron-based collectors'
complete -c vmutil -l dry-run -d 'With updatecerts: validate locally and stop before contacting the manager'
complete -c vmutil -s h -l help -d 'Print help (see more with \'--help\')'
