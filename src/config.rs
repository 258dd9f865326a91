//! Daemon configuration: one struct from the TOML file, overridden by flags.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::signal::defaults::AppRelays;
use crate::transport::ice::{IcePolicy, IceServer, IceServerEntry, IceSettings, Secret};

/// Public STUN servers used when no ICE server is configured (Trystero's defaults).
pub const DEFAULT_ICE_SERVERS: &[&str] = &[
    "stun:stun.l.google.com:19302",
    "stun:stun1.l.google.com:19302",
    "stun:stun2.l.google.com:19302",
    "stun:stun.cloudflare.com:3478",
];

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Whether remote `.local` (mDNS) ICE candidates are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MdnsMode {
    /// Resolve `.local` candidates unless ICE is bound to loopback.
    #[default]
    Auto,
    /// Resolve `.local` candidates (binds UDP 5353).
    Query,
    /// Ignore `.local` candidates.
    Off,
}

/// The whole daemon configuration; every field is documented in `config/meshrtcd.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory for the node's state (identity, sled database, socket).
    pub data_dir: PathBuf,
    /// gRPC endpoint, `unix:PATH`; empty means `unix:<data_dir>/meshrtcd.sock`.
    pub grpc: String,
    /// Optional loopback TCP address for gRPC (calls need the API token unless the connection is
    /// the daemon's own account's).
    pub grpc_tcp: Option<SocketAddr>,
    /// Allow `grpc_tcp` on a non-loopback address.
    pub grpc_tcp_allow_remote: bool,
    /// Nostr relays every room uses; empty means each app's rooms use the relays a default
    /// Trystero 0.25.4 page of that app uses.
    pub relays: Vec<String>,
    /// With no relay configured: how many of Trystero's default relays each app uses (as a
    /// page's `relayConfig.redundancy`; 5 by default, as Trystero's).
    pub relay_redundancy: usize,
    /// With no relay configured: the list each app's relays are picked from, in order (the
    /// shuffle depends on it); empty means Trystero 0.25.4's own.
    pub trystero_relays: Vec<String>,
    /// Serve a Nostr relay at this address and use it.
    pub embedded_relay: Option<SocketAddr>,
    /// Events per minute per connection the embedded relay accepts.
    pub embedded_relay_events_per_minute: u32,
    /// Restrict ICE host candidates to this address.
    pub ice_addr: Option<IpAddr>,
    /// STUN/TURN servers: URLs or `{urls, username, credential}` tables; `["none"]` means no
    /// servers at all; empty means the public STUN defaults.
    pub ice_servers: Vec<IceServerEntry>,
    /// Which ICE candidates may be used: "all", or "relay" (TURN only).
    pub ice_transport_policy: IcePolicy,
    /// Shared secret for TURN REST credentials (coturn's `use-auth-secret`), used for TURN
    /// servers given without a username.
    pub turn_secret: Option<Secret>,
    /// How long TURN REST credentials are valid, in seconds.
    pub turn_secret_ttl_secs: u64,
    /// Extra CA certificates (PEM) trusted for `turns:` servers, beside the public roots.
    pub turn_tls_ca: Option<PathBuf>,
    /// Resolution of remote mDNS candidates: "auto", "query" or "off".
    pub mdns: MdnsMode,
    /// Repair lost media packets on each hop (NACK and retransmission); off only to measure
    /// what the repair buys.
    pub media_repair: bool,
    /// Largest message a channel carries, in bytes.
    pub max_message_size: usize,
    /// Connection attempts in progress at once, per room.
    pub max_pending_dials: usize,
    /// Events buffered per local session before the oldest are dropped.
    pub session_queue: usize,
    /// Most bytes one room's kept history may take on disk (MiB); the oldest go first.
    pub history_budget_mib: u64,
    /// Most bytes all rooms' kept history may take together on disk (MiB), oldest first.
    pub history_node_budget_mib: u64,
    /// Sessions one app id may have in its rooms.
    pub max_app_sessions: usize,
    /// Rooms one app id may hold.
    pub max_app_rooms: usize,
    /// Local tracks one app id may publish.
    pub max_app_tracks: usize,
    /// Kept channels (keep rules) one app id may have across its rooms.
    pub max_app_keep_rules: usize,
    /// A quiet link is pinged after this many milliseconds.
    pub ping_after_ms: u64,
    /// A link with no traffic for this many milliseconds is dropped.
    pub dead_after_ms: u64,
    /// A peer whose handshake has not finished after this many milliseconds is dropped.
    pub handshake_timeout_ms: u64,
    /// A partly received message with no new chunk for this many milliseconds is discarded.
    pub reassembly_timeout_ms: u64,
    /// Most memory partly received messages may take across all rooms (MiB).
    pub reassembly_budget_mib: u64,
    /// Log format: "text" or "json".
    pub log_format: LogFormat,
    /// Worker threads of the daemon's async runtime.
    pub threads: usize,
    /// Healthy relays wanted; below this, relays from the extended list are added.
    pub min_relays: usize,
    /// Use the extended relay list: unset means only when no relay is given explicitly.
    pub extended_relays: Option<bool>,
    /// URL of the extended relay list (nostr.watch JSON: an array of relay URLs).
    pub relay_list_url: String,
    /// Seconds between refreshes of the extended relay list.
    pub relay_list_refresh_secs: u64,
    /// Loopback address of the WebSocket bridge, or "none".
    pub ws: String,
    /// Page origins allowed to use the WebSocket bridge (besides the daemon's own pages).
    pub ws_allow_origins: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: default_data_dir(),
            grpc: String::new(),
            grpc_tcp: None,
            grpc_tcp_allow_remote: false,
            relays: Vec::new(),
            relay_redundancy: crate::signal::defaults::TRYSTERO_REDUNDANCY,
            trystero_relays: Vec::new(),
            embedded_relay: None,
            embedded_relay_events_per_minute: 100_000,
            ice_addr: None,
            ice_servers: Vec::new(),
            ice_transport_policy: IcePolicy::All,
            turn_secret: None,
            turn_secret_ttl_secs: crate::transport::ice::DEFAULT_REST_TTL_SECS,
            turn_tls_ca: None,
            mdns: MdnsMode::Auto,
            media_repair: true,
            max_message_size: 64 << 20,
            max_pending_dials: 16,
            session_queue: 4_096,
            history_budget_mib: 256,
            history_node_budget_mib: 1024,
            max_app_sessions: 256,
            max_app_rooms: 256,
            max_app_tracks: 64,
            max_app_keep_rules: 256,
            ping_after_ms: 3_000,
            dead_after_ms: 10_000,
            handshake_timeout_ms: 10_000,
            reassembly_timeout_ms: 30_000,
            reassembly_budget_mib: 256,
            log_format: LogFormat::Text,
            // One: the node decides on one task anyway, and on a 2-core machine a second worker
            // cost 13 % more CPU per MB moved (cross-thread wake-ups and task migration) and
            // doubled the 200-link bench's p99 latency; see BENCHMARKS.md.
            threads: 1,
            min_relays: 3,
            extended_relays: None,
            relay_list_url: "https://api.nostr.watch/v1/online".into(),
            relay_list_refresh_secs: 6 * 3600,
            ws: "127.0.0.1:7701".into(),
            ws_allow_origins: Vec::new(),
        }
    }
}

/// `$XDG_STATE_HOME/meshrtc`, else `~/.local/state/meshrtc`, else `./meshrtc-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(dir).join("meshrtc");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/state/meshrtc"),
        None => PathBuf::from("meshrtc-data"),
    }
}

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// The file is not valid TOML for this struct.
    #[error("parsing {0}: {1}")]
    Parse(PathBuf, toml::de::Error),
    /// An option has an invalid value.
    #[error("invalid option: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.into(), e))?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse(path.into(), e))
    }

    /// The Unix socket path of the gRPC API.
    pub fn grpc_socket(&self) -> Result<PathBuf, ConfigError> {
        if self.grpc.is_empty() {
            return Ok(self.data_dir.join("meshrtcd.sock"));
        }
        self.grpc
            .strip_prefix("unix:")
            .map(PathBuf::from)
            .ok_or_else(|| {
                ConfigError::Invalid(format!("grpc must be unix:PATH, got {:?}", self.grpc))
            })
    }

    /// Relays every room uses: the explicit ones plus the embedded relay (empty when none is
    /// configured: then each app's rooms use their own, see [`Config::relays_for_app`]).
    pub fn effective_relays(&self) -> Vec<String> {
        let mut relays = self.relays.clone();
        if let Some(addr) = self.embedded_relay {
            relays.push(format!("ws://{addr}"));
        }
        relays.dedup();
        relays
    }

    /// With no relay configured, how each app's rooms pick their relays (Trystero's way);
    /// None when relays are configured (every room uses those).
    pub fn app_relays(&self) -> Option<AppRelays> {
        if self.explicit_relays() {
            return None;
        }
        let mut picks = AppRelays::trystero(self.relay_redundancy);
        if !self.trystero_relays.is_empty() {
            picks.list = self.trystero_relays.clone();
        }
        Some(picks)
    }

    /// The relays the rooms of `app` use (the extended list may add more at run time): the
    /// configured ones, or else those a default Trystero 0.25.4 page of `app` uses.
    pub fn relays_for_app(&self, app: &str) -> Vec<String> {
        match self.app_relays() {
            Some(picks) => picks.for_app(app),
            None => self.effective_relays(),
        }
    }

    /// Checks the relay options.
    pub fn check_relays(&self) -> Result<(), ConfigError> {
        if self.relay_redundancy == 0 {
            return Err(ConfigError::Invalid(
                "relay_redundancy must be at least 1 (relays per app)".into(),
            ));
        }
        Ok(())
    }

    /// Whether relays were given explicitly (flags, config, embedded relay).
    pub fn explicit_relays(&self) -> bool {
        !self.relays.is_empty() || self.embedded_relay.is_some()
    }

    /// Whether the extended list (and its refresh URL) is used.
    pub fn use_extended_relays(&self) -> bool {
        self.extended_relays.unwrap_or(!self.explicit_relays())
    }

    /// ICE servers to use (`none` means no servers), checked.
    pub fn effective_ice_servers(&self) -> Result<Vec<IceServer>, ConfigError> {
        let relay = self.ice_transport_policy == IcePolicy::Relay;
        if self.ice_servers.iter().any(IceServerEntry::is_none) {
            if relay {
                return Err(ConfigError::Invalid(
                    "ice_transport_policy = \"relay\" needs a TURN server, but ice_servers is none"
                        .into(),
                ));
            }
            return Ok(Vec::new());
        }
        let entries: Vec<IceServerEntry> = if self.ice_servers.is_empty() {
            DEFAULT_ICE_SERVERS
                .iter()
                .map(|s| IceServerEntry::Url(s.to_string()))
                .collect()
        } else {
            self.ice_servers.clone()
        };
        let servers = entries
            .iter()
            .map(IceServerEntry::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError::Invalid(format!("ice_servers: {e}")))?;
        let turn = crate::transport::ice::has_turn(&servers);
        if relay && !turn {
            return Err(ConfigError::Invalid(
                "ice_transport_policy = \"relay\" needs a TURN server in ice_servers".into(),
            ));
        }
        Ok(servers)
    }

    /// ICE settings for a node whose peer id is `peer_id` (TCP stand-ins not yet started).
    pub fn ice_settings(&self, peer_id: &str) -> Result<IceSettings, ConfigError> {
        Ok(IceSettings {
            servers: self.effective_ice_servers()?,
            policy: self.ice_transport_policy,
            turn_secret: self.turn_secret.clone(),
            rest_ttl_secs: self.turn_secret_ttl_secs.max(30),
            peer_id: peer_id.to_owned(),
            tcp_shims: Default::default(),
        })
    }

    /// Address of the WebSocket bridge, if enabled.
    pub fn ws_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        match self.ws.as_str() {
            "" | "none" | "off" => Ok(None),
            a => a.parse().map(Some).map_err(|_| {
                ConfigError::Invalid(format!("ws must be HOST:PORT or none, got {a:?}"))
            }),
        }
    }

    /// Whether remote mDNS candidates should be resolved.
    pub fn resolve_mdns(&self) -> bool {
        match self.mdns {
            MdnsMode::Query => true,
            MdnsMode::Off => false,
            MdnsMode::Auto => !self.ice_addr.is_some_and(|ip| ip.is_loopback()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_config_parses_to_defaults() {
        let shipped = Config::from_file(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/meshrtcd.toml"
        )))
        .expect("config/meshrtcd.toml parses");
        let d = Config::default();
        assert_eq!(shipped.max_message_size, d.max_message_size);
        assert_eq!(shipped.session_queue, d.session_queue);
        assert_eq!(shipped.history_budget_mib, d.history_budget_mib);
        assert_eq!(shipped.history_node_budget_mib, d.history_node_budget_mib);
        assert_eq!(shipped.reassembly_budget_mib, d.reassembly_budget_mib);
        assert_eq!(
            (shipped.max_app_sessions, shipped.max_app_rooms),
            (d.max_app_sessions, d.max_app_rooms)
        );
        assert_eq!(
            (shipped.max_app_tracks, shipped.max_app_keep_rules),
            (d.max_app_tracks, d.max_app_keep_rules)
        );
        assert_eq!(shipped.ping_after_ms, d.ping_after_ms);
        assert_eq!(shipped.threads, d.threads);
        assert!(shipped.relays.is_empty());
        assert_eq!(shipped.relay_redundancy, d.relay_redundancy);
    }

    #[test]
    fn explicit_relays_replace_trysteros_per_app_defaults() {
        let mut c = Config::default();
        assert!(c.effective_relays().is_empty());
        assert_eq!(c.app_relays(), Some(AppRelays::trystero(5)));
        assert_eq!(
            c.relays_for_app("san_narciso_3d"),
            crate::signal::defaults::trystero_relays("san_narciso_3d", 5)
        );
        c.relay_redundancy = 2;
        assert_eq!(c.relays_for_app("trystero").len(), 2);
        c.trystero_relays = vec!["ws://127.0.0.1:1".into(), "ws://127.0.0.1:2".into()];
        assert_eq!(
            c.relays_for_app("a"),
            vec!["ws://127.0.0.1:2".to_owned(), "ws://127.0.0.1:1".to_owned()]
        );
        c.relay_redundancy = 0;
        assert!(c.check_relays().is_err());
        c.embedded_relay = Some("127.0.0.1:7000".parse().expect("addr"));
        assert_eq!(
            c.effective_relays(),
            vec!["ws://127.0.0.1:7000".to_string()]
        );
        assert_eq!(c.app_relays(), None);
        assert_eq!(c.relays_for_app("any"), c.effective_relays());
        c.ice_servers = vec![IceServerEntry::Url("none".into())];
        assert!(c.effective_ice_servers().expect("none").is_empty());
        c.ice_addr = Some("127.0.0.1".parse().expect("ip"));
        assert!(!c.resolve_mdns());
    }

    #[test]
    fn ice_servers_take_urls_and_tables_and_are_checked() {
        let c: Config = toml::from_str(
            r#"
            ice_transport_policy = "relay"
            turn_secret = "s3cret"
            ice_servers = [
              "stun:stun.example.org:3478",
              {urls = ["turn:turn.example.org?transport=tcp"], username = "u", credential = "p"},
              {urls = "turn:10.0.0.1:3478"},
            ]
            "#,
        )
        .expect("parses");
        let ice = c.ice_settings("me").expect("valid");
        assert_eq!(ice.servers.len(), 3);
        assert_eq!(ice.policy, IcePolicy::Relay);
        assert!(!format!("{c:?}").contains("s3cret"));
        let mut bad = Config {
            ice_transport_policy: IcePolicy::Relay,
            ice_servers: vec![IceServerEntry::Url("stun:s".into())],
            ..Default::default()
        };
        assert!(bad.effective_ice_servers().is_err(), "relay needs TURN");
        bad.ice_servers = vec![IceServerEntry::Url("turn:h?transport=sctp".into())];
        assert!(bad.effective_ice_servers().is_err());
    }
}
