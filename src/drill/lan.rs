//! The drill's network: network namespaces on one bridge, built and torn down with `ip`.

use std::process::{Child, Command, Stdio};

use super::DrillError;

/// One namespace on the LAN.
#[derive(Debug, Clone)]
pub struct Node {
    pub role: &'static str,
    pub ns: String,
    pub ip: String,
}

/// The client, mailserver1, mailserver2 and the friend's relay (MX 30), and the bridge.
#[derive(Debug)]
pub struct Lan {
    pub client: Node,
    pub ms1: Node,
    pub ms2: Node,
    pub relay: Node,
    pub vip: String,
    hub: String,
}

fn ip(args: &[&str]) -> Result<(), DrillError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(DrillError::NoIp)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(DrillError::Ip {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

impl Lan {
    /// Builds the LAN on 10.77.252.0/24; the VIP (mailserver1's service address) is .100.
    pub fn build() -> Result<Lan, DrillError> {
        let tag = format!("posta-drill-{}", std::process::id());
        let hub = format!("{tag}-hub");
        let node = |role: &'static str, n: u8| Node {
            role,
            ns: format!("{tag}-{role}"),
            ip: format!("10.77.252.{n}"),
        };
        let lan = Lan {
            client: node("client", 10),
            ms1: node("ms1", 11),
            ms2: node("ms2", 12),
            relay: node("relay", 13),
            vip: "10.77.252.100".into(),
            hub: hub.clone(),
        };
        ip(&["netns", "add", &hub])?;
        ip(&[
            "-n",
            &hub,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        for (k, n) in lan.nodes().into_iter().enumerate() {
            let veth = format!("v{k}");
            ip(&["netns", "add", &n.ns])?;
            ip(&["-n", &n.ns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n", &hub, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns",
                &n.ns,
            ])?;
            ip(&["-n", &hub, "link", "set", &veth, "master", "br0", "up"])?;
            ip(&[
                "-n",
                &n.ns,
                "addr",
                "add",
                &format!("{}/24", n.ip),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &n.ns, "link", "set", "eth0", "up"])?;
        }
        Ok(lan)
    }

    pub fn nodes(&self) -> Vec<&Node> {
        vec![&self.client, &self.ms1, &self.ms2, &self.relay]
    }

    pub fn set_link(&self, n: &Node, up: bool) -> Result<(), DrillError> {
        ip(&[
            "-n",
            &n.ns,
            "link",
            "set",
            "eth0",
            if up { "up" } else { "down" },
        ])
    }

    pub fn vip_on(&self, n: &Node, add: bool) -> Result<(), DrillError> {
        let cidr = format!("{}/24", self.vip);
        ip(&[
            "-n",
            &n.ns,
            "addr",
            if add { "add" } else { "del" },
            &cidr,
            "dev",
            "eth0",
        ])
    }

    /// Starts `program args` inside `n`, output appended to `log`.
    pub fn spawn(
        &self,
        n: &Node,
        program: &std::path::Path,
        args: &[String],
        log: &std::path::Path,
    ) -> Result<Child, DrillError> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(DrillError::file(log))?;
        let err = out.try_clone().map_err(DrillError::file(log))?;
        Command::new("ip")
            .args(["netns", "exec", &n.ns])
            .arg(program)
            .args(args)
            .env_remove("POSTA_CONFIG")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| DrillError::Spawn {
                program: program.display().to_string(),
                role: n.role,
                source,
            })
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for n in self.nodes() {
            let _ = ip(&["netns", "del", &n.ns]);
        }
        let _ = ip(&["netns", "del", &self.hub]);
    }
}
