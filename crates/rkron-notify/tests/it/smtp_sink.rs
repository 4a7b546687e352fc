//! A minimal SMTP receiver (EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT) that records each message.
//!
//! It offers AUTH PLAIN but not STARTTLS, so it also shows that a server without TLS works.

use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// One message the sink accepted.
#[derive(Debug, Clone, Default)]
pub(crate) struct Received {
    /// The decoded AUTH PLAIN response (`\0user\0password`), if the client authenticated.
    pub(crate) auth: Option<String>,
    pub(crate) mail_from: String,
    pub(crate) rcpt_to: Vec<String>,
    /// The message as sent after DATA, dot-unstuffed, lines joined by `\r\n`.
    pub(crate) data: String,
}

impl Received {
    /// Returns the unfolded value of header `name`.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        let (head, _) = self.data.split_once("\r\n\r\n")?;
        let mut value: Option<String> = None;
        let mut in_wanted = false;
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if in_wanted && let Some(v) = value.as_mut() {
                    v.push_str(line);
                }
                continue;
            }
            in_wanted = false;
            if let Some((key, rest)) = line.split_once(':')
                && key.eq_ignore_ascii_case(name)
                && value.is_none()
            {
                value = Some(rest.trim().to_owned());
                in_wanted = true;
            }
        }
        value
    }

    /// Returns the body after the header block.
    pub(crate) fn body(&self) -> &str {
        self.data
            .split_once("\r\n\r\n")
            .map_or("", |(_, body)| body)
    }
}

/// A running sink on 127.0.0.1.
pub(crate) struct SmtpSink {
    pub(crate) port: u16,
    messages: mpsc::UnboundedReceiver<Received>,
}

impl SmtpSink {
    pub(crate) async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (sender, messages) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, sender.clone()));
            }
        });
        Self { port, messages }
    }

    /// Returns the next message already received.
    ///
    /// The notifier awaits the server's answer to DATA, which comes after the message is
    /// recorded, so once a send has returned its message is here.
    pub(crate) fn try_next(&mut self) -> Option<Received> {
        self.messages.try_recv().ok()
    }

    /// Waits for the next message (bounded, so a broken test fails instead of hanging).
    pub(crate) async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(10), self.messages.recv())
            .await
            .expect("a message within 10 s")
            .expect("sink running")
    }
}

async fn serve(stream: TcpStream, sender: mpsc::UnboundedSender<Received>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut current = Received::default();
    if write
        .write_all(b"220 rkron-test-sink ESMTP\r\n")
        .await
        .is_err()
    {
        return;
    }
    loop {
        let Some(line) = read_line(&mut lines).await else {
            return;
        };
        let upper = line.to_ascii_uppercase();
        let answer: String = if upper.starts_with("EHLO") {
            "250-rkron-test-sink\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n".into()
        } else if upper.starts_with("HELO") {
            "250 rkron-test-sink\r\n".into()
        } else if upper.starts_with("AUTH PLAIN") {
            let initial = line["AUTH PLAIN".len()..].trim().to_owned();
            let encoded = if initial.is_empty() {
                if write.write_all(b"334 \r\n").await.is_err() {
                    return;
                }
                let Some(response) = read_line(&mut lines).await else {
                    return;
                };
                response
            } else {
                initial
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .unwrap_or_default();
            current.auth = Some(String::from_utf8_lossy(&decoded).into_owned());
            "235 2.7.0 Authentication successful\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            current.mail_from = address(&line["MAIL FROM:".len()..]);
            "250 2.1.0 Ok\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            current.rcpt_to.push(address(&line["RCPT TO:".len()..]));
            "250 2.1.5 Ok\r\n".into()
        } else if upper == "DATA" {
            if write
                .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await
                .is_err()
            {
                return;
            }
            let mut data = Vec::new();
            loop {
                let Some(data_line) = read_line(&mut lines).await else {
                    return;
                };
                if data_line == "." {
                    break;
                }
                let unstuffed = data_line.strip_prefix('.').unwrap_or(&data_line);
                data.push(unstuffed.to_owned());
            }
            let message = Received {
                auth: current.auth.clone(),
                mail_from: std::mem::take(&mut current.mail_from),
                rcpt_to: std::mem::take(&mut current.rcpt_to),
                data: data.join("\r\n"),
            };
            let _ = sender.send(message);
            "250 2.0.0 Ok: queued\r\n".into()
        } else if upper == "RSET" {
            current.mail_from.clear();
            current.rcpt_to.clear();
            "250 2.0.0 Ok\r\n".into()
        } else if upper == "NOOP" {
            "250 2.0.0 Ok\r\n".into()
        } else if upper == "QUIT" {
            let _ = write.write_all(b"221 2.0.0 Bye\r\n").await;
            return;
        } else {
            "502 5.5.2 Command not recognized\r\n".into()
        };
        if write.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Reads one line without its CRLF; `None` at end of stream.
async fn read_line(lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<String> {
    let mut line = String::new();
    match lines.read_line(&mut line).await {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_owned()),
    }
}

/// `<a@b> SIZE=10` → `a@b`.
fn address(argument: &str) -> String {
    let argument = argument.trim();
    let end = argument.find('>').map_or(argument.len(), |i| i + 1);
    argument[..end]
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}
