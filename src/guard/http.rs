//! `/healthz`, `/readyz` and `/metrics` over plain HTTP/1.1, one connection at a time on a thread
//! of its own: probes and scrapes are a few requests a minute, and a slow client only delays the
//! next probe, never a repair.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::metrics::Status;

const MAX_REQUEST: usize = 8 * 1024;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

pub fn spawn(listener: TcpListener, status: Arc<Mutex<Status>>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("hostguard-http".into())
        // The handler needs little stack; a small one keeps the daemon's footprint small.
        .stack_size(128 * 1024)
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                serve(stream, &status);
            }
        })
        .map(|_| ())
}

fn serve(mut stream: TcpStream, status: &Mutex<Status>) {
    let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
    let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
    let Some(head) = read_head(&mut stream) else {
        return;
    };
    let (code, body) = answer(&head, status);
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let content_type = if body.starts_with("# HELP") {
        "text/plain; version=0.0.4; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let head_only = head.starts_with("HEAD ");
    let response = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{}",
        body.len(),
        if head_only { "" } else { body.as_str() }
    );
    let _ = stream.write_all(response.as_bytes());
}

fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 || buf.len() + n > MAX_REQUEST {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(buf).ok()
}

fn answer(head: &str, status: &Mutex<Status>) -> (u16, String) {
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if method != "GET" && method != "HEAD" {
        return (405, "only GET\n".into());
    }
    let status = match status.lock() {
        Ok(status) => status,
        Err(poisoned) => poisoned.into_inner(),
    };
    match path {
        "/healthz" => (200, "ok\n".into()),
        "/readyz" => match status.readiness() {
            Ok(()) => (200, "ready\n".into()),
            Err(why) => (503, format!("{why}\n")),
        },
        "/metrics" => (200, status.render()),
        _ => (404, "not found; try /healthz, /readyz or /metrics\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_path_and_method() {
        let status = Mutex::new(Status::default());
        assert_eq!(answer("GET /healthz HTTP/1.1\r\n", &status).0, 200);
        assert_eq!(answer("GET /readyz HTTP/1.1\r\n", &status).0, 503);
        status.lock().unwrap().baseline_loaded = true;
        assert_eq!(answer("GET /readyz?verbose HTTP/1.1\r\n", &status).0, 200);
        let (code, body) = answer("GET /metrics HTTP/1.0\r\n", &status);
        assert_eq!(code, 200);
        assert!(body.contains("hostguard_routes_missing 0"));
        assert_eq!(answer("POST /readyz HTTP/1.1\r\n", &status).0, 405);
        assert_eq!(answer("GET /nope HTTP/1.1\r\n", &status).0, 404);
        assert_eq!(answer("", &status).0, 405);
    }
}
