//! The execution report e-mail: message building and SMTP delivery with lettre.

use std::net::IpAddr;
use std::sync::OnceLock;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::{NotifyError, NotifySettings, SEND_TIMEOUT};

/// One e-mail to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Email {
    pub(crate) to: Vec<String>,
    pub(crate) subject: String,
    pub(crate) body: String,
}

/// Sends e-mail through the configured SMTP server.
pub(crate) struct Mailer {
    host: String,
    port: u16,
    from: String,
    credentials: Option<Credentials>,
    /// Built on first use: lettre's connection pool spawns its cleanup task on the runtime, and
    /// `Notifier::new` may run outside one.
    transport: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials stay out of logs.
        f.debug_struct("Mailer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("from", &self.from)
            .field("authenticated", &self.credentials.is_some())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    pub(crate) fn new(settings: &NotifySettings) -> Self {
        let credentials =
            (!settings.mail_username.is_empty() && !settings.mail_password.is_empty()).then(|| {
                Credentials::new(
                    settings.mail_username.clone(),
                    settings.mail_password.clone(),
                )
            });
        Self {
            host: settings.mail_host.clone(),
            port: settings.mail_port,
            from: settings.mail_from.clone(),
            credentials,
            transport: OnceLock::new(),
        }
    }

    /// Returns true when `mail-host` and `mail-port` are both set.
    pub(crate) fn is_configured(&self) -> bool {
        !self.host.is_empty() && self.port != 0
    }

    /// Sends `email` as a plain-text message from `mail-from`.
    pub(crate) async fn send(&self, email: Email) -> Result<(), NotifyError> {
        let message = self.message(email)?;
        let transport = self.transport.get_or_init(|| self.build_transport());
        transport
            .send(message)
            .await
            .map(drop)
            .map_err(|error| NotifyError::Delivery(error.to_string()))
    }

    fn message(&self, email: Email) -> Result<Message, NotifyError> {
        let mut builder = Message::builder()
            .from(mailbox(&self.from)?)
            .subject(email.subject)
            .header(ContentType::TEXT_PLAIN);
        for to in &email.to {
            builder = builder.to(mailbox(to)?);
        }
        builder
            .body(email.body)
            .map_err(|error| NotifyError::Message(error.to_string()))
    }

    fn build_transport(&self) -> AsyncSmtpTransport<Tokio1Executor> {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .timeout(Some(SEND_TIMEOUT))
            .tls(self.tls());
        if let Some(credentials) = &self.credentials {
            builder = builder
                .credentials(credentials.clone())
                .authentication(vec![Mechanism::Plain]);
        }
        builder.build()
    }

    /// STARTTLS when offered; required when a password would otherwise cross the network in
    /// clear (the same rule as Go's `smtp.PlainAuth`, which Dkron uses).
    fn tls(&self) -> Tls {
        let parameters = match TlsParameters::new(self.host.clone()) {
            Ok(parameters) => parameters,
            Err(error) => {
                tracing::warn!(host = %self.host, %error, "cannot set up tls for smtp, sending in plain text");
                return Tls::None;
            }
        };
        if self.credentials.is_some() && !is_loopback(&self.host) {
            Tls::Required(parameters)
        } else {
            Tls::Opportunistic(parameters)
        }
    }
}

fn mailbox(address: &str) -> Result<Mailbox, NotifyError> {
    address.parse().map_err(
        |error: lettre::address::AddressError| NotifyError::Address {
            address: address.to_owned(),
            reason: error.to_string(),
        },
    )
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(host: &str, user: &str, password: &str) -> NotifySettings {
        NotifySettings {
            mail_host: host.into(),
            mail_port: 25,
            mail_username: user.into(),
            mail_password: password.into(),
            mail_from: "cron@example.com".into(),
            ..NotifySettings::default()
        }
    }

    #[test]
    fn starttls_is_required_only_for_a_password_to_a_remote_host() {
        let tls = |host, user, password| {
            format!("{:?}", Mailer::new(&settings(host, user, password)).tls())
        };
        assert_eq!(tls("smtp.example.com", "", ""), "Opportunistic");
        assert_eq!(tls("smtp.example.com", "user", ""), "Opportunistic");
        assert_eq!(tls("smtp.example.com", "user", "secret"), "Required");
        assert_eq!(tls("127.0.0.1", "user", "secret"), "Opportunistic");
        assert_eq!(tls("localhost", "user", "secret"), "Opportunistic");
        assert_eq!(tls("[::1]", "user", "secret"), "Opportunistic");
    }

    #[test]
    fn mail_needs_host_and_port() {
        assert!(Mailer::new(&settings("smtp.example.com", "", "")).is_configured());
        let mut no_port = settings("smtp.example.com", "", "");
        no_port.mail_port = 0;
        assert!(!Mailer::new(&no_port).is_configured());
        assert!(!Mailer::new(&settings("", "", "")).is_configured());
    }

    #[test]
    fn invalid_addresses_are_reported() {
        let mailer = Mailer::new(&settings("smtp.example.com", "", ""));
        let email = Email {
            to: vec!["not an address".into()],
            subject: "s".into(),
            body: "b".into(),
        };
        let error = mailer.message(email).unwrap_err();
        assert!(
            matches!(error, NotifyError::Address { ref address, .. } if address == "not an address")
        );
    }
}
