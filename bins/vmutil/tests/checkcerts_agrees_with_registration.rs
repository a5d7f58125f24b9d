//! `checkcerts` and a real registration agree on the committed OpenSSL-made vectors: every good
//! vector passes `vmutil -a vmd -d DIR checkcerts` AND registers with the emulator over TLS
//! (rustls/webpki on both ends); every vector of a certificate that TLS refuses is refused by
//! `checkcerts` (exit 3, naming the file) AND by `register_host` (non-zero exit).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

use test_support::{Manager, copy_vector, sibling_binary, test_ca_pem, testdata};

/// The bad vectors of certificates that rustls/webpki (and so the manager) refuses, with the
/// words `checkcerts` must say about each.
const REFUSED_BY_TLS: [(&str, &str); 5] = [
    ("x509-v1", "X.509 v1"),
    (
        "unknown-critical-extension",
        "certificatePolicies (2.5.29.32)",
    ),
    ("basic-constraints-ca-true", "CA:TRUE"),
    ("extended-key-usage-any-only", "clientAuth"),
    ("subject-alt-name-malformed", "subjectAltName"),
];

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn checkcerts(directory: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmutil"))
        .args(["-a", "vmd", "-d", directory.to_str().unwrap(), "checkcerts"])
        .env_remove("CTE_AGENT_ROOT")
        .output()
        .unwrap()
}

/// The committed good vectors (index.tsv kind=good).
fn good_vectors() -> Vec<String> {
    let index = std::fs::read_to_string(testdata().join("vectors/index.tsv")).unwrap();
    index
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut columns = line.split('\t');
            (columns.next() == Some("good")).then(|| columns.next().unwrap().to_string())
        })
        .collect()
}

/// The test root (pki/<name>) a vector's leaf chains to, read from the `openssl ca -name`
/// section of the command that issued its certificate (COMMANDS.txt).
fn root_of(kind: &str, name: &str) -> &'static str {
    let commands = std::fs::read_to_string(
        testdata()
            .join("vectors")
            .join(kind)
            .join(name)
            .join("COMMANDS.txt"),
    )
    .unwrap();
    let section = commands
        .lines()
        .filter(|line| line.starts_with("openssl ca ") && line.contains("pki/leaf-certs/"))
        .filter_map(|line| line.split(" -name ").nth(1)?.split(' ').next())
        .next_back()
        .unwrap_or_else(|| panic!("{name}: no `openssl ca -name` in COMMANDS.txt"));
    match section {
        "ca_rsa" | "intermediate_rsa" => "ca-rsa",
        "ca_p384" => "ca-p384",
        "other_ca" => "other-ca",
        other => panic!("{name}: unknown CA section {other}"),
    }
}

/// One emulator trusting the three test roots, with one token (no client limit) per root.
struct Registrar {
    manager: Manager,
    tokens: HashMap<&'static str, String>,
    register_host: std::path::PathBuf,
}

impl Registrar {
    fn start() -> Self {
        // Vectors share certificates (they differ in how the key is encrypted).
        let manager = Manager::start_sharing_certificates().unwrap();
        let tokens = ["ca-rsa", "ca-p384", "other-ca"]
            .into_iter()
            .map(|root| {
                let token = manager
                    .setup_external_ca(&test_ca_pem(root).unwrap(), &format!("ext-{root}"))
                    .unwrap();
                (root, token)
            })
            .collect();
        let register_host =
            sibling_binary(Path::new(env!("CARGO_BIN_EXE_vmutil")), "register_host");
        Self {
            manager,
            tokens,
            register_host,
        }
    }

    /// Runs the real `register_host` for a copy of a vector, in a fresh agent root.
    fn register(&self, kind: &str, name: &str, agent: &str) -> Output {
        self.register_with(kind, name, agent, root_of(kind, name))
    }

    /// As `register`, with the token bound to the external CA `ca_root`.
    fn register_with(&self, kind: &str, name: &str, agent: &str, ca_root: &str) -> Output {
        let set = copy_vector(kind, name).unwrap();
        let root = tempfile::tempdir().unwrap();
        Command::new(&self.register_host)
            .arg("--agent-root")
            .arg(root.path())
            .args([
                "--token",
                &self.tokens[ca_root],
                "--agent",
                agent,
                "--extcertdir",
                set.path().to_str().unwrap(),
                "--cm-ca",
                self.manager.web_ca_path().to_str().unwrap(),
                &self.manager.host_port(),
            ])
            .env_remove("EXTERNAL_CERT_DIR")
            .env_remove("CTE_AGENT_ROOT")
            .output()
            .unwrap()
    }
}

#[test]
fn checkcerts_and_a_real_registration_agree_on_every_vector() {
    let registrar = Registrar::start();
    let good = good_vectors();
    assert!(
        good.len() >= 25,
        "expected the whole matrix, found {}",
        good.len()
    );
    for (number, name) in good.iter().enumerate() {
        let directory = testdata().join("vectors/good").join(name);
        let checked = checkcerts(&directory);
        assert_eq!(
            checked.status.code(),
            Some(0),
            "{name}: checkcerts refused a good set: {}",
            text(&checked)
        );
        let registered = registrar.register("good", name, &format!("agree-good-{number}"));
        assert_eq!(
            registered.status.code(),
            Some(0),
            "{name}: checkcerts accepted it but registration failed: {}",
            text(&registered)
        );
    }
    assert_eq!(registrar.manager.clients().unwrap().len(), good.len());

    for (number, (name, words)) in REFUSED_BY_TLS.into_iter().enumerate() {
        let directory = testdata().join("vectors/bad").join(name);
        let checked = checkcerts(&directory);
        let said = text(&checked);
        assert_eq!(checked.status.code(), Some(3), "{name}: {said}");
        assert!(said.contains(words), "{name}: {said}");
        assert!(
            said.contains(directory.join("client_cert.pem").to_str().unwrap()),
            "{name}: the file is not named: {said}"
        );
        let registered = registrar.register("bad", name, &format!("agree-bad-{number}"));
        assert_ne!(
            registered.status.code(),
            Some(0),
            "{name}: checkcerts refused it but registration succeeded: {}",
            text(&registered)
        );
    }
    assert_eq!(
        registrar.manager.clients().unwrap().len(),
        good.len(),
        "a refused set was registered"
    );
}

/// `checkcerts --ca FILE` predicts the manager's chain check: a set issued by another CA is
/// refused by both, locally (exit 3, the file named) and by the manager's registration with a
/// token bound to that CA (`register_host` itself does not know the CA: the refusal is the
/// manager's); with the right CA both accept.
#[test]
fn checkcerts_with_the_managers_ca_predicts_the_chain_check() {
    let registrar = Registrar::start();
    let name = "rsa3072-sha256-issued-by-other-ca-pkcs8-pbes2-aes256-pbkdf2-sha256";
    let directory = testdata().join("vectors/good").join(name);
    let wrong_ca = testdata().join("pki/ca-rsa/ca.pem");
    let right_ca = testdata().join("pki/other-ca/ca.pem");
    let vmutil = |ca: &Path| {
        Command::new(env!("CARGO_BIN_EXE_vmutil"))
            .args(["-a", "vmd", "-d"])
            .arg(&directory)
            .arg("--ca")
            .arg(ca)
            .arg("checkcerts")
            .env_remove("CTE_AGENT_ROOT")
            .output()
            .unwrap()
    };
    let checked = vmutil(&wrong_ca);
    let said = text(&checked);
    assert_eq!(checked.status.code(), Some(3), "{said}");
    assert!(said.contains("not trusted"), "{said}");
    assert!(said.contains("client_cert.pem"), "{said}");
    let registered = registrar.register_with("good", name, "chain-wrong-ca", "ca-rsa");
    assert_eq!(
        registered.status.code(),
        Some(4),
        "the manager did not refuse a set from another CA: {}",
        text(&registered)
    );
    let checked = vmutil(&right_ca);
    assert_eq!(checked.status.code(), Some(0), "{}", text(&checked));
    let registered = registrar.register_with("good", name, "chain-right-ca", "other-ca");
    assert_eq!(registered.status.code(), Some(0), "{}", text(&registered));
}
