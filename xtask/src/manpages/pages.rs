//! What each man page says beyond the clap definition: exit status, environment, files,
//! examples, see also. Kept beside the generator; the options themselves come from clap.

/// One binary's page.
pub(super) struct Page {
    /// The command's name (and the page's file name).
    pub(super) name: &'static str,
    /// Its clap definition.
    pub(super) command: fn() -> clap::Command,
    /// The sections after the options, in order.
    pub(super) sections: Vec<(&'static str, Vec<Block>)>,
}

/// A piece of a section.
pub(super) enum Block {
    /// A paragraph.
    Paragraph(String),
    /// A term (bold) and its explanation.
    Item(String, String),
    /// What the example does, then the command lines.
    Example(String, String),
}

fn paragraph(text: &str) -> Block {
    Block::Paragraph(text.to_string())
}

fn item(term: &str, text: &str) -> Block {
    Block::Item(term.to_string(), text.to_string())
}

fn example(what: &str, commands: &str) -> Block {
    Block::Example(what.to_string(), commands.to_string())
}

const ROOT: &str = "/opt/vormetric/DataSecurityExpert/agent";

/// The exit codes every agent binary shares (README, "Exit codes").
fn agent_exit_status(intro: &str) -> Vec<Block> {
    // The one table: agent::ExitStatus::ALL (the README's table is checked against it).
    let mut blocks = vec![paragraph(intro)];
    for status in vmutil::ExitStatus::ALL {
        let meaning = status.meaning();
        let mut text = meaning[..1].to_uppercase();
        text.push_str(&meaning[1..]);
        text.push('.');
        blocks.push(item(&status.code().to_string(), &text));
    }
    blocks
}

fn agent_root_variable() -> Block {
    item(
        "CTE_AGENT_ROOT",
        &format!("The agent root when --agent-root is not given (default {ROOT})."),
    )
}

fn proxy_variables() -> Vec<Block> {
    vec![
        item(
            "https_proxy, HTTPS_PROXY, all_proxy, ALL_PROXY",
            "The HTTP proxy to the manager (first set wins) when neither --proxy nor PROXY in agent.conf decides. HTTP_PROXY is never used: the manager is https.",
        ),
        item(
            "no_proxy, NO_PROXY",
            "Comma-separated hosts reached directly, as curl reads them.",
        ),
    ]
}

/// The files under the agent root that the agent binaries read or write.
fn agent_files() -> Vec<Block> {
    vec![
        item(
            &format!("{ROOT}/vmd/bin/"),
            "register_host, vmd and vmutil, as the packages install them (on PATH through links in /usr/bin, .deb, or /etc/profile.d/cte-agent.sh, .rpm).",
        ),
        item(
            "AGENT_ROOT/vmd/etc/agent.conf",
            "The manager URL, the client id, EXTERNAL_CERT_DIR, the trust (CM_CA_FILE or CM_FINGERPRINT), renewal settings, PROXY, LOG_DIR, METRICS_FILE. Written by register_host; comments and unknown keys are kept.",
        ),
        item(
            "AGENT_ROOT/vmd/etc/cm-ca.pem",
            "The copy of the manager's CA given to register_host with --cm-ca.",
        ),
        item(
            "AGENT_ROOT/vmd/pem/",
            "The pem store (mode 0700): agent.pem (the current chain), current (the pointer to the current and previous generations), generations/ (each certificate and its re-encrypted key).",
        ),
        item(
            "AGENT_ROOT/vmd/keys/",
            "The random keys that encrypt the stored private keys (mode 0700, files 0600).",
        ),
        item(
            "/var/log/vormetric/vorvmd_root.log",
            "The log, in the product's line shape, rotated by size (.1 to .5); for an agent root other than the default, AGENT_ROOT/vmd/log/vorvmd_root.log. LOG_DIR in agent.conf moves it.",
        ),
        item(
            "AGENT_ROOT/vmd/run/status.json",
            "The last check, for scripts (what vmutil status shows).",
        ),
        item(
            "AGENT_ROOT/vmd/run/renewal-journal.json",
            "A renewal in flight; the next check finishes or undoes it. Never delete it by hand.",
        ),
        item(
            "AGENT_ROOT/vmd/run/vmd.pid, AGENT_ROOT/vmd/run/renewal.lock",
            "The daemon's pid (locked while it runs) and the lock held for a whole renewal check.",
        ),
        item(
            "EXTERNAL_CERT_DIR/client_cert.pem, client_key.pem, passphrase",
            "The external certificate set: the chain (leaf first), the passphrase-encrypted key and its passphrase.",
        ),
    ]
}

fn see_also(others: &str) -> Vec<Block> {
    vec![paragraph(&format!(
        "{others}; /usr/share/doc/cte-agent/ and the project's docs/operations.md (running vmd, logs, message ids, upgrades, expiry recovery)."
    ))]
}

/// The four pages.
pub(super) fn all() -> Vec<Page> {
    vec![register_host(), vmd(), vmutil(), cm_emulator()]
}

fn register_host() -> Page {
    let spellings = register_host::PRODUCT_FLAGS
        .iter()
        .map(|flag| format!("-{flag}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut environment = vec![
        item(
            "REG_TOKEN",
            "The registration token, when neither --token nor --token-file is given. Prefer it (or --token-file, or --token -) to --token T, which every local user can read in ps.",
        ),
        item(
            "EXTERNAL_CERT_DIR",
            "The external certificate directory when --extcertdir is not given; saved in agent.conf.",
        ),
        agent_root_variable(),
    ];
    environment.extend(proxy_variables());
    Page {
        name: "register_host",
        command: register_host::command,
        sections: vec![
            (
                "PRODUCT SPELLINGS",
                vec![paragraph(&format!(
                    "The product's single-dash long options are accepted too, with = before the value: {spellings}. For example -token=T -agent=host1 -extcertdir=/root/cert_files."
                ))],
            ),
            (
                "EXIT STATUS",
                agent_exit_status(
                    "If registration fails, the agent root is left as it was; if the manager had already accepted, the message says so with the client id.",
                ),
            ),
            ("ENVIRONMENT", environment),
            ("FILES", agent_files()),
            (
                "EXAMPLES",
                vec![
                    example(
                        "Check the set offline, then register with the token in a private file:",
                        "vmutil -a vmd -d /root/cert_files --ca ext-ca.pem checkcerts\ninstall -m 600 /dev/null /root/regtoken && printf '%s\\n' \"$TOKEN\" > /root/regtoken\nregister_host --token-file /root/regtoken --extcertdir /root/cert_files --cm-ca /root/cm-web-ca.pem cm.example.com",
                    ),
                    example(
                        "The product's spellings, pinning the manager's web certificate instead of a CA file:",
                        "REG_TOKEN=... register_host cm.example.com -agent=web1 -description=\"web server\" -extcertdir=/root/cert_files --cm-fingerprint AB:CD:...",
                    ),
                    example(
                        "Silent registration, shredding the input files after success:",
                        "register_host --shred-input silent /root/silent.txt",
                    ),
                ],
            ),
            ("SEE ALSO", see_also("vmd(1), vmutil(1)")),
        ],
    }
}

fn vmd() -> Page {
    let mut environment = vec![agent_root_variable()];
    environment.extend(proxy_variables());
    environment.push(item(
        "JOURNAL_STREAM",
        "Set by systemd: when it names stderr, the stderr copy of each log line drops its timestamp and starts with the syslog priority, so journalctl -p warning filters it.",
    ));
    Page {
        name: "vmd",
        command: vmd::command,
        sections: vec![
            (
                "EXIT STATUS",
                agent_exit_status(
                    "The daemon exits 0 when stopped by SIGTERM. With --once (the health check for cron, timers and monitoring) it exits 0 when the check ended with the host's identity settled and accepted by the manager and renewal is not overdue (a WARNING about no usable new set still exits 0; from ERROR on, 3; a renewal whose outcome is unknown, 5, until the next check settles it). The codes:",
                ),
            ),
            ("ENVIRONMENT", environment),
            ("FILES", {
                let mut files = agent_files();
                files.push(item(
                    "/usr/lib/systemd/system/vmd.service",
                    "The hardened systemd unit the packages install (not enabled: register first, then systemctl enable --now vmd).",
                ));
                files
            }),
            (
                "EXAMPLES",
                vec![
                    example(
                        "Run under systemd, and reread agent.conf (SIGHUP) after editing it:",
                        "systemctl enable --now vmd\nsystemctl reload vmd",
                    ),
                    example(
                        "One check now, as a health check (exit status as above):",
                        "vmd --once",
                    ),
                    example(
                        "A second agent root, through a proxy:",
                        "vmd --agent-root /srv/agent2 --proxy http://proxy.example.com:3128 --once",
                    ),
                ],
            ),
            (
                "SEE ALSO",
                see_also("register_host(1), vmutil(1), systemctl(1)"),
            ),
        ],
    }
}

fn vmutil() -> Page {
    let mut environment = vec![agent_root_variable()];
    environment.extend(proxy_variables());
    Page {
        name: "vmutil",
        command: vmutil::command,
        sections: vec![
            (
                "EXIT STATUS",
                agent_exit_status(
                    "checkcerts exits 3 when the set would be refused; updatecerts exits as a renewal check does. The codes:",
                ),
            ),
            ("ENVIRONMENT", environment),
            ("FILES", agent_files()),
            (
                "EXAMPLES",
                vec![
                    example(
                        "Check a certificate directory offline, and that its chain leads to the CA added on the manager:",
                        "vmutil -a vmd -d /root/cert_files --ca ext-ca.pem checkcerts",
                    ),
                    example(
                        "Status for people and for scripts, and the days left:",
                        "vmutil -a vmd status\nvmutil -a vmd status --json\nvmutil -a vmd certexpiry",
                    ),
                    example(
                        "Update now from another folder (validate first with --dry-run):",
                        "vmutil -a vmd -d /root/new_cert_files updatecerts --dry-run\nvmutil -a vmd -d /root/new_cert_files updatecerts",
                    ),
                ],
            ),
            ("SEE ALSO", see_also("register_host(1), vmd(1)")),
        ],
    }
}

fn cm_emulator() -> Page {
    Page {
        name: "cm-emulator",
        command: cm_emulator_bin::command,
        sections: vec![
            (
                "EXIT STATUS",
                vec![
                    item("0", "Stopped cleanly by SIGTERM or SIGINT."),
                    item(
                        "1",
                        "It could not start (address in use, state folder unusable).",
                    ),
                    item("2", "Usage: wrong or missing arguments."),
                ],
            ),
            (
                "ENVIRONMENT",
                vec![item(
                    "CM_EMULATOR_ADMIN_PASSWORD",
                    "The admin password when --admin-password is not given (keeps it out of ps).",
                )],
            ),
            (
                "FILES",
                vec![
                    item(
                        "STATE_DIR/web-ca.pem",
                        "The CA of the emulator's web certificate: give it to register_host --cm-ca or curl --cacert.",
                    ),
                    item(
                        "STATE_DIR/admin-password",
                        "The admin password, generated when none is given.",
                    ),
                    item(
                        "STATE_DIR/",
                        "Everything else the emulator keeps: external CAs, tokens, clients, records.",
                    ),
                ],
            ),
            (
                "EXAMPLES",
                vec![example(
                    "Start it, then log in as admin:",
                    "cm-emulator --listen 127.0.0.1:8443 --state-dir /tmp/cm --admin-password admin-pass\ncurl -s --cacert /tmp/cm/web-ca.pem -H 'Content-Type: application/json' -d '{\"grant_type\":\"password\",\"username\":\"admin\",\"password\":\"admin-pass\"}' https://127.0.0.1:8443/api/v1/auth/tokens/",
                )],
            ),
            (
                "SEE ALSO",
                vec![paragraph(
                    "register_host(1), vmd(1); the project's docs/protocol.md (every path, field and error, marked public or invented).",
                )],
            ),
        ],
    }
}
