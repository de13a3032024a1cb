//! Stream names and keys in logs.

/// A stream name for logs: names are secrets (stream keys), so only the
/// first four characters of a name longer than eight are shown.
pub(crate) fn redact(name: &str) -> Redacted<'_> {
    Redacted(name)
}

/// See [`redact`]; formats without allocating unless logged.
pub(crate) struct Redacted<'a>(&'a str);

impl std::fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.chars().count() > 8 {
            let end = self
                .0
                .char_indices()
                .nth(4)
                .map_or(self.0.len(), |(i, _)| i);
            write!(f, "{}…", &self.0[..end])
        } else {
            f.write_str(self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacted_names_show_four_characters_when_longer_than_eight() {
        assert_eq!(redact("short").to_string(), "short");
        assert_eq!(redact("12345678").to_string(), "12345678");
        assert_eq!(redact("secretkey123").to_string(), "secr…");
        assert_eq!(redact("ééééééééé").to_string(), "éééé…");
    }
}
