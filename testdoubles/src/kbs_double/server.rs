//! Runs the KBS double on a TCP listener: one task per connection, several
//! requests per connection (HTTP/1.1 keep-alive), one log line per request
//! on stdout. A request that cannot be parsed gets a 400 and the connection
//! is closed. [`serve_connection`] serves any byte stream (tests put TLS in
//! front of it to stand in for an https Trustee).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use super::KbsDouble;
use crate::http1::{Connection, HttpError, Response, keeps_alive};

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Accepts connections forever.
pub async fn serve(listener: TcpListener, double: Arc<KbsDouble>) -> std::io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let double = Arc::clone(&double);
        tokio::spawn(async move {
            if let Err(e) = serve_connection(stream, &double).await {
                println!("kbs-double: connection from {peer} ended: {e}");
            }
        });
    }
}

/// Serves the requests of one connection until the peer closes it.
pub async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    double: &KbsDouble,
) -> Result<(), HttpError> {
    let mut connection = Connection::new(stream);
    loop {
        let request = match connection.read_request().await {
            Ok(Some(request)) => request,
            Ok(None) => return Ok(()),
            Err(e @ (HttpError::Malformed(_) | HttpError::TooLarge(_))) => {
                println!("kbs-double: bad request -> 400 {e}");
                let response = Response::new(400, "text/plain", e.to_string());
                connection.write_response(&response, false).await?;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let outcome = double.handle(&request, unix_now());
        println!("{}", outcome.log_line(&request));
        let keep_alive = keeps_alive(&request.head.headers);
        connection
            .write_response(&outcome.response, keep_alive)
            .await?;
        if !keep_alive {
            return Ok(());
        }
    }
}
