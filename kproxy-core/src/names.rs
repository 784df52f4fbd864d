//! Kubernetes name rules, as the API server validates them (apimachinery's
//! `IsDNS1123Label`, `IsDNS1123Subdomain`, `IsDNS1035Label`), for manifests and for
//! `hostnameOverride`. Each check returns why a name is invalid, in the API server's words.

/// Longest DNS-1123 / DNS-1035 label.
pub const LABEL_MAX: usize = 63;
/// Longest DNS-1123 subdomain.
pub const SUBDOMAIN_MAX: usize = 253;

fn alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn label_chars_ok(label: &str) -> bool {
    let b = label.as_bytes();
    !b.is_empty() && alnum(b[0]) && alnum(b[b.len() - 1]) && b.iter().all(|&c| alnum(c) || c == b'-')
}

/// A DNS-1123 label (namespaces, Service port names): at most 63 lower-case alphanumerics or
/// `-`, starting and ending with an alphanumeric.
pub fn dns1123_label(name: &str) -> Result<(), String> {
    if name.len() > LABEL_MAX {
        return Err(format!("must be no more than {LABEL_MAX} characters (has {})", name.len()));
    }
    if !label_chars_ok(name) {
        return Err("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')".into());
    }
    Ok(())
}

/// A DNS-1123 subdomain (Node, EndpointSlice and ServiceCIDR names, `hostnameOverride`): at
/// most 253 characters, dot-separated DNS-1123 labels.
pub fn dns1123_subdomain(name: &str) -> Result<(), String> {
    if name.len() > SUBDOMAIN_MAX {
        return Err(format!("must be no more than {SUBDOMAIN_MAX} characters (has {})", name.len()));
    }
    if !name.split('.').all(label_chars_ok) {
        return Err("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')".into());
    }
    Ok(())
}

/// A DNS-1035 label (Service names): a DNS-1123 label that starts with a letter.
pub fn dns1035_label(name: &str) -> Result<(), String> {
    if name.len() > LABEL_MAX {
        return Err(format!("must be no more than {LABEL_MAX} characters (has {})", name.len()));
    }
    if !label_chars_ok(name) || !name.as_bytes()[0].is_ascii_lowercase() {
        return Err("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name', or 'abc-123')".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_subdomains_and_dns1035() {
        for ok in ["a", "web", "my-name", "123-abc", &"a".repeat(63)] {
            assert!(dns1123_label(ok).is_ok(), "{ok:?}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64)] {
            assert!(dns1123_label(bad).is_err(), "{bad:?}");
        }
        for ok in ["node-1", "node-1.example.com", "1.2"] {
            assert!(dns1123_subdomain(ok).is_ok(), "{ok:?}");
        }
        for bad in ["Bad_Host!", "a..b", ".a", "a.", &"a".repeat(300)] {
            assert!(dns1123_subdomain(bad).is_err(), "{bad:?}");
        }
        assert!(dns1035_label("web-1").is_ok());
        assert!(dns1035_label("1web").is_err());
        assert!(dns1123_subdomain(&"a".repeat(300)).unwrap_err().contains("no more than 253"));
    }
}
