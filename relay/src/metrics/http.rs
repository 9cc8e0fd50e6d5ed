//! The metrics endpoint: `GET /metrics` over plain HTTP/1.x on TCP, answered with the
//! OpenMetrics text and the connection closed. Nothing else is served. What a request
//! head means is decided by [`route`] (pure); [`serve`] only moves bytes, a few scrapes
//! at a time, each bounded in size and time.

use std::sync::Arc;
use std::time::Duration;

use async_lock::Semaphore;
use async_net::{TcpListener, TcpStream};
use futures_lite::{AsyncReadExt, AsyncWriteExt};

use crate::shared::Shared;

/// Largest request head read; a longer one is refused.
pub const MAX_HEAD: usize = 8 * 1024;
/// A scraper has this long to send its request and read the answer.
const DEADLINE: Duration = Duration::from_secs(10);
/// Scrapes answered at once; further connections are closed at once.
const AT_ONCE: usize = 4;
/// `Content-Type` of the exposition (what `prometheus-client`'s text encoder writes).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What to answer a request head with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /metrics` (a query string is ignored).
    Metrics,
    /// Another path: 404.
    NotFound,
    /// Another method on `/metrics`: 405.
    MethodNotAllowed,
    /// Not an HTTP/1.x request line: 400.
    BadRequest,
}

/// Where the head in `buf` ends (just past its blank line), once it has.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Decides from a request head (its request line; headers are not needed).
pub fn route(head: &[u8]) -> Route {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else {
        return Route::BadRequest;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return Route::BadRequest;
    }
    let path = target.split('?').next().unwrap_or_default();
    match (method, path) {
        ("GET", "/metrics") => Route::Metrics,
        (_, "/metrics") => Route::MethodNotAllowed,
        _ => Route::NotFound,
    }
}

/// A whole response, with `Connection: close`.
pub fn response(route: Route, body: &str) -> Vec<u8> {
    let (status, content_type, body) = match route {
        Route::Metrics => ("200 OK", CONTENT_TYPE, body),
        Route::NotFound => ("404 Not Found", "text/plain", "only /metrics is here\n"),
        Route::MethodNotAllowed => ("405 Method Not Allowed", "text/plain", "GET only\n"),
        Route::BadRequest => ("400 Bad Request", "text/plain", "not an HTTP request\n"),
    };
    let allow = if route == Route::MethodNotAllowed {
        "Allow: GET\r\n"
    } else {
        ""
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         {allow}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// Accepts scrapes until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let permits = Arc::new(Semaphore::new(AT_ONCE));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, say: wait a little rather than spin.
                tracing::warn!("metrics endpoint: accept: {e}");
                smol::Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(permit) = permits.try_acquire_arc() else {
            continue;
        };
        let shared = shared.clone();
        smol::spawn(async move {
            let answered = smol::future::or(answer(stream, &shared), async {
                smol::Timer::after(DEADLINE).await;
                Ok(())
            });
            if let Err(e) = answered.await {
                tracing::debug!("metrics endpoint: {e}");
            }
            drop(permit);
        })
        .detach();
    }
}

async fn answer(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut buf = vec![0u8; MAX_HEAD];
    let mut len = 0;
    let route = loop {
        if let Some(end) = head_end(&buf[..len]) {
            break route(&buf[..end]);
        }
        if len == buf.len() {
            break Route::BadRequest;
        }
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            return Ok(());
        }
        len += n;
    };
    let body = match route {
        Route::Metrics => shared.metrics_text().await,
        _ => String::new(),
    };
    stream.write_all(&response(route, &body)).await?;
    stream.flush().await?;
    stream.close().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_get_metrics_is_served() {
        let get = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n";
        assert_eq!(head_end(get), Some(get.len()));
        assert_eq!(route(get), Route::Metrics);
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics);
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Route::MethodNotAllowed
        );
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"GET /metricsx HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"GET /metrics\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"GET /metrics SPDY/3\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"GET metrics HTTP/1.1\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"\xff\xfe\r\n\r\n"), Route::BadRequest);
        assert_eq!(head_end(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[test]
    fn responses_say_their_length_and_close() {
        let r = String::from_utf8(response(Route::Metrics, "a 1\n# EOF\n")).unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("Content-Length: 10\r\n"), "{r}");
        assert!(r.contains(CONTENT_TYPE), "{r}");
        assert!(r.contains("Connection: close\r\n\r\na 1\n"), "{r}");
        let r = String::from_utf8(response(Route::MethodNotAllowed, "ignored")).unwrap();
        assert!(
            r.starts_with("HTTP/1.1 405") && r.contains("Allow: GET"),
            "{r}"
        );
    }

    proptest! {
        /// Any bytes get an answer, never a panic.
        #[test]
        fn any_head_routes(head in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = head_end(&head);
            let r = route(&head);
            let _ = response(r, "");
        }
    }
}
