//! Errors as one line: an error and every cause under it, for log lines and for messages
//! that list several independent failures (a publish to many regions, a status report).

/// `error: cause: cause`, for messages that list several independent failures.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading the manifest")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_follows_its_error() {
        let e = Outer(std::io::Error::other("connection refused"));
        assert_eq!(error_chain(&e), "reading the manifest: connection refused");
    }
}
