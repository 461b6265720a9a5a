//! A real redis-server for the tests, started on a free loopback port with
//! a private folder (never the system's service) and killed on drop. The
//! pair must survive a restart, so it runs with `appendonly yes` and
//! `appendfsync always`, as the README asks of production.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    extra: Vec<String>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// Starts redis-server with `extra` settings (e.g. `--requirepass x`).
    pub fn start(extra: &[&str]) -> RedisServer {
        RedisServer::start_with(|_, _| extra.iter().map(|s| s.to_string()).collect())
    }

    /// Starts redis-server with the settings `extra` gives for its port and folder.
    pub fn start_with(extra: impl FnOnce(u16, &std::path::Path) -> Vec<String>) -> RedisServer {
        let (port, dir) = (free_port(), tempfile::tempdir().unwrap());
        let extra = extra(port, dir.path());
        let mut s = RedisServer {
            child: None,
            port,
            dir,
            extra,
        };
        s.restart();
        s
    }

    /// Starts it (again) on the same port and folder: the AOF brings the data back.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let dir = self.dir.path();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--dir", dir.to_str().unwrap(), "--daemonize", "no"])
            .args(["--appendonly", "yes", "--appendfsync", "always", "--save", ""])
            .args(["--logfile", dir.join("redis.log").to_str().unwrap()])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): the Redis tests need Debian's redis-server (apt-get install redis-server; ./build.sh test installs it)")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on {} within 10 s; its log: {}",
                self.port,
                std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it (SIGKILL: no chance to save anything more).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// A connection of the test's own, for looking at and arranging keys.
    pub fn raw(&self, password: Option<&str>) -> redis::Connection {
        let url = match password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}/0", self.port),
            None => self.url(),
        };
        redis::Client::open(url).unwrap().get_connection().unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
