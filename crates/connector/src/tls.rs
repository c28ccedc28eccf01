//! TLS for every HTTPS client wxcube builds (the API, S3): rustls with ring's cryptography.
//!
//! rustls leaves the choice of crypto provider to the program. ring builds in seconds; the
//! default, aws-lc-rs, is a large C library that took a third of a cold build's CPU and needs
//! cmake (README, "Performance"). wxcube needs nothing of TLS beyond what both offer.

use std::sync::Once;

/// Makes ring the process's crypto provider, once; called before any HTTP client is built.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err means a provider is installed already (a program embedding wxcube chose one):
        // that one is kept.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
