//! `posta routes` on the seed's inkacoca organization (§11.2): five offices and a switch, with
//! overlapping user names. The tables `posta routes build` writes are loaded into real
//! servers, one per office plus the switch, handing mail to each other over loopback; swaks
//! sends every user a message from outside (to the switch) and from inside every office, and
//! each must land in exactly the right Maildir, office-local mail without passing the switch.

mod support;

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::maildir::messages;
use support::ports::free_ports;
use support::posta_mta::PostaMta;
use support::postfix::Options;
use support::run::{Run, posta_command};
use support::sys::{require_tool, tail};
use support::{Ca, Postfix};

const BIN: &str = env!("CARGO_BIN_EXE_posta");
const DOMAIN: &str = "inkacoca.org";
const SWITCH: &str = "switch.inkacoca.org";

/// The offices, in the seed's order, and their lists: `NAME [MAILBOX]` (Trujillo keeps a
/// Dovecot passwd-file instead; Puerto Maldonado's is read by a command). Both Lima and Cuzco have a "diego", both Iquitos and Puerto
/// Maldonado a "maria": the org-wide names tell them apart, the mailboxes keep their names.
const OFFICES: [(&str, &str); 5] = [
    ("lima", "diego1 diego\nana\nrosa\n"),
    (
        "trujillo",
        "luis:{SHA512-CRYPT}$6$x$y:1000:1000::/home/luis::\npedro:{SHA512-CRYPT}$6$x$z\n",
    ),
    ("cuzco", "diego2 diego\ninti\n"),
    ("iquitos", "maria.iquitos maria\njuan\n"),
    ("pmaldonado", "maria.pmaldonado maria\njose\n"),
];

/// Every address and where it must end: (name at inkacoca.org, office, mailbox).
const EXPECTED: [(&str, &str, &str); 12] = [
    ("diego1", "lima", "diego"),
    ("diego", "lima", "diego"), // the rename map keeps the old address delivering
    ("ana", "lima", "ana"),
    ("rosa", "lima", "rosa"),
    ("luis", "trujillo", "luis"),
    ("pedro", "trujillo", "pedro"),
    ("diego2", "cuzco", "diego"),
    ("inti", "cuzco", "inti"),
    ("maria.iquitos", "iquitos", "maria"),
    ("juan", "iquitos", "juan"),
    ("maria.pmaldonado", "pmaldonado", "maria"),
    ("jose", "pmaldonado", "jose"),
];

fn posta(args: &[&str]) -> Run {
    Run::from_output(posta_command(BIN).args(args).output().expect("run posta"))
}

/// Writes the lists, the rename map and the layout; `smtp` says where each server listens
/// (switch first, then the offices in order).
fn write_layout(dir: &Path, smtp: &[SocketAddr]) -> PathBuf {
    let mut layout = format!(
        "domain = \"{DOMAIN}\"\noutput = \"out\"\nrenames = \"renames\"\n\n\
         [switch]\nserver = \"switch\"\naddress = \"{}\"\nsmtp = \"{}\"\n",
        smtp[0].ip(),
        smtp[0]
    );
    for (i, (name, list)) in OFFICES.iter().enumerate() {
        let (file, format) = if *name == "trujillo" {
            ("trujillo.passwd".to_string(), "passwd")
        } else {
            (format!("{name}.txt"), "text")
        };
        fs::write(dir.join(&file), list).unwrap();
        // Puerto Maldonado's list is read from its server, as `ssh pto-mail cat ...` would.
        let source = if *name == "pmaldonado" {
            format!(
                "users_command = [\"cat\", \"{}\"]",
                dir.join(&file).display()
            )
        } else {
            format!("users = \"{file}\"")
        };
        layout.push_str(&format!(
            "\n[[office]]\nname = \"{name}\"\naddress = \"{}\"\nsmtp = \"{}\"\n\
             {source}\nusers_format = \"{format}\"\n",
            smtp[i + 1].ip(),
            smtp[i + 1]
        ));
    }
    fs::write(
        dir.join("renames"),
        "# diego became diego1 when Cuzco joined\ndiego diego1\n",
    )
    .unwrap();
    let path = dir.join("routes.toml");
    fs::write(&path, layout).unwrap();
    path
}

/// Sends one message with swaks; returns its exit status and transcript.
fn swaks(server: SocketAddr, to: &str, subject: &str) -> (bool, String) {
    let out = Command::new(require_tool("swaks"))
        .args(["--server", &server.ip().to_string()])
        .args(["--port", &server.port().to_string()])
        .args(["--from", "tester@outside.example", "--to", to])
        .args(["--header", &format!("Subject: {subject}")])
        .args(["--body", "routing test\n"])
        .output()
        .expect("run swaks");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Every server's name and SMTP address: the switch first.
struct Servers {
    names: Vec<String>,
    smtp: Vec<SocketAddr>,
}

/// Sends each expected address a message from outside (to the switch) and from inside each
/// office, waits for all of them, and checks each is in exactly the right Maildir, and that
/// office-local mail never passed the switch. `maildir(office, mailbox)` is where a mailbox is.
fn send_and_verify(
    servers: &Servers,
    maildir: &dyn Fn(&str, &str) -> PathBuf,
    logs: &dyn Fn() -> String,
) {
    let mut sent = Vec::new();
    for (origin, addr) in servers.names.iter().zip(&servers.smtp) {
        for (name, office, mailbox) in EXPECTED {
            let subject = format!("from {origin} to {name}");
            let (ok, transcript) = swaks(*addr, &format!("{name}@{DOMAIN}"), &subject);
            assert!(ok, "{subject}: swaks failed:\n{transcript}");
            sent.push((subject, origin.clone(), office, mailbox));
        }
    }
    // Every mailbox of every office: a message must be in exactly one of them.
    let mut boxes: Vec<(&str, &str)> = EXPECTED.iter().map(|(_, o, m)| (*o, *m)).collect();
    boxes.sort();
    boxes.dedup();
    let subject_of = |body: &[u8]| {
        String::from_utf8_lossy(body)
            .lines()
            .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let total: usize = boxes
            .iter()
            .map(|(o, m)| messages(&maildir(o, m), None).len())
            .sum();
        if total >= sent.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {total} of {} messages delivered; logs:\n{}",
            sent.len(),
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut found: Vec<(String, &str, &str, String)> = Vec::new();
    for (o, m) in &boxes {
        for msg in messages(&maildir(o, m), None) {
            let text = String::from_utf8_lossy(&msg.body).into_owned();
            found.push((subject_of(&msg.body), o, m, text));
        }
    }
    assert_eq!(found.len(), sent.len(), "a message was duplicated");
    for (subject, origin, office, mailbox) in &sent {
        let here: Vec<_> = found.iter().filter(|(s, ..)| s == subject).collect();
        assert_eq!(here.len(), 1, "{subject}: {} copies", here.len());
        let (_, o, m, text) = here[0];
        assert_eq!(
            (*o, *m),
            (*office, *mailbox),
            "{subject}: in the wrong Maildir"
        );
        let via_switch = received(text).iter().any(|r| r.contains(SWITCH));
        let local = origin == office;
        assert_eq!(
            via_switch,
            !local,
            "{subject}: passed the switch: {via_switch}; Received:\n{}",
            received(text).join("\n")
        );
    }
}

/// The Received header fields of a message, unfolded.
fn received(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut in_received = false;
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if in_received && let Some(last) = out.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
            continue;
        }
        in_received = line.to_ascii_lowercase().starts_with("received:");
        if in_received {
            out.push(line.to_string());
        }
    }
    out
}

#[test]
fn postfix_servers_route_every_user_to_their_office() {
    let ca = Ca::get();
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<[u16; 2]> = (0..6).map(|_| free_ports::<2>()).collect();
    let smtp: Vec<SocketAddr> = ports
        .iter()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], p[0])))
        .collect();
    let layout = write_layout(dir.path(), &smtp);
    let layout_arg = layout.to_str().unwrap();

    let built = posta(&["routes", "build", "--layout", layout_arg]);
    assert_eq!(built.code, 0, "{built:?}");
    assert!(
        built
            .stdout
            .contains("+ diego1@inkacoca.org (lima, mailbox diego)"),
        "{built:?}"
    );
    assert!(
        built
            .stdout
            .contains("+ diego@inkacoca.org (lima, renamed diego1)"),
        "{built:?}"
    );
    let checked = posta(&["routes", "check", "--layout", layout_arg]);
    assert_eq!(checked.code, 0, "{checked:?}");
    assert!(checked.stdout.starts_with("ok: 12 user(s)"), "{checked:?}");
    // Building again changes nothing, and says so.
    let again = posta(&["routes", "build", "--layout", layout_arg]);
    assert!(
        again
            .stdout
            .contains("0 change(s); tables rewritten for: none"),
        "{again:?}"
    );

    let out = dir.path().join("out");
    let cf = |name: &str| fs::read_to_string(out.join(name).join("postfix.cf")).unwrap();
    // The switch has no mailboxes of its own: every name of the domain is an alias.
    let switch_cf = format!("{}virtual_mailbox_domains =\n", cf("switch"));
    let mut servers = vec![Postfix::start_with(
        ca,
        SWITCH,
        &[],
        Options {
            main_cf: Some(&switch_cf),
            ports: Some(ports[0]),
            ..Options::default()
        },
    )];
    for (i, (name, _)) in OFFICES.iter().enumerate() {
        let mut mailboxes: Vec<&str> = EXPECTED
            .iter()
            .filter(|(_, o, _)| o == name)
            .map(|(_, _, m)| *m)
            .collect();
        mailboxes.dedup();
        let office_cf = cf(name);
        servers.push(Postfix::start_with(
            ca,
            &format!("{name}.{DOMAIN}"),
            &mailboxes,
            Options {
                main_cf: Some(&office_cf),
                ports: Some(ports[i + 1]),
                ..Options::default()
            },
        ));
    }
    // Strangers are refused at the door, not accepted to bounce later.
    let refused = servers[0].rcpt_reply(&format!("nobody@{DOMAIN}"));
    assert!(refused.starts_with("550"), "{refused}");

    let names: Vec<String> = std::iter::once("switch".to_string())
        .chain(OFFICES.iter().map(|(n, _)| n.to_string()))
        .collect();
    let office_index = |o: &str| 1 + OFFICES.iter().position(|(n, _)| *n == o).unwrap();
    let logs = || {
        servers
            .iter()
            .map(|s| format!("== {}\n{}", s.domain(), tail(&s.log(), 15)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    send_and_verify(
        &Servers {
            names: names.clone(),
            smtp: smtp.clone(),
        },
        &|office, mailbox| servers[office_index(office)].maildir(mailbox),
        &logs,
    );

    // Independence: Cuzco's administrator creates "nuevo" and adds it to Cuzco's list, and
    // nobody tells the switch. `build --watch` rebuilds and reloads the two servers whose
    // tables changed, and mail for nuevo reaches Cuzco from outside and from Lima.
    let mut text = fs::read_to_string(&layout).unwrap();
    for (name, server) in names.iter().zip(&servers) {
        let header = if name == "switch" {
            "[switch]\n".to_string()
        } else {
            format!("name = \"{name}\"\n")
        };
        let reload = format!(
            "{header}reload = [\"/bin/sh\", \"-c\", \"echo >> {marker} && postfix -c {conf} reload\"]\n",
            marker = dir.path().join(format!("reloaded-{name}")).display(),
            conf = server.conf().display()
        );
        text = text.replacen(&header, &reload, 1);
    }
    fs::write(&layout, text).unwrap();
    let watcher = ChildGuard(
        posta_command(BIN)
            .args([
                "routes",
                "build",
                "--watch",
                "--interval",
                "200ms",
                "--layout",
                layout_arg,
            ])
            .spawn()
            .unwrap(),
    );
    let cuzco = &servers[office_index("cuzco")];
    let vmailbox = cuzco.path().join("vmailbox");
    let mut boxes = fs::read_to_string(&vmailbox).unwrap();
    boxes.push_str("nuevo@cuzco.inkacoca.org nuevo/Maildir/\n");
    fs::write(&vmailbox, boxes).unwrap();
    let list = dir.path().join("cuzco.txt");
    let mut users = fs::read_to_string(&list).unwrap();
    users.push_str("nuevo\n");
    fs::write(&list, users).unwrap();
    let reloaded = |name: &str| dir.path().join(format!("reloaded-{name}")).exists();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(reloaded("switch") && reloaded("cuzco")) {
        assert!(
            Instant::now() < deadline,
            "the watcher did not rebuild; {}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !reloaded("lima"),
        "lima's tables did not change but it was reloaded"
    );
    for (from, addr) in [("outside", smtp[0]), ("lima", smtp[office_index("lima")])] {
        let (ok, transcript) = swaks(
            addr,
            &format!("nuevo@{DOMAIN}"),
            &format!("nuevo from {from}"),
        );
        assert!(ok, "{transcript}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while messages(&cuzco.maildir("nuevo"), None).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "nuevo's mail did not arrive; {}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(watcher);
}

/// Kills the child process when the test ends, however it ends.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The same organization on `posta mta` servers, each on its own loopback address and the
/// same port as real servers share 25, finding each other the way sendmail does: by the MX
/// and A records `posta dns plan` wrote, served by a real BIND.
#[test]
fn posta_mta_servers_route_every_user_to_their_office_by_the_planned_zone() {
    let dir = tempfile::tempdir().unwrap();
    let port = support::ports::free_port();
    let smtp: Vec<SocketAddr> = (0..6u8)
        .map(|i| SocketAddr::from(([127, 0, 0, 10 + i], port)))
        .collect();
    let layout = write_layout(dir.path(), &smtp);
    // These servers find each other by MX, not by transport: drop the smtp lines, and name
    // the zone's server.
    let text = fs::read_to_string(&layout).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("smtp ="))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(
        &layout,
        format!("{text}\n[dns]\nns = [\"ns1 127.0.0.1\"]\n"),
    )
    .unwrap();
    let layout_arg = layout.to_str().unwrap();
    let built = posta(&["routes", "build", "--layout", layout_arg]);
    assert_eq!(built.code, 0, "{built:?}");
    let zone = dir.path().join("inkacoca.org.db");
    let planned = posta(&[
        "dns",
        "plan",
        "--layout",
        layout_arg,
        "--out",
        zone.to_str().unwrap(),
    ]);
    assert_eq!(planned.code, 0, "{planned:?}");
    let bind = support::Bind::start_static(DOMAIN, &fs::read_to_string(&zone).unwrap());

    let out = dir.path().join("out");
    let names: Vec<String> = std::iter::once("switch".to_string())
        .chain(OFFICES.iter().map(|(n, _)| n.to_string()))
        .collect();
    let servers: Vec<PostaMta> = names
        .iter()
        .zip(&smtp)
        .map(|(name, addr)| {
            let host = if name == "switch" {
                SWITCH.to_string()
            } else {
                format!("{name}.{DOMAIN}")
            };
            let tables = out.join(name);
            let mut args: Vec<String> = [
                "--hostname",
                &host,
                "--queue",
                dir.path().join(format!("queue-{name}")).to_str().unwrap(),
                "--virtusertable",
                tables.join("virtusertable").to_str().unwrap(),
                "--local-host-names",
                tables.join("local-host-names").to_str().unwrap(),
                "--mx-port",
                &port.to_string(),
                "--dns-server",
                &bind.addr().to_string(),
                "--relay-tls",
                "none",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if name != "switch" {
                let maildir = dir.path().join(format!("mail-{name}"));
                args.extend(["--maildir".to_string(), maildir.display().to_string()]);
            }
            PostaMta::start_at(BIN, dir.path(), *addr, &args)
        })
        .collect();
    // Strangers are refused at the door.
    let mut s = support::posta_mta::Smtp::connect_at(smtp[0]).unwrap();
    s.cmd("EHLO outside.example").unwrap();
    s.cmd("MAIL FROM:<tester@outside.example>").unwrap();
    let refused = s.cmd(&format!("RCPT TO:<nobody@{DOMAIN}>")).unwrap();
    assert!(refused.starts_with("550"), "{refused}");

    let root = dir.path().to_path_buf();
    send_and_verify(
        &Servers { names, smtp },
        &|office, mailbox| root.join(format!("mail-{office}")).join(mailbox),
        &|| {
            servers
                .iter()
                .map(|m| format!("== {}\n{}", m.log.display(), m.log_tail()))
                .collect::<Vec<_>>()
                .join("\n")
        },
    );
}

/// The guide's own tables (its `incakoca.com` typos fixed), as it says to set them up: the
/// switch's local-host-names holds switch.inkacoca.org, the domain is known to it through the
/// virtusertable. `posta routes check` reports the loop for users the switch was not told
/// about, and the loop when the switch is also one of the offices, as the guide allows.
#[test]
fn check_reports_the_seeds_loops() {
    let dir = tempfile::tempdir().unwrap();
    let host = |name: &str, vt: &str, lhn: &str| {
        let d = dir.path().join("separate").join(name);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("virtusertable"), vt).unwrap();
        fs::write(d.join("local-host-names"), lhn).unwrap();
    };
    let switch_vt = "diego1@inkacoca.org  diego1@lima.inkacoca.org\n\
                     diego2@inkacoca.org  diego2@cuzco.inkacoca.org\n\
                     # Linea agregada:\n@switch.inkacoca.org %1@inkacoca.org\n";
    let region_vt = "usuario_x@inkacoca.org usuario_x@localhost\n\
                     usuario_y@inkacoca.org usuario_y@localhost\n\
                     @inkacoca.org %1@switch.inkacoca.org\n";
    host(SWITCH, switch_vt, "switch.inkacoca.org\n");
    host(
        "iquitos.inkacoca.org",
        region_vt,
        "inkacoca.org\niquitos.inkacoca.org\nlocalhost\n",
    );
    let tables = dir.path().join("separate");
    let args = [
        "routes",
        "check",
        "--tables",
        tables.to_str().unwrap(),
        "--domain",
        DOMAIN,
        "--switch",
        SWITCH,
    ];
    let r = posta(&args);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains(
            "usuario_x@inkacoca.org from outside (at switch.inkacoca.org): loops: \
             switch.inkacoca.org -> switch.inkacoca.org"
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(
            "from iquitos.inkacoca.org: an unknown user is not refused: loops: \
             iquitos.inkacoca.org -> switch.inkacoca.org -> switch.inkacoca.org"
        ),
        "{}",
        r.stdout
    );

    // Iquitos's server is also the switch: the catch-all pair passes a stranger back and forth.
    let both = dir.path().join("cohosted").join("iquitos.inkacoca.org");
    fs::create_dir_all(&both).unwrap();
    fs::write(
        both.join("virtusertable"),
        format!("{region_vt}{switch_vt}"),
    )
    .unwrap();
    fs::write(
        both.join("local-host-names"),
        "inkacoca.org\niquitos.inkacoca.org\nswitch.inkacoca.org\nlocalhost\n",
    )
    .unwrap();
    let tables = dir.path().join("cohosted");
    let mut args = args;
    args[3] = tables.to_str().unwrap();
    let r = posta(&args);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout
            .contains("an unknown user is not refused: loops: iquitos.inkacoca.org\n"),
        "{}",
        r.stdout
    );
}

/// What an administrator meets when something is wrong: a bad list line named by
/// file:line:column (exit 2, nothing written), a truncated list refused until confirmed,
/// `--dry-run` writing nothing.
#[test]
fn build_refuses_bad_and_truncated_lists() {
    let dir = tempfile::tempdir().unwrap();
    let smtp: Vec<SocketAddr> = (0..6u8)
        .map(|i| SocketAddr::from(([127, 0, 0, 10 + i], 25)))
        .collect();
    let layout = write_layout(dir.path(), &smtp);
    let layout_arg = layout.to_str().unwrap();
    let lima = dir.path().join("lima.txt");
    fs::write(&lima, "ana\nrosa maria/x\n").unwrap();
    let r = posta(&["routes", "build", "--layout", layout_arg]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "{}:2:6: \"maria/x\" is not a user name",
            lima.display()
        )),
        "{}",
        r.stderr
    );
    assert!(!dir.path().join("out").exists());

    let names: String = (0..8).map(|i| format!("user{i}\n")).collect();
    fs::write(&lima, &names).unwrap();
    let r = posta(&["routes", "build", "--layout", layout_arg]);
    assert_eq!(r.code, 0, "{r:?}");
    fs::write(&lima, "user0\n").unwrap();
    let dry = posta(&["routes", "build", "--dry-run", "--layout", layout_arg]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(
        dry.stdout.contains("- user7@inkacoca.org (lima)"),
        "{dry:?}"
    );
    assert!(
        dry.stdout.contains("dry run: 7 change(s), nothing written"),
        "{dry:?}"
    );
    let r = posta(&["routes", "build", "--layout", layout_arg]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("not applied: office lima would lose 7 of its 8 users"),
        "{}",
        r.stderr
    );
    let switch = dir.path().join("out/switch/virtusertable");
    assert!(
        fs::read_to_string(&switch)
            .unwrap()
            .contains("user7@inkacoca.org")
    );
    let r = posta(&[
        "routes",
        "build",
        "--allow-removals",
        "--layout",
        layout_arg,
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        !fs::read_to_string(&switch)
            .unwrap()
            .contains("user7@inkacoca.org")
    );
}
