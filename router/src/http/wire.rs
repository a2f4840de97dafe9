//! HTTP/1.1 framing pieces both sides of the router use: its server (client requests) and
//! its client (node answers).

/// Length of the head at the start of `buf` (through its blank line) once it is all there;
/// `scanned` bytes were looked at before without finding its end.
pub fn head_len(buf: &[u8], scanned: usize) -> Option<usize> {
    let from = scanned.saturating_sub(3);
    buf[from..].iter().enumerate().filter(|(_, &b)| b == b'\n').find_map(|(i, _)| {
        let after = &buf[from + i + 1..];
        if after.starts_with(b"\n") {
            Some(from + i + 2)
        } else if after.starts_with(b"\r\n") {
            Some(from + i + 3)
        } else {
            None
        }
    })
}

/// Comma-separated tokens of a header value, trimmed.
pub fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_ends_are_found_across_reads() {
        let raw = b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody";
        assert_eq!(head_len(raw, 0), Some(raw.len() - 4));
        for scanned in 0..raw.len() - 4 {
            assert_eq!(head_len(&raw[..raw.len() - 4], scanned), Some(raw.len() - 4), "scanned {scanned}");
        }
        assert_eq!(head_len(b"GET / HTTP/1.1\r\nA: b\r\n", 0), None);
        assert_eq!(head_len(b"HTTP/1.0 200 OK\nA: b\n\nrest", 0), Some(22), "bare LF line ends");
    }

    #[test]
    fn tokens_are_split_and_trimmed() {
        let t: Vec<&[u8]> = tokens(b" keep-alive ,, X-Hop,close").collect();
        assert_eq!(t, [&b"keep-alive"[..], b"X-Hop", b"close"]);
    }
}
