//! A tiny raw HTTP/1.1 client over tokio `TcpStream` for the tests.
#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A parsed response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A keep-alive client connection with its own read buffer.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> io::Result<Client> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            buf: Vec::new(),
        })
    }

    pub async fn send(&mut self, raw: &[u8]) -> io::Result<()> {
        self.stream.write_all(raw).await
    }

    pub async fn get(&mut self, path: &str) -> io::Result<Resp> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
        self.send(req.as_bytes()).await?;
        self.read_response(false).await
    }

    /// Reads one response (Content-Length framing, or to EOF without it).
    pub async fn read_response(&mut self, head_request: bool) -> io::Result<Resp> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = resp.code.unwrap_or(0);
                    let headers: Vec<(String, String)> = resp
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_ascii_lowercase(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect();
                    let cl = headers
                        .iter()
                        .find(|(k, _)| k == "content-length")
                        .map(|(_, v)| v.parse::<usize>().unwrap());
                    self.buf.drain(..n);
                    let body = if head_request || status == 204 || status == 304 {
                        Vec::new()
                    } else if let Some(cl) = cl {
                        while self.buf.len() < cl {
                            if self.fill().await? == 0 {
                                return Err(io::ErrorKind::UnexpectedEof.into());
                            }
                        }
                        self.buf.drain(..cl).collect()
                    } else {
                        while self.fill().await? > 0 {}
                        std::mem::take(&mut self.buf)
                    };
                    return Ok(Resp {
                        status,
                        headers,
                        body,
                    });
                }
                Ok(httparse::Status::Partial) => {
                    if self.fill().await? == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
        }
    }

    async fn fill(&mut self) -> io::Result<usize> {
        let mut tmp = [0u8; 16 * 1024];
        let n = self.stream.read(&mut tmp).await?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    /// Reads everything until EOF or error; returns bytes read and the error, if any.
    pub async fn read_all(&mut self) -> (Vec<u8>, Option<io::Error>) {
        let mut out = std::mem::take(&mut self.buf);
        let mut tmp = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut tmp).await {
                Ok(0) => return (out, None),
                Ok(n) => out.extend_from_slice(&tmp[..n]),
                Err(e) => return (out, Some(e)),
            }
        }
    }
}

/// One request on a fresh connection.
pub async fn get(addr: SocketAddr, path: &str) -> Resp {
    let mut c = Client::connect(addr).await.unwrap();
    c.get(path).await.unwrap()
}

/// Expected deterministic body of `n` bytes.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}
