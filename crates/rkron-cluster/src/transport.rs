//! The gossip transport: chitchat's UDP codec behind a relay that owns the real socket, so gossip
//! can run on a pre-bound socket and be encrypted.
//!
//! chitchat 0.13 keeps its message encoding private, so a transport outside the crate cannot turn
//! an envelope into bytes. The relay lets chitchat's own `UdpSocket` do the encoding on a loopback
//! port and moves the bytes between that port and the real socket:
//!
//! ```text
//!  send:  chitchat codec socket ──plain──► capture socket ─► seal ─► real socket ─► peer
//!  recv:  peer ─► real socket ─► open ─► injector socket for that peer ──plain──► codec socket
//! ```
//!
//! Each peer gets its own injector socket, so the address a decoded envelope came from maps back
//! to the peer without relying on datagram order. Loopback relays never leave the machine.
//!
//! Wire format with a key: `0x01 | nonce (12 bytes, random per datagram) | AES-GCM ciphertext with
//! its 16-byte tag`; no associated data. Without a key, chitchat's plain datagrams are sent as is.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use aes_gcm::aead::{AeadInPlace, KeyInit, OsRng};
use aes_gcm::aes::Aes192;
use aes_gcm::{AeadCore, Aes128Gcm, Aes256Gcm, AesGcm, Nonce};
use anyhow::{Context, anyhow, bail};
use async_trait::async_trait;
use chitchat::ChitchatEnvelope;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport, UdpSocket as CodecSocket};
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tracing::{debug, warn};

/// The first byte of an encrypted datagram (the format version, like memberlist's).
pub(crate) const ENCRYPTED_FORMAT: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Bytes an encrypted datagram adds to chitchat's plain one.
pub(crate) const ENCRYPTION_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;
/// chitchat's datagrams start with its magic number 45139, little-endian.
const CHITCHAT_MAGIC: [u8; 2] = 45_139u16.to_le_bytes();
/// Largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;
/// How long `send` waits for chitchat's encoded datagram on the loopback capture socket.
const CAPTURE_TIMEOUT: Duration = Duration::from_secs(1);
/// At most one rejection warning per this period; the others are counted.
const REJECT_LOG_PERIOD: Duration = Duration::from_secs(10);
/// Injector sockets idle this long are closed once there are many of them.
const INJECTOR_IDLE: Duration = Duration::from_secs(120);
const INJECTOR_SOFT_LIMIT: usize = 1024;

/// AES-GCM with a 128, 192 or 256-bit key.
pub(crate) enum Cipher {
    Aes128(Box<Aes128Gcm>),
    Aes192(Box<AesGcm<Aes192, aes_gcm::aead::consts::U12>>),
    Aes256(Box<Aes256Gcm>),
}

/// A key that is not 16, 24 or 32 bytes long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadKeyLength(pub(crate) usize);

impl Cipher {
    pub(crate) fn new(key: &[u8]) -> Result<Self, BadKeyLength> {
        let bad = |_| BadKeyLength(key.len());
        match key.len() {
            16 => Ok(Cipher::Aes128(Box::new(
                Aes128Gcm::new_from_slice(key).map_err(bad)?,
            ))),
            24 => Ok(Cipher::Aes192(Box::new(
                AesGcm::new_from_slice(key).map_err(bad)?,
            ))),
            32 => Ok(Cipher::Aes256(Box::new(
                Aes256Gcm::new_from_slice(key).map_err(bad)?,
            ))),
            other => Err(BadKeyLength(other)),
        }
    }

    /// Encrypts `plain` into `out` as `format | nonce | ciphertext | tag`.
    pub(crate) fn seal(&self, plain: &[u8], out: &mut Vec<u8>) {
        let nonce = Aes128Gcm::generate_nonce(&mut OsRng);
        out.clear();
        out.push(ENCRYPTED_FORMAT);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let mut body = out.split_off(1 + NONCE_LEN);
        let sealed = match self {
            Cipher::Aes128(cipher) => cipher.encrypt_in_place(&nonce, b"", &mut body),
            Cipher::Aes192(cipher) => cipher.encrypt_in_place(&nonce, b"", &mut body),
            Cipher::Aes256(cipher) => cipher.encrypt_in_place(&nonce, b"", &mut body),
        };
        // Encryption fails only for plaintexts beyond 64 GiB, far above a datagram.
        debug_assert!(sealed.is_ok());
        out.extend_from_slice(&body);
    }

    /// Decrypts and authenticates a datagram made by [`Cipher::seal`] into `out`.
    pub(crate) fn open(&self, datagram: &[u8], out: &mut Vec<u8>) -> Result<(), ()> {
        if datagram.len() < ENCRYPTION_OVERHEAD || datagram[0] != ENCRYPTED_FORMAT {
            return Err(());
        }
        let nonce = Nonce::from_slice(&datagram[1..1 + NONCE_LEN]);
        out.clear();
        out.extend_from_slice(&datagram[1 + NONCE_LEN..]);
        match self {
            Cipher::Aes128(cipher) => cipher.decrypt_in_place(nonce, b"", out),
            Cipher::Aes192(cipher) => cipher.decrypt_in_place(nonce, b"", out),
            Cipher::Aes256(cipher) => cipher.decrypt_in_place(nonce, b"", out),
        }
        .map_err(|_| ())
    }
}

/// A chitchat [`Transport`] that hands out one prepared [`RelaySocket`].
pub(crate) struct RelayTransport {
    socket: Mutex<Option<RelaySocket>>,
}

impl RelayTransport {
    pub(crate) fn new(socket: RelaySocket) -> Self {
        Self {
            socket: Mutex::new(Some(socket)),
        }
    }
}

#[async_trait]
impl Transport for RelayTransport {
    async fn open(&self, _listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let socket = self
            .socket
            .lock()
            .map_err(|_| anyhow!("gossip transport lock poisoned"))?
            .take()
            .context("the gossip socket was already opened")?;
        Ok(Box::new(socket))
    }
}

struct Injector {
    socket: UdpSocket,
    last_used: Instant,
}

/// Counts rejected datagrams and warns at most once per [`REJECT_LOG_PERIOD`] and sender.
#[derive(Default)]
struct RejectLog {
    /// Per sender: when it was last warned about, and rejections since then.
    senders: HashMap<SocketAddr, (Instant, u64)>,
}

impl RejectLog {
    fn reject(&mut self, from: SocketAddr, keyed: bool) {
        let now = Instant::now();
        if let Some((last_warned, suppressed)) = self.senders.get_mut(&from)
            && now.duration_since(*last_warned) < REJECT_LOG_PERIOD
        {
            *suppressed += 1;
            return;
        }
        if self.senders.len() >= INJECTOR_SOFT_LIMIT {
            self.senders
                .retain(|_, (last_warned, _)| now.duration_since(*last_warned) < REJECT_LOG_PERIOD);
        }
        let suppressed = self
            .senders
            .insert(from, (now, 0))
            .map_or(0, |(_, suppressed)| suppressed);
        if keyed {
            warn!(%from, suppressed, "gossip from {from} rejected: wrong or missing encryption key");
        } else {
            warn!(
                %from,
                suppressed,
                "gossip from {from} rejected: it is encrypted or malformed and this node has no encryption key"
            );
        }
    }
}

/// The real gossip socket plus the loopback sockets that borrow chitchat's codec.
pub(crate) struct RelaySocket {
    real: UdpSocket,
    real_addr: SocketAddr,
    codec: CodecSocket,
    codec_addr: SocketAddr,
    capture: UdpSocket,
    capture_addr: SocketAddr,
    injectors: HashMap<SocketAddr, Injector>,
    peer_by_injector: HashMap<SocketAddr, SocketAddr>,
    cipher: Option<Cipher>,
    recv_buf: Box<[u8]>,
    send_buf: Box<[u8]>,
    plain: Vec<u8>,
    wire: Vec<u8>,
    rejects: RejectLog,
}

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

impl RelaySocket {
    /// Wraps a bound socket. Must run inside a tokio runtime.
    pub(crate) async fn new(real: std::net::UdpSocket, cipher: Option<Cipher>) -> io::Result<Self> {
        real.set_nonblocking(true)?;
        let real = UdpSocket::from_std(real)?;
        let real_addr = real.local_addr()?;
        let codec = CodecSocket::open(loopback())
            .await
            .map_err(|error| io::Error::other(format!("{error:#}")))?;
        let codec_addr = codec
            .local_addr()
            .map_err(|error| io::Error::other(format!("{error:#}")))?;
        let capture = UdpSocket::bind(loopback()).await?;
        let capture_addr = capture.local_addr()?;
        Ok(Self {
            real,
            real_addr,
            codec,
            codec_addr,
            capture,
            capture_addr,
            injectors: HashMap::new(),
            peer_by_injector: HashMap::new(),
            cipher,
            recv_buf: vec![0; 65_536].into_boxed_slice(),
            send_buf: vec![0; 65_536].into_boxed_slice(),
            plain: Vec::with_capacity(65_536),
            wire: Vec::with_capacity(65_536),
            rejects: RejectLog::default(),
        })
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.real_addr
    }

    /// Checks (and decrypts) one datagram from the real socket and hands it to chitchat's codec
    /// socket from the peer's injector. Never awaits, so `recv` stays cancel-safe.
    fn accept(&mut self, from: SocketAddr, len: usize) {
        let datagram = &self.recv_buf[..len];
        let plain: &[u8] = match &self.cipher {
            Some(cipher) => {
                if cipher.open(datagram, &mut self.plain).is_err() {
                    self.rejects.reject(from, true);
                    return;
                }
                &self.plain
            }
            None => {
                if !datagram.starts_with(&CHITCHAT_MAGIC) {
                    self.rejects.reject(from, false);
                    return;
                }
                datagram
            }
        };
        let now = Instant::now();
        if !self.injectors.contains_key(&from) {
            if self.injectors.len() >= INJECTOR_SOFT_LIMIT {
                let peer_by_injector = &mut self.peer_by_injector;
                self.injectors.retain(|_, injector| {
                    let keep = now.duration_since(injector.last_used) < INJECTOR_IDLE;
                    if !keep && let Ok(addr) = injector.socket.local_addr() {
                        peer_by_injector.remove(&addr);
                    }
                    keep
                });
            }
            let socket = match open_injector() {
                Ok(socket) => socket,
                Err(error) => {
                    warn!(%from, %error, "cannot open a loopback gossip relay socket");
                    return;
                }
            };
            let Ok(addr) = socket.local_addr() else {
                return;
            };
            self.peer_by_injector.insert(addr, from);
            self.injectors.insert(
                from,
                Injector {
                    socket,
                    last_used: now,
                },
            );
        }
        let Some(injector) = self.injectors.get_mut(&from) else {
            return;
        };
        injector.last_used = now;
        if let Err(error) = injector.socket.try_send_to(plain, self.codec_addr) {
            debug!(%from, %error, "gossip datagram dropped by the loopback relay");
        }
    }
}

fn open_injector() -> io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind(loopback())?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}

fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::OutOfMemory
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::Interrupted
    )
}

enum Received {
    Decoded(anyhow::Result<RecvOutcome>),
    Raw(io::Result<(usize, SocketAddr)>),
}

#[async_trait]
impl Socket for RelaySocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.real_addr)
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        self.codec.send(self.capture_addr, envelope).await?;
        let len = tokio::time::timeout(CAPTURE_TIMEOUT, async {
            loop {
                let (len, from) = self.capture.recv_from(&mut self.send_buf).await?;
                if from == self.codec_addr {
                    return Ok::<usize, io::Error>(len);
                }
            }
        })
        .await
        .context("gossip datagram lost on the loopback relay")??;
        let plain = &self.send_buf[..len];
        let wire: &[u8] = match &self.cipher {
            Some(cipher) => {
                cipher.seal(plain, &mut self.wire);
                &self.wire
            }
            None => plain,
        };
        if wire.len() > MAX_DATAGRAM {
            bail!(
                "gossip datagram of {} bytes exceeds the UDP limit of {MAX_DATAGRAM} bytes",
                wire.len()
            );
        }
        let num_bytes_sent = self
            .real
            .send_to(wire, to)
            .await
            .with_context(|| format!("failed to send gossip to {to}"))?;
        Ok(SendOutcome { num_bytes_sent })
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            // Both branches are cancel-safe: chitchat cancels `recv` on every gossip tick.
            let received = tokio::select! {
                biased;
                decoded = self.codec.recv() => Received::Decoded(decoded),
                raw = self.real.recv_from(&mut self.recv_buf) => Received::Raw(raw),
            };
            match received {
                Received::Decoded(decoded) => {
                    let mut outcome = decoded?;
                    if let Some(peer) = self.peer_by_injector.get(&outcome.from_addr) {
                        outcome.from_addr = *peer;
                        return Ok(outcome);
                    }
                    debug!(from = %outcome.from_addr, "stray datagram on the gossip relay dropped");
                }
                Received::Raw(Ok((len, from))) => self.accept(from, len),
                Received::Raw(Err(error)) if is_transient(&error) => {
                    debug!(%error, "transient gossip receive error");
                }
                Received::Raw(Err(error)) => {
                    return Err(error).context("gossip socket receive failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_datagrams_open_with_the_same_key_only() {
        for len in [16, 24, 32] {
            let cipher = Cipher::new(&vec![1; len]).unwrap();
            let other = Cipher::new(&vec![2; len]).unwrap();
            let mut sealed = Vec::new();
            cipher.seal(b"hello gossip", &mut sealed);
            assert_eq!(sealed.len(), b"hello gossip".len() + ENCRYPTION_OVERHEAD);
            assert_eq!(sealed[0], ENCRYPTED_FORMAT);
            let mut opened = Vec::new();
            cipher.open(&sealed, &mut opened).unwrap();
            assert_eq!(opened, b"hello gossip");
            assert!(other.open(&sealed, &mut opened).is_err());
            let mut tampered = sealed.clone();
            *tampered.last_mut().unwrap() ^= 1;
            assert!(cipher.open(&tampered, &mut opened).is_err());
        }
    }

    #[test]
    fn nonces_differ_per_datagram() {
        let cipher = Cipher::new(&[3; 16]).unwrap();
        let (mut first, mut second) = (Vec::new(), Vec::new());
        cipher.seal(b"same", &mut first);
        cipher.seal(b"same", &mut second);
        assert_ne!(first[1..13], second[1..13]);
    }

    #[test]
    fn keys_must_be_16_24_or_32_bytes() {
        for len in [0, 8, 15, 17, 31, 33, 64] {
            assert_eq!(Cipher::new(&vec![0; len]).err(), Some(BadKeyLength(len)));
        }
    }

    #[test]
    fn plain_datagrams_are_not_mistaken_for_encrypted_ones() {
        let cipher = Cipher::new(&[4; 32]).unwrap();
        let mut plain = CHITCHAT_MAGIC.to_vec();
        plain.extend_from_slice(&[0; 64]);
        assert!(cipher.open(&plain, &mut Vec::new()).is_err());
    }
}
