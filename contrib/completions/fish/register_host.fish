complete -c register_host -l agent-root -d 'The agent root (default: $CTE_AGENT_ROOT or /opt/vormetric/DataSecurityExpert/agent)' -r -F
complete -c register_host -l token -d 'The registration token created on the manager; `-` reads one line from standard input. Prefer --token-file or REG_TOKEN: a token on the command line is visible to other users' -r
complete -c register_host -l token-file -d 'A file holding the registration token (first line; links are not followed; warns when group or others can read it)' -r -F
complete -c register_host -l agent -d 'The name to register this host under (default: the host name)' -r
complete -c register_host -l description -d 'A description shown on the manager' -r
complete -c register_host -l extcertdir -d 'The external certificate directory (default: $EXTERNAL_CERT_DIR)' -r -F
complete -c register_host -l cm-ca -d 'A PEM file of CA certificates the manager\'s web certificate must chain to' -r -F
complete -c register_host -l cm-fingerprint -d 'The SHA-256 fingerprint of the manager\'s web certificate (hex, colons optional)' -r
complete -c register_host -l key-protector -d 'Where the identity\'s data key is sealed (written to agent.conf as KEY_PROTECTOR): `auto` (the TPM when the host has one, DPAPI on Windows, else a key file), `tpm`, `dpapi` (Windows) or `file`. Default: agent.conf\'s, else auto' -r -f -a "auto\t''
tpm\t''
dpapi\t''
file\t''"
complete -c register_host -l tpm-tcti -d 'How the TPM is reached, as a tpm2-tss TCTI (written to agent.conf as TPM_TCTI). Default: device:/dev/tpmrm0' -r
complete -c register_host -l tpm-pcrs -d 'Bind the TPM-sealed key to these PCRs of the SHA-256 bank, for example `7` (Secure Boot state); written to agent.conf as TPM_PCRS. A firmware, boot loader or kernel update that changes them locks the key out until the host registers again. Default: no binding' -r
complete -c register_host -l proxy -d 'The HTTP proxy to the manager for this run (not stored in agent.conf): http://[user:password@]host[:port], or `none` to connect directly. Default: agent.conf\'s PROXY, else HTTPS_PROXY/ALL_PROXY/NO_PROXY' -r
complete -c register_host -l shred-input -d 'After success, overwrite and remove the three input files (only the very files that were read: a file replaced or turned into a link since is left alone, with a WARNING; the exit code stays 0 as the registration is done)'
complete -c register_host -l force -d 'Replace an existing registration (the old identity stays until the new one is active)'
complete -c register_host -l json -d 'Print the result as JSON'
complete -c register_host -s h -l help -d 'Print help'
