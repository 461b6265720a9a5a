//! A tiny raw-TCP HTTP/1.1 client for the emulator's tests.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use amocrm_emulator::{Emulator, EmulatorConfig};
use serde_json::Value;

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
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or("")
    }
}

pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(emu: &Emulator) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", emu.port())).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send_raw(&mut self, data: &[u8]) -> io::Result<()> {
        self.stream.write_all(data)
    }

    /// Send one request (Content-Length framing) and read the answer.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Resp> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" || method == "PATCH" {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.send_raw(&bytes)?;
        self.read_response(method == "HEAD")
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut tmp = [0u8; 65536];
        let n = self.stream.read(&mut tmp)?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    pub fn read_response(&mut self, head_request: bool) -> io::Result<Resp> {
        loop {
            let mut hs = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut hs);
            match r.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = r.code.unwrap_or(0);
                    let headers: Vec<(String, String)> = r
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_string(),
                                String::from_utf8_lossy(h.value).to_string(),
                            )
                        })
                        .collect();
                    self.buf.drain(..n);
                    if status == 100 {
                        continue;
                    }
                    let cl = headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                        .map(|(_, v)| v.parse::<usize>().expect("content-length"));
                    let body = if head_request || status == 204 || status == 304 {
                        Vec::new()
                    } else if let Some(len) = cl {
                        while self.buf.len() < len {
                            if self.fill()? == 0 {
                                return Err(io::Error::new(
                                    io::ErrorKind::UnexpectedEof,
                                    format!("body cut at {} of {len}", self.buf.len()),
                                ));
                            }
                        }
                        self.buf.drain(..len).collect()
                    } else {
                        while self.fill()? > 0 {}
                        std::mem::take(&mut self.buf)
                    };
                    return Ok(Resp {
                        status,
                        headers,
                        body,
                    });
                }
                Ok(httparse::Status::Partial) => {
                    if self.fill()? == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "connection closed before a response",
                        ));
                    }
                }
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
        }
    }

    /// True when the server has closed the connection (EOF or reset).
    pub fn is_closed(&mut self) -> bool {
        matches!(self.fill(), Ok(0) | Err(_))
    }
}

pub fn request(
    emu: &Emulator,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    Client::connect(emu)
        .request(method, path, headers, body)
        .expect("request")
}

pub fn post_json(emu: &Emulator, path: &str, v: &Value) -> Resp {
    request(
        emu,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        v.to_string().as_bytes(),
    )
}

pub fn post_form(emu: &Emulator, path: &str, pairs: &[(&str, &str)]) -> Resp {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    request(
        emu,
        "POST",
        path,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        ser.finish().as_bytes(),
    )
}

pub fn get(emu: &Emulator, path: &str) -> Resp {
    request(emu, "GET", path, &[], b"")
}

pub fn api(emu: &Emulator, method: &str, path: &str, token: &str, body: Option<&Value>) -> Resp {
    let auth = format!("Bearer {token}");
    let b = body.map(|v| v.to_string()).unwrap_or_default();
    let mut h = vec![("Authorization", auth.as_str())];
    if body.is_some() {
        h.push(("Content-Type", "application/json"));
    }
    request(emu, method, path, &h, b.as_bytes())
}

/// An emulator with amoCRM's 7 rps limit off (these tests send many
/// requests at once) and an access token it minted.
pub fn unlimited() -> (Emulator, String) {
    let emu = Emulator::start(EmulatorConfig {
        rate_limit: 0,
        ..EmulatorConfig::default()
    })
    .expect("start");
    let at = emu.mint_tokens()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    (emu, at)
}
