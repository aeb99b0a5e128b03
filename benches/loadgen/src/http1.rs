//! Blocking HTTP/1.1 for the few requests the robustness scenarios make outside the load:
//! publishes on a keep-alive connection, /metrics scrapes. Every read and write has a timeout.

use crate::sse::parse_response_head;
use std::io::{self, Read, Write};
use std::net::{SocketAddrV4, TcpStream};
use std::time::Duration;

/// Longest answer kept: /metrics is a few hundred bytes, a publish answer a few dozen.
const MAX_ANSWER: usize = 1 << 20;

pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One client connection; requests are sent one at a time and their answers read whole.
pub struct Client {
    stream: TcpStream,
    input: Vec<u8>,
}

impl Client {
    pub fn connect(target: SocketAddrV4, timeout: Duration) -> io::Result<Client> {
        let stream = TcpStream::connect_timeout(&target.into(), timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Client { stream, input: Vec::new() })
    }

    /// Sends `request` (head and body) and reads one answer with a Content-Length.
    pub fn exchange(&mut self, request: &[u8]) -> io::Result<Answer> {
        self.stream.write_all(request)?;
        self.read_answer()
    }

    fn read_answer(&mut self) -> io::Result<Answer> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let parsed = parse_response_head(&self.input)
                .map_err(|()| io::Error::new(io::ErrorKind::InvalidData, "unparsable answer head"))?;
            if let Some(head) = parsed {
                let length = head.content_length.unwrap_or(0) as usize;
                if self.input.len() >= head.len + length {
                    let body = self.input[head.len..head.len + length].to_vec();
                    self.input.drain(..head.len + length);
                    return Ok(Answer { status: head.status, body });
                }
            }
            if self.input.len() > MAX_ANSWER {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "answer too long"));
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before the answer")),
                Ok(n) => self.input.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// The request that publishes `data` (text/plain) to the topics of `query` (`topic=a&topic=b`).
pub fn publish_request(target: SocketAddrV4, query: &str, data: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST /publish?{query} HTTP/1.1\r\nHost: {target}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        data.len()
    )
    .into_bytes();
    request.extend_from_slice(data);
    request
}

/// The id in the body of a publish's `200`.
pub fn published_id(answer: &Answer) -> Option<u64> {
    std::str::from_utf8(&answer.body).ok()?.trim().parse().ok()
}

/// Publishes one event on a connection of its own and returns its id.
pub fn publish_once(target: SocketAddrV4, query: &str, data: &[u8]) -> Result<u64, String> {
    let mut client = Client::connect(target, Duration::from_secs(5)).map_err(|e| format!("publish: {e}"))?;
    let answer = client.exchange(&publish_request(target, query, data)).map_err(|e| format!("publish: {e}"))?;
    if answer.status != 200 {
        return Err(format!("publish answered {}: {}", answer.status, answer.text().trim()));
    }
    published_id(&answer).ok_or_else(|| format!("publish answered 200 without an id: {}", answer.text()))
}

/// GET `path` on a fresh connection that the request closes.
pub fn get(target: SocketAddrV4, path: &str, timeout: Duration) -> io::Result<Answer> {
    let mut client = Client::connect(target, timeout)?;
    client.exchange(format!("GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n").as_bytes())
}

/// Prometheus text: `name value` lines (labels kept in the name, as written).
pub struct Metrics(Vec<(String, f64)>);

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let values = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((name.trim().to_string(), value.trim().parse().ok()?))
            })
            .collect();
        Metrics(values)
    }

    /// A metric's value; 0 when it is absent.
    pub fn get(&self, name: &str) -> f64 {
        self.0.iter().find(|(n, _)| n == name).map_or(0.0, |(_, v)| *v)
    }
}

/// Scrapes /metrics once.
pub fn metrics(target: SocketAddrV4) -> Result<Metrics, String> {
    let answer = get(target, "/metrics", Duration::from_secs(5)).map_err(|e| format!("/metrics: {e}"))?;
    if answer.status != 200 {
        return Err(format!("/metrics answered {}", answer.status));
    }
    Ok(Metrics::parse(&answer.text()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prometheus_lines() {
        let m = Metrics::parse("# HELP x y\nssed_connections 3\nssed_requests_refused_total{reason=\"timeout\"} 12\n");
        assert_eq!(m.get("ssed_connections"), 3.0);
        assert_eq!(m.get("ssed_requests_refused_total{reason=\"timeout\"}"), 12.0);
        assert_eq!(m.get("absent"), 0.0);
    }
}
