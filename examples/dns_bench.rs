//! For scripts/bench/takeover-dns.sh: a private BIND9 to measure DNS takeovers against, and a
//! library-level stand-in for `posta takeover dns` until the CLI has it.
//!
//! `dns_bench --serve FILE` starts named (tests/support/bind.rs) serving `example.test` with
//! `mail 60 IN A 10.0.0.25`, writes SERVER, PORT, ZONE, NAME, KEY_FILE and EXPECT to FILE as
//! shell variables, and keeps named running until stdin closes.
//!
//! `dns_bench takeover --server ADDR --zone Z --name N --expect IP --to IP --key-file F
//! [--ttl 60]` does what `posta takeover dns` will: `takeover::dns::swap`, then `verify`
//! against every authoritative server. Prints one line; exit status 0 when verified.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use posta::takeover::dns;
use support::Bind;

const ZONE: &str = "example.test";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--serve") if args.len() == 2 => serve(&args[1]),
        Some("takeover") => match takeover(&args[1..]) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("dns_bench: {e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!(
                "usage: dns_bench --serve FILE | dns_bench takeover --server ADDR --zone Z --name N --expect IP --to IP --key-file F [--ttl S]"
            );
            ExitCode::from(2)
        }
    }
}

fn serve(file: &str) -> ExitCode {
    let bind = Bind::start(
        ZONE,
        &(Bind::minimal_zone(ZONE) + "mail 60 IN A 10.0.0.25\n"),
    );
    let vars = format!(
        "SERVER={}\nPORT={}\nZONE={ZONE}\nNAME=mail.{ZONE}\nKEY_FILE={}\nEXPECT=10.0.0.25\n",
        bind.addr(),
        bind.port(),
        bind.key_file().display()
    );
    if let Err(e) = std::fs::write(file, vars) {
        eprintln!("dns_bench: cannot write {file}: {e}");
        return ExitCode::FAILURE;
    }
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    ExitCode::SUCCESS
}

/// The flags `posta takeover dns` takes.
struct Flags {
    server: SocketAddr,
    zone: String,
    name: String,
    expect: Vec<IpAddr>,
    to: Vec<IpAddr>,
    key_file: PathBuf,
    ttl: u32,
}

fn flags(args: &[String]) -> Result<Flags, String> {
    let mut f = Flags {
        server: SocketAddr::from(([127, 0, 0, 1], 53)),
        zone: String::new(),
        name: String::new(),
        expect: Vec::new(),
        to: Vec::new(),
        key_file: PathBuf::new(),
        ttl: 60,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--server" => f.server = value.parse().map_err(|e| bad(&e))?,
            "--zone" => f.zone = value.clone(),
            "--name" => f.name = value.clone(),
            "--expect" => f.expect.push(value.parse().map_err(|e| bad(&e))?),
            "--to" => f.to.push(value.parse().map_err(|e| bad(&e))?),
            "--key-file" => f.key_file = PathBuf::from(value),
            "--ttl" => f.ttl = value.parse().map_err(|e| bad(&e))?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(f)
}

fn takeover(args: &[String]) -> Result<String, String> {
    let f = flags(args)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let timeout = Duration::from_secs(5);
        let key = dns::read_key_file(&f.key_file).map_err(|e| e.to_string())?;
        let rec = dns::Record::new(&f.zone, &f.name, f.ttl).map_err(|e| e.to_string())?;
        let swap = dns::swap(f.server, &key, &rec, &f.expect, &f.to, timeout)
            .await
            .map_err(|e| e.to_string())?;
        let v = dns::verify(f.server, &rec, &f.to, swap.before(), timeout)
            .await
            .map_err(|e| e.to_string())?;
        if !v.consistent {
            return Err(format!("not verified: {}", v.problems().join("; ")));
        }
        let done = match swap {
            dns::Swap::Done { .. } => "done",
            dns::Swap::AlreadyDone { .. } => "already done",
        };
        Ok(format!(
            "{done}: {} verified on {} authoritative server(s); clients converge within {}s",
            rec.name,
            v.servers.len(),
            v.convergence.as_secs()
        ))
    })
}
