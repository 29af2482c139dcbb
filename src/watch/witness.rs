//! Other vantage points (as Route 53's health checkers or Pacemaker's quorum): before taking
//! over, the watch asks its witnesses whether they, too, see the primary down. One that still
//! sees it up vetoes; one that cannot be asked abstains; and if none of those configured could
//! be asked, the watch is probably the one cut off, so it does not take over either.
//!
//! A site with no witnesses configured has chosen to let the watch decide alone (two hosts and
//! no third to ask is a common site, and refusing would make `auto_takeover` a no-op there).
//! That stays safe because the takeover itself checks the network: a VIP takeover refuses while
//! any host answers ARP for the address, and one made on a link that was cut off is given up as
//! soon as mailserver1 is heard again (it owns the address); a DNS takeover cannot reach the
//! authoritative server from a cut-off host, and its compare-and-swap refuses a stale record.

use std::time::Duration;

use tokio::process::Command;

use super::http::get_status;
use crate::config::Witness;

/// One witness's view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    Up,
    Down,
    Unknown(String),
}

pub async fn ask(w: &Witness, limit: Duration) -> View {
    match w {
        Witness::Http(addr) => match get_status(*addr, limit).await {
            Ok(s) => match s.primary_up {
                Some(true) => View::Up,
                Some(false) => View::Down,
                None => View::Unknown("it has not probed yet".into()),
            },
            Err(e) => View::Unknown(e.to_string()),
        },
        Witness::Ssh(target) => {
            // BatchMode: never wait for a password prompt; the exit code is Nagios's.
            let run = Command::new("ssh")
                .args(["-o", "BatchMode=yes", "-o"])
                .arg(format!("ConnectTimeout={}", limit.as_secs().max(1)))
                .arg(target)
                .args(["posta", "check", "--nagios", "primary"])
                .kill_on_drop(true)
                .output();
            match tokio::time::timeout(limit * 2, run).await {
                Ok(Ok(out)) => match out.status.code() {
                    Some(0 | 1) => View::Up,
                    Some(2) => View::Down,
                    other => View::Unknown(format!(
                        "exit {other:?}: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    )),
                },
                Ok(Err(e)) => View::Unknown(format!("cannot run ssh: {e}")),
                Err(_) => View::Unknown("ssh timed out".into()),
            }
        }
    }
}

/// Whether the witnesses agree the primary is down, and a line saying who saw what.
pub fn verdict(views: &[(String, View)]) -> (bool, String) {
    if views.is_empty() {
        return (
            true,
            "no witnesses configured: deciding alone ([watch] witnesses)".into(),
        );
    }
    let detail = views
        .iter()
        .map(|(w, v)| match v {
            View::Up => format!("{w}: up"),
            View::Down => format!("{w}: down"),
            View::Unknown(e) => format!("{w}: unknown ({e})"),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let any_up = views.iter().any(|(_, v)| *v == View::Up);
    let any_down = views.iter().any(|(_, v)| *v == View::Down);
    (!any_up && any_down, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(list: &[View]) -> bool {
        let views: Vec<(String, View)> =
            list.iter().map(|x| ("w".to_string(), x.clone())).collect();
        verdict(&views).0
    }

    #[test]
    fn one_up_vetoes_none_reachable_vetoes() {
        let (alone, why) = verdict(&[]);
        assert!(alone, "no witnesses configured: the watch decides alone");
        assert!(why.contains("deciding alone"), "{why}");
        assert!(v(&[View::Down]));
        assert!(v(&[View::Down, View::Unknown("x".into())]));
        assert!(!v(&[View::Down, View::Up]));
        assert!(
            !v(&[View::Unknown("x".into())]),
            "cut off: do not take over"
        );
    }
}
