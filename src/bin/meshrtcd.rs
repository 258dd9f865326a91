//! `meshrtcd`: the meshrtc daemon.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

#[path = "meshrtcd/systemd.rs"]
mod systemd;
use clap::{Parser, Subcommand};
use meshrtc::config::{Config, LogFormat};
use meshrtc::node::Node;
use meshrtc::node::identity::Identity;
use meshrtc::store::Store;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The meshrtc daemon: one shared peer-to-peer mesh node for every app on this machine.
#[derive(Debug, Parser)]
#[command(version = concat!(env!("CARGO_PKG_VERSION"), " (wire: Trystero 0.25.4)"), about, long_about = None)]
struct Args {
    /// Directory for the node's state (identity, database, default socket).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// gRPC endpoint, unix:PATH (default unix:DATA_DIR/meshrtcd.sock).
    #[arg(long, value_name = "unix:PATH")]
    grpc: Option<String>,
    /// Also serve gRPC on this loopback TCP address.
    #[arg(long, value_name = "HOST:PORT")]
    grpc_tcp: Option<SocketAddr>,
    /// Nostr relay URL (repeatable): every room uses these, instead of the relays a default
    /// Trystero page of its app uses.
    #[arg(long = "relay", value_name = "URL")]
    relays: Vec<String>,
    /// With no relay given: how many of Trystero's default relays each app uses (as a page's
    /// relayConfig.redundancy; default 5).
    #[arg(long, value_name = "N")]
    relay_redundancy: Option<usize>,
    /// Serve a Nostr relay at HOST:PORT and use it.
    #[arg(long, value_name = "HOST:PORT")]
    embedded_relay: Option<SocketAddr>,
    /// Restrict ICE host candidates to this address (tests use 127.0.0.1).
    #[arg(long, value_name = "IP")]
    ice_addr: Option<IpAddr>,
    /// STUN/TURN URL (repeatable; stun:, turn:…[?transport=udp|tcp]); replaces the configured
    /// list; `none` disables STUN/TURN.
    #[arg(long = "ice-server", value_name = "URL")]
    ice_servers: Vec<String>,
    /// TURN username for the turn: URLs given with --ice-server.
    #[arg(long, value_name = "USER")]
    ice_username: Option<String>,
    /// TURN credential for the turn: URLs given with --ice-server (visible to other accounts
    /// in the process list: prefer --ice-credential-file).
    #[arg(
        long,
        value_name = "PASSWORD",
        requires = "ice_username",
        conflicts_with = "ice_credential_file"
    )]
    ice_credential: Option<String>,
    /// File holding the TURN credential (mode 0600) for the turn: URLs given with --ice-server.
    #[arg(long, value_name = "FILE", requires = "ice_username")]
    ice_credential_file: Option<PathBuf>,
    /// Which ICE candidates may be used: all, or relay (TURN only).
    #[arg(long, value_enum)]
    ice_policy: Option<meshrtc::transport::ice::IcePolicy>,
    /// File holding a TURN REST shared secret (coturn's use-auth-secret).
    #[arg(long, value_name = "FILE")]
    turn_secret_file: Option<PathBuf>,
    /// Extra CA certificates (PEM) trusted for turns: servers.
    #[arg(long, value_name = "FILE")]
    turn_tls_ca: Option<PathBuf>,
    /// TOML configuration file (see config/meshrtcd.toml); flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// Turn off the repair of lost media packets (NACK); only to measure what it buys.
    #[arg(long)]
    no_media_repair: bool,
    /// Worker threads of the async runtime (default 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// WebSocket bridge address (loopback), or `none`.
    #[arg(long, value_name = "HOST:PORT")]
    ws: Option<String>,
    /// Page origin allowed to use the WebSocket bridge (repeatable).
    #[arg(long = "ws-allow-origin", value_name = "ORIGIN")]
    ws_allow_origins: Vec<String>,
    /// Most memory partly received messages may take across all rooms, in MiB (default 256).
    #[arg(long, value_name = "MIB")]
    reassembly_budget_mib: Option<u64>,
    /// Sessions one app id may have in its rooms (default 256).
    #[arg(long, value_name = "N")]
    max_app_sessions: Option<usize>,
    /// Rooms one app id may hold (default 256).
    #[arg(long, value_name = "N")]
    max_app_rooms: Option<usize>,
    /// Local tracks one app id may publish (default 64).
    #[arg(long, value_name = "N")]
    max_app_tracks: Option<usize>,
    /// Kept channels one app id may have across its rooms (default 256).
    #[arg(long, value_name = "N")]
    max_app_keep_rules: Option<usize>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

/// The `--ice-server` URLs as configuration entries, the TURN ones with `--ice-username` and
/// `--ice-credential` (or `--ice-credential-file`).
fn cli_ice_servers(args: &Args) -> anyhow::Result<Vec<meshrtc::transport::ice::IceServerEntry>> {
    use meshrtc::transport::ice::{IceServerEntry, OneOrMany, Secret};
    let credential = match (&args.ice_credential, &args.ice_credential_file) {
        (Some(pass), _) => Some(Secret::new(pass.clone())),
        (None, Some(path)) => Some(
            Secret::from_private_file(path)
                .map_err(|e| anyhow::anyhow!("--ice-credential-file {e}"))?,
        ),
        (None, None) => None,
    };
    if args.ice_username.is_some() && credential.is_none() {
        anyhow::bail!("--ice-username needs --ice-credential-file (or --ice-credential)");
    }
    Ok(args
        .ice_servers
        .iter()
        .map(|url| match (&args.ice_username, &credential) {
            (Some(user), Some(pass)) if url.starts_with("turn") => IceServerEntry::Server {
                urls: OneOrMany::One(url.clone()),
                username: Some(user.clone()),
                credential: Some(pass.clone()),
            },
            _ => IceServerEntry::Url(url.clone()),
        })
        .collect())
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Print this node's peer id (creating its identity in --data-dir if needed) and exit.
    Identity,
    /// Print the relays the rooms of APP use, one URL a line, and exit (connects nowhere):
    /// those given with --relay/--embedded-relay/the config, or else the ones a default
    /// Trystero 0.25.4 page of APP uses.
    RelaysFor {
        /// The app id.
        app: String,
    },
    /// Run only a Nostr relay (no node), to host your own signaling relay.
    Relay {
        /// Address to listen on.
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:7777")]
        listen: SocketAddr,
        /// Events per minute per connection the relay accepts.
        #[arg(long, default_value_t = 100_000)]
        events_per_minute: u32,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn build_config(args: &Args) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(d) = &args.data_dir {
        config.data_dir = d.clone();
    }
    if let Some(g) = &args.grpc {
        config.grpc = g.clone();
    }
    if args.grpc_tcp.is_some() {
        config.grpc_tcp = args.grpc_tcp;
    }
    if !args.relays.is_empty() {
        config.relays = args.relays.clone();
    }
    if args.embedded_relay.is_some() {
        config.embedded_relay = args.embedded_relay;
    }
    if let Some(n) = args.relay_redundancy {
        config.relay_redundancy = n;
    }
    config.check_relays()?;
    if args.ice_addr.is_some() {
        config.ice_addr = args.ice_addr;
    }
    if !args.ice_servers.is_empty() {
        config.ice_servers = cli_ice_servers(args)?;
    }
    if let Some(policy) = args.ice_policy {
        config.ice_transport_policy = policy;
    }
    if let Some(path) = &args.turn_secret_file {
        config.turn_secret = Some(
            meshrtc::transport::ice::Secret::from_private_file(path)
                .map_err(|e| anyhow::anyhow!("--turn-secret-file {e}"))?,
        );
    }
    if args.no_media_repair {
        config.media_repair = false;
    }
    if let Some(ca) = &args.turn_tls_ca {
        config.turn_tls_ca = Some(ca.clone());
    }
    config.effective_ice_servers()?;
    if let Some(f) = args.log_format {
        config.log_format = f;
    }
    if let Some(n) = args.threads {
        config.threads = usize::from(n);
    }
    if config.threads == 0 {
        anyhow::bail!("threads must be at least 1");
    }
    if let Some(ws) = &args.ws {
        config.ws = ws.clone();
    }
    config
        .ws_allow_origins
        .extend(args.ws_allow_origins.iter().cloned());
    if let Some(mib) = args.reassembly_budget_mib {
        config.reassembly_budget_mib = mib;
    }
    for (flag, field) in [
        (args.max_app_sessions, &mut config.max_app_sessions),
        (args.max_app_rooms, &mut config.max_app_rooms),
        (args.max_app_tracks, &mut config.max_app_tracks),
        (args.max_app_keep_rules, &mut config.max_app_keep_rules),
    ] {
        if let Some(n) = flag {
            *field = n;
        }
    }
    if let Some(addr) = config.grpc_tcp
        && !addr.ip().is_loopback()
        && !config.grpc_tcp_allow_remote
    {
        anyhow::bail!(
            "--grpc-tcp must be a loopback address (set grpc_tcp_allow_remote = true to override), got {addr}"
        );
    }
    Ok(config)
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

async fn run_relay_only(listen: SocketAddr, events_per_minute: u32) -> anyhow::Result<()> {
    let _relay = meshrtc::signal::embedded::start(listen, events_per_minute).await?;
    tracing::info!(url = %format!("ws://{listen}"), "nostr relay listening");
    wait_for_signal().await
}

fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("securing {}", dir.display()))?;
    Ok(())
}

/// The API's listeners, bound before the node starts so a taken address fails fast.
struct Listeners {
    unix: tokio::net::UnixListener,
    tcp: Option<tokio::net::TcpListener>,
    ws: Option<tokio::net::TcpListener>,
}

impl Listeners {
    async fn bind(config: &Config, socket: &std::path::Path) -> anyhow::Result<Self> {
        let unix = meshrtc::api::grpc::bind_unix(socket)?;
        let tcp = match config.grpc_tcp {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.with_context(|| {
                format!("binding gRPC on {addr} (taken? choose another with --grpc-tcp HOST:PORT)")
            })?),
            None => None,
        };
        let ws = match config.ws_addr()? {
            Some(addr) => Some(meshrtc::api::ws::bind(addr).await.with_context(|| {
                format!(
                    "binding the WebSocket bridge on {addr} (another daemon there? choose \
                         another port with --ws HOST:PORT, or turn the bridge off with --ws none)"
                )
            })?),
            None => None,
        };
        Ok(Listeners { unix, tcp, ws })
    }

    /// Serves gRPC (Unix socket and TCP) and the bridge; returns the Unix server's task.
    fn serve(
        self,
        node: &std::sync::Arc<Node>,
        token: &std::sync::Arc<str>,
        config: &Config,
    ) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
        let grpc = tokio::spawn(meshrtc::api::grpc::serve_unix(
            node.clone(),
            token.clone(),
            self.unix,
        ));
        if let Some(l) = self.tcp {
            tokio::spawn(meshrtc::api::grpc::serve_tcp(
                node.clone(),
                token.clone(),
                l,
            ));
        }
        if let Some(l) = self.ws {
            tracing::info!(url = %format!("http://{}/", l.local_addr()?), "WebSocket bridge and demo page");
            let allow = config.ws_allow_origins.clone();
            let metrics_token: std::sync::Arc<str> = meshrtc::api::token::load_or_create_file(
                &config.data_dir,
                meshrtc::api::token::METRICS_TOKEN_FILE,
            )
            .context("creating the metrics token")?
            .into();
            let (node, token) = (node.clone(), token.clone());
            tokio::spawn(async move {
                if let Err(e) = meshrtc::api::ws::serve(node, token, metrics_token, &allow, l).await
                {
                    tracing::error!(error = %e, "WebSocket bridge stopped");
                }
            });
        }
        Ok(grpc)
    }
}

/// mimalloc reserves its heap in 64 MiB arenas and lets the kernel back them with transparent
/// huge pages: a daemon with a few MiB of live heap kept about 55 MiB resident in 2 MiB pages
/// (72 MiB in all; 128 daemons of a cells room, 11 GiB). Without THP it keeps what it uses.
fn no_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes integers and changes only this process's memory policy.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

fn main() -> std::process::ExitCode {
    no_transparent_huge_pages();
    // Plain text for the operator: the error and its causes, no backtrace.
    let fail = |e: anyhow::Error| {
        eprintln!("meshrtcd: {e:#}");
        std::process::ExitCode::FAILURE
    };
    let args = Args::parse();
    // The configuration sizes the runtime, so it is read before there is one.
    let config = match build_config(&args) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    if let Some(Cmd::RelaysFor { app }) = &args.command {
        for url in config.relays_for_app(app) {
            println!("{url}");
        }
        return std::process::ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.threads)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(anyhow::Error::new(e).context("starting the async runtime")),
    };
    match runtime.block_on(run(args, config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

async fn run(args: Args, config: Config) -> anyhow::Result<()> {
    init_logging(config.log_format);
    if let Some(Cmd::Relay {
        listen,
        events_per_minute,
    }) = args.command
    {
        return run_relay_only(listen, events_per_minute).await;
    }
    create_private_dir(&config.data_dir)?;
    let store = Store::open(&config.data_dir)
        .context("opening the state store (is another daemon using this data dir?)")?;
    let identity = Identity::load(&store)?;
    if let Some(Cmd::Identity) = args.command {
        println!("{}", identity.peer_id);
        return Ok(());
    }
    let _relay = match config.embedded_relay {
        Some(addr) => Some(
            meshrtc::signal::embedded::start(addr, config.embedded_relay_events_per_minute).await?,
        ),
        None => None,
    };
    let socket = config.grpc_socket()?;
    let listeners = Listeners::bind(&config, &socket).await?;
    let token: std::sync::Arc<str> = meshrtc::api::token::load_or_create(&config.data_dir)
        .context("creating the API token")?
        .into();
    let node = Node::start(identity, config.clone(), Some(store.clone())).await;
    let relays = match config.app_relays() {
        Some(picks) => format!(
            "per app: {} of {} (Trystero's way)",
            picks.redundancy,
            picks.list.len()
        ),
        None => format!("{:?}", config.effective_relays()),
    };
    tracing::info!(
        peer_id = node.peer_id(),
        grpc = %socket.display(),
        relays = %relays,
        "meshrtcd ready"
    );
    let grpc = listeners.serve(&node, &token, &config)?;
    systemd::spawn(node.clone(), !config.effective_relays().is_empty());
    tokio::select! {
        r = wait_for_signal() => r?,
        r = grpc => { r??; }
    }
    tracing::info!("shutting down");
    systemd::stopping();
    let _ = tokio::time::timeout(Duration::from_millis(1_500), node.shutdown()).await;
    let _ = std::fs::remove_file(&socket);
    drop(store);
    std::process::exit(0);
}
