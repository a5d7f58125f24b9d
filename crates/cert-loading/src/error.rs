//! The one error type of this crate.

use std::path::PathBuf;

/// Why an external certificate set was refused.
///
/// Every variant names the file it is about and says what to do; the `Display` text is meant to be
/// shown to an administrator as it is. [`Error::kind`] gives a stable one-word name per variant
/// for scripts and tests.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The external certificate directory does not exist.
    #[error(
        "{path}: the external certificate directory does not exist; create it (mode 0700) and put client_cert.pem, client_key.pem and passphrase in it, or name the right directory"
    )]
    DirectoryMissing {
        /// The directory that was named.
        path: PathBuf,
    },
    /// The path named as the external certificate directory is a file or something else.
    #[error(
        "{path}: not a directory; name the folder that holds client_cert.pem, client_key.pem and passphrase, not a file in it"
    )]
    NotADirectory {
        /// The path that was named.
        path: PathBuf,
    },
    /// A required file does not exist.
    #[error("{path}: file not found; put the {what} there (see EXTERNAL_CERT_DIR setup)")]
    MissingFile {
        /// The file that was expected.
        path: PathBuf,
        /// What the file should hold, in words.
        what: &'static str,
    },
    /// The path exists but is a directory, device, socket or other non-regular file.
    #[error("{path}: not a regular file ({found}); replace it with the {what} file")]
    NotAFile {
        /// The offending path.
        path: PathBuf,
        /// What was found instead ("directory", ...).
        found: &'static str,
        /// What the file should hold.
        what: &'static str,
    },
    /// The path is a symbolic link. Links in the certificate folder are never followed: whoever
    /// can write the folder could otherwise point them at any file on the host.
    #[error(
        "{path}: is a symbolic link, which is not followed (a writer of the folder could point it at any file); put the {what} file itself there, e.g. cp --remove-destination \"$(readlink -f {path})\" {path}"
    )]
    SymbolicLink {
        /// The link.
        path: PathBuf,
        /// What the file should hold.
        what: &'static str,
    },
    /// The folder holding the files can be written by any user and has no sticky bit, so any
    /// user could swap the files.
    #[error(
        "{path}: the certificate folder is writable by every user (mode {mode:o}, no sticky bit), so anyone on this host could replace its files; restrict it with: chmod 700 {path}"
    )]
    FolderWritableByOthers {
        /// The folder.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is larger than any certificate set file can reasonably be.
    #[error("{path}: file is {size} bytes, over the {limit}-byte limit; this is not a {what} file")]
    FileTooLarge {
        /// The offending file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
        /// What the file should hold.
        what: &'static str,
    },
    /// Reading the file failed.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file being read.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not usable PEM (truncated, bad base64, DER, missing markers).
    #[error("{path}: not valid PEM: {reason}")]
    InvalidPem {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The certificate file holds something other than certificates (a CSR, a key, ...).
    #[error(
        "{path}: holds a PEM block labelled \"{label}\", not a CERTIFICATE; put the issued certificate (leaf first, then intermediates) there"
    )]
    NotACertificate {
        /// The offending file.
        path: PathBuf,
        /// The PEM label found.
        label: String,
    },
    /// A CERTIFICATE block did not decode as an X.509 certificate.
    #[error("{path}: certificate {index} does not decode as X.509: {reason}")]
    InvalidCertificate {
        /// The offending file.
        path: PathBuf,
        /// Position of the certificate in the file, counted from 1.
        index: usize,
        /// The decoder's message.
        reason: String,
    },
    /// The certificate is signed with an algorithm other than the two the product accepts.
    #[error(
        "{path}: certificate is signed with {algorithm}; only sha256WithRSAEncryption and ecdsa-with-SHA384 are accepted. Have the CA reissue it (openssl: -sha256 for RSA CAs, -sha384 for P-384 CAs)"
    )]
    UnsupportedSignatureAlgorithm {
        /// The file holding the certificate.
        path: PathBuf,
        /// Name (or OID) of the signature algorithm found.
        algorithm: String,
    },
    /// The subject has no common name.
    #[error(
        "{path}: certificate subject \"{subject}\" has no common name (CN); the manager identifies clients by it, so reissue with a CN"
    )]
    MissingCommonName {
        /// The file holding the certificate.
        path: PathBuf,
        /// The subject as text.
        subject: String,
    },
    /// The subject has more than one common name.
    #[error(
        "{path}: certificate subject \"{subject}\" has {count} common names; exactly one is required"
    )]
    MultipleCommonNames {
        /// The file holding the certificate.
        path: PathBuf,
        /// The subject as text.
        subject: String,
        /// How many CN attributes were found.
        count: usize,
    },
    /// The common name holds control characters or invisible bidi controls (a line break, an
    /// escape sequence, U+202E): it would forge log lines or disguise itself on a terminal.
    #[error(
        "{path}: certificate common name \"{escaped}\" holds control or bidi-control characters (shown escaped); reissue the certificate with a plain common name"
    )]
    UnsafeCommonName {
        /// The file holding the certificate.
        path: PathBuf,
        /// The common name with those characters escaped.
        escaped: String,
    },
    /// The key usage extension does not allow digital signatures.
    #[error(
        "{path}: certificate key usage does not include digitalSignature, which a TLS client certificate needs"
    )]
    KeyUsageNotAllowed {
        /// The file holding the certificate.
        path: PathBuf,
    },
    /// The extended key usage extension does not allow TLS client authentication.
    #[error(
        "{path}: certificate extended key usage does not include clientAuth (1.3.6.1.5.5.7.3.2); reissue it as a client certificate"
    )]
    ExtendedKeyUsageNotAllowed {
        /// The file holding the certificate.
        path: PathBuf,
    },
    /// A certificate extension could not be decoded.
    #[error("{path}: certificate extension {extension} is malformed: {reason}")]
    InvalidExtension {
        /// The file holding the certificate.
        path: PathBuf,
        /// The extension's name.
        extension: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// The certificate is X.509 v1 or v2; rustls/webpki (and so the manager) accept only v3.
    #[error(
        "{path}: certificate is X.509 {version}, but TLS (rustls/webpki, and so the manager) accepts only v3 certificates; have the CA reissue it as v3 by giving it extensions, e.g. openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -sha256 -days 365 -extfile leaf.cnf -out client_cert.pem with leaf.cnf holding \"basicConstraints = critical, CA:FALSE\" and \"extendedKeyUsage = clientAuth\""
    )]
    UnsupportedCertificateVersion {
        /// The file holding the certificate.
        path: PathBuf,
        /// The version found ("v1" or "v2").
        version: &'static str,
    },
    /// The tbsCertificate names another signature algorithm than the certificate's outer
    /// signatureAlgorithm field.
    #[error(
        "{path}: certificate is inconsistent: its signed part names signature algorithm {inner} but it is signed with {outer}; TLS (rustls/webpki) refuses it. Have the CA reissue it"
    )]
    SignatureAlgorithmMismatch {
        /// The file holding the certificate.
        path: PathBuf,
        /// The algorithm in tbsCertificate.signature.
        inner: String,
        /// The algorithm in Certificate.signatureAlgorithm.
        outer: String,
    },
    /// The certificate carries issuerUniqueID or subjectUniqueID, which rustls/webpki refuses.
    #[error(
        "{path}: certificate carries an {field} field, which TLS (rustls/webpki, and so the manager) refuses; have the CA reissue it without unique identifiers (openssl never adds them)"
    )]
    UniqueIdentifierPresent {
        /// The file holding the certificate.
        path: PathBuf,
        /// "issuerUniqueID" or "subjectUniqueID".
        field: &'static str,
    },
    /// A critical extension that rustls/webpki does not process.
    #[error(
        "{path}: certificate has the critical extension {extension}, which TLS (rustls/webpki, and so the manager) does not understand and therefore refuses; have the CA reissue it with that extension non-critical or left out (in an openssl extension file, drop \"critical,\" from that line)"
    )]
    UnknownCriticalExtension {
        /// The file holding the certificate.
        path: PathBuf,
        /// The extension's name and OID.
        extension: String,
    },
    /// The same extension appears more than once.
    #[error(
        "{path}: certificate has the {extension} extension more than once, which TLS (rustls/webpki) refuses; have the CA reissue it with each extension once (check the extension file for a repeated line)"
    )]
    DuplicateExtension {
        /// The file holding the certificate.
        path: PathBuf,
        /// The extension's name and OID.
        extension: String,
    },
    /// basicConstraints says CA:TRUE: a CA certificate cannot be a TLS client certificate.
    #[error(
        "{path}: certificate is a CA certificate (basicConstraints CA:TRUE), which TLS (rustls/webpki, and so the manager) refuses as a client certificate; have the CA issue a client certificate with \"basicConstraints = critical, CA:FALSE\" (e.g. openssl ca/x509 -extfile with that line, not -extensions v3_ca)"
    )]
    CaCertificateAsClient {
        /// The file holding the certificate.
        path: PathBuf,
    },
    /// The certificate's validity period ended before "now".
    #[error("{path}: certificate expired on {not_after}; obtain a new certificate from the CA")]
    Expired {
        /// The file holding the certificate.
        path: PathBuf,
        /// The end of validity, RFC 3339.
        not_after: String,
    },
    /// The certificate's validity period starts after "now".
    #[error(
        "{path}: certificate is not valid before {not_before}; check the system clock or wait until then"
    )]
    NotYetValid {
        /// The file holding the certificate.
        path: PathBuf,
        /// The start of validity, RFC 3339.
        not_before: String,
    },
    /// The passphrase file is empty (after removing one line ending).
    #[error("{path}: passphrase is empty; write the key's passphrase in this file")]
    EmptyPassphrase {
        /// The passphrase file.
        path: PathBuf,
    },
    /// The key is not encrypted; the product requires a passphrase-encrypted key.
    #[error(
        "{path}: private key is not encrypted; the key must be protected by a passphrase. Encrypt it with: openssl pkcs8 -topk8 -v2 aes-256-cbc -in {path} -out client_key.enc.pem (then replace the file and shred the plain one)"
    )]
    UnencryptedKey {
        /// The key file.
        path: PathBuf,
    },
    /// The key is encrypted with a scheme this agent does not decrypt.
    #[error(
        "{path}: private key is encrypted with {scheme}, which is not supported; convert it with: openssl pkcs8 -topk8 -v2 aes-256-cbc -in {path} -out client_key.new.pem"
    )]
    UnsupportedKeyEncryption {
        /// The key file.
        path: PathBuf,
        /// The scheme found (name or OID).
        scheme: String,
    },
    /// The passphrase does not decrypt the key.
    #[error("{path}: the passphrase does not decrypt this key{hint}")]
    WrongPassphrase {
        /// The key file.
        path: PathBuf,
        /// An extra hint (for example about trailing spaces), starting with "; " or empty.
        hint: String,
    },
    /// The key file is damaged: it decrypted or parsed to something that is not a private key.
    #[error("{path}: private key is malformed: {reason}")]
    InvalidKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key is neither RSA nor EC P-384.
    #[error(
        "{path}: private key type {key_type} is not supported; use RSA (2048 bits or more) or EC P-384"
    )]
    UnsupportedKeyType {
        /// The key file.
        path: PathBuf,
        /// What was found.
        key_type: String,
    },
    /// An RSA key shorter than 2048 bits.
    #[error("{path}: RSA key has {bits} bits; at least 2048 are required")]
    KeyTooSmall {
        /// The key file.
        path: PathBuf,
        /// The modulus length in bits.
        bits: usize,
    },
    /// The private key does not belong to the certificate.
    #[error(
        "{key_path}: private key does not match the certificate in {cert_path}; put the key that the certificate was issued for"
    )]
    KeyCertificateMismatch {
        /// The key file.
        key_path: PathBuf,
        /// The certificate file.
        cert_path: PathBuf,
    },
    /// The chain does not lead to one of the given trusted CAs.
    #[error("{path}: certificate chain is not trusted by the given CA bundle: {reason}")]
    ChainNotTrusted {
        /// The certificate file.
        path: PathBuf,
        /// The path validator's reason.
        reason: String,
    },
}

impl Error {
    /// A stable one-word name of the variant (`"WrongPassphrase"`, `"Expired"`, ...), for
    /// machine-readable output and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::DirectoryMissing { .. } => "DirectoryMissing",
            Error::NotADirectory { .. } => "NotADirectory",
            Error::MissingFile { .. } => "MissingFile",
            Error::NotAFile { .. } => "NotAFile",
            Error::SymbolicLink { .. } => "SymbolicLink",
            Error::FolderWritableByOthers { .. } => "FolderWritableByOthers",
            Error::FileTooLarge { .. } => "FileTooLarge",
            Error::Io { .. } => "Io",
            Error::InvalidPem { .. } => "InvalidPem",
            Error::NotACertificate { .. } => "NotACertificate",
            Error::InvalidCertificate { .. } => "InvalidCertificate",
            Error::UnsupportedSignatureAlgorithm { .. } => "UnsupportedSignatureAlgorithm",
            Error::MissingCommonName { .. } => "MissingCommonName",
            Error::MultipleCommonNames { .. } => "MultipleCommonNames",
            Error::UnsafeCommonName { .. } => "UnsafeCommonName",
            Error::KeyUsageNotAllowed { .. } => "KeyUsageNotAllowed",
            Error::ExtendedKeyUsageNotAllowed { .. } => "ExtendedKeyUsageNotAllowed",
            Error::InvalidExtension { .. } => "InvalidExtension",
            Error::UnsupportedCertificateVersion { .. } => "UnsupportedCertificateVersion",
            Error::SignatureAlgorithmMismatch { .. } => "SignatureAlgorithmMismatch",
            Error::UniqueIdentifierPresent { .. } => "UniqueIdentifierPresent",
            Error::UnknownCriticalExtension { .. } => "UnknownCriticalExtension",
            Error::DuplicateExtension { .. } => "DuplicateExtension",
            Error::CaCertificateAsClient { .. } => "CaCertificateAsClient",
            Error::Expired { .. } => "Expired",
            Error::NotYetValid { .. } => "NotYetValid",
            Error::EmptyPassphrase { .. } => "EmptyPassphrase",
            Error::UnencryptedKey { .. } => "UnencryptedKey",
            Error::UnsupportedKeyEncryption { .. } => "UnsupportedKeyEncryption",
            Error::WrongPassphrase { .. } => "WrongPassphrase",
            Error::InvalidKey { .. } => "InvalidKey",
            Error::UnsupportedKeyType { .. } => "UnsupportedKeyType",
            Error::KeyTooSmall { .. } => "KeyTooSmall",
            Error::KeyCertificateMismatch { .. } => "KeyCertificateMismatch",
            Error::ChainNotTrusted { .. } => "ChainNotTrusted",
        }
    }
}
