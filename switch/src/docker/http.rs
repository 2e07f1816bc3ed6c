//! The few bytes of HTTP/1.1 a Docker plugin speaks: Docker POSTs one JSON
//! body per connection (Go's client sends a Content-Length for it) and
//! reads one JSON reply. Bounded in size and time; the connection closes
//! after the reply.

use std::io::{self, Read, Write};

/// Longest request head read; Docker's is a few hundred bytes.
pub const MAX_HEAD: usize = 8 * 1024;
/// Largest body taken; a CreateEndpoint with options is a few KiB.
pub const MAX_BODY: usize = 1024 * 1024;

/// One request: its method, path and body.
#[derive(Debug, PartialEq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

/// Why a request was not read; each becomes an HTTP error status.
#[derive(Debug, thiserror::Error)]
pub enum BadRequest {
    /// The head did not end within `MAX_HEAD` bytes.
    #[error("request head longer than {MAX_HEAD} bytes")]
    HeadTooLong,
    /// The body is larger than `MAX_BODY` bytes.
    #[error("request body of {0} bytes is larger than {MAX_BODY}")]
    BodyTooLarge(usize),
    /// No request line, a bad Content-Length, or a chunked body.
    #[error("{0}")]
    Malformed(String),
    /// The peer stopped sending or the socket failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl BadRequest {
    /// The HTTP status line that answers it.
    pub fn status(&self) -> &'static str {
        match self {
            BadRequest::HeadTooLong => "431 Request Header Fields Too Large",
            BadRequest::BodyTooLarge(_) => "413 Content Too Large",
            BadRequest::Malformed(_) | BadRequest::Io(_) => "400 Bad Request",
        }
    }
}

/// Reads one request from `conn`.
pub fn read_request(conn: &mut impl Read) -> Result<Request, BadRequest> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(BadRequest::HeadTooLong);
        }
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Err(BadRequest::Malformed(
                "connection closed inside the request head".into(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if head_end > MAX_HEAD {
        return Err(BadRequest::HeadTooLong);
    }
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let (Some(method), Some(path)) = (first.next(), first.next()) else {
        return Err(BadRequest::Malformed("no request line".into()));
    };
    let mut length = 0usize;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().map_err(|_| {
                BadRequest::Malformed(format!("Content-Length {value:?} is not a number"))
            })?;
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && !value.eq_ignore_ascii_case("identity")
        {
            return Err(BadRequest::Malformed(format!(
                "Transfer-Encoding {value} is not taken; send a Content-Length"
            )));
        }
    }
    if length > MAX_BODY {
        return Err(BadRequest::BodyTooLarge(length));
    }
    let mut body = buf.split_off(head_end + 4);
    body.truncate(length);
    while body.len() < length {
        let want = (length - body.len()).min(chunk.len());
        let n = conn.read(&mut chunk[..want])?;
        if n == 0 {
            return Err(BadRequest::Malformed(format!(
                "connection closed after {} of {length} body bytes",
                body.len()
            )));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        body,
    })
}

/// Writes a reply with a JSON body, in the plugin protocol's media type.
pub fn write_reply(conn: &mut impl Write, status: &str, body: &str) -> io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/vnd.docker.plugins.v1.2+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_with_a_content_length_gives_its_path_and_body() {
        let raw = b"POST /Plugin.Activate HTTP/1.1\r\nHost: plugin\r\nContent-Length: 2\r\n\r\n{}";
        let r = read_request(&mut &raw[..]).unwrap();
        assert_eq!(
            r,
            Request {
                method: "POST".into(),
                path: "/Plugin.Activate".into(),
                body: b"{}".to_vec()
            }
        );
    }

    #[test]
    fn a_body_larger_than_the_bound_is_refused_before_it_is_read() {
        let raw = format!(
            "POST /x HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        let e = read_request(&mut raw.as_bytes()).unwrap_err();
        assert_eq!(e.status(), "413 Content Too Large");
    }

    #[test]
    fn an_endless_head_is_refused() {
        let raw = format!("POST /x HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD * 2));
        let e = read_request(&mut raw.as_bytes()).unwrap_err();
        assert_eq!(e.status(), "431 Request Header Fields Too Large");
    }

    #[test]
    fn a_chunked_body_and_a_short_body_are_bad_requests() {
        let chunked = b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
        assert_eq!(
            read_request(&mut &chunked[..]).unwrap_err().status(),
            "400 Bad Request"
        );
        let short = b"POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\n{}";
        assert_eq!(
            read_request(&mut &short[..]).unwrap_err().status(),
            "400 Bad Request"
        );
    }
}
