//! The moving parts of scripts/bench/takeover.sh, each run with `ip netns exec NS` in the
//! namespace it acts in. Times are printed as `key=value` on stdout; errors go to stderr with
//! exit status 1.
//!
//! - `greet NAME`: an SMTP greeter on port 25 (IPv4 and IPv6) answering `220 NAME ESMTP`, until
//!   killed; a mail server listening on every address, so it answers on the VIP when it holds it.
//!   It answers EHLO and QUIT too, so posta's SMTP health probe (scripts/bench/failover.sh's
//!   watches and keepalived's `posta check`) counts it as a working server.
//! - `probe ADDR/PREFIX DEV`: the default RFC 5227 probe alone: `probe_ms=` and `outcome=`.
//! - `takeover ADDR/PREFIX DEV [--probe-count N] [--no-second-burst]`: probe (unless N is 0;
//!   refuses if the address is held), add, announce with the default settings; prints
//!   `probe_ms=`, `add_ms=`, `first_burst_ms=` and waits for the second burst unless told not to.
//! - `failback ADDR/PREFIX DEV`: removes the address.
//! - `reclaim ADDR/PREFIX DEV`: adds the address (or finds it there) and sends one quick burst.
//! - `await-greeting ADDR NAME TIMEOUT_MS`: connects to ADDR:25 every few milliseconds, as an
//!   impatient client would, until `220 NAME` answers; prints `greeting_ns=` (Unix time in ns,
//!   comparable with `date +%s%N`).

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use posta::takeover::vip::{self, AnnounceSettings, Change, ProbeOutcome, ProbeSettings, Vip};

const SMTP_PORT: u16 = 25;
/// How long one connection attempt of the impatient client may take: a SYN that went to a dead
/// MAC is abandoned after this and a new one sent, which follows the current neighbour entry.
const ATTEMPT: Duration = Duration::from_millis(10);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match words.as_slice() {
        ["greet", name] => greet(name),
        ["await-greeting", address, name, timeout_ms] => await_greeting(address, name, timeout_ms),
        [mode, vip, dev, flags @ ..] => parse_vip(vip, dev).and_then(|vip| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("failed to start tokio: {e}"))?;
            runtime.block_on(act(mode, &vip, flags))
        }),
        _ => Err("usage: see the header of examples/vip_bench.rs".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vip_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_vip(cidr: &str, dev: &str) -> Result<Vip, String> {
    let (address, prefix) = cidr
        .split_once('/')
        .ok_or_else(|| format!("{cidr}: expected ADDRESS/PREFIX"))?;
    let address: IpAddr = address.parse().map_err(|e| format!("{address}: {e}"))?;
    let prefix: u8 = prefix.parse().map_err(|e| format!("{prefix}: {e}"))?;
    Vip::new(address, prefix, dev, None).map_err(|e| e.to_string())
}

async fn act(mode: &str, vip: &Vip, flags: &[&str]) -> Result<(), String> {
    let e = |e: vip::VipError| e.to_string();
    match mode {
        "probe" => {
            let started = Instant::now();
            let outcome = vip::probe(vip, &ProbeSettings::default())
                .await
                .map_err(e)?;
            println!("probe_ms={:.1}", ms(started));
            match outcome {
                ProbeOutcome::Free => println!("outcome=free"),
                ProbeOutcome::Held { mac } => println!("outcome=held:{mac}"),
            }
        }
        "takeover" => takeover(vip, flags).await?,
        "failback" => {
            vip::remove(vip).await.map_err(e)?;
        }
        "reclaim" => {
            vip::add(vip).await.map_err(e)?;
            let quick = AnnounceSettings {
                count: 2,
                interval: Duration::from_millis(20),
                second_burst_after: None,
                ..AnnounceSettings::default()
            };
            vip::announce(vip, &quick)
                .await
                .map_err(e)?
                .finish()
                .await
                .map_err(e)?;
        }
        other => return Err(format!("unknown mode {other}")),
    }
    Ok(())
}

async fn takeover(vip: &Vip, flags: &[&str]) -> Result<(), String> {
    let e = |e: vip::VipError| e.to_string();
    let mut probe = ProbeSettings::default();
    let mut announce = AnnounceSettings::default();
    let mut rest = flags.iter();
    while let Some(flag) = rest.next() {
        match *flag {
            "--probe-count" => {
                let n = rest.next().ok_or("--probe-count needs a number")?;
                probe.count = n.parse().map_err(|e| format!("--probe-count {n}: {e}"))?;
                if probe.count == 0 {
                    probe.wait = Duration::ZERO;
                }
            }
            "--no-second-burst" => announce.second_burst_after = None,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let started = Instant::now();
    if let ProbeOutcome::Held { mac } = vip::probe(vip, &probe).await.map_err(e)? {
        return Err(format!("refusing: {} is held by {mac}", vip.address));
    }
    println!("probe_ms={:.1}", ms(started));
    let added = Instant::now();
    let change = vip::add(vip).await.map_err(e)?;
    println!("add_ms={:.1}", ms(added));
    let announced = Instant::now();
    let announcement = vip::announce(vip, &announce).await.map_err(e)?;
    println!("first_burst_ms={:.1}", ms(announced));
    println!(
        "change={}",
        if change == Change::Done {
            "added"
        } else {
            "already-there"
        }
    );
    announcement.finish().await.map_err(e)
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn greet(name: &str) -> Result<(), String> {
    let listener = TcpListener::bind(("::", SMTP_PORT))
        .map_err(|e| format!("failed to listen on port {SMTP_PORT}: {e}"))?;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let name = name.to_string();
        // A thread per session: a health probe that goes on talking must not hold up the
        // impatient client's next greeting.
        std::thread::spawn(move || converse(stream, &name));
    }
    Ok(())
}

/// The banner, then just enough SMTP for a health probe (`posta check`, the watch): EHLO/HELO
/// and NOOP answered 250, QUIT 221, anything else 502. A bench client only wants the banner
/// and hangs up.
fn converse(mut stream: TcpStream, name: &str) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(format!("220 {name} ESMTP vip_bench\r\n").as_bytes())
        .is_err()
    {
        return;
    }
    let Ok(reader) = stream.try_clone() else {
        return;
    };
    for line in BufReader::new(reader).lines() {
        let Ok(line) = line else { return };
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply = match verb.as_str() {
            "EHLO" => format!("250-{name}\r\n250 8BITMIME\r\n"),
            "HELO" | "NOOP" | "RSET" => format!("250 {name}\r\n"),
            "QUIT" => {
                let _ = stream.write_all(b"221 bye\r\n");
                return;
            }
            _ => "502 not here\r\n".to_string(),
        };
        if stream.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn await_greeting(address: &str, name: &str, timeout_ms: &str) -> Result<(), String> {
    let address: IpAddr = address.parse().map_err(|e| format!("{address}: {e}"))?;
    let timeout: u64 = timeout_ms
        .parse()
        .map_err(|e| format!("{timeout_ms}: {e}"))?;
    let to = SocketAddr::new(address, SMTP_PORT);
    let expected = format!("220 {name} ");
    let deadline = Instant::now() + Duration::from_millis(timeout);
    while Instant::now() < deadline {
        if let Ok(stream) = TcpStream::connect_timeout(&to, ATTEMPT) {
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            let mut line = String::new();
            if BufReader::new(&stream).read_line(&mut line).is_ok() && line.starts_with(&expected) {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_err(|e| e.to_string())?;
                println!("greeting_ns={}", now.as_nanos());
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Err(format!(
        "no greeting from {name} at {to} within {timeout} ms"
    ))
}
