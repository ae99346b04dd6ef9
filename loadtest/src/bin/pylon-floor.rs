//! `pylon-floor`: the socket floor of the arena workload on loopback TCP. It does only what
//! no server can avoid: one `send()` of a frame to every connection each 50 ms tick, and
//! reading each connection's inputs, in one epoll loop, with no framing, parsing or game.
//! Beside pylon's own figures it says how much of a core the kernel and a minimal loop
//! need for the same sockets.
//!
//! `pylon-floor run --clients 1200 [--frame 870] [--secs 15] [--warmup 6] [--json FILE]`
//! starts this binary twice, as `server` pinned to CPU 0 and as `client` pinned to CPU 1,
//! and prints one line with the server's CPU (user, system, context switches) over the
//! window after the warm-up. `scripts/bench.sh pinned` runs it beside pylon.
//!
//! Only Linux: raw epoll through `libc`, CPU affinity, `/proc` (read by `procfs`).

use std::fs;
use std::io::{self, BufRead, BufReader, ErrorKind, Read};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::{Args, Parser, Subcommand};
use pylon_loadtest::procfs::{self, Usage};
use serde_json::{Map, Value, json};

/// The arena's tick, which is also its input period (20 Hz).
const TICK: Duration = Duration::from_millis(50);
/// One input message from a client: the size of an arena input frame.
const INPUT_BYTES: usize = 24;
/// Ready sockets taken from one `epoll_wait`.
const MAX_EVENTS: usize = 256;
/// The buffer one `recv` reads into.
const RECV_BYTES: usize = 64 * 1024;
/// The client runs this long past the measured window, so the window never sees it leave.
const CLIENT_TAIL: Duration = Duration::from_secs(1);
/// How long the driver waits for the server to listen, and then for every connection.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the driver waits for a child to exit once it should have.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Parser)]
#[command(name = "pylon-floor", version, about = "The socket floor of the arena workload")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Runs `server` and `client` on two CPUs and prints the server's CPU over a window.
    Run(RunArgs),
    /// Accepts the connections, sends each a frame every 50 ms, reads what arrives; ends
    /// when a connection closes. Prints `listening PORT`, `connected C`, then its tallies.
    Server {
        /// Port on 127.0.0.1 (0: any free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Connections to accept before the first tick.
        #[arg(long)]
        clients: usize,
        /// Bytes sent to each connection every tick.
        #[arg(long, default_value_t = 870)]
        frame: usize,
        /// Pin this process to this CPU.
        #[arg(long)]
        cpu: Option<usize>,
    },
    /// Opens the connections; each sends a 24-byte input every 50 ms (phases spread over
    /// the 50 ms) and reads what arrives. Prints the bytes per second each received.
    Client {
        /// The server's port on 127.0.0.1.
        #[arg(long)]
        port: u16,
        /// Connections.
        #[arg(long)]
        clients: usize,
        /// Seconds to run.
        #[arg(long)]
        secs: f64,
        /// Pin this process to this CPU.
        #[arg(long)]
        cpu: Option<usize>,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Connections.
    #[arg(long)]
    clients: usize,
    /// Bytes sent to each connection every tick (870: an arena snapshot of 8 players).
    #[arg(long, default_value_t = 870)]
    frame: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 15)]
    secs: u64,
    /// Seconds from the last connection to the start of the measured window.
    #[arg(long, default_value_t = 6)]
    warmup: u64,
    /// The server's CPU.
    #[arg(long, default_value_t = 0)]
    server_cpu: usize,
    /// The client's CPU.
    #[arg(long, default_value_t = 1)]
    client_cpu: usize,
    /// Write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> ExitCode {
    let result = match Cli::parse().mode {
        Mode::Run(args) => drive(&args),
        Mode::Server { port, clients, frame, cpu } => {
            pin(cpu).and_then(|()| serve(port, clients, frame))
        }
        Mode::Client { port, clients, secs, cpu } => {
            pin(cpu).and_then(|()| run_client(port, clients, secs))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pylon-floor: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---- The server and the client ----

/// The server: every tick one `send()` per connection, between ticks `epoll_wait` until
/// the next one and read the ready connections dry.
fn serve(port: u16, clients: usize, frame: usize) -> Result<()> {
    ensure!(clients > 0, "--clients must be positive");
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).context("binding")?;
    println!("listening {}", listener.local_addr()?.port());
    let sockets = (0..clients)
        .map(|_| {
            let (socket, _) = listener.accept().context("accepting")?;
            tune(&socket)?;
            Ok(socket)
        })
        .collect::<Result<Vec<_>>>()?;
    let (mut epoll, fds) = watch_all(&sockets)?;
    println!("connected {clients}");

    let frame = vec![b'f'; frame];
    let mut buf = vec![0_u8; RECV_BYTES];
    let (mut frames, mut short_sends, mut received_bytes) = (0_u64, 0_u64, 0_u64);
    let mut next_tick = Instant::now() + TICK;
    loop {
        let now = Instant::now();
        if now >= next_tick {
            for &fd in &fds {
                if send_once(fd, &frame) {
                    frames += 1;
                } else {
                    short_sends += 1;
                }
            }
            next_tick += TICK;
            continue;
        }
        for token in epoll.wait(next_tick - now)? {
            let drained = drain(fds[token], &mut buf);
            received_bytes += drained.bytes;
            if !drained.open {
                println!(
                    "done frames={frames} short_sends={short_sends} rx_bytes={received_bytes}"
                );
                return Ok(());
            }
        }
    }
}

/// The client: the inputs on their clock, and between them whatever the server sent.
fn run_client(port: u16, clients: usize, secs: f64) -> Result<()> {
    ensure!(clients > 0 && secs > 0.0, "--clients and --secs must be positive");
    let sockets = (0..clients)
        .map(|_| {
            let socket = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).context("connecting")?;
            tune(&socket)?;
            Ok(socket)
        })
        .collect::<Result<Vec<_>>>()?;
    let (mut epoll, fds) = watch_all(&sockets)?;

    let input = [b'i'; INPUT_BYTES];
    let mut buf = vec![0_u8; RECV_BYTES];
    let mut received_bytes = 0_u64;
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut inputs = InputClock { start, clients: clients as u64, sent: 0 };
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        while let Some(index) = inputs.take_due(now) {
            send_once(fds[index], &input);
        }
        for token in epoll.wait(inputs.next_due().min(end).saturating_duration_since(now))? {
            let drained = drain(fds[token], &mut buf);
            received_bytes += drained.bytes;
            ensure!(drained.open, "the server closed a connection");
        }
    }
    let per_client = received_bytes as f64 / secs / clients as f64;
    println!("client clients={clients} rx_bytes_s_per_client={per_client:.0}");
    Ok(())
}

/// When the inputs are due: connection `i` of `C` sends at `start + (r + i / C) * TICK`
/// for r = 0, 1, …, so the sends are spread evenly over each tick, in index order.
struct InputClock {
    start: Instant,
    clients: u64,
    /// Inputs sent so far (the next is connection `sent % clients`'s).
    sent: u64,
}

impl InputClock {
    fn next_due(&self) -> Instant {
        let tick_ns = TICK.as_nanos() as u64;
        self.start + Duration::from_nanos(tick_ns * self.sent / self.clients)
    }

    /// The connection whose input is due by `now`, if any (counted as sent).
    fn take_due(&mut self, now: Instant) -> Option<usize> {
        if self.next_due() > now {
            return None;
        }
        let index = self.sent % self.clients;
        self.sent += 1;
        usize::try_from(index).ok()
    }
}

/// TCP_NODELAY and non-blocking, as a game server's sockets are.
fn tune(socket: &TcpStream) -> Result<()> {
    socket.set_nodelay(true).context("setting TCP_NODELAY")?;
    socket.set_nonblocking(true).context("making a socket non-blocking")?;
    Ok(())
}

/// One epoll set with every socket in it (token: its index), and their descriptors.
fn watch_all(sockets: &[TcpStream]) -> Result<(Epoll, Vec<RawFd>)> {
    let epoll = Epoll::new()?;
    let fds: Vec<RawFd> = sockets.iter().map(AsRawFd::as_raw_fd).collect();
    for (token, &fd) in fds.iter().enumerate() {
        epoll.watch(fd, token as u64)?;
    }
    Ok((epoll, fds))
}

// ---- The syscalls ----

/// An epoll instance and the buffer its ready events land in.
struct Epoll {
    fd: OwnedFd,
    ready: Vec<libc::epoll_event>,
}

impl Epoll {
    fn new() -> Result<Self> {
        // SAFETY: epoll_create1 takes no pointers; a negative result is handled below.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error()).context("epoll_create1");
        }
        // SAFETY: `fd` is a descriptor epoll_create1 has just opened; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd, ready: vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS] })
    }

    /// Adds `socket` for reads, level-triggered; its events carry `token`.
    fn watch(&self, socket: RawFd, token: u64) -> Result<()> {
        let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: token };
        // SAFETY: both descriptors are open (the caller owns the socket); `event` is a valid
        // epoll_event that lives across the call, and the kernel only reads it.
        let rc = unsafe {
            libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, socket, &raw mut event)
        };
        if rc != 0 {
            return Err(io::Error::last_os_error()).context("epoll_ctl");
        }
        Ok(())
    }

    /// Waits up to `timeout` (rounded up to whole milliseconds, epoll's unit) and returns
    /// the tokens of the ready sockets; none if a signal interrupted the wait.
    fn wait(&mut self, timeout: Duration) -> Result<impl Iterator<Item = usize> + '_> {
        let timeout_ms = i32::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        // SAFETY: `ready` holds MAX_EVENTS initialized events, writable for the whole call,
        // and the kernel writes at most the count passed.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                self.ready.as_mut_ptr(),
                MAX_EVENTS as i32,
                timeout_ms,
            )
        };
        let n = match usize::try_from(n) {
            Ok(n) => n,
            Err(_) => match io::Error::last_os_error() {
                e if e.kind() == ErrorKind::Interrupted => 0,
                e => return Err(e).context("epoll_wait"),
            },
        };
        // Copy the field out by value: `epoll_event` is packed on x86_64.
        Ok(self.ready[..n].iter().map(|event| event.u64 as usize))
    }
}

/// One non-blocking `send()` of `bytes`, no retry: whether it took all of them.
fn send_once(socket: RawFd, bytes: &[u8]) -> bool {
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    // SAFETY: `bytes` is valid for reads of its length for the whole call.
    let sent = unsafe { libc::send(socket, bytes.as_ptr().cast(), bytes.len(), flags) };
    usize::try_from(sent).is_ok_and(|n| n == bytes.len())
}

/// What reading a socket dry found.
struct Drained {
    bytes: u64,
    /// False when the peer closed (EOF) or reset the connection.
    open: bool,
}

/// `recv()` on a non-blocking socket until it would block.
fn drain(socket: RawFd, buf: &mut [u8]) -> Drained {
    let mut bytes = 0;
    loop {
        // SAFETY: `buf` is valid for writes of its length for the whole call.
        let got = unsafe { libc::recv(socket, buf.as_mut_ptr().cast(), buf.len(), 0) };
        match usize::try_from(got) {
            Ok(0) => return Drained { bytes, open: false },
            Ok(n) => bytes += n as u64,
            Err(_) => match io::Error::last_os_error().kind() {
                ErrorKind::WouldBlock => return Drained { bytes, open: true },
                ErrorKind::Interrupted => {}
                // A reset: a peer that exits with unread bytes resets rather than closes.
                _ => return Drained { bytes, open: false },
            },
        }
    }
}

/// Pins this process (its only thread so far, and every thread it starts) to `cpu`.
fn pin(cpu: Option<usize>) -> Result<()> {
    let Some(cpu) = cpu else { return Ok(()) };
    ensure!(cpu < libc::CPU_SETSIZE as usize, "CPU {cpu} is out of range");
    // SAFETY: cpu_set_t is a plain bit array; all zeros is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE (checked above), so the bit is inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set) };
    if rc != 0 {
        return Err(io::Error::last_os_error()).with_context(|| format!("pinning to CPU {cpu}"));
    }
    Ok(())
}

/// Whether this process may run on every one of `cpus`.
fn cpus_allowed(cpus: &[usize]) -> bool {
    // SAFETY: cpu_set_t is a plain bit array; all zeros is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; `set` is writable and of the size passed.
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &raw mut set) };
    rc == 0
        && cpus.iter().all(|&cpu| {
            // SAFETY: `cpu` is below CPU_SETSIZE (checked first), so the bit is inside `set`.
            cpu < libc::CPU_SETSIZE as usize && unsafe { libc::CPU_ISSET(cpu, &set) }
        })
}

// ---- The driver ----

/// `run`: the server and the client as children, the server's usage over the window.
fn drive(args: &RunArgs) -> Result<()> {
    ensure!(args.clients > 0 && args.secs > 0, "--clients and --secs must be positive");
    let pinned = cpus_allowed(&[args.server_cpu, args.client_cpu]);
    if !pinned {
        eprintln!(
            "pylon-floor: CPUs {} and {} are not both available: running unpinned",
            args.server_cpu, args.client_cpu
        );
    }
    let cpu_flag =
        |cpu: usize| if pinned { vec!["--cpu".to_owned(), cpu.to_string()] } else { vec![] };
    let exe = std::env::current_exe().context("finding this binary")?;
    let clients = args.clients.to_string();

    let mut server = Reaped::spawn(
        Command::new(&exe)
            .args(["server", "--clients", &clients, "--frame", &args.frame.to_string()])
            .args(cpu_flag(args.server_cpu)),
    )?;
    let lines = lines_of(&mut server)?;
    let port = await_line(&lines, "listening ", &mut server)?;
    let client_secs = Duration::from_secs(args.warmup + args.secs) + CLIENT_TAIL;
    let mut client = Reaped::spawn(
        Command::new(&exe)
            .args(["client", "--port", &port, "--clients", &clients])
            .args(["--secs", &client_secs.as_secs_f64().to_string()])
            .args(cpu_flag(args.client_cpu)),
    )?;
    await_line(&lines, "connected ", &mut client)?;

    thread::sleep(Duration::from_secs(args.warmup));
    let server_pid = server.id().to_string();
    let (before, started) = (procfs::usage(&server_pid), Instant::now());
    thread::sleep(Duration::from_secs(args.secs));
    let (after, window) = (procfs::usage(&server_pid), started.elapsed());

    let client_out = client.finish(client_secs + EXIT_TIMEOUT, "client")?;
    server.finish(EXIT_TIMEOUT, "server")?;
    let server_out = await_line(&lines, "done ", &mut server)?;
    let mut figures = Map::new();
    figures.insert("clients".into(), json!(args.clients));
    figures.insert("frame_bytes".into(), json!(args.frame));
    figures.insert("secs".into(), json!(round(window.as_secs_f64())));
    put_usage(&mut figures, before, after, window);
    figures.insert(
        "client_rx_bytes_s".into(),
        json!(field_of::<f64>(&client_out, "rx_bytes_s_per_client")?),
    );
    figures.insert("short_sends".into(), json!(field_of::<u64>(&server_out, "short_sends")?));
    figures.insert("pinned".into(), json!(pinned));
    report(&figures, args.json.as_ref())
}

/// `server_cpu_pct` (user + system), `server_user_pct`, `server_sys_pct` (percent of one
/// core) and `server_ctx_switches_s` between two readings `window` apart.
fn put_usage(figures: &mut Map<String, Value>, before: Usage, after: Usage, window: Duration) {
    let wall = window.as_secs_f64().max(1e-9);
    let user = (after.user_secs - before.user_secs) / wall * 100.0;
    let system = (after.system_secs - before.system_secs) / wall * 100.0;
    let switches = after.context_switches.saturating_sub(before.context_switches) as f64 / wall;
    figures.insert("server_cpu_pct".into(), json!(round(user + system)));
    figures.insert("server_user_pct".into(), json!(round(user)));
    figures.insert("server_sys_pct".into(), json!(round(system)));
    figures.insert("server_ctx_switches_s".into(), json!(round(switches)));
}

/// Prints the one line (percentages to a tenth) and writes the JSON file.
fn report(figures: &Map<String, Value>, json_path: Option<&PathBuf>) -> Result<()> {
    let shown = [
        "clients",
        "frame_bytes",
        "server_cpu_pct",
        "server_user_pct",
        "server_sys_pct",
        "server_ctx_switches_s",
        "client_rx_bytes_s",
        "short_sends",
        "pinned",
    ]
    .into_iter()
    .filter_map(|key| {
        let value = figures.get(key)?;
        Some(match value.as_f64() {
            Some(v) if key.ends_with("_pct") => format!("{key}={v:.1}"),
            Some(v) if key.ends_with("_s") => format!("{key}={v:.0}"),
            _ => format!("{key}={value}"),
        })
    });
    println!("floor {}", shown.collect::<Vec<_>>().join(" "));
    if let Some(path) = json_path {
        let doc = json!({ "scenario": "floor", "figures": figures });
        fs::write(path, format!("{doc:#}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Three decimals.
fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The number after `key=` in a `key=value …` line.
fn field_of<T: std::str::FromStr>(line: &str, key: &str) -> Result<T> {
    line.split_whitespace()
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {key}= in {line:?}"))
}

/// The lines a child prints, read on a thread so the driver can wait with a deadline.
fn lines_of(child: &mut Reaped) -> Result<Receiver<String>> {
    let stdout = child.0.stdout.take().context("the child's stdout is not piped")?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

/// The rest of the first line starting with `prefix`; fails if `watched` exits first or
/// the line takes longer than [`START_TIMEOUT`].
fn await_line(lines: &Receiver<String>, prefix: &str, watched: &mut Reaped) -> Result<String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match lines.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix(prefix) {
                    return Ok(rest.to_owned());
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the server left before {prefix:?}"),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(status) = watched.0.try_wait()? {
                    bail!("a child exited ({status}) while waiting for {prefix:?}");
                }
                ensure!(Instant::now() < deadline, "no {prefix:?} line within {START_TIMEOUT:?}");
            }
        }
    }
}

/// A child process, killed and reaped if the driver leaves before it has exited.
struct Reaped(Child);

impl Reaped {
    /// Starts `command` with its stdout piped and stderr passed through.
    fn spawn(command: &mut Command) -> Result<Self> {
        let child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn();
        Ok(Self(child.context("starting a child")?))
    }

    fn id(&self) -> u32 {
        self.0.id()
    }

    /// Waits up to `timeout` for a successful exit; the stdout not yet taken.
    fn finish(&mut self, timeout: Duration, what: &str) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.0.try_wait()? {
                break status;
            }
            ensure!(Instant::now() < deadline, "the {what} did not exit within {timeout:?}");
            thread::sleep(Duration::from_millis(20));
        };
        ensure!(status.success(), "the {what} failed ({status})");
        let mut out = String::new();
        if let Some(mut stdout) = self.0.stdout.take() {
            stdout.read_to_string(&mut out)?;
        }
        Ok(out)
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}
