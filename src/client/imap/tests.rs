//! The session against scripted servers on 127.0.0.1:0, for what Dovecot never does: no
//! LITERAL+, refusing a literal, unsolicited data in the middle of a FETCH, BYE mid-command,
//! overlong lines, hostile literal sizes and stalls inside a message.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::*;
use crate::secret::Secret;
use crate::service::TlsPolicy;

enum Act {
    Say(Vec<u8>),
    /// Read one line and keep it.
    Hear,
    /// Read this many octets (literal data and its CRLF) and keep them as a line.
    HearBytes(usize),
    Hang,
}

fn say(text: &str) -> Act {
    Act::Say(text.as_bytes().to_vec())
}

async fn serve(script: Vec<Act>) -> (u16, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        let mut heard = Vec::new();
        let Ok((sock, _)) = listener.accept().await else {
            return heard;
        };
        let (r, mut w) = sock.into_split();
        let mut r = BufReader::new(r);
        for act in script {
            match act {
                Act::Say(bytes) => {
                    if w.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                Act::Hear => {
                    let mut line = String::new();
                    match r.read_line(&mut line).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => heard.push(line.trim_end().to_owned()),
                    }
                }
                Act::HearBytes(n) => {
                    let mut data = vec![0; n];
                    if r.read_exact(&mut data).await.is_err() {
                        break;
                    }
                    heard.push(String::from_utf8_lossy(&data).trim_end().to_owned());
                }
                Act::Hang => tokio::time::sleep(Duration::from_secs(30)).await,
            }
        }
        heard
    });
    (port, task)
}

/// Connects in clear (the operator's `starttls = no`) with a short timeout and logs in as
/// `u`; the script must start with the greeting and LOGIN exchange from [`login_script`].
async fn logged_in(port: u16) -> ImapClient {
    let mut client = ImapClient::connect(&clear(port)).await.expect("connect");
    let login = Login::own("u", Secret::new("pässword"));
    client.login(&login).await.expect("login");
    client
}

/// A cleartext endpoint on `port` (the operator's `starttls = no`) with a short timeout.
fn clear(port: u16) -> Endpoint {
    Endpoint {
        host: "127.0.0.1".into(),
        port,
        implicit_tls: false,
        starttls: StartTls::No,
        tls: TlsPolicy::default(),
        timeout: Duration::from_millis(500),
    }
}

fn admin_login(form: AdminForm) -> Login {
    Login {
        user: "alice".into(),
        password: Secret::new("admin-pw"),
        admin: Some(super::super::Admin {
            user: "admin".into(),
            form,
        }),
    }
}

/// An admin identity uses AUTHENTICATE PLAIN with alice as the authorization identity, in one
/// line with SASL-IR and after the `+` without; a refusal names both identities and is final.
#[tokio::test]
async fn an_admin_authenticates_with_plain_and_an_authorization_identity() {
    // base64("alice\0admin\0admin-pw")
    let response = "YWxpY2UAYWRtaW4AYWRtaW4tcHc=";
    let (port, srv) = serve(vec![
        say("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] scripted\r\n"),
        Act::Hear,
        say("p1 OK [CAPABILITY IMAP4rev1 UIDPLUS] logged in\r\n"),
    ])
    .await;
    let mut client = ImapClient::connect(&clear(port)).await.expect("connect");
    client
        .login(&admin_login(AdminForm::Auto))
        .await
        .expect("login");
    assert!(client.has_capability("UIDPLUS"));
    drop(client);
    let heard = srv.await.expect("server");
    assert_eq!(heard, [format!("p1 AUTHENTICATE PLAIN {response}")]);

    let (port, srv) = serve(vec![
        say("* OK [CAPABILITY IMAP4rev1] scripted\r\n"),
        Act::Hear,
        say("+ \r\n"),
        Act::Hear,
        say("p1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"),
    ])
    .await;
    let mut client = ImapClient::connect(&clear(port)).await.expect("connect");
    let err = client
        .login(&admin_login(AdminForm::Plain))
        .await
        .expect_err("refused");
    assert!(!err.is_transient(), "{err}");
    assert_eq!(
        err.to_string(),
        "IMAP AUTHENTICATE PLAIN as alice with admin identity admin failed: \
         NO [AUTHENTICATIONFAILED] Authentication failed."
    );
    drop(client);
    let heard = srv.await.expect("server");
    assert_eq!(heard, ["p1 AUTHENTICATE PLAIN", response]);
}

/// Without AUTH=PLAIN (or when told so) an admin logs in as `alice*admin`, Dovecot's
/// master-user separator form.
#[tokio::test]
async fn an_admin_falls_back_to_the_master_user_separator() {
    for (caps, form) in [
        ("IMAP4rev1 AUTH=LOGIN", AdminForm::Auto),
        ("IMAP4rev1 AUTH=PLAIN SASL-IR", AdminForm::Separator),
    ] {
        let (port, srv) = serve(vec![
            say(&format!("* OK [CAPABILITY {caps}] scripted\r\n")),
            Act::Hear,
            say("p1 OK logged in\r\n"),
            Act::Hear,
            say("* CAPABILITY IMAP4rev1\r\np2 OK done\r\n"),
        ])
        .await;
        let mut client = ImapClient::connect(&clear(port)).await.expect("connect");
        client.login(&admin_login(form)).await.expect("login");
        drop(client);
        let heard = srv.await.expect("server");
        assert_eq!(
            heard[0], "p1 LOGIN \"alice*admin\" \"admin-pw\"",
            "{form:?}"
        );
    }
}

/// Greeting without LITERAL+, then a LOGIN whose non-ASCII password must wait for `+`.
fn login_script() -> Vec<Act> {
    vec![
        say("* OK [CAPABILITY IMAP4rev1 UIDPLUS] scripted\r\n"),
        Act::Hear,
        say("+ go on\r\n"),
        Act::HearBytes(11),
        say("p1 OK [CAPABILITY IMAP4rev1 UIDPLUS] hi\r\n"),
    ]
}

fn script(rest: Vec<Act>) -> Vec<Act> {
    let mut all = login_script();
    all.extend(rest);
    all
}

#[tokio::test]
async fn synchronizing_literals_wait_for_the_continuation() {
    let (port, srv) = serve(script(vec![
        Act::Hear,
        say("p2 NO [OVERQUOTA] mailbox is full\r\n"),
        Act::Hear,
        say("+ ready\r\n"),
        Act::HearBytes(7),
        say("p3 OK [APPENDUID 7 9] done\r\n"),
    ]))
    .await;
    let mut client = logged_in(port).await;
    let err = client
        .append("INBOX", &[], None, b"hello")
        .await
        .expect_err("refused before the literal");
    assert!(
        err.is_transient() && err.code() == Some("OVERQUOTA"),
        "{err}"
    );
    let flags = ["\\Seen".to_owned()];
    let uid = client.append("INBOX", &flags, None, b"hello").await;
    assert_eq!(uid.expect("append"), Some((7, 9)));
    drop(client);
    let heard = srv.await.expect("server");
    assert_eq!(
        heard,
        [
            "p1 LOGIN \"u\" {9}",
            "pässword",
            "p2 APPEND \"INBOX\" () {5}",
            "p3 APPEND \"INBOX\" (\\Seen) {5}",
            "hello",
        ],
        "the refused literal's data must never be sent"
    );
}

#[tokio::test]
async fn unsolicited_data_during_a_fetch_is_skipped_and_bye_is_transient() {
    let date = "INTERNALDATE \"01-Jan-2024 10:00:00 +0000\"";
    let (port, srv) = serve(script(vec![
        Act::Hear,
        say("* 9 EXISTS\r\n"),
        say(&format!("* 1 FETCH (UID 4 RFC822.SIZE 3 FLAGS (\\Seen \\Recent) {date} BODY[] {{3}}\r\nabc)\r\n")),
        say("* 7 FETCH (UID 70 FLAGS (\\Deleted))\r\n* OK [ALERT] backup at noon\r\n* 8 EXPUNGE\r\n"),
        say(&format!("* 2 FETCH (UID 6 {date} FLAGS () RFC822.SIZE 2 BODY[] {{2}}\r\nhi)\r\n")),
        say("p2 OK done\r\n"),
        Act::Hear,
        say("* BYE shutting down\r\n"),
    ]))
    .await;
    let mut client = logged_in(port).await;
    client.start_fetch(&[4, 6]).await.expect("start");
    let first = client.next_message().await.expect("first").expect("some");
    assert_eq!(
        (first.uid, first.flags, first.body),
        (4, vec!["\\Seen".into()], b"abc".to_vec())
    );
    let second = client.next_message().await.expect("second").expect("some");
    assert_eq!((second.uid, second.body), (6, b"hi".to_vec()));
    assert!(client.next_message().await.expect("end").is_none());

    let err = client.uid_search("ALL").await.expect_err("BYE");
    assert!(
        matches!(err, ImapError::Bye { .. }) && err.is_transient(),
        "{err}"
    );
    let err = client.uid_search("ALL").await.expect_err("unusable");
    assert!(
        matches!(err, ImapError::Unusable { .. }) && err.is_transient(),
        "{err}"
    );
    assert_eq!(
        srv.await.expect("server").last().map(String::as_str),
        Some("p3 UID SEARCH ALL")
    );
}

#[tokio::test]
async fn overlong_lines_and_huge_literals_are_refused() {
    let long = format!("* OK {}\r\n", "x".repeat(5000));
    let (port, _srv) = serve(script(vec![
        Act::Hear,
        Act::Say(long.into_bytes()),
        Act::Hang,
    ]))
    .await;
    let mut client = logged_in(port).await;
    let err = client.select("INBOX", false).await.expect_err("long line");
    assert!(
        matches!(err, ImapError::Malformed { .. }) && !err.is_transient(),
        "{err}"
    );
    assert!(err.to_string().contains("longer than 4096"), "{err}");

    let (port, _srv) = serve(script(vec![
        Act::Hear,
        say("* 1 FETCH (UID 1 BODY[] {999999999}\r\n"),
        Act::Hang,
    ]))
    .await;
    let mut client = logged_in(port).await;
    client.start_fetch(&[1]).await.expect("start");
    let err = client.next_message().await.expect_err("huge literal");
    assert!(err.to_string().contains("999999999 octets"), "{err}");
}

#[tokio::test]
async fn a_stall_inside_a_message_times_out() {
    let (port, _srv) = serve(script(vec![
        Act::Hear,
        say("* 1 FETCH (UID 1 RFC822.SIZE 10 BODY[] {10}\r\nabc"),
        Act::Hang,
    ]))
    .await;
    let mut client = logged_in(port).await;
    client.start_fetch(&[1]).await.expect("start");
    let err = client.next_message().await.expect_err("stall");
    assert!(
        matches!(err, ImapError::Timeout { .. }) && err.is_transient(),
        "{err}"
    );
    assert!(
        err.to_string().contains("the reply to UID FETCH 1"),
        "{err}"
    );
}

/// `posta migrate` drives sessions from spawned tasks, so every command's future must be Send;
/// this test fails to compile otherwise.
#[test]
fn command_futures_are_send() {
    fn send<T: Send>(_: T) {}
    let check = |mut c: ImapClient, ep: Endpoint| {
        send(ImapClient::connect(&ep));
        send(c.login(&Login::own("u", Secret::new("p"))));
        send(c.list());
        send(c.select("x", false));
        send(c.uid_search("ALL"));
        send(c.fetch_meta(&[1]));
        send(c.start_fetch(&[1]));
        send(c.next_message());
        send(c.store_deleted(&[1]));
        send(c.expunge(&[1]));
        send(c.create("x"));
        send(c.append("x", &[], None, b""));
        send(c.logout());
    };
    let _ = check;
}

/// A QRESYNC session as Dovecot answers it: ENABLE, a SELECT that brings VANISHED and changed
/// flags, a CHANGEDSINCE scan, flags replaced, RENAME and DELETE, the flags of some UIDs.
#[tokio::test]
async fn qresync_select_and_flag_scans() {
    let (port, srv) = serve(vec![
        say("* OK [CAPABILITY IMAP4rev1 ENABLE CONDSTORE QRESYNC UIDPLUS] scripted\r\n"),
        Act::Hear,
        say("p1 OK [CAPABILITY IMAP4rev1 ENABLE CONDSTORE QRESYNC UIDPLUS] hi\r\n"),
        Act::Hear,
        say("* ENABLED QRESYNC\r\np2 OK Enabled.\r\n"),
        Act::Hear,
        say("* FLAGS (\\Seen)\r\n* 3 EXISTS\r\n* OK [UIDVALIDITY 67890007] x\r\n"),
        say("* OK [UIDNEXT 600] x\r\n* OK [HIGHESTMODSEQ 90060115205545359] x\r\n"),
        say("* VANISHED (EARLIER) 41,43:116,118,120:211,214:540\r\n"),
        say("* 1 FETCH (UID 49 MODSEQ (90060115194045001) FLAGS (\\Seen $Work))\r\n"),
        say("* 3 FETCH (UID 599 MODSEQ (90060115205545359) FLAGS ())\r\n"),
        say("* 2 FETCH (FLAGS (\\Deleted))\r\n"),
        say("p3 OK [READ-WRITE] done\r\n"),
        Act::Hear,
        say("* 1 FETCH (UID 49 MODSEQ (7) FLAGS (\\Seen))\r\np4 OK done\r\n"),
        Act::Hear,
        say("p5 OK done\r\n"),
        Act::Hear,
        say("p6 OK done\r\n"),
        Act::Hear,
        say("p7 NO [NONEXISTENT] no such mailbox\r\n"),
        Act::Hear,
        say("* 2 FETCH (UID 50 FLAGS (\\Flagged))\r\n* 1 FETCH (UID 49 FLAGS ())\r\n"),
        say("p8 OK done\r\n"),
    ])
    .await;
    let mut client = logged_in(port).await;
    assert!(client.enable_qresync().await.expect("enable"));
    let r = client
        .select_since("INBOX", false, Some((67890007, 90060115194045000)))
        .await
        .expect("select");
    assert_eq!(r.selected.highest_modseq, Some(90060115205545359));
    assert_eq!(r.selected.uidnext, Some(600));
    assert!(r.vanished.contains(41) && r.vanished.contains(300) && !r.vanished.contains(42));
    let changed: Vec<_> = r.changed.iter().map(|f| (f.uid, f.flags.len())).collect();
    assert_eq!(
        changed,
        [(49, 2), (599, 0)],
        "the update without UID is dropped"
    );
    let scan = client.fetch_flags(Some(5)).await.expect("scan");
    assert_eq!((scan[0].uid, scan[0].modseq), (49, Some(7)));
    let flags = ["\\Seen".to_owned(), "$Work".to_owned()];
    client.store_flags(&[5, 3, 4], &flags).await.expect("store");
    client.rename("Old", "Ne&AwE-u").await.expect("rename");
    let err = client.delete("Gone").await.expect_err("refused");
    assert_eq!(err.code(), Some("NONEXISTENT"), "{err}");
    assert!(
        client
            .fetch_flags_of(&[])
            .await
            .expect("nothing")
            .is_empty()
    );
    let some = client.fetch_flags_of(&[50, 49, 52]).await.expect("some");
    let some: Vec<_> = some.iter().map(|f| (f.uid, f.flags.clone())).collect();
    assert_eq!(some, [(49, vec![]), (50, vec!["\\Flagged".to_owned()])]);
    drop(client);
    let heard = srv.await.expect("server");
    assert_eq!(
        heard[1..],
        [
            "p2 ENABLE QRESYNC",
            "p3 SELECT \"INBOX\" (QRESYNC (67890007 90060115194045000))",
            "p4 UID FETCH 1:* (UID FLAGS MODSEQ) (CHANGEDSINCE 5)",
            "p5 UID STORE 3:5 FLAGS.SILENT (\\Seen $Work)",
            "p6 RENAME \"Old\" \"Ne&AwE-u\"",
            "p7 DELETE \"Gone\"",
            "p8 UID FETCH 49:50,52 (UID FLAGS)",
        ]
    );
}

/// A VANISHED line with a hostile set breaks the session with a clear error, not a panic.
#[tokio::test]
async fn a_malformed_vanished_is_an_error() {
    let (port, _srv) = serve(script(vec![
        Act::Hear,
        say("* 0 EXISTS\r\n* OK [UIDVALIDITY 1] x\r\n* VANISHED (EARLIER) 1:*\r\np2 OK done\r\n"),
    ]))
    .await;
    let mut client = logged_in(port).await;
    let err = client
        .select_since("INBOX", true, Some((1, 1)))
        .await
        .expect_err("malformed");
    assert!(matches!(err, ImapError::Malformed { .. }), "{err}");
}

/// MULTIAPPEND: one APPEND with a literal per message, each synchronizing literal after its
/// `+`, and the APPENDUID set mapped to the messages in order; a set naming more UIDs than
/// messages is malformed.
#[tokio::test]
async fn multiappend_sends_every_message_in_one_command() {
    let (port, srv) = serve(script(vec![
        Act::Hear,
        say("+ go\r\n"),
        Act::Hear,
        say("+ go\r\n"),
        Act::Hear,
        say("p2 OK [APPENDUID 7 10:11] done\r\n"),
        Act::Hear,
        say("+ go\r\n"),
        Act::Hear,
        say("p3 OK [APPENDUID 7 1:4294967295] done\r\n"),
    ]))
    .await;
    let mut client = logged_in(port).await;
    let date = "01-Jan-2024 10:00:00 +0000";
    let seen = ["\\Seen".to_owned()];
    let two: [(&[String], &str, &[u8]); 2] = [(&[], date, b"hello"), (&seen, date, b"abc")];
    let got = client.append_many("F", &two).await.expect("multiappend");
    assert_eq!(got, Some((7, vec![10, 11])));
    let err = client
        .append_many("F", &two[..1])
        .await
        .expect_err("hostile APPENDUID");
    assert!(matches!(err, ImapError::Malformed { .. }), "{err}");
    drop(client);
    let heard = srv.await.expect("server");
    assert_eq!(
        heard[2..5],
        [
            "p2 APPEND \"F\" () \"01-Jan-2024 10:00:00 +0000\" {5}",
            "hello (\\Seen) \"01-Jan-2024 10:00:00 +0000\" {3}",
            "abc",
        ]
    );
}

/// UID MOVE where the server has MOVE; else UID COPY, then `\Deleted` and UID EXPUNGE of
/// exactly the moved UIDs; refused without either MOVE or UIDPLUS.
#[tokio::test]
async fn moves_use_uid_move_else_copy_and_uid_expunge() {
    let (port, srv) = serve(vec![
        say("* OK [CAPABILITY IMAP4rev1 MOVE UIDPLUS] scripted\r\n"),
        Act::Hear,
        say("p1 OK [CAPABILITY IMAP4rev1 MOVE UIDPLUS] hi\r\n"),
        Act::Hear,
        say("* OK [COPYUID 9 3:4 20:21] moved\r\n* 1 EXPUNGE\r\n* 1 EXPUNGE\r\np2 OK done\r\n"),
    ])
    .await;
    let mut client = logged_in(port).await;
    assert!(
        client
            .move_uids(&[4, 3], "Ar&AQ0-hivo")
            .await
            .expect("move")
    );
    drop(client);
    assert_eq!(
        srv.await.expect("server")[1..],
        ["p2 UID MOVE 3:4 \"Ar&AQ0-hivo\""]
    );

    let (port, srv) = serve(script(vec![
        Act::Hear,
        say("p2 OK [COPYUID 9 7 30] copied\r\n"),
        Act::Hear,
        say("p3 OK stored\r\n"),
        Act::Hear,
        say("* 2 EXPUNGE\r\np4 OK expunged\r\n"),
    ]))
    .await;
    let mut client = logged_in(port).await;
    assert!(!client.move_uids(&[7], "Trash").await.expect("copy"));
    drop(client);
    assert_eq!(
        srv.await.expect("server")[2..],
        [
            "p2 UID COPY 7 \"Trash\"",
            "p3 UID STORE 7 +FLAGS.SILENT (\\Deleted)",
            "p4 UID EXPUNGE 7",
        ]
    );

    let (port, _srv) = serve(vec![
        say("* OK [CAPABILITY IMAP4rev1] scripted\r\n"),
        Act::Hear,
        say("p1 OK [CAPABILITY IMAP4rev1] hi\r\n"),
    ])
    .await;
    let mut client = logged_in(port).await;
    let err = client.move_uids(&[1], "Trash").await.expect_err("refused");
    assert!(err.to_string().contains("neither MOVE"), "{err}");
}

/// The greeting and LOGIN exchange of [`login_script`], announcing IDLE, then `rest`.
fn idle_script(rest: Vec<Act>) -> Vec<Act> {
    idle_script_with("IMAP4rev1 IDLE", rest)
}

/// [`idle_script`] with the capabilities `caps` after LOGIN.
fn idle_script_with(caps: &str, rest: Vec<Act>) -> Vec<Act> {
    let mut all = vec![
        say("* OK [CAPABILITY IMAP4rev1] scripted\r\n"),
        Act::Hear,
        say("+ go on\r\n"),
        Act::HearBytes(11),
        Act::Say(format!("p1 OK [CAPABILITY {caps}] hi\r\n").into_bytes()),
    ];
    all.extend(rest);
    all
}

/// With NOTIFY the session asks to hear of every personal mailbox; then another mailbox's
/// STATUS and a LIST naming a new folder wake an IDLE as a change of the selected one does.
#[tokio::test]
async fn notify_asks_for_every_mailbox_and_their_news_wake_an_idle() {
    let (port, srv) = serve(idle_script_with(
        "IMAP4rev1 IDLE NOTIFY",
        vec![
            Act::Hear,
            say("p2 OK NOTIFY completed.\r\n"),
            Act::Hear,
            say("+ idling\r\n* STATUS Otra (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 7 UNSEEN 1)\r\n"),
            Act::Hear,
            say("p3 OK Idle completed.\r\n"),
            Act::Hear,
            say("+ idling\r\n* LIST () \".\" \"Nueva carpeta\"\r\n"),
            Act::Hear,
            say("p4 OK Idle completed.\r\n"),
        ],
    ))
    .await;
    let mut client = logged_in(port).await;
    assert!(client.notify_personal().await.expect("notify"));
    let long = Duration::from_secs(5);
    assert_eq!(client.idle(long).await.expect("idle"), IdleWake::Changed);
    assert_eq!(client.idle(long).await.expect("idle"), IdleWake::Changed);
    drop(client);
    let heard = srv.await.expect("server");
    assert_eq!(
        heard[2..],
        [
            "p2 NOTIFY SET (selected (MessageNew MessageExpunge FlagChange)) \
             (personal (MessageNew MessageExpunge FlagChange MailboxName))",
            "p3 IDLE",
            "DONE",
            "p4 IDLE",
            "DONE"
        ]
    );
}

/// Without NOTIFY nothing is sent; a server that refuses it says so as a rejection.
#[tokio::test]
async fn notify_is_skipped_without_the_capability_and_a_refusal_is_an_error() {
    let (port, srv) = serve(idle_script(Vec::new())).await;
    let mut client = logged_in(port).await;
    assert!(!client.notify_personal().await.expect("no NOTIFY"));
    drop(client);
    assert_eq!(
        srv.await.expect("server").len(),
        2,
        "only the login was heard"
    );

    let (port, srv) = serve(idle_script_with(
        "IMAP4rev1 IDLE NOTIFY",
        vec![Act::Hear, say("p2 NO [NOTIFICATIONOVERFLOW] not now\r\n")],
    ))
    .await;
    let mut client = logged_in(port).await;
    let err = client.notify_personal().await.expect_err("refused");
    assert!(
        matches!(err, ImapError::Rejected { ref command, .. } if command == "NOTIFY"),
        "{err:?}"
    );
    drop(client);
    srv.await.expect("server");
}

/// IDLE waits past keepalives for a change (new mail, flags, an expunge), ends with DONE and
/// reads the completion; a quiet wait ends when its time is up, with the session in step for
/// the next IDLE; a change reported between DONE and the completion still counts.
#[tokio::test]
async fn idle_wakes_on_a_change_and_ends_quietly_when_the_time_is_up() {
    let (port, srv) = serve(idle_script(vec![
        Act::Hear,
        say("+ idling\r\n* OK Still here\r\n"),
        say("* 4 EXISTS\r\n* 1 RECENT\r\n"),
        Act::Hear,
        say("p2 OK Idle completed.\r\n"),
        Act::Hear,
        say("+ idling\r\n"),
        Act::Hear,
        say("p3 OK Idle completed.\r\n"),
        Act::Hear,
        say("+ idling\r\n"),
        Act::Hear,
        say("* 2 FETCH (FLAGS (\\Seen))\r\np4 OK Idle completed.\r\n"),
        Act::Hear,
        say("+ idling\r\n* VANISHED 3\r\n"),
        Act::Hear,
        say("p5 OK Idle completed.\r\n"),
    ]))
    .await;
    let mut client = logged_in(port).await;
    let long = Duration::from_secs(5);
    assert_eq!(client.idle(long).await.expect("idle"), IdleWake::Changed);
    let started = std::time::Instant::now();
    let quiet = client.idle(Duration::from_millis(300)).await.expect("idle");
    assert_eq!(quiet, IdleWake::Quiet);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let late = client.idle(Duration::from_millis(100)).await.expect("idle");
    assert_eq!(late, IdleWake::Changed, "the FETCH after DONE");
    assert_eq!(client.idle(long).await.expect("idle"), IdleWake::Changed);
    drop(client);
    let heard = srv.await.expect("server");
    assert_eq!(
        heard[2..],
        [
            "p2 IDLE", "DONE", "p3 IDLE", "DONE", "p4 IDLE", "DONE", "p5 IDLE", "DONE"
        ]
    );
}

/// Without IDLE in the capabilities nothing is sent and the error says so, for good.
#[tokio::test]
async fn idle_without_the_capability_is_a_clear_final_error() {
    let (port, srv) = serve(script(Vec::new())).await;
    let mut client = logged_in(port).await;
    let err = client
        .idle(Duration::from_secs(1))
        .await
        .expect_err("no IDLE");
    assert!(
        matches!(err, ImapError::Unsupported { .. }) && !err.is_transient(),
        "{err}"
    );
    assert!(err.to_string().contains("does not offer IDLE"), "{err}");
    drop(client);
    assert_eq!(
        srv.await.expect("server").len(),
        2,
        "only the login was sent"
    );
}

/// Hostile or failing servers during IDLE: each a clear error within the session timeout
/// (500 ms here), never a panic or a wait until the IDLE's own end.
#[tokio::test]
async fn idle_against_hostile_servers_fails_clearly_and_in_time() {
    type Expected = fn(&ImapError) -> bool;
    let cases: Vec<(&str, Vec<Act>, Expected)> = vec![
        (
            "BYE while idling",
            vec![
                Act::Hear,
                say("+ idling\r\n* BYE Server shutting down.\r\n"),
            ],
            |e| matches!(e, ImapError::Bye { .. }) && e.is_transient(),
        ),
        ("no + ever", vec![Act::Hear, Act::Hang], |e| {
            matches!(e, ImapError::Timeout { .. }) && e.is_transient()
        }),
        (
            "no completion after DONE",
            vec![
                Act::Hear,
                say("+ idling\r\n* 1 EXISTS\r\n"),
                Act::Hear,
                Act::Hang,
            ],
            |e| matches!(e, ImapError::Timeout { .. }),
        ),
        (
            "garbage",
            vec![Act::Hear, say("+ idling\r\n\x01\x02 garbage\r\n")],
            |e| matches!(e, ImapError::Malformed { .. }),
        ),
        (
            "a hostile count",
            vec![Act::Hear, say("+ idling\r\n* 99999999999 EXISTS\r\n")],
            |e| matches!(e, ImapError::Malformed { .. }),
        ),
        (
            "refused",
            vec![Act::Hear, say("p2 BAD Unknown command\r\n")],
            |e| matches!(e, ImapError::Rejected { .. }),
        ),
        (
            "completed before DONE",
            vec![Act::Hear, say("+ idling\r\np2 OK done already\r\n")],
            |e| matches!(e, ImapError::Malformed { .. }),
        ),
        (
            "a stray tag",
            vec![Act::Hear, say("+ idling\r\np9 OK what\r\n")],
            |e| matches!(e, ImapError::Malformed { .. }),
        ),
        (
            "closed while idling",
            vec![Act::Hear, say("+ idling\r\n")],
            |e| matches!(e, ImapError::Conn { .. }) && e.is_transient(),
        ),
    ];
    for (name, rest, expected) in cases {
        let (port, _srv) = serve(idle_script(rest)).await;
        let mut client = logged_in(port).await;
        let started = std::time::Instant::now();
        let err = client.idle(Duration::from_secs(20)).await.expect_err(name);
        assert!(expected(&err), "{name}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{name}: {:?}",
            started.elapsed()
        );
        let next = client.idle(Duration::from_secs(1)).await.expect_err(name);
        let in_step = matches!(err, ImapError::Rejected { .. });
        assert_eq!(
            matches!(next, ImapError::Unusable { .. }),
            !in_step,
            "{name}: then {next}"
        );
    }
}
