//! ICE servers as the daemon configures them: STUN and TURN URLs with their transport, static
//! TURN credentials or TURN REST credentials derived from a shared secret, and the candidate
//! policy. Pure: parsing, validation and credential derivation, with time passed in.
//!
//! Why credentials are a type: a `Secret` prints as `***`, so a configuration or an ICE server
//! list can go to a log line or a status reply without leaking what it holds.

use std::fmt;

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use serde::Deserialize;

/// A credential: never printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// Reads a credential from a file only its owner can read: a secret others could read is
    /// refused with the fix, not used (the TURN server would trust whoever read it).
    pub fn from_private_file(path: &std::path::Path) -> Result<Self, String> {
        use std::os::unix::fs::PermissionsExt as _;
        let shown = path.display();
        let mode = std::fs::metadata(path)
            .map_err(|e| format!("{shown}: {e}"))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "{shown} can be read by other accounts (mode {:o}); run `chmod 600 {shown}`",
                mode & 0o777
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
        Ok(Secret::new(text.trim()))
    }

    /// The credential itself, for the engine or a MAC.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Which candidates ICE may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum IcePolicy {
    /// Host, server-reflexive and relayed candidates.
    #[default]
    All,
    /// Only relayed (TURN) candidates: every path goes through a TURN server.
    Relay,
}

/// The kind of server a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `stun:`
    Stun,
    /// `turn:`
    Turn,
    /// `turns:` (TURN over TLS).
    Turns,
}

/// How a TURN server is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnTransport {
    /// UDP (the default for `turn:`).
    Udp,
    /// TCP (the default for `turns:`).
    Tcp,
}

/// One parsed STUN or TURN URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceUrl {
    /// stun, turn or turns.
    pub scheme: Scheme,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (3478, or 5349 for `turns:`, when the URL gives none).
    pub port: u16,
    /// Transport to the server (`?transport=`).
    pub transport: TurnTransport,
}

impl IceUrl {
    /// Parses `stun:host[:port]`, `turn:host[:port][?transport=udp|tcp]` or `turns:…`.
    pub fn parse(url: &str) -> Result<IceUrl, String> {
        let (scheme, rest) = if let Some(r) = url.strip_prefix("stun:") {
            (Scheme::Stun, r)
        } else if let Some(r) = url.strip_prefix("turns:") {
            (Scheme::Turns, r)
        } else if let Some(r) = url.strip_prefix("turn:") {
            (Scheme::Turn, r)
        } else {
            return Err(format!(
                "{url:?} is not a stun:, turn: or turns: URL (or `none`)"
            ));
        };
        let (hostport, query) = match rest.split_once('?') {
            Some((h, q)) => (h, Some(q)),
            None => (rest, None),
        };
        let transport = match query {
            None => match scheme {
                Scheme::Turns => TurnTransport::Tcp,
                _ => TurnTransport::Udp,
            },
            Some(_) if scheme == Scheme::Stun => {
                return Err(format!("{url:?}: a stun: URL takes no ?transport="));
            }
            Some("transport=udp") if scheme == Scheme::Turns => {
                return Err(format!("{url:?}: turns: runs over TCP (TLS)"));
            }
            Some("transport=udp") => TurnTransport::Udp,
            Some("transport=tcp") => TurnTransport::Tcp,
            Some(q) => {
                return Err(format!(
                    "{url:?}: unknown query {q:?} (transport=udp or transport=tcp)"
                ));
            }
        };
        let default_port = if scheme == Scheme::Turns { 5349 } else { 3478 };
        let (host, port) = split_host_port(hostport, default_port)
            .ok_or_else(|| format!("{url:?}: expected host[:port]"))?;
        Ok(IceUrl {
            scheme,
            host,
            port,
            transport,
        })
    }

    /// Whether this is a TURN URL (credentials apply).
    pub fn is_turn(&self) -> bool {
        matches!(self.scheme, Scheme::Turn | Scheme::Turns)
    }

    /// `host:port`, bracketing IPv6 addresses.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for IceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Stun => "stun",
            Scheme::Turn => "turn",
            Scheme::Turns => "turns",
        };
        write!(f, "{scheme}:{}", self.authority())?;
        match (self.scheme, self.transport) {
            (Scheme::Turn, TurnTransport::Tcp) => f.write_str("?transport=tcp"),
            _ => Ok(()),
        }
    }
}

fn split_host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
    if s.is_empty() {
        return None;
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            Some((host.to_owned(), port.parse().ok()?)).filter(|(h, _)| !h.is_empty())
        }
        Some(_) => None,
        None => Some((s.to_owned(), default_port)),
    }
}

/// An `ice_servers` entry in the configuration: a URL, or a table like `RTCIceServer`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum IceServerEntry {
    /// `"stun:host:port"`
    Url(String),
    /// `{urls = [...], username = "...", credential = "..."}`
    Server {
        /// One URL or a list.
        urls: OneOrMany,
        /// TURN username.
        #[serde(default)]
        username: Option<String>,
        /// TURN password.
        #[serde(default)]
        credential: Option<Secret>,
    },
}

/// A URL or a list of them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One URL.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// A checked ICE server: its URLs and, for TURN, static credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct IceServer {
    /// Its URLs.
    pub urls: Vec<IceUrl>,
    /// TURN username (None: REST credentials from `turn_secret`, or none).
    pub username: Option<String>,
    /// TURN password.
    pub credential: Option<Secret>,
}

impl From<&str> for IceServerEntry {
    fn from(url: &str) -> Self {
        IceServerEntry::Url(url.to_owned())
    }
}

impl IceServerEntry {
    /// Checks an entry; `none` is handled by the caller.
    pub fn parse(&self) -> Result<IceServer, String> {
        let (urls, username, credential) = match self {
            IceServerEntry::Url(u) => (vec![u.as_str()], None, None),
            IceServerEntry::Server {
                urls,
                username,
                credential,
            } => {
                let urls = match urls {
                    OneOrMany::One(u) => vec![u.as_str()],
                    OneOrMany::Many(v) => v.iter().map(String::as_str).collect(),
                };
                (urls, username.clone(), credential.clone())
            }
        };
        if urls.is_empty() {
            return Err("an ice_servers entry has no URL".into());
        }
        let urls = urls
            .into_iter()
            .map(IceUrl::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if username.is_some() != credential.is_some() {
            return Err(format!(
                "{}: give both a username and a credential, or neither",
                urls[0]
            ));
        }
        Ok(IceServer {
            urls,
            username,
            credential,
        })
    }

    /// Whether this entry is the word `none` (no servers at all).
    pub fn is_none(&self) -> bool {
        matches!(self, IceServerEntry::Url(u) if u == "none")
    }
}

/// Whether any of these servers is a TURN server (relayed paths are possible).
pub fn has_turn(servers: &[IceServer]) -> bool {
    servers.iter().flat_map(|s| &s.urls).any(IceUrl::is_turn)
}

/// TURN REST credentials (coturn's `use-auth-secret`): the username is `expiry:peer` with
/// `expiry` in Unix seconds, the password base64(HMAC-SHA1(secret, username)).
pub fn rest_credentials(secret: &Secret, peer: &str, expiry_unix: u64) -> (String, Secret) {
    let username = format!("{expiry_unix}:{peer}");
    // HMAC takes a key of any length; this cannot fail.
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, Secret(credential))
}

/// How long TURN REST credentials are valid; each new connection gets fresh ones.
pub const DEFAULT_REST_TTL_SECS: u64 = 24 * 3600;

/// Everything a new connection needs to know about ICE servers.
#[derive(Debug, Clone, Default)]
pub struct IceSettings {
    /// The servers.
    pub servers: Vec<IceServer>,
    /// Which candidates may be used.
    pub policy: IcePolicy,
    /// Shared secret for TURN REST credentials (TURN URLs without static credentials).
    pub turn_secret: Option<Secret>,
    /// Validity of REST credentials, in seconds.
    pub rest_ttl_secs: u64,
    /// This node's peer id (the REST username's second half).
    pub peer_id: String,
    /// Loopback stand-ins for TURN servers reached over TCP or TLS, by URL.
    pub tcp_shims: std::collections::BTreeMap<String, std::net::SocketAddr>,
}

/// A TURN server to probe: where the engine reaches it (over UDP), and as whom.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnTarget {
    /// The URL as configured (no credentials).
    pub url: String,
    /// `host:port` the engine sends to (the server, or its TCP stand-in).
    pub addr: String,
    /// Username.
    pub username: String,
    /// Credential.
    pub credential: Secret,
}

/// One server as the engine takes it: URLs, username, credential.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineServer {
    /// URLs the engine can reach (TCP TURN servers replaced by their loopback stand-in).
    pub urls: Vec<String>,
    /// TURN username ("" for none).
    pub username: String,
    /// TURN credential.
    pub credential: Secret,
}

impl IceSettings {
    /// The TURN servers reached over TCP or TLS (each needs a loopback stand-in).
    pub fn tcp_turn_servers(&self) -> Vec<IceUrl> {
        let mut out: Vec<IceUrl> = Vec::new();
        for u in self.servers.iter().flat_map(|s| &s.urls) {
            if u.is_turn() && u.transport == TurnTransport::Tcp && !out.contains(u) {
                out.push(u.clone());
            }
        }
        out
    }

    /// The servers for a connection made at `now_unix`, with fresh REST credentials.
    pub fn engine_servers(&self, now_unix: u64) -> Vec<EngineServer> {
        let mut out = Vec::new();
        for server in &self.servers {
            let (stun, turn): (Vec<&IceUrl>, Vec<&IceUrl>) =
                server.urls.iter().partition(|u| !u.is_turn());
            if !stun.is_empty() {
                out.push(EngineServer {
                    urls: stun.iter().map(|u| u.to_string()).collect(),
                    username: String::new(),
                    credential: Secret::new(""),
                });
            }
            let urls: Vec<String> = turn.iter().filter_map(|u| self.engine_url(u)).collect();
            if urls.is_empty() {
                continue;
            }
            let (username, credential) =
                match (&server.username, &server.credential, &self.turn_secret) {
                    (Some(u), Some(c), _) => (u.clone(), c.clone()),
                    (_, _, Some(secret)) => {
                        rest_credentials(secret, &self.peer_id, now_unix + self.rest_ttl_secs)
                    }
                    _ => (String::new(), Secret::new("")),
                };
            out.push(EngineServer {
                urls,
                username,
                credential,
            });
        }
        out
    }

    /// The TURN servers to probe, with the credentials a connection made at `now_unix` uses.
    pub fn turn_targets(&self, now_unix: u64) -> Vec<TurnTarget> {
        let mut out = Vec::new();
        for server in self.engine_servers(now_unix) {
            for url in &server.urls {
                let Some(addr) = url
                    .strip_prefix("turn:")
                    .and_then(|r| r.strip_suffix("?transport=udp"))
                else {
                    continue;
                };
                out.push(TurnTarget {
                    addr: addr.to_owned(),
                    username: server.username.clone(),
                    credential: server.credential.clone(),
                    url: String::new(),
                });
            }
        }
        // Name each target by the URL the operator wrote, not by its stand-in.
        let written: Vec<String> = self
            .servers
            .iter()
            .flat_map(|s| &s.urls)
            .filter(|u| u.is_turn() && self.engine_url(u).is_some())
            .map(IceUrl::to_string)
            .collect();
        for (t, url) in out.iter_mut().zip(written) {
            t.url = url;
        }
        out
    }

    /// A TURN URL the engine can use: UDP as given, TCP and TLS through a loopback stand-in.
    fn engine_url(&self, url: &IceUrl) -> Option<String> {
        match url.transport {
            TurnTransport::Udp => Some(format!("turn:{}?transport=udp", url.authority())),
            TurnTransport::Tcp => self
                .tcp_shims
                .get(&url.to_string())
                .map(|local| format!("turn:{local}?transport=udp")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_their_defaults_and_transports() {
        let u = IceUrl::parse("turn:turn.example.org").unwrap();
        assert_eq!(
            (u.scheme, u.port, u.transport),
            (Scheme::Turn, 3478, TurnTransport::Udp)
        );
        let u = IceUrl::parse("turn:10.0.0.1:3479?transport=tcp").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.transport),
            ("10.0.0.1", 3479, TurnTransport::Tcp)
        );
        let u = IceUrl::parse("turns:t.example.org").unwrap();
        assert_eq!((u.port, u.transport), (5349, TurnTransport::Tcp));
        let u = IceUrl::parse("stun:[::1]:3478").unwrap();
        assert_eq!(
            (u.host.as_str(), u.authority()),
            ("::1", "[::1]:3478".to_owned())
        );
        assert_eq!(
            IceUrl::parse("turn:h:1?transport=tcp").unwrap().to_string(),
            "turn:h:1?transport=tcp"
        );
        for bad in [
            "http://x",
            "turn:",
            "turn:h:port",
            "turn:h?transport=sctp",
            "stun:h?transport=tcp",
            "turns:h?transport=udp",
            "turn:::1",
        ] {
            assert!(IceUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn entries_need_both_credentials_or_neither() {
        let ok = IceServerEntry::Server {
            urls: OneOrMany::Many(vec!["turn:h".into(), "turn:h?transport=tcp".into()]),
            username: Some("u".into()),
            credential: Some(Secret::new("p")),
        };
        assert_eq!(ok.parse().unwrap().urls.len(), 2);
        let half = IceServerEntry::Server {
            urls: OneOrMany::One("turn:h".into()),
            username: Some("u".into()),
            credential: None,
        };
        assert!(half.parse().is_err());
    }

    #[test]
    fn secrets_never_print() {
        let entry = IceServerEntry::Server {
            urls: OneOrMany::One("turn:h".into()),
            username: Some("u".into()),
            credential: Some(Secret::new("hunter2")),
        };
        assert!(!format!("{entry:?} {:?}", entry.parse().unwrap()).contains("hunter2"));
    }

    #[test]
    fn engine_servers_carry_fresh_rest_credentials_and_tcp_stand_ins() {
        let mut settings = IceSettings {
            servers: vec![
                IceServerEntry::Server {
                    urls: OneOrMany::Many(vec!["stun:s:1".into(), "turn:t:2?transport=tcp".into()]),
                    username: None,
                    credential: None,
                }
                .parse()
                .unwrap(),
                IceServerEntry::Server {
                    urls: OneOrMany::One("turn:u:3".into()),
                    username: Some("static".into()),
                    credential: Some(Secret::new("pw")),
                }
                .parse()
                .unwrap(),
            ],
            turn_secret: Some(Secret::new("secret")),
            rest_ttl_secs: 100,
            peer_id: "peer".into(),
            ..Default::default()
        };
        let tcp: Vec<String> = settings
            .tcp_turn_servers()
            .iter()
            .map(|u| u.to_string())
            .collect();
        assert_eq!(tcp, vec!["turn:t:2?transport=tcp".to_owned()]);
        // Without its stand-in a TCP URL is left out.
        let servers = settings.engine_servers(1_000);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].urls, vec!["stun:s:1".to_owned()]);
        settings.tcp_shims.insert(
            "turn:t:2?transport=tcp".into(),
            "127.0.0.1:9".parse().unwrap(),
        );
        let servers = settings.engine_servers(1_000);
        assert_eq!(
            servers[1].urls,
            vec!["turn:127.0.0.1:9?transport=udp".to_owned()]
        );
        assert_eq!(servers[1].username, "1100:peer");
        assert_eq!(servers[2].username, "static");
        assert_eq!(servers[2].credential.expose(), "pw");
    }

    #[test]
    fn rest_credentials_match_coturns_scheme() {
        // base64(HMAC-SHA1("secret", "1700000000:peer")), computed independently with
        // `printf %s 1700000000:peer | openssl dgst -sha1 -hmac secret -binary | base64`.
        let (user, pass) = rest_credentials(&Secret::new("secret"), "peer", 1_700_000_000);
        assert_eq!(user, "1700000000:peer");
        assert_eq!(pass.expose(), "m9GnlZWvaZKjLjGseKws6UpgiA0=");
    }
}
