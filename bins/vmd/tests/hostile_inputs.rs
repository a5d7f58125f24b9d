//! The bad-input corpus: hostile or broken inputs at every entry point of the agent (the files
//! of the certificate folder, `agent.conf`, the silent-registration file, command-line values,
//! and the manager's answers), run through the real binaries. For each input: the exit code, a
//! message naming what is wrong, the agent root byte-identical afterwards, and no secret in the
//! output. The table is printed (`cargo test -p vmd --test hostile_inputs -- --nocapture`).

mod common;
mod hostile;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use hostile::fake_manager::{FakeManager, Reply, http, response};
use hostile::{Host, PASSPHRASE, assert_hygiene, sibling_binary, text};
use test_support::{copy_vector, snapshot_tree};

const TOKEN: &str = "test-only-regtoken-7f3a9c-hostile";
const GOOD_SET: &str = "p384-ecdsa-sha384-pkcs8-pbes2-aes256-pbkdf2-sha256";

/// One row of the table.
struct Row {
    entry: &'static str,
    name: String,
    code: Option<i32>,
    expected_code: i32,
    needle: String,
    problems: Vec<String>,
}

struct Corpus {
    rows: Vec<Row>,
    /// Must never appear in any output.
    secrets: Vec<String>,
}

impl Corpus {
    /// Records one input: `run` is executed with a snapshot of `root` taken before.
    fn check(
        &mut self,
        entry: &'static str,
        name: impl Into<String>,
        root: &Path,
        expected_code: i32,
        needle: &str,
        run: impl FnOnce() -> Output,
    ) -> Output {
        let name = name.into();
        let before = snapshot_tree(root);
        let output = run();
        let all = text(&output);
        let mut problems = Vec::new();
        if output.status.code() != Some(expected_code) {
            problems.push(format!(
                "exit {:?}, expected {expected_code}",
                output.status.code()
            ));
        }
        if !all.to_lowercase().contains(&needle.to_lowercase()) {
            problems.push(format!("message lacks {needle:?}"));
        }
        if snapshot_tree(root) != before {
            problems.push("the agent root changed".to_string());
        }
        for secret in &self.secrets {
            if all.contains(secret.as_str()) {
                problems.push("a secret appeared in the output".to_string());
            }
        }
        if !problems.is_empty() {
            problems.push(format!("output: {}", all.trim()));
        }
        self.rows.push(Row {
            entry,
            name,
            code: output.status.code(),
            expected_code,
            needle: needle.to_string(),
            problems,
        });
        output
    }

    fn finish(self) {
        let mut failures = Vec::new();
        eprintln!(
            "{:<14} {:<58} {:>4} {:>8}  message names",
            "entry point", "input", "exit", "expected"
        );
        for row in &self.rows {
            eprintln!(
                "{:<14} {:<58} {:>4} {:>8}  {}{}",
                row.entry,
                row.name,
                row.code.map_or("sig".to_string(), |code| code.to_string()),
                row.expected_code,
                row.needle,
                if row.problems.is_empty() {
                    ""
                } else {
                    "  <-- FAILED"
                }
            );
            if !row.problems.is_empty() {
                failures.push(format!(
                    "{} / {}: {}",
                    row.entry,
                    row.name,
                    row.problems.join("; ")
                ));
            }
        }
        let mut per_entry = std::collections::BTreeMap::<&str, usize>::new();
        for row in &self.rows {
            *per_entry.entry(row.entry).or_default() += 1;
        }
        eprintln!(
            "hostile inputs tried: {} ({per_entry:?}); failures: {}",
            self.rows.len(),
            failures.len()
        );
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        assert!(self.rows.len() >= 60, "only {} inputs", self.rows.len());
    }
}

/// An agent root as an administrator prepared it before registering (an agent.conf with a
/// comment and a custom key, no registration).
fn prepared_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("vmd/etc")).unwrap();
    std::fs::write(
        root.path().join("vmd/etc/agent.conf"),
        "# prepared by the admin\nCUSTOM=1\n",
    )
    .unwrap();
    root
}

fn register_host(root: &Path, arguments: &[&str]) -> Output {
    Command::new(sibling_binary("register_host"))
        .arg("--agent-root")
        .arg(root)
        .args(arguments)
        .env_remove("EXTERNAL_CERT_DIR")
        .env_remove("CTE_AGENT_ROOT")
        .output()
        .unwrap()
}

fn register_arguments(folder: &Path, manager: &FakeManager) -> Vec<String> {
    vec![
        "--token".into(),
        TOKEN.into(),
        "--agent".into(),
        "host1".into(),
        "--extcertdir".into(),
        folder.display().to_string(),
        "--cm-fingerprint".into(),
        manager.fingerprint().into(),
        manager.address().into(),
    ]
}

fn strings(arguments: &[String]) -> Vec<&str> {
    arguments.iter().map(String::as_str).collect()
}

/// The message each refusal kind of the committed negative vectors must contain.
fn vector_needle(kind: &str) -> &'static str {
    match kind {
        "UnencryptedKey" => "not encrypted",
        "UnsupportedSignatureAlgorithm" => "only sha256WithRSAEncryption and ecdsa-with-SHA384",
        "UnsupportedKeyType" => "is not supported; use RSA",
        "KeyTooSmall" => "at least 2048",
        "WrongPassphrase" => "passphrase does not decrypt",
        "EmptyPassphrase" => "passphrase is empty",
        "KeyCertificateMismatch" => "does not match the certificate",
        "Expired" => "certificate expired",
        "NotYetValid" => "not valid before",
        "MissingCommonName" => "no common name",
        "MultipleCommonNames" => "common names; exactly one",
        "UnsafeCommonName" => "control or bidi-control characters",
        "KeyUsageNotAllowed" => "digitalSignature",
        "ExtendedKeyUsageNotAllowed" => "clientAuth",
        "InvalidPem" => "not valid PEM",
        "NotACertificate" => "not a CERTIFICATE",
        "UnsupportedKeyEncryption" => "openssl pkcs8",
        "MissingFile" => "file not found",
        "DirectoryMissing" => "does not exist",
        "NotADirectory" => "not a directory",
        "UnsupportedCertificateVersion" => "accepts only v3 certificates",
        "UnknownCriticalExtension" => "does not understand",
        "CaCertificateAsClient" => "CA:FALSE",
        "InvalidExtension" => "malformed",
        other => panic!("no needle for {other}"),
    }
}

#[test]
fn hostile_inputs_at_every_entry_point_are_refused_cleanly() {
    let mut corpus = Corpus {
        rows: Vec::new(),
        secrets: vec![TOKEN.to_string(), PASSPHRASE.to_string()],
    };
    // A manager that must never be reached by a locally refused input: it records and refuses.
    let untouched = FakeManager::start(
        |_, _, _| {
            http(
                500,
                "application/json",
                br#"{"codeDesc":"NCERRShouldNotBeCalled","message":"x"}"#,
            )
        },
        None,
    );

    // 1. The files of the certificate folder: every committed negative vector...
    let index =
        std::fs::read_to_string(test_support::testdata().join("vectors/index.tsv")).unwrap();
    for line in index.lines().filter(|line| line.starts_with("bad\t")) {
        let columns: Vec<&str> = line.split('\t').collect();
        let (name, kind) = (columns[1], columns[2]);
        let folder = copy_vector("bad", name).unwrap();
        let root = prepared_root();
        corpus.check("folder", name, root.path(), 3, vector_needle(kind), || {
            register_host(
                root.path(),
                &strings(&register_arguments(folder.path(), &untouched)),
            )
        });
    }
    // ...and files broken in ways no CA would produce.
    type Breakage = (&'static str, &'static str, fn(&Path));
    let breakages: [Breakage; 14] = [
        ("certificate empty", "not valid PEM", |dir| {
            write(dir, "client_cert.pem", b"")
        }),
        (
            "certificate 2 MiB of PEM-like text",
            "over the 1048576-byte limit",
            |dir| {
                write(
                    dir,
                    "client_cert.pem",
                    &b"-----BEGIN CERTIFICATE-----\nAAAA\n".repeat(60_000),
                )
            },
        ),
        ("certificate binary noise", "not valid PEM", |dir| {
            write(
                dir,
                "client_cert.pem",
                &(0..4096u32)
                    .map(|i| (i * 7919 % 251) as u8)
                    .collect::<Vec<_>>(),
            )
        }),
        (
            "certificate file holds the key",
            "not a CERTIFICATE",
            |dir| {
                std::fs::copy(dir.join("client_key.pem"), dir.join("client_cert.pem")).unwrap();
            },
        ),
        (
            "certificate base64 cut mid-block",
            "client_cert.pem",
            |dir| {
                let pem = std::fs::read(dir.join("client_cert.pem")).unwrap();
                let mut cut = pem[..pem.len() / 2].to_vec();
                cut.extend_from_slice(b"\n-----END CERTIFICATE-----\n");
                write(dir, "client_cert.pem", &cut);
            },
        ),
        (
            "certificate with NUL bytes inside the base64",
            "client_cert.pem",
            |dir| {
                let mut pem = std::fs::read(dir.join("client_cert.pem")).unwrap();
                pem[100] = 0;
                pem[101] = 0;
                write(dir, "client_cert.pem", &pem);
            },
        ),
        ("key file holds the certificate", "client_key.pem", |dir| {
            std::fs::copy(dir.join("client_cert.pem"), dir.join("client_key.pem")).unwrap();
        }),
        ("key file empty", "client_key.pem", |dir| {
            write(dir, "client_key.pem", b"")
        }),
        (
            "key is a folder",
            "not a regular file (a directory)",
            |dir| {
                std::fs::remove_file(dir.join("client_key.pem")).unwrap();
                std::fs::create_dir(dir.join("client_key.pem")).unwrap();
            },
        ),
        ("passphrase is a FIFO", "a FIFO", |dir| {
            std::fs::remove_file(dir.join("passphrase")).unwrap();
            let status = Command::new("mkfifo")
                .arg(dir.join("passphrase"))
                .status()
                .unwrap();
            assert!(status.success());
        }),
        ("key is a symbolic link loop", "client_key.pem", |dir| {
            std::fs::remove_file(dir.join("client_key.pem")).unwrap();
            #[cfg(unix)]
            std::os::unix::fs::symlink(dir.join("client_key.pem"), dir.join("client_key.pem"))
                .unwrap();
        }),
        (
            "passphrase over 1 MiB",
            "over the 1048576-byte limit",
            |dir| write(dir, "passphrase", &vec![b'p'; 1024 * 1024 + 1]),
        ),
        (
            "passphrase with a NUL byte and extra line breaks",
            "passphrase does not decrypt",
            |dir| write(dir, "passphrase", b"test-only\0\n\n\n"),
        ),
        ("all three files missing", "file not found", |dir| {
            for file in ["client_cert.pem", "client_key.pem", "passphrase"] {
                std::fs::remove_file(dir.join(file)).unwrap();
            }
        }),
    ];
    for (name, needle, breakage) in breakages {
        let folder = copy_vector("good", GOOD_SET).unwrap();
        breakage(folder.path());
        let root = prepared_root();
        corpus.check("folder", name, root.path(), 3, needle, || {
            register_host(
                root.path(),
                &strings(&register_arguments(folder.path(), &untouched)),
            )
        });
    }
    {
        let not_a_folder = tempfile::NamedTempFile::new().unwrap();
        let root = prepared_root();
        corpus.check(
            "folder",
            "--extcertdir names a file",
            root.path(),
            3,
            "client_cert.pem",
            || {
                register_host(
                    root.path(),
                    &strings(&register_arguments(not_a_folder.path(), &untouched)),
                )
            },
        );
    }

    // 2. Command-line values.
    let good = copy_vector("good", GOOD_SET).unwrap();
    let good_dir = good.path().display().to_string();
    let fingerprint = untouched.fingerprint().to_string();
    let not_pem = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_pem.path(), "this is not a certificate\n").unwrap();
    let not_pem = not_pem.path().display().to_string();
    let cli_cases: Vec<(&str, Vec<String>, i32, &str)> = vec![
        (
            "http:// manager URL",
            vec![
                "--token",
                TOKEN,
                "--extcertdir",
                &good_dir,
                "--cm-fingerprint",
                &fingerprint,
                "http://cm.example.com",
            ],
            3,
            "only https:// is supported",
        ),
        (
            "port 0",
            vec![
                "--token",
                TOKEN,
                "--extcertdir",
                &good_dir,
                "--cm-fingerprint",
                &fingerprint,
                "127.0.0.1:0",
            ],
            3,
            "port 0",
        ),
        (
            "port 99999",
            vec![
                "--token",
                TOKEN,
                "--extcertdir",
                &good_dir,
                "--cm-fingerprint",
                &fingerprint,
                "127.0.0.1:99999",
            ],
            3,
            "port is not a number",
        ),
        (
            "credentials in the URL",
            vec![
                "--token",
                TOKEN,
                "--extcertdir",
                &good_dir,
                "--cm-fingerprint",
                &fingerprint,
                "https://admin:pw@cm.example.com",
            ],
            3,
            "credentials in the address are not supported",
        ),
        (
            "empty token",
            vec![
                "--token",
                "",
                "--extcertdir",
                &good_dir,
                "--cm-fingerprint",
                &fingerprint,
                untouched.address(),
            ],
            2,
            "token is empty",
        ),
        (
            "whitespace token",
            vec![
                "--token",
                "   ",
                "--extcertdir",
                &good_dir,
                "--cm-fingerprint",
                &fingerprint,
                untouched.address(),
            ],
            2,
            "token is empty",
        ),
        (
            "no token",
            vec![
                "--extcertdir",
                &good_dir,
                "--cm-fingerprint",
                &fingerprint,
                untouched.address(),
            ],
            2,
            "token is missing",
        ),
        (
            "no trust given",
            vec![
                "--token",
                TOKEN,
                "--extcertdir",
                &good_dir,
                untouched.address(),
            ],
            2,
            "--cm-ca FILE or --cm-fingerprint",
        ),
        (
            "both --cm-ca and --cm-fingerprint",
            vec![
                "--token",
                TOKEN,
                "--extcertdir",
                &good_dir,
                "--cm-ca",
                &not_pem,
                "--cm-fingerprint",
                &fingerprint,
                untouched.address(),
            ],
            2,
            "cannot be used with",
        ),
        (
            "fingerprint not hex",
            vec![
                "--token",
                TOKEN,
                "--extcertdir",
                &good_dir,
                "--cm-fingerprint",
                "zz:zz",
                untouched.address(),
            ],
            2,
            "not a SHA-256 fingerprint",
        ),
        (
            "fingerprint too short",
            vec![
                "--token",
                TOKEN,
                "--extcertdir",
                &good_dir,
                "--cm-fingerprint",
                &fingerprint[..62],
                untouched.address(),
            ],
            2,
            "not a SHA-256 fingerprint",
        ),
        (
            "--cm-ca missing file",
            vec![
                "--token",
                TOKEN,
                "--extcertdir",
                &good_dir,
                "--cm-ca",
                "/nonexistent/ca.pem",
                untouched.address(),
            ],
            3,
            "reading the manager CA file",
        ),
        (
            "--cm-ca not PEM",
            vec![
                "--token",
                TOKEN,
                "--extcertdir",
                &good_dir,
                "--cm-ca",
                &not_pem,
                untouched.address(),
            ],
            3,
            "holds no certificate",
        ),
        (
            "--extcertdir missing",
            vec![
                "--token",
                TOKEN,
                "--extcertdir",
                "/nonexistent/certs",
                "--cm-fingerprint",
                &fingerprint,
                untouched.address(),
            ],
            3,
            "directory does not exist",
        ),
        (
            "no folder at all",
            vec![
                "--token",
                TOKEN,
                "--cm-fingerprint",
                &fingerprint,
                untouched.address(),
            ],
            2,
            "EXTERNAL_CERT_DIR",
        ),
        (
            "--agent with a line break",
            vec![
                "--token",
                TOKEN,
                "--agent",
                "host1\nURL=https://evil.example",
                "--extcertdir",
                &good_dir,
                "--cm-fingerprint",
                &fingerprint,
                untouched.address(),
            ],
            2,
            "agent name contains a line break",
        ),
        (
            "unknown flag",
            vec!["--token", TOKEN, "--frobnicate", untouched.address()],
            2,
            "unexpected argument",
        ),
        (
            "three targets",
            vec!["--token", TOKEN, "a", "b", "c"],
            2,
            "unexpected value",
        ),
    ]
    .into_iter()
    .map(|(name, arguments, code, needle)| {
        (
            name,
            arguments.into_iter().map(String::from).collect(),
            code,
            needle,
        )
    })
    .collect();
    for (name, arguments, code, needle) in cli_cases {
        let root = prepared_root();
        corpus.check("command line", name, root.path(), code, needle, || {
            register_host(root.path(), &strings(&arguments))
        });
    }

    // 3. The silent-registration file.
    let silent_folder = tempfile::tempdir().unwrap();
    let silent_cases: [(&str, Vec<u8>, i32, &str); 8] = [
        ("silent file without SERVER_HOSTNAME", format!("REG_TOKEN={TOKEN}\nEXTERNAL_CERT_DIR={good_dir}\nCM_FINGERPRINT={fingerprint}\n").into_bytes(), 2, "no SERVER_HOSTNAME"),
        ("silent file without REG_TOKEN", format!("SERVER_HOSTNAME={}\nEXTERNAL_CERT_DIR={good_dir}\nCM_FINGERPRINT={fingerprint}\n", untouched.address()).into_bytes(), 2, "token is missing"),
        ("silent file with a line that is not KEY=VALUE", format!("SERVER_HOSTNAME={}\nREG_TOKEN={TOKEN}\nthis line is wrong\n", untouched.address()).into_bytes(), 3, "line 3: expected KEY=VALUE"),
        ("silent file not UTF-8", b"SERVER_HOSTNAME=\xff\xfe\nREG_TOKEN=x\n".to_vec(), 3, "the silent registration file is not UTF-8"),
        ("silent file empty", Vec::new(), 2, "no SERVER_HOSTNAME"),
        ("silent file binary noise", (0..2048u32).map(|i| (i * 31 % 256) as u8).collect(), 3, "silent"),
        ("silent file with a bad fingerprint", format!("SERVER_HOSTNAME={}\nREG_TOKEN={TOKEN}\nEXTERNAL_CERT_DIR={good_dir}\nCM_FINGERPRINT=abc\n", untouched.address()).into_bytes(), 3, "CM_FINGERPRINT is invalid: not a SHA-256 fingerprint"),
        ("silent file with an http:// server", format!("SERVER_HOSTNAME=http://cm.example.com\nREG_TOKEN={TOKEN}\nEXTERNAL_CERT_DIR={good_dir}\nCM_FINGERPRINT={fingerprint}\n").into_bytes(), 3, "only https://"),
    ];
    for (index, (name, contents, code, needle)) in silent_cases.into_iter().enumerate() {
        let path = silent_folder.path().join(format!("silent-{index}.txt"));
        std::fs::write(&path, contents).unwrap();
        let root = prepared_root();
        corpus.check("silent file", name, root.path(), code, needle, || {
            register_host(root.path(), &["silent", path.to_str().unwrap()])
        });
    }
    {
        let root = prepared_root();
        corpus.check(
            "silent file",
            "silent file missing",
            root.path(),
            3,
            "reading the silent registration file",
            || register_host(root.path(), &["silent", "/nonexistent/silent.txt"]),
        );
        corpus.check(
            "silent file",
            "silent file is a folder",
            root.path(),
            3,
            "the silent registration file is not a regular file",
            || {
                register_host(
                    root.path(),
                    &["silent", silent_folder.path().to_str().unwrap()],
                )
            },
        );
    }
    let reached = untouched.seen().len();

    // 4. The manager's answers to the registration, from the misbehaving test double.
    let client_record = br#"{"id":"c1","name":"host1","state":"active"}"#;
    let manager_cases: Vec<(&str, Reply, i32, &str)> = vec![
        ("HTML login page, text/html", http(200, "text/html", b"<html><body>Please log in</body></html>"), 5, "unexpected answer from the manager (HTTP 200)"),
        ("client record labelled text/plain, then HTML for the login", Reply::Raw(Vec::new()), 3, "the manager accepted the registration"),
        ("2 MiB body", http(201, "application/json", &[b"{\"id\":\"".as_slice(), &vec![b'a'; 2 * 1024 * 1024], b"\"}"].concat()), 5, "over the 1048576-byte limit"),
        ("truncated JSON", http(201, "application/json", br#"{"id":"c1","name":"ho"#), 5, "EOF while parsing"),
        ("wrong types", http(201, "application/json", br#"{"id":5,"name":["host1"]}"#), 5, "invalid type"),
        ("200 with an error body", http(200, "application/json", br#"{"code":5,"codeDesc":"NCERRInternal","message":"database down"}"#), 5, "missing field `id`"),
        ("302 redirect elsewhere", Reply::Raw(response(302, &[("Location", "https://evil.example/api/v1/client-management/clients/")], b"")), 5, "HTTP 302"),
        ("empty 200", http(200, "application/json", b""), 5, "EOF while parsing"),
        ("JSON null", http(201, "application/json", b"null"), 5, "invalid type: null"),
        ("JSON array", http(201, "application/json", b"[]"), 5, "invalid length 0"),
        ("500 HTML page", http(500, "text/html", b"<h1>Internal Server Error</h1>"), 5, "HTTP 500"),
        ("404 plain text", http(404, "text/plain", b"Not Found"), 5, "HTTP 404"),
        ("401 in the manager's error shape", http(401, "application/json", br#"{"code":5,"codeDesc":"NCERRInvalidRegToken","message":"Invalid token","requestID":"r1"}"#), 4, "NCERRInvalidRegToken"),
        ("403 whose message forges log lines", http(403, "application/json", b"{\"codeDesc\":\"NCERRForbidden\",\"message\":\"no\\n2026-01-01 [VMD] [INFO] registered fine\\u001b[2J\"}"), 4, "no\\n2026-01-01"),
        ("503 on every attempt", http(503, "application/json", br#"{"codeDesc":"NCERRServiceUnavailable","message":"busy"}"#), 5, "HTTP 503"),
        ("not HTTP at all", Reply::Raw(b"SSH-2.0-OpenSSH_9.6\r\n".to_vec()), 5, "cannot connect"),
        ("bad Content-Length", Reply::Raw(b"HTTP/1.1 201 Created\r\nContent-Length: abc\r\n\r\n{}".to_vec()), 5, "manager"),
        ("body shorter than Content-Length", Reply::Raw(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 500\r\nConnection: close\r\n\r\n{\"id\":\"c1\"".to_vec()), 5, "manager"),
        ("connection closed without an answer", Reply::Drop, 5, "cannot connect"),
        // What the manager says is checked before it reaches agent.conf or the terminal: a line
        // break in the client id would add settings to agent.conf.
        ("client id with a line break", http(201, "application/json", br#"{"id":"c1\nURL=https://evil.example"}"#), 5, "`id`"),
        ("client id too long", http(201, "application/json", format!(r#"{{"id":"{}"}}"#, "a".repeat(129)).as_bytes()), 5, "`id`"),
        ("empty client id", http(201, "application/json", br#"{"id":""}"#), 5, "`id`"),
        ("client name with an escape sequence", http(201, "application/json", b"{\"id\":\"c1\",\"name\":\"a\\u001b[2Jb\"}"), 5, "`name`"),
    ];
    for (name, reply, code, needle) in manager_cases {
        let scripted = if name.starts_with("client record labelled") {
            let record = client_record.to_vec();
            FakeManager::start(
                move |_, path, _| {
                    if path.ends_with("/clients/") {
                        http(201, "text/plain", &record)
                    } else {
                        http(200, "text/html", b"<html>portal</html>")
                    }
                },
                None,
            )
        } else {
            FakeManager::start(move |_, _, _| reply.clone(), None)
        };
        let root = prepared_root();
        let output = corpus.check("manager answer", name, root.path(), code, needle, || {
            register_host(
                root.path(),
                &strings(&register_arguments(good.path(), &scripted)),
            )
        });
        let all = text(&output);
        assert!(
            !all.contains('\u{1b}'),
            "{name}: an escape sequence reached the output"
        );
        if name.starts_with("503") {
            assert_eq!(
                scripted.seen().len(),
                3,
                "{name}: the client retries 502/503/504 twice"
            );
        }
    }
    {
        // A manager whose certificate is not the pinned one (e.g. replaced by an interceptor).
        let other = FakeManager::start(
            move |_, _, _| http(201, "application/json", br#"{"id":"c1"}"#),
            None,
        );
        let root = prepared_root();
        let mut arguments = register_arguments(good.path(), &other);
        let pinned = arguments
            .iter()
            .position(|argument| argument == "--cm-fingerprint")
            .unwrap()
            + 1;
        arguments[pinned] = untouched.fingerprint().to_string();
        corpus.check(
            "manager answer",
            "certificate is not the pinned one",
            root.path(),
            5,
            "not the pinned",
            || register_host(root.path(), &strings(&arguments)),
        );
        assert!(
            other.seen().is_empty(),
            "a request went to an unverified manager"
        );
    }

    // 5. agent.conf of a registered host that is due for renewal with a valid set waiting: with
    // a good agent.conf vmd would renew now; every broken one must stop before changing anything.
    let host = Host::registered(20);
    host.place_renewal();
    corpus.secrets.push(host.token.clone());
    let original = std::fs::read_to_string(host.conf_path()).unwrap();
    let without = |key: &str| {
        original
            .lines()
            .filter(|line| !line.starts_with(&format!("{key}=")))
            .map(|line| format!("{line}\n"))
            .collect::<String>()
    };
    let with = |key: &str, value: &str| format!("{}{key}={value}\n", without(key));
    let conf_cases: Vec<(&str, Vec<u8>, i32, &str)> = vec![
        ("empty agent.conf", Vec::new(), 3, "URL is missing"),
        (
            "binary noise",
            (0..1024u32).map(|i| (i * 131 % 256) as u8).collect(),
            3,
            "agent.conf",
        ),
        (
            "line without =",
            format!("{original}not a setting\n").into_bytes(),
            3,
            "expected KEY=VALUE",
        ),
        ("no URL", without("URL").into_bytes(), 3, "URL is missing"),
        (
            "no CLIENT_ID",
            without("CLIENT_ID").into_bytes(),
            3,
            "CLIENT_ID is missing",
        ),
        (
            "http:// URL",
            with("URL", "http://127.0.0.1:1").into_bytes(),
            3,
            "only https://",
        ),
        (
            "no trust at all",
            without("CM_CA_FILE").into_bytes(),
            3,
            "CM_CA_FILE is missing",
        ),
        (
            "fingerprint not hex",
            format!("{}CM_FINGERPRINT=xyz\n", without("CM_CA_FILE")).into_bytes(),
            3,
            "CM_FINGERPRINT is invalid",
        ),
        (
            "negative renewal window",
            with("RENEW_DAYS_BEFORE_EXPIRY", "-5").into_bytes(),
            3,
            "RENEW_DAYS_BEFORE_EXPIRY is invalid",
        ),
        (
            "renewal window of 10^20 days",
            with("RENEW_DAYS_BEFORE_EXPIRY", "100000000000000000000").into_bytes(),
            3,
            "RENEW_DAYS_BEFORE_EXPIRY is invalid",
        ),
        (
            "stagger out of range",
            with("RENEW_STAGGER_HOURS", "100000").into_bytes(),
            3,
            "RENEW_STAGGER_HOURS is invalid",
        ),
        (
            "unknown upload level",
            with("LOG_UPLOAD_LEVEL", "LOUD").into_bytes(),
            3,
            "LOG_UPLOAD_LEVEL is invalid",
        ),
        (
            "CM_CA_FILE names a missing file",
            with("CM_CA_FILE", "/nonexistent/cm-ca.pem").into_bytes(),
            3,
            "reading the manager CA file",
        ),
        (
            "CM_CA_FILE is not PEM",
            with("CM_CA_FILE", &not_pem).into_bytes(),
            3,
            "CM_CA_FILE is invalid",
        ),
        (
            "not UTF-8",
            format!("{original}EXTRA=\u{0}")
                .into_bytes()
                .into_iter()
                .chain([0xff, 0xfe, b'\n'])
                .collect(),
            3,
            "agent.conf",
        ),
    ];
    for (name, contents, code, needle) in conf_cases {
        write_private(&host.conf_path(), &contents);
        corpus.check("agent.conf", name, host.root.path(), code, needle, || {
            host.vmd(&["--once"])
        });
        // vmutil status reads agent.conf without contacting the manager: it shows a URL or a CA
        // file it does not use, and refuses only what it cannot parse.
        if [
            "http:// URL",
            "CM_CA_FILE names a missing file",
            "CM_CA_FILE is not PEM",
        ]
        .contains(&name)
        {
            continue;
        }
        corpus.check(
            "agent.conf",
            format!("{name} (vmutil status)"),
            host.root.path(),
            code,
            needle,
            || {
                Command::new(sibling_binary("vmutil"))
                    .args([
                        "--agent-root",
                        host.root.path().to_str().unwrap(),
                        "-a",
                        "vmd",
                        "status",
                    ])
                    .output()
                    .unwrap()
            },
        );
    }
    write_private(&host.conf_path(), original.as_bytes());
    assert_eq!(
        host.current_fingerprint(),
        cert_loading::Fingerprint::of(host.current.certificate_der()).to_string(),
        "the identity changed"
    );
    assert_hygiene(
        "agent.conf corpus",
        host.root.path(),
        &[&host.current],
        &[PASSPHRASE, &host.token],
        "",
    );

    eprintln!("locally refused inputs that reached the manager: {reached}");
    corpus.finish();
    assert_eq!(reached, 0, "a locally refused input reached the manager");
}

fn write(folder: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(folder.join(name), bytes).unwrap();
}

fn write_private(path: &PathBuf, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[test]
fn a_manager_that_stalls_hits_the_request_timeout() {
    // Library level, with a 2 s timeout (the binaries use 20 s, tested once above would cost
    // 20 s of CI per run; the code path is the same).
    let stalling = FakeManager::start(
        |_, _, _| Reply::Slow(Duration::from_secs(6), response(200, &[], b"{}")),
        None,
    );
    let client = cm_client::ManagerClient::new(
        cm_client::ManagerUrl::parse(stalling.address()).unwrap(),
        cm_client::ServerTrust::Sha256Fingerprint(stalling.fingerprint().parse().unwrap()),
        None,
        cm_client::Options {
            request_timeout: Duration::from_secs(2),
            ..Default::default()
        },
    )
    .unwrap();
    let started = std::time::Instant::now();
    let error = client.webcert_fingerprint().unwrap_err();
    assert!(
        matches!(error, cm_client::Error::Timeout { seconds: 2, .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("did not answer within 2 s"),
        "{error}"
    );
    // Timeouts are not retried: one request timeout, not three.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        stalling.seen().len(),
        0,
        "the stalled request has not finished yet"
    );
}

/// Links to `/dev/zero` and to a FIFO, and a FIFO, in place of each file of a registered host's
/// certificate folder, on the two paths that read it for renewal: `vmd --once` (the host is due
/// for renewal) and `vmutil updatecerts`. Each run ends within 20 s (before, a link to /dev/zero
/// grew vmd without bound and a FIFO hung it), names the file, and the identity is unchanged;
/// the refused `updatecerts` leaves the agent root byte-identical but for the check's own
/// records (log, status, lock file).
#[cfg(unix)]
#[test]
fn links_to_dev_zero_and_fifos_in_the_folder_end_renewal_runs_promptly() {
    let host = Host::registered(20);
    let originals: Vec<(&str, Vec<u8>)> = ["client_cert.pem", "client_key.pem", "passphrase"]
        .into_iter()
        .map(|file| {
            (
                file,
                std::fs::read(host.cert_dir.path().join(file)).unwrap(),
            )
        })
        .collect();
    let elsewhere = tempfile::tempdir().unwrap();
    let fifo = elsewhere.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let before_identity = host.current_fingerprint();
    for (file, _) in &originals {
        for (target, needle) in [
            (Some(PathBuf::from("/dev/zero")), "is a symbolic link"),
            (Some(fifo.clone()), "is a symbolic link"),
            (None, "not a regular file (a FIFO)"),
        ] {
            for (name, contents) in &originals {
                let path = host.cert_dir.path().join(name);
                let _ = std::fs::remove_file(&path);
                std::fs::write(&path, contents).unwrap();
            }
            let path = host.cert_dir.path().join(file);
            std::fs::remove_file(&path).unwrap();
            match &target {
                Some(target) => std::os::unix::fs::symlink(target, &path).unwrap(),
                None => assert!(
                    Command::new("mkfifo")
                        .arg(&path)
                        .status()
                        .unwrap()
                        .success()
                ),
            }
            let named = format!("{}: ", path.display());

            let mut vmd = Command::new(env!("CARGO_BIN_EXE_vmd"));
            vmd.arg("--agent-root")
                .arg(host.root.path())
                .arg("--once")
                .env_remove("CTE_AGENT_ROOT");
            let output = test_support::run_within(vmd, Duration::from_secs(20));
            let all = format!("{}{}", text(&output), host.log());
            assert!(
                all.contains(&named) && all.contains(needle),
                "vmd --once, {file} {target:?}: exit {:?}: {all}",
                output.status.code()
            );

            let before = snapshot_tree(host.root.path());
            let mut updatecerts = Command::new(sibling_binary("vmutil"));
            updatecerts
                .arg("--agent-root")
                .arg(host.root.path())
                .args(["-a", "vmd", "-d"])
                .arg(host.cert_dir.path())
                .arg("updatecerts")
                .env_remove("CTE_AGENT_ROOT");
            let output = test_support::run_within(updatecerts, Duration::from_secs(20));
            let all = text(&output);
            assert_eq!(
                output.status.code(),
                Some(3),
                "updatecerts, {file} {target:?}: {all}"
            );
            assert!(
                all.contains(&named) && all.contains(needle),
                "updatecerts, {file} {target:?}: {all}"
            );
            let after = snapshot_tree(host.root.path());
            // The renewal check records its verdict (log, status, metrics state, its lock file);
            // the identity, agent.conf and everything else stay byte-identical.
            let recorded = [
                "vmd/log/",
                "vmd/run/status.json",
                "vmd/run/metrics-state.json",
                "vmd/run/renewal.lock",
            ];
            let changed: Vec<_> = after
                .iter()
                .filter(|entry| !before.contains(entry))
                .map(|(path, _)| path.strip_prefix(host.root.path()).unwrap().to_path_buf())
                .filter(|path| !recorded.iter().any(|kept| path.starts_with(kept)))
                .collect();
            assert!(
                changed.is_empty() && after.len() == before.len(),
                "updatecerts, {file} {target:?}: the agent root changed: {changed:?}"
            );
        }
    }
    assert_eq!(
        host.current_fingerprint(),
        before_identity,
        "the identity changed"
    );
    assert_eq!(host.manager_fingerprint(), before_identity);
}
