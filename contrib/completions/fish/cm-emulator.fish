complete -c cm-emulator -l listen -d 'Address to listen on; port 0 picks a free port' -r
complete -c cm-emulator -l state-dir -d 'State folder (created if missing): web CA, objects, admin password' -r -F
complete -c cm-emulator -l admin-password -d 'Password of the `admin` user; by default read from or generated into `<state-dir>/admin-password`' -r
complete -c cm-emulator -l hostname -d 'Extra host name or IP address for the web certificate (repeatable)' -r
complete -c cm-emulator -l retire-old-certificate -d 'When a client\'s previous certificate stops logging in after a self renewal: at once (on-renew), when the new certificate first logs in (on-first-login), or at the previous certificate\'s own expiry (at-expiry). The real manager\'s behaviour is not public: this is an invented setting for testing agents against each possibility' -r -f -a "on-renew\t''
on-first-login\t''
at-expiry\t''"
complete -c cm-emulator -l trusted-ca-changes -d 'When a change of the web interface\'s trusted CAs takes effect: at once (immediately, as CM\'s guide says for every version; /api/v1/trusted-cas exists too), or at the next web restart (at-web-restart: an invented setting to test the restart step)' -r -f -a "immediately\t''
at-web-restart\t''"
complete -c cm-emulator -l throttle-agents -d 'Back-pressure to agents, for testing them: `STATUS:EVERY[:SECONDS]` answers one agent request in EVERY (login, the client\'s own record, renewal, log upload) with STATUS (429 or 503) and, with SECONDS, a Retry-After header. An invented test setting' -r
complete -c cm-emulator -l reported-web-port -d 'The web interface\'s port as the API shows it (GET /api/v1/configs/interfaces/web): 443, as on a real manager, whatever --listen says' -r
complete -c cm-emulator -s h -l help -d 'Print help'
complete -c cm-emulator -s V -l version -d 'Print version'
