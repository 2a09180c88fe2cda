//! Secrets and the HTTP client settings that carry them, shared by the Prometheus
//! client and the receivers: values that are read at every use and never printed.

use std::fmt;
use std::path::PathBuf;

/// How requests authenticate.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    Bearer(SecretValue),
    Basic {
        username: String,
        password: SecretValue,
    },
}

/// A secret given inline or as a file that is read at every use, so rotated tokens
/// (projected service-account tokens, mounted Secrets) are picked up without a restart.
#[derive(Clone)]
pub enum SecretValue {
    Inline(String),
    File(PathBuf),
}

impl SecretValue {
    /// The secret's current value. The error names the file, never the content.
    pub fn read(&self) -> Result<String, String> {
        match self {
            SecretValue::Inline(value) => Ok(value.clone()),
            SecretValue::File(path) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| format!("cannot read secret file {}: {e}", path.display())),
        }
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretValue::Inline(_) => f.write_str("<redacted>"),
            SecretValue::File(path) => write!(f, "<from file {}>", path.display()),
        }
    }
}

/// A config value that may be a secret (a webhook header carrying a token): usable
/// as a string, printed as `<redacted>` by Debug.
#[derive(Clone, PartialEq, Eq)]
pub struct RedactedValue(pub String);

impl fmt::Debug for RedactedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// TLS settings of an HTTP client: Prometheus' and each Alertmanager's.
#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
}

impl TlsConfig {
    /// Adds the CA bundle, the client certificate and the verification switch to an
    /// HTTP client being built: one place for Prometheus and Alertmanager alike.
    pub fn apply(
        &self,
        mut builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, String> {
        if let Some(ca) = &self.ca_file {
            let pem =
                std::fs::read(ca).map_err(|e| format!("tls.ca_file {}: {e}", ca.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("tls.ca_file {}: {e}", ca.display()))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) {
            let mut pem = std::fs::read(cert)
                .map_err(|e| format!("tls.cert_file {}: {e}", cert.display()))?;
            pem.extend(
                std::fs::read(key).map_err(|e| format!("tls.key_file {}: {e}", key.display()))?,
            );
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|e| format!("tls client certificate: {e}"))?;
            builder = builder.identity(identity);
        }
        if self.insecure_skip_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        Ok(builder)
    }
}
