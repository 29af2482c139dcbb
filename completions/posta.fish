# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_posta_global_optspecs
    string join \n c/config= log-format= v/verbose h/help V/version
end

function __fish_posta_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_posta_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_posta_using_subcommand
    set -l cmd (__fish_posta_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c posta -n "__fish_posta_needs_command" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_needs_command" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_needs_command" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c posta -n "__fish_posta_needs_command" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_needs_command" -f -a "check" -d 'Probe mail servers: SMTP, submission, SMTPS, IMAP(S), POP3(S) and the domain\'s DNS'
complete -c posta -n "__fish_posta_needs_command" -f -a "migrate" -d 'Bring mail home from mailserver2 to mailserver1, losing nothing and duplicating nothing'
complete -c posta -n "__fish_posta_needs_command" -f -a "mirror" -d 'Keep a warm copy of every mailbox of mailserver1 on mailserver2'
complete -c posta -n "__fish_posta_needs_command" -f -a "takeover" -d 'Move mailserver1\'s address to this host (takeover) or give it back (failback)'
complete -c posta -n "__fish_posta_needs_command" -f -a "failback" -d 'Move mailserver1\'s address to this host (takeover) or give it back (failback)'
complete -c posta -n "__fish_posta_needs_command" -f -a "notify" -d 'Show the notice posta sends users after a takeover or a failback ([notify] in the site file)'
complete -c posta -n "__fish_posta_needs_command" -f -a "status" -d 'Show who holds mailserver1\'s address or record, and the recent takeovers and failbacks'
complete -c posta -n "__fish_posta_needs_command" -f -a "watch" -d 'Run the health-check daemon on mailserver2: probe mailserver1, decide, act'
complete -c posta -n "__fish_posta_needs_command" -f -a "drill" -d 'Rehearse the whole failover on this machine, with posta\'s own parts'
complete -c posta -n "__fish_posta_needs_command" -f -a "keepalived" -d 'posta under keepalived (VRRP): keepalived elects who holds the address, posta checks the primary for it and does the mail work around each change'
complete -c posta -n "__fish_posta_needs_command" -f -a "config" -d 'Work with the site file'
complete -c posta -n "__fish_posta_needs_command" -f -a "mta" -d 'Run the bundled mini-MTA: mailserver2\'s backup MX (MX 20) storing mail in Maildirs, or the friend\'s relay (MX 30) queueing and forwarding it'
complete -c posta -n "__fish_posta_needs_command" -f -a "queue" -d 'Administer the mta\'s queue: list, show, flush, hold, release, delete, export'
complete -c posta -n "__fish_posta_needs_command" -f -a "routes" -d 'One domain over regional servers (the seed\'s inkacoca): build every server\'s tables from the offices\' own user lists, and prove they route'
complete -c posta -n "__fish_posta_needs_command" -f -a "dns" -d 'The zone for a routes layout: plan it, and compare it with what the name server says'
complete -c posta -n "__fish_posta_needs_command" -f -a "completions" -d 'Print a shell completion script to stdout'
complete -c posta -n "__fish_posta_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posta -n "__fish_posta_using_subcommand check" -l password-file -d 'File with the probe account\'s password, for URLs that name a user (owner-only mode)' -r -F
complete -c posta -n "__fish_posta_using_subcommand check" -l ca-file -d 'Trust the CA certificates in this PEM file, besides the system\'s' -r -F
complete -c posta -n "__fish_posta_using_subcommand check" -l timeout -d 'Limit for each probe, e.g. 5s [default: the site file\'s probe timeout, else 10s]' -r
complete -c posta -n "__fish_posta_using_subcommand check" -l helo -d 'Name to give in EHLO [default: the site file\'s, else this host\'s name]' -r
complete -c posta -n "__fish_posta_using_subcommand check" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand check" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand check" -l insecure -d 'Do not verify TLS certificates (they are verified by default)'
complete -c posta -n "__fish_posta_using_subcommand check" -l json -d 'Print one JSON object with every probe\'s status, latency and details'
complete -c posta -n "__fish_posta_using_subcommand check" -l nagios -d 'Print one Nagios status line with perfdata (for Nagios, Icinga, keepalived vrrp_script)'
complete -c posta -n "__fish_posta_using_subcommand check" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c posta -n "__fish_posta_using_subcommand check" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand migrate" -l from -d 'Source mailbox: imap://, imaps://, pop3:// or pop3s://user@mailserver2[:port], or maildir:PATH to read a Maildir on this host (run on mailserver2; no password needed; `%u` in PATH stands for --user, e.g. maildir:/var/vmail/%u/Maildir)' -r
complete -c posta -n "__fish_posta_using_subcommand migrate" -l user -d 'The account\'s user with a maildir: source: replaces `%u` in its PATH and names the account [default: the Maildir\'s directory name]' -r
complete -c posta -n "__fish_posta_using_subcommand migrate" -l password-file -d 'File with the source user\'s password (owner-only mode)' -r -F
complete -c posta -n "__fish_posta_using_subcommand migrate" -l to -d 'Where INBOX mail goes: smtp://mailserver1[:port] or lmtp://host:port' -r
complete -c posta -n "__fish_posta_using_subcommand migrate" -l rcpt -d 'Envelope recipient at mailserver1 [default: each message\'s Delivered-To / X-Original-To]' -r
complete -c posta -n "__fish_posta_using_subcommand migrate" -l to-imap -d 'IMAP login on mailserver1 (imap:// or imaps://user@host) for folders, for checking unknown outcomes after a crash, and for reading the result back' -r
complete -c posta -n "__fish_posta_using_subcommand migrate" -l to-maildir -d 'mailserver1\'s Maildir for each account, when posta runs there (`%u`: the account\'s user, or its dest_user in the site file; e.g. /var/vmail/%u/Maildir): settles unknown outcomes after a crash and reads the result back by tracking id, without any login' -r -F
complete -c posta -n "__fish_posta_using_subcommand migrate" -l to-password-file -d 'File with the password for --to-imap [default: --dest-admin, else --password-file]' -r -F
complete -c posta -n "__fish_posta_using_subcommand migrate" -l source-admin -d 'Admin identity on mailserver2 (a Dovecot master user) that logs in as every source user, so no user\'s password is needed; accounts with their own password file still use it [default: the site file\'s source_admin]' -r
complete -c posta -n "__fish_posta_using_subcommand migrate" -l source-admin-password-file -d 'File with the --source-admin password (owner-only mode)' -r -F
complete -c posta -n "__fish_posta_using_subcommand migrate" -l dest-admin -d 'Admin identity on mailserver1 for the IMAP login (--to-imap, folders, the read-back) [default: the site file\'s dest_admin]' -r
complete -c posta -n "__fish_posta_using_subcommand migrate" -l dest-admin-password-file -d 'File with the --dest-admin password (owner-only mode)' -r -F
complete -c posta -n "__fish_posta_using_subcommand migrate" -l admin-login -d 'How an admin identity logs in: auto (SASL PLAIN with the user as authorization identity when the server offers PLAIN, else LOGIN user*admin), plain, or separator (LOGIN user*admin: Dovecot\'s auth_master_user_separator = *) [default: the site file\'s login, else auto]' -r -f -a "auto\t''
plain\t''
separator\t''"
complete -c posta -n "__fish_posta_using_subcommand migrate" -l inbox -d 'How INBOX reaches mailserver1: deliver (SMTP/LMTP; filters apply) or append (IMAP; flags and dates survive)' -r -f -a "deliver\t''
append\t''"
complete -c posta -n "__fish_posta_using_subcommand migrate" -l folder -d 'Migrate only this folder (repeatable; decoded name, e.g. INBOX or Entwürfe)' -r
complete -c posta -n "__fish_posta_using_subcommand migrate" -l state-dir -d 'Journals and the quarantine Maildir [default: the site\'s, else /var/lib/posta/migrate]' -r -F
complete -c posta -n "__fish_posta_using_subcommand migrate" -l ca-file -d 'Trust the CA certificates in this PEM file, besides the system\'s' -r -F
complete -c posta -n "__fish_posta_using_subcommand migrate" -l connections -d 'Delivery connections per account (each may hold an SMTP and an IMAP session to mailserver1; Dovecot allows 10 per user and address by default, mail_max_userip_connections)' -r
complete -c posta -n "__fish_posta_using_subcommand migrate" -l parallel -d 'Accounts delivering at once, each with one session to mailserver2. An account that has sent everything makes room for the next while it waits for mailserver1 to store its mail and reads it back, keeping its session for the removals; as many may do so at once, so sessions to mailserver2 stay at most twice this' -r
complete -c posta -n "__fish_posta_using_subcommand migrate" -l max-primary-connections -d 'Delivery connections to mailserver1 across every account: an account starts once its --connections (or what is left, at least one) are free. The default leaves most of Postfix\'s 100 smtpd processes (default_process_limit) to the site\'s own mail and stays under its 50 connections per client (smtpd_client_connection_count_limit)' -r
complete -c posta -n "__fish_posta_using_subcommand migrate" -l retry-for -d 'How long temporary failures (4xx, 421, lost connections) are retried' -r
complete -c posta -n "__fish_posta_using_subcommand migrate" -l settle -d 'How long an accepted message may take to show up in mailserver1\'s mailbox' -r
complete -c posta -n "__fish_posta_using_subcommand migrate" -l timeout -d 'Longest wait for any one reply' -r
complete -c posta -n "__fish_posta_using_subcommand migrate" -l unknown -d 'A message sent but never answered (posta killed or the connection lost after the final dot), when there is no IMAP login on mailserver1 to look for it: keep it on the source and report it, or resend it (at least once: mailserver1 may then hold it twice, and the run says how many). With an IMAP login posta looks instead' -r -f -a "keep\t''
resend\t''"
complete -c posta -n "__fish_posta_using_subcommand migrate" -l helo -d 'Name given in EHLO/LHLO and the trace header [default: this host\'s name]' -r
complete -c posta -n "__fish_posta_using_subcommand migrate" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand migrate" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand migrate" -l keep -d 'Leave the source untouched; a later run still sends nothing twice'
complete -c posta -n "__fish_posta_using_subcommand migrate" -l unseen -d 'Only unread messages (IMAP)'
complete -c posta -n "__fish_posta_using_subcommand migrate" -l dry-run -d 'Print, per account and folder, what would move; change nothing'
complete -c posta -n "__fish_posta_using_subcommand migrate" -l return -d 'After a failback, with [mirror]: first carry back to mailserver1 what users did on mailserver2 to the mirror\'s copies (flags, moves between folders, deletions, folders created, renamed or deleted), then bring new mail home as always. Lifts the mirror\'s hold (set by the takeover) once every account\'s return completed'
complete -c posta -n "__fish_posta_using_subcommand migrate" -l json -d 'Print the reconciliation as JSON'
complete -c posta -n "__fish_posta_using_subcommand migrate" -l insecure -d 'Do not verify TLS certificates (they are verified by default)'
complete -c posta -n "__fish_posta_using_subcommand migrate" -l no-verify -d 'Do not check what mailserver1 stored against the source (body hash, copies): the reconciliation then relies on its replies, and a confirmation before removal reads headers only'
complete -c posta -n "__fish_posta_using_subcommand migrate" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand migrate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c posta -n "__fish_posta_using_subcommand migrate" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand mirror" -l interval -d 'Time between the start of one pass and the next [default: the site\'s [mirror] interval, else 60s]' -r
complete -c posta -n "__fish_posta_using_subcommand mirror" -l state-dir -d 'The per-account state files [default: the site\'s [mirror] state_dir, else /var/lib/posta/mirror]' -r -F
complete -c posta -n "__fish_posta_using_subcommand mirror" -l parallel -d 'Accounts mirrored at once; each holds one session to each server, so this caps the sessions per server' -r
complete -c posta -n "__fish_posta_using_subcommand mirror" -l ca-file -d 'Trust the CA certificates in this PEM file, besides the system\'s' -r -F
complete -c posta -n "__fish_posta_using_subcommand mirror" -l timeout -d 'Longest wait for any one reply; a pass after a kill also waits this long before it looks for the killed pass\'s last batch on mailserver2' -r
complete -c posta -n "__fish_posta_using_subcommand mirror" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand mirror" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand mirror" -l once -d 'One pass, then exit'
complete -c posta -n "__fish_posta_using_subcommand mirror" -l idle -d 'Also pass an account within seconds of a change on mailserver1: one more session per account to mailserver1 IDLEs in INBOX (RFC 2177) and hears of every folder where the server offers NOTIFY (RFC 5465; Dovecot does), else of INBOX only. The --interval passes go on. Not with --once'
complete -c posta -n "__fish_posta_using_subcommand mirror" -l trust-notify -d 'With --idle: leave out of the --interval passes the accounts whose session heard of every folder and no change since their last pass (each is still passed every 10 intervals). Only where every change on mailserver1 goes through Dovecot (LMTP or dovecot-lda delivery, IMAP): NOTIFY does not hear of mail another program (procmail, maildrop) writes into a folder other than INBOX'
complete -c posta -n "__fish_posta_using_subcommand mirror" -l json -d 'Print each pass\'s report as JSON'
complete -c posta -n "__fish_posta_using_subcommand mirror" -l insecure -d 'Do not verify TLS certificates (they are verified by default)'
complete -c posta -n "__fish_posta_using_subcommand mirror" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand mirror" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c posta -n "__fish_posta_using_subcommand mirror" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand takeover; and not __fish_seen_subcommand_from vip dns help" -l state-file -d 'State file [default: the site\'s [takeover] state_file, else /var/lib/posta/takeover.json]' -r -F
complete -c posta -n "__fish_posta_using_subcommand takeover; and not __fish_seen_subcommand_from vip dns help" -l timeout -d 'Limit for each step (probe, update, verification)' -r
complete -c posta -n "__fish_posta_using_subcommand takeover; and not __fish_seen_subcommand_from vip dns help" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand takeover; and not __fish_seen_subcommand_from vip dns help" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand takeover; and not __fish_seen_subcommand_from vip dns help" -l dry-run -d 'Print the exact actions; change nothing'
complete -c posta -n "__fish_posta_using_subcommand takeover; and not __fish_seen_subcommand_from vip dns help" -l json -d 'Print the outcome as JSON'
complete -c posta -n "__fish_posta_using_subcommand takeover; and not __fish_seen_subcommand_from vip dns help" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand takeover; and not __fish_seen_subcommand_from vip dns help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c posta -n "__fish_posta_using_subcommand takeover; and not __fish_seen_subcommand_from vip dns help" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand takeover; and not __fish_seen_subcommand_from vip dns help" -f -a "vip" -d 'Virtual IP: mailserver2 takes mailserver1\'s address as an alias'
complete -c posta -n "__fish_posta_using_subcommand takeover; and not __fish_seen_subcommand_from vip dns help" -f -a "dns" -d 'DNS: mailserver1\'s A record is rewritten to mailserver2\'s address'
complete -c posta -n "__fish_posta_using_subcommand takeover; and not __fish_seen_subcommand_from vip dns help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from vip" -l address -d 'The address and prefix, e.g. 10.0.0.25/24 [default: the site\'s [vip] address]' -r
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from vip" -l dev -d 'The interface [default: the site\'s [vip] interface]' -r
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from vip" -l label -d 'Address label, e.g. eth0:posta [default: the site\'s, else none]' -r
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from vip" -l probe-count -d 'ARP probes to send before taking the address (0 skips the probe)' -r
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from vip" -l probe-interval -d 'Time between ARP probes' -r
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from vip" -l probe-wait -d 'Time to wait for an answer after the last probe' -r
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from vip" -l garp-count -d 'Gratuitous ARP packets per burst' -r
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from vip" -l garp-interval -d 'Time between gratuitous ARP packets' -r
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from vip" -l garp-mode -d 'Gratuitous ARP as requests or replies (some switches only learn from one kind)' -r -f -a "request\t''
reply\t''"
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from vip" -l second-burst -d 'Delay of the second burst, for caches that missed the first; 0 sends none' -r
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from vip" -l smtp-port -d 'SMTP port checked through the address [default: the primary\'s smtp service, else 25]' -r
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from vip" -l state-file -d 'State file [default: the site\'s [takeover] state_file, else /var/lib/posta/takeover.json]' -r -F
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from vip" -l timeout -d 'Limit for each step (probe, update, verification)' -r
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from vip" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from vip" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from vip" -l force -d 'Take the address even if a host answers the ARP probe'
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from vip" -l reclaim -d 'Failback run on mailserver1: re-add and announce the address here'
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from vip" -l dry-run -d 'Print the exact actions; change nothing'
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from vip" -l json -d 'Print the outcome as JSON'
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from vip" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from vip" -s h -l help -d 'Print help'
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from vip" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from dns" -l server -d 'The zone\'s primary authoritative server, host:port [default: the site\'s [dns] server]' -r
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from dns" -l zone -d 'The zone [default: the site\'s]' -r
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from dns" -l name -d 'The record\'s name, relative to the zone or absolute [default: the site\'s]' -r
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from dns" -l expect -d 'The address(es) the record must hold now [default: the primary\'s (takeover) or the backup\'s (failback)]' -r
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from dns" -l to -d 'The address(es) it will hold [default: the backup\'s (takeover) or the primary\'s]' -r
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from dns" -l key-file -d 'BIND-format TSIG key file, owner-only [default: the site\'s tsig_key_file]' -r -F
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from dns" -l ttl -d 'TTL of the written record [default: the site\'s, else 300; failback: the TTL the record had before the takeover, as recorded in the state file]' -r
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from dns" -l zone-file -d 'Edit this static zone file instead of sending an UPDATE [default: the site\'s zone_file]' -r -F
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from dns" -l reload -d 'Command that makes the server load the edited zone (one argument per --reload)' -r
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from dns" -l state-file -d 'State file [default: the site\'s [takeover] state_file, else /var/lib/posta/takeover.json]' -r -F
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from dns" -l timeout -d 'Limit for each step (probe, update, verification)' -r
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from dns" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from dns" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from dns" -l dry-run -d 'Print the exact actions; change nothing'
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from dns" -l json -d 'Print the outcome as JSON'
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from dns" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from dns" -s h -l help -d 'Print help'
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from dns" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from help" -f -a "vip" -d 'Virtual IP: mailserver2 takes mailserver1\'s address as an alias'
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from help" -f -a "dns" -d 'DNS: mailserver1\'s A record is rewritten to mailserver2\'s address'
complete -c posta -n "__fish_posta_using_subcommand takeover; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posta -n "__fish_posta_using_subcommand failback; and not __fish_seen_subcommand_from vip dns help" -l state-file -d 'State file [default: the site\'s [takeover] state_file, else /var/lib/posta/takeover.json]' -r -F
complete -c posta -n "__fish_posta_using_subcommand failback; and not __fish_seen_subcommand_from vip dns help" -l timeout -d 'Limit for each step (probe, update, verification)' -r
complete -c posta -n "__fish_posta_using_subcommand failback; and not __fish_seen_subcommand_from vip dns help" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand failback; and not __fish_seen_subcommand_from vip dns help" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand failback; and not __fish_seen_subcommand_from vip dns help" -l dry-run -d 'Print the exact actions; change nothing'
complete -c posta -n "__fish_posta_using_subcommand failback; and not __fish_seen_subcommand_from vip dns help" -l json -d 'Print the outcome as JSON'
complete -c posta -n "__fish_posta_using_subcommand failback; and not __fish_seen_subcommand_from vip dns help" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand failback; and not __fish_seen_subcommand_from vip dns help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c posta -n "__fish_posta_using_subcommand failback; and not __fish_seen_subcommand_from vip dns help" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand failback; and not __fish_seen_subcommand_from vip dns help" -f -a "vip" -d 'Virtual IP: mailserver2 takes mailserver1\'s address as an alias'
complete -c posta -n "__fish_posta_using_subcommand failback; and not __fish_seen_subcommand_from vip dns help" -f -a "dns" -d 'DNS: mailserver1\'s A record is rewritten to mailserver2\'s address'
complete -c posta -n "__fish_posta_using_subcommand failback; and not __fish_seen_subcommand_from vip dns help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from vip" -l address -d 'The address and prefix, e.g. 10.0.0.25/24 [default: the site\'s [vip] address]' -r
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from vip" -l dev -d 'The interface [default: the site\'s [vip] interface]' -r
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from vip" -l label -d 'Address label, e.g. eth0:posta [default: the site\'s, else none]' -r
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from vip" -l probe-count -d 'ARP probes to send before taking the address (0 skips the probe)' -r
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from vip" -l probe-interval -d 'Time between ARP probes' -r
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from vip" -l probe-wait -d 'Time to wait for an answer after the last probe' -r
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from vip" -l garp-count -d 'Gratuitous ARP packets per burst' -r
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from vip" -l garp-interval -d 'Time between gratuitous ARP packets' -r
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from vip" -l garp-mode -d 'Gratuitous ARP as requests or replies (some switches only learn from one kind)' -r -f -a "request\t''
reply\t''"
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from vip" -l second-burst -d 'Delay of the second burst, for caches that missed the first; 0 sends none' -r
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from vip" -l smtp-port -d 'SMTP port checked through the address [default: the primary\'s smtp service, else 25]' -r
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from vip" -l state-file -d 'State file [default: the site\'s [takeover] state_file, else /var/lib/posta/takeover.json]' -r -F
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from vip" -l timeout -d 'Limit for each step (probe, update, verification)' -r
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from vip" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from vip" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from vip" -l force -d 'Take the address even if a host answers the ARP probe'
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from vip" -l reclaim -d 'Failback run on mailserver1: re-add and announce the address here'
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from vip" -l dry-run -d 'Print the exact actions; change nothing'
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from vip" -l json -d 'Print the outcome as JSON'
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from vip" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from vip" -s h -l help -d 'Print help'
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from vip" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from dns" -l server -d 'The zone\'s primary authoritative server, host:port [default: the site\'s [dns] server]' -r
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from dns" -l zone -d 'The zone [default: the site\'s]' -r
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from dns" -l name -d 'The record\'s name, relative to the zone or absolute [default: the site\'s]' -r
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from dns" -l expect -d 'The address(es) the record must hold now [default: the primary\'s (takeover) or the backup\'s (failback)]' -r
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from dns" -l to -d 'The address(es) it will hold [default: the backup\'s (takeover) or the primary\'s]' -r
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from dns" -l key-file -d 'BIND-format TSIG key file, owner-only [default: the site\'s tsig_key_file]' -r -F
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from dns" -l ttl -d 'TTL of the written record [default: the site\'s, else 300; failback: the TTL the record had before the takeover, as recorded in the state file]' -r
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from dns" -l zone-file -d 'Edit this static zone file instead of sending an UPDATE [default: the site\'s zone_file]' -r -F
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from dns" -l reload -d 'Command that makes the server load the edited zone (one argument per --reload)' -r
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from dns" -l state-file -d 'State file [default: the site\'s [takeover] state_file, else /var/lib/posta/takeover.json]' -r -F
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from dns" -l timeout -d 'Limit for each step (probe, update, verification)' -r
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from dns" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from dns" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from dns" -l dry-run -d 'Print the exact actions; change nothing'
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from dns" -l json -d 'Print the outcome as JSON'
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from dns" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from dns" -s h -l help -d 'Print help'
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from dns" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from help" -f -a "vip" -d 'Virtual IP: mailserver2 takes mailserver1\'s address as an alias'
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from help" -f -a "dns" -d 'DNS: mailserver1\'s A record is rewritten to mailserver2\'s address'
complete -c posta -n "__fish_posta_using_subcommand failback; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posta -n "__fish_posta_using_subcommand notify" -l test -d 'Print exactly the message USER would be sent, headers and body, and send nothing: an address, or the user of a [[migrate.accounts]] entry' -r
complete -c posta -n "__fish_posta_using_subcommand notify" -l send-test -d 'Send USER that message through the server that serves users now (mailserver2 while the takeover state says it holds mailserver1\'s address, else mailserver1); not recorded, so the rate limit neither counts nor stops it' -r
complete -c posta -n "__fish_posta_using_subcommand notify" -l event -d 'The notice to show [default: the one a takeover sends now]' -r -f -a "takeover\t''
failback\t''
mirror-missing\t''"
complete -c posta -n "__fish_posta_using_subcommand notify" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand notify" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand notify" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand notify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c posta -n "__fish_posta_using_subcommand notify" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand status" -l state-file -d 'State file [default: the site\'s [takeover] state_file, else /var/lib/posta/takeover.json]' -r -F
complete -c posta -n "__fish_posta_using_subcommand status" -l watch-state-file -d 'The watch daemon\'s state file [default: the site\'s [watch] state_file, else /var/lib/posta/watch.json]' -r -F
complete -c posta -n "__fish_posta_using_subcommand status" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand status" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand status" -l json -d 'Print JSON'
complete -c posta -n "__fish_posta_using_subcommand status" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c posta -n "__fish_posta_using_subcommand status" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand watch" -l listen -d 'Serve /metrics and /status here [default: the site\'s [watch] listen; none]' -r
complete -c posta -n "__fish_posta_using_subcommand watch" -l state-file -d 'State file [default: the site\'s [watch] state_file, else /var/lib/posta/watch.json]' -r -F
complete -c posta -n "__fish_posta_using_subcommand watch" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand watch" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand watch" -l witness -d 'Only probe and report (for another host\'s witness): never take over or fail back'
complete -c posta -n "__fish_posta_using_subcommand watch" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand watch" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c posta -n "__fish_posta_using_subcommand watch" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand drill" -l messages -d 'Messages sent in each phase' -r
complete -c posta -n "__fish_posta_using_subcommand drill" -l dir -d 'Keep the drill\'s files (logs, Maildirs, site file) here [default: a temporary directory]' -r -F
complete -c posta -n "__fish_posta_using_subcommand drill" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand drill" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand drill" -l fast -d 'Short intervals and grace (seconds instead of minutes), for a demonstration'
complete -c posta -n "__fish_posta_using_subcommand drill" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand drill" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c posta -n "__fish_posta_using_subcommand drill" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand keepalived; and not __fish_seen_subcommand_from config fifo notify help" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand keepalived; and not __fish_seen_subcommand_from config fifo notify help" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand keepalived; and not __fish_seen_subcommand_from config fifo notify help" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand keepalived; and not __fish_seen_subcommand_from config fifo notify help" -s h -l help -d 'Print help'
complete -c posta -n "__fish_posta_using_subcommand keepalived; and not __fish_seen_subcommand_from config fifo notify help" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand keepalived; and not __fish_seen_subcommand_from config fifo notify help" -f -a "config" -d 'Print a keepalived.conf for this host from the site file: a vrrp_script running `posta check --nagios primary` on mailserver1 (its fall covers the takeover grace), the VIP, and `posta keepalived fifo` reading keepalived\'s vrrp_notify_fifo'
complete -c posta -n "__fish_posta_using_subcommand keepalived; and not __fish_seen_subcommand_from config fifo notify help" -f -a "fifo" -d 'keepalived\'s vrrp_notify_fifo_script: reads `INSTANCE "name" STATE priority` lines from the FIFO and handles them one at a time, in the order keepalived wrote them. On mailserver2 becoming MASTER: takeover hooks, recorded; leaving MASTER: failback hooks, recorded, then the mta queue flushed and `posta migrate` started (a takeover arriving while it runs is handled at once). Runs until keepalived ends it with SIGTERM'
complete -c posta -n "__fish_posta_using_subcommand keepalived; and not __fish_seen_subcommand_from config fifo notify help" -f -a "notify" -d 'keepalived\'s plain notify script, for a keepalived.conf that does not use the FIFO: `notify "posta keepalived notify --role backup"`. keepalived starts one per transition without waiting; each queues its notification and they are handled one at a time in the order they reached posta, as `fifo` does. Prefer `fifo`: processes keepalived starts within a few milliseconds may reach posta in either order'
complete -c posta -n "__fish_posta_using_subcommand keepalived; and not __fish_seen_subcommand_from config fifo notify help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posta -n "__fish_posta_using_subcommand keepalived; and __fish_seen_subcommand_from config" -l role -d 'Which of the pair this configuration is for' -r -f -a "primary\t'mailserver1 (MASTER, priority 150, tracks its own services)'
backup\t'mailserver2 (BACKUP, priority 100)'"
complete -c posta -n "__fish_posta_using_subcommand keepalived; and __fish_seen_subcommand_from config" -l router-id -d 'VRRP router id shared by the pair (1-255)' -r
complete -c posta -n "__fish_posta_using_subcommand keepalived; and __fish_seen_subcommand_from config" -l fifo -d 'The FIFO keepalived writes its events to (it creates it; one per keepalived)' -r -F
complete -c posta -n "__fish_posta_using_subcommand keepalived; and __fish_seen_subcommand_from config" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand keepalived; and __fish_seen_subcommand_from config" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand keepalived; and __fish_seen_subcommand_from config" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand keepalived; and __fish_seen_subcommand_from config" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c posta -n "__fish_posta_using_subcommand keepalived; and __fish_seen_subcommand_from config" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand keepalived; and __fish_seen_subcommand_from fifo" -l role -d 'Which of the pair this host is' -r -f -a "primary\t'mailserver1 (MASTER, priority 150, tracks its own services)'
backup\t'mailserver2 (BACKUP, priority 100)'"
complete -c posta -n "__fish_posta_using_subcommand keepalived; and __fish_seen_subcommand_from fifo" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand keepalived; and __fish_seen_subcommand_from fifo" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand keepalived; and __fish_seen_subcommand_from fifo" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand keepalived; and __fish_seen_subcommand_from fifo" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c posta -n "__fish_posta_using_subcommand keepalived; and __fish_seen_subcommand_from fifo" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand keepalived; and __fish_seen_subcommand_from notify" -l role -d 'Which of the pair this host is' -r -f -a "primary\t'mailserver1 (MASTER, priority 150, tracks its own services)'
backup\t'mailserver2 (BACKUP, priority 100)'"
complete -c posta -n "__fish_posta_using_subcommand keepalived; and __fish_seen_subcommand_from notify" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand keepalived; and __fish_seen_subcommand_from notify" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand keepalived; and __fish_seen_subcommand_from notify" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand keepalived; and __fish_seen_subcommand_from notify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c posta -n "__fish_posta_using_subcommand keepalived; and __fish_seen_subcommand_from notify" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand keepalived; and __fish_seen_subcommand_from help" -f -a "config" -d 'Print a keepalived.conf for this host from the site file: a vrrp_script running `posta check --nagios primary` on mailserver1 (its fall covers the takeover grace), the VIP, and `posta keepalived fifo` reading keepalived\'s vrrp_notify_fifo'
complete -c posta -n "__fish_posta_using_subcommand keepalived; and __fish_seen_subcommand_from help" -f -a "fifo" -d 'keepalived\'s vrrp_notify_fifo_script: reads `INSTANCE "name" STATE priority` lines from the FIFO and handles them one at a time, in the order keepalived wrote them. On mailserver2 becoming MASTER: takeover hooks, recorded; leaving MASTER: failback hooks, recorded, then the mta queue flushed and `posta migrate` started (a takeover arriving while it runs is handled at once). Runs until keepalived ends it with SIGTERM'
complete -c posta -n "__fish_posta_using_subcommand keepalived; and __fish_seen_subcommand_from help" -f -a "notify" -d 'keepalived\'s plain notify script, for a keepalived.conf that does not use the FIFO: `notify "posta keepalived notify --role backup"`. keepalived starts one per transition without waiting; each queues its notification and they are handled one at a time in the order they reached posta, as `fifo` does. Prefer `fifo`: processes keepalived starts within a few milliseconds may reach posta in either order'
complete -c posta -n "__fish_posta_using_subcommand keepalived; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posta -n "__fish_posta_using_subcommand config; and not __fish_seen_subcommand_from check show help" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand config; and not __fish_seen_subcommand_from check show help" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand config; and not __fish_seen_subcommand_from check show help" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand config; and not __fish_seen_subcommand_from check show help" -s h -l help -d 'Print help'
complete -c posta -n "__fish_posta_using_subcommand config; and not __fish_seen_subcommand_from check show help" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand config; and not __fish_seen_subcommand_from check show help" -f -a "check" -d 'Validate the site file, reporting every problem with file:line:column (exit 2 if any, or if there is no site file), then check on this host every secret file it names (owner-only and readable; the error names the section that needs it) and, when this host has the [backup] address, that the [vip] interface exists'
complete -c posta -n "__fish_posta_using_subcommand config; and not __fish_seen_subcommand_from check show help" -f -a "show" -d 'Print the validated site as a site file with all defaults filled in, which reads back the same (secret files by path, never their contents)'
complete -c posta -n "__fish_posta_using_subcommand config; and not __fish_seen_subcommand_from check show help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posta -n "__fish_posta_using_subcommand config; and __fish_seen_subcommand_from check" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand config; and __fish_seen_subcommand_from check" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand config; and __fish_seen_subcommand_from check" -l json -d 'Print the result as JSON'
complete -c posta -n "__fish_posta_using_subcommand config; and __fish_seen_subcommand_from check" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand config; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help'
complete -c posta -n "__fish_posta_using_subcommand config; and __fish_seen_subcommand_from check" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand config; and __fish_seen_subcommand_from show" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand config; and __fish_seen_subcommand_from show" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand config; and __fish_seen_subcommand_from show" -l json -d 'Print the typed site as JSON instead'
complete -c posta -n "__fish_posta_using_subcommand config; and __fish_seen_subcommand_from show" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand config; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c posta -n "__fish_posta_using_subcommand config; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "check" -d 'Validate the site file, reporting every problem with file:line:column (exit 2 if any, or if there is no site file), then check on this host every secret file it names (owner-only and readable; the error names the section that needs it) and, when this host has the [backup] address, that the [vip] interface exists'
complete -c posta -n "__fish_posta_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "show" -d 'Print the validated site as a site file with all defaults filled in, which reads back the same (secret files by path, never their contents)'
complete -c posta -n "__fish_posta_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l listen -d 'Address to accept SMTP on, e.g. 0.0.0.0:25 (repeatable)' -r
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l hostname -d 'This server\'s name: greeting, Received headers, and finding itself in MX lists' -r
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l domain -d 'A domain delivered here: local to the Maildirs with --maildir, else relayed (repeatable). `localhost` is not one unless given here or in local-host-names' -r
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l relay-domain -d 'A domain (and its subdomains) queued and relayed, like `To:DOMAIN RELAY` (repeatable); a top-level domain (one label, such as `com`) is refused' -r
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l maildir -d 'Root of the users\' Maildirs: user U\'s mail goes to DIR/U/new, or a Dovecot-style template such as /var/vmail/%u/Maildir' -r -F
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l maildir-owner -d 'Who the Maildirs belong to (Dovecot\'s mail user, e.g. vmail): started as root, the mta binds its ports, then runs as this user and group for good, so files are 0600 and directories 0700, its own; started as that user, it goes on as it is' -r
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l queue -d 'The durable queue for relayed mail' -r -F
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l control-socket -d 'The control socket `posta queue flush` reaches this mta by, kept out of the queue directory [default: /run/posta/mta.sock]' -r -F
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l relay-to -d 'Relay everything queued to this host instead of looking up MX records' -r
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l relay-tls -d 'TLS towards the next hop [default: require with --relay-to, may for MX delivery]' -r -f -a "require\t'STARTTLS required and the certificate verified (the default with --relay-to)'
may\t'STARTTLS when offered, verified when used (the default for MX delivery)'
none\t'Plain text (a private link or loopback)'"
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l ca-file -d 'Trust the CA certificates in this PEM file for the next hop, besides the system\'s' -r -F
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l mx-port -d 'Port of MX hosts (25; for tests)' -r
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l dns-server -d 'Ask this DNS server for MX records instead of the system\'s resolver (for tests)' -r
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l access -d 'sendmail\'s access file, as text' -r -F
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l virtusertable -d 'sendmail\'s virtusertable, as text' -r -F
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l local-host-names -d 'sendmail\'s local-host-names (class w)' -r -F
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l recipients -d 'Valid recipients (user@domain or @domain per line): others get 550 at RCPT. The list covers every --domain, --relay-domain (subdomains included), local-host-names name and every domain it names (subdomains included), as Postfix\'s relay_recipient_maps' -r -F
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l pop3-listen -d 'Serve the Maildirs over POP3 on this address (STLS offered with a certificate)' -r
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l pop3s-listen -d 'Serve POP3 over implicit TLS (POP3S) on this address' -r
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l pop3-users -d 'POP3 users: user:{SHA512-CRYPT}hash lines (Dovecot passwd-file format), owner-only' -r -F
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l pop3-max-per-ip -d 'Simultaneous POP3 sessions from one address, of the 100 POP3 slots [default: 20]' -r
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l tls-cert -d 'Certificate chain (PEM) for STARTTLS, STLS and POP3S' -r -F
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l tls-key -d 'Private key (PEM, owner-only) for --tls-cert' -r -F
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l vip-tls-cert -d 'mailserver1\'s certificate chain (PEM), presented on connections to --vip-address and to clients asking by SNI for a name it covers; SIGHUP reloads it with --tls-cert' -r -F
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l vip-tls-key -d 'Private key (PEM, owner-only) for --vip-tls-cert' -r -F
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l vip-address -d 'The VIP: connections to this local address get --vip-tls-cert whatever their SNI [default: the site file\'s [vip] address]' -r
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l max-message-size -d 'Largest message accepted, in bytes, at least 1 [default: 52428800]' -r
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l max-recipients -d 'Recipients per message, at least 1 [default: 100]' -r
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l max-connections -d 'Simultaneous connections, at least 1 [default: 200]' -r
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l max-per-ip -d 'Simultaneous connections from one address, at least 1 [default: 50, as Postfix]' -r
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l timeout -d 'Time allowed for each command line, and for the client to take each reply (POP3 replies too; POP3\'s idle limit stays RFC 1939\'s 10 minutes) [default: 5m]' -r
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l retry-min -d 'First retry of a deferred message; doubles per attempt [default: 5m]' -r
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l retry-max -d 'Longest wait between retries [default: 1h6m40s, Postfix\'s 4000s]' -r
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l lifetime -d 'Give up and return the message to its sender after this [default: 5d]' -r
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l min-free -d 'Answer 452 to new mail when the spool\'s filesystem has less free space [default: 104857600]' -r
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -l verify-recipients -d 'Check relayed recipients that no --recipients list covers with the next hop (the primary) and cache the answers for 31 days: while the primary is down, known users are accepted and unknown ones get 450, never a late bounce'
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -f -a "explain" -d 'Explain what sendmail\'s tables decide for one recipient, like `sendmail -bt`'
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -f -a "passwd" -d 'Print a POP3 users-file line for USER: the password is read from stdin (one line, never from the command line) and hashed with SHA512-CRYPT, as `doveadm pw` does'
complete -c posta -n "__fish_posta_using_subcommand mta; and not __fish_seen_subcommand_from explain passwd help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posta -n "__fish_posta_using_subcommand mta; and __fish_seen_subcommand_from explain" -l access -d 'The access table (FEATURE access_db), as text' -r -F
complete -c posta -n "__fish_posta_using_subcommand mta; and __fish_seen_subcommand_from explain" -l virtusertable -d 'The virtusertable, as text' -r -F
complete -c posta -n "__fish_posta_using_subcommand mta; and __fish_seen_subcommand_from explain" -l local-host-names -d 'The local-host-names file (class w)' -r -F
complete -c posta -n "__fish_posta_using_subcommand mta; and __fish_seen_subcommand_from explain" -l client -d 'IP address of the connecting client' -r
complete -c posta -n "__fish_posta_using_subcommand mta; and __fish_seen_subcommand_from explain" -l helo -d 'Name the client gave in HELO/EHLO (reported only)' -r
complete -c posta -n "__fish_posta_using_subcommand mta; and __fish_seen_subcommand_from explain" -l from -d 'Envelope sender (MAIL FROM); empty or <> for the null sender' -r
complete -c posta -n "__fish_posta_using_subcommand mta; and __fish_seen_subcommand_from explain" -l rcpt -d 'Envelope recipient (RCPT TO)' -r
complete -c posta -n "__fish_posta_using_subcommand mta; and __fish_seen_subcommand_from explain" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand mta; and __fish_seen_subcommand_from explain" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand mta; and __fish_seen_subcommand_from explain" -l json -d 'Print the verdict, the trail and lint warnings as JSON'
complete -c posta -n "__fish_posta_using_subcommand mta; and __fish_seen_subcommand_from explain" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand mta; and __fish_seen_subcommand_from explain" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c posta -n "__fish_posta_using_subcommand mta; and __fish_seen_subcommand_from explain" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand mta; and __fish_seen_subcommand_from passwd" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand mta; and __fish_seen_subcommand_from passwd" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand mta; and __fish_seen_subcommand_from passwd" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand mta; and __fish_seen_subcommand_from passwd" -s h -l help -d 'Print help'
complete -c posta -n "__fish_posta_using_subcommand mta; and __fish_seen_subcommand_from passwd" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand mta; and __fish_seen_subcommand_from help" -f -a "explain" -d 'Explain what sendmail\'s tables decide for one recipient, like `sendmail -bt`'
complete -c posta -n "__fish_posta_using_subcommand mta; and __fish_seen_subcommand_from help" -f -a "passwd" -d 'Print a POP3 users-file line for USER: the password is read from stdin (one line, never from the command line) and hashed with SHA512-CRYPT, as `doveadm pw` does'
complete -c posta -n "__fish_posta_using_subcommand mta; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posta -n "__fish_posta_using_subcommand queue; and not __fish_seen_subcommand_from list show flush hold release delete export help" -l queue -d 'The queue directory [default: the site file\'s [mta] queue]' -r -F
complete -c posta -n "__fish_posta_using_subcommand queue; and not __fish_seen_subcommand_from list show flush hold release delete export help" -l control-socket -d 'The running mta\'s control socket [default: the site file\'s [mta] control_socket, else /run/posta/mta.sock]' -r -F
complete -c posta -n "__fish_posta_using_subcommand queue; and not __fish_seen_subcommand_from list show flush hold release delete export help" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand queue; and not __fish_seen_subcommand_from list show flush hold release delete export help" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand queue; and not __fish_seen_subcommand_from list show flush hold release delete export help" -l json -d 'Print results as JSON'
complete -c posta -n "__fish_posta_using_subcommand queue; and not __fish_seen_subcommand_from list show flush hold release delete export help" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand queue; and not __fish_seen_subcommand_from list show flush hold release delete export help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c posta -n "__fish_posta_using_subcommand queue; and not __fish_seen_subcommand_from list show flush hold release delete export help" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand queue; and not __fish_seen_subcommand_from list show flush hold release delete export help" -f -a "list" -d 'List queued messages: id, age, size, sender, recipients, next attempt, last error'
complete -c posta -n "__fish_posta_using_subcommand queue; and not __fish_seen_subcommand_from list show flush hold release delete export help" -f -a "show" -d 'Show one message\'s envelope, state and headers'
complete -c posta -n "__fish_posta_using_subcommand queue; and not __fish_seen_subcommand_from list show flush hold release delete export help" -f -a "flush" -d 'Ask the running mta to deliver now (all, or one domain)'
complete -c posta -n "__fish_posta_using_subcommand queue; and not __fish_seen_subcommand_from list show flush hold release delete export help" -f -a "hold" -d 'Stop delivery attempts for these messages (they also do not expire)'
complete -c posta -n "__fish_posta_using_subcommand queue; and not __fish_seen_subcommand_from list show flush hold release delete export help" -f -a "release" -d 'Put held messages back in the active queue'
complete -c posta -n "__fish_posta_using_subcommand queue; and not __fish_seen_subcommand_from list show flush hold release delete export help" -f -a "delete" -d 'Remove messages without delivering them or sending a DSN'
complete -c posta -n "__fish_posta_using_subcommand queue; and not __fish_seen_subcommand_from list show flush hold release delete export help" -f -a "export" -d 'Copy queued messages out for manual recovery, as an mbox file or a Maildir'
complete -c posta -n "__fish_posta_using_subcommand queue; and not __fish_seen_subcommand_from list show flush hold release delete export help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from list" -l queue -d 'The queue directory [default: the site file\'s [mta] queue]' -r -F
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from list" -l control-socket -d 'The running mta\'s control socket [default: the site file\'s [mta] control_socket, else /run/posta/mta.sock]' -r -F
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from list" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from list" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from list" -l json -d 'Print results as JSON'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from show" -l queue -d 'The queue directory [default: the site file\'s [mta] queue]' -r -F
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from show" -l control-socket -d 'The running mta\'s control socket [default: the site file\'s [mta] control_socket, else /run/posta/mta.sock]' -r -F
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from show" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from show" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from show" -l json -d 'Print results as JSON'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from show" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from flush" -l queue -d 'The queue directory [default: the site file\'s [mta] queue]' -r -F
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from flush" -l control-socket -d 'The running mta\'s control socket [default: the site file\'s [mta] control_socket, else /run/posta/mta.sock]' -r -F
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from flush" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from flush" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from flush" -l json -d 'Print results as JSON'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from flush" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from flush" -s h -l help -d 'Print help'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from flush" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from hold" -l queue -d 'The queue directory [default: the site file\'s [mta] queue]' -r -F
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from hold" -l control-socket -d 'The running mta\'s control socket [default: the site file\'s [mta] control_socket, else /run/posta/mta.sock]' -r -F
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from hold" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from hold" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from hold" -l json -d 'Print results as JSON'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from hold" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from hold" -s h -l help -d 'Print help'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from hold" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from release" -l queue -d 'The queue directory [default: the site file\'s [mta] queue]' -r -F
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from release" -l control-socket -d 'The running mta\'s control socket [default: the site file\'s [mta] control_socket, else /run/posta/mta.sock]' -r -F
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from release" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from release" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from release" -l json -d 'Print results as JSON'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from release" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from release" -s h -l help -d 'Print help'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from release" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from delete" -l queue -d 'The queue directory [default: the site file\'s [mta] queue]' -r -F
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from delete" -l control-socket -d 'The running mta\'s control socket [default: the site file\'s [mta] control_socket, else /run/posta/mta.sock]' -r -F
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from delete" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from delete" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from delete" -l json -d 'Print results as JSON'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from delete" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from export" -l format -d 'mbox or maildir' -r -f -a "mbox\t''
maildir\t''"
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from export" -l to -d 'The mbox file or Maildir directory to write (created)' -r -F
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from export" -l queue -d 'The queue directory [default: the site file\'s [mta] queue]' -r -F
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from export" -l control-socket -d 'The running mta\'s control socket [default: the site file\'s [mta] control_socket, else /run/posta/mta.sock]' -r -F
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from export" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from export" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from export" -l json -d 'Print results as JSON'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from export" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from export" -s h -l help -d 'Print help'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from export" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "list" -d 'List queued messages: id, age, size, sender, recipients, next attempt, last error'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show one message\'s envelope, state and headers'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "flush" -d 'Ask the running mta to deliver now (all, or one domain)'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "hold" -d 'Stop delivery attempts for these messages (they also do not expire)'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "release" -d 'Put held messages back in the active queue'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Remove messages without delivering them or sending a DSN'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "export" -d 'Copy queued messages out for manual recovery, as an mbox file or a Maildir'
complete -c posta -n "__fish_posta_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posta -n "__fish_posta_using_subcommand routes; and not __fish_seen_subcommand_from build check help" -l layout -d 'The layout file [default: /etc/posta/routes.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand routes; and not __fish_seen_subcommand_from build check help" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand routes; and not __fish_seen_subcommand_from build check help" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand routes; and not __fish_seen_subcommand_from build check help" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand routes; and not __fish_seen_subcommand_from build check help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c posta -n "__fish_posta_using_subcommand routes; and not __fish_seen_subcommand_from build check help" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand routes; and not __fish_seen_subcommand_from build check help" -f -a "build" -d 'Write the switch\'s and each office\'s tables from the offices\' lists: sendmail\'s virtusertable, local-host-names and mailertable, Postfix\'s virtual and transport maps and the main.cf lines that use them; says what changed and reloads the servers whose tables changed'
complete -c posta -n "__fish_posta_using_subcommand routes; and not __fish_seen_subcommand_from build check help" -f -a "check" -d 'Prove by evaluation that every user reaches exactly their office, office-local mail stays local, unknown users are refused and nothing loops'
complete -c posta -n "__fish_posta_using_subcommand routes; and not __fish_seen_subcommand_from build check help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posta -n "__fish_posta_using_subcommand routes; and __fish_seen_subcommand_from build" -l interval -d 'How often --watch looks at the files' -r
complete -c posta -n "__fish_posta_using_subcommand routes; and __fish_seen_subcommand_from build" -l layout -d 'The layout file [default: /etc/posta/routes.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand routes; and __fish_seen_subcommand_from build" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand routes; and __fish_seen_subcommand_from build" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand routes; and __fish_seen_subcommand_from build" -l dry-run -d 'Print what would change and write nothing'
complete -c posta -n "__fish_posta_using_subcommand routes; and __fish_seen_subcommand_from build" -l watch -d 'Keep running: rebuild whenever the layout, a list or the rename map changes'
complete -c posta -n "__fish_posta_using_subcommand routes; and __fish_seen_subcommand_from build" -l allow-removals -d 'Apply a build that takes many users away from an office (refused by default: a truncated list would otherwise refuse their mail)'
complete -c posta -n "__fish_posta_using_subcommand routes; and __fish_seen_subcommand_from build" -l no-reload -d 'Do not run the servers\' reload commands'
complete -c posta -n "__fish_posta_using_subcommand routes; and __fish_seen_subcommand_from build" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand routes; and __fish_seen_subcommand_from build" -s h -l help -d 'Print help'
complete -c posta -n "__fish_posta_using_subcommand routes; and __fish_seen_subcommand_from build" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand routes; and __fish_seen_subcommand_from check" -l tables -d 'Check these sendmail tables instead of the layout\'s output: one directory per server, named by its mail name, holding virtusertable and local-host-names' -r -F
complete -c posta -n "__fish_posta_using_subcommand routes; and __fish_seen_subcommand_from check" -l domain -d 'The shared domain (with --tables)' -r
complete -c posta -n "__fish_posta_using_subcommand routes; and __fish_seen_subcommand_from check" -l switch -d 'The switch\'s mail name, where the domain\'s MX points (with --tables)' -r
complete -c posta -n "__fish_posta_using_subcommand routes; and __fish_seen_subcommand_from check" -l trace -d 'Print the route of one address from every server' -r
complete -c posta -n "__fish_posta_using_subcommand routes; and __fish_seen_subcommand_from check" -l layout -d 'The layout file [default: /etc/posta/routes.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand routes; and __fish_seen_subcommand_from check" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand routes; and __fish_seen_subcommand_from check" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand routes; and __fish_seen_subcommand_from check" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand routes; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help'
complete -c posta -n "__fish_posta_using_subcommand routes; and __fish_seen_subcommand_from check" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand routes; and __fish_seen_subcommand_from help" -f -a "build" -d 'Write the switch\'s and each office\'s tables from the offices\' lists: sendmail\'s virtusertable, local-host-names and mailertable, Postfix\'s virtual and transport maps and the main.cf lines that use them; says what changed and reloads the servers whose tables changed'
complete -c posta -n "__fish_posta_using_subcommand routes; and __fish_seen_subcommand_from help" -f -a "check" -d 'Prove by evaluation that every user reaches exactly their office, office-local mail stays local, unknown users are refused and nothing loops'
complete -c posta -n "__fish_posta_using_subcommand routes; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posta -n "__fish_posta_using_subcommand dns; and not __fish_seen_subcommand_from plan verify help" -l layout -d 'The layout file [default: /etc/posta/routes.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand dns; and not __fish_seen_subcommand_from plan verify help" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand dns; and not __fish_seen_subcommand_from plan verify help" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand dns; and not __fish_seen_subcommand_from plan verify help" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand dns; and not __fish_seen_subcommand_from plan verify help" -s h -l help -d 'Print help'
complete -c posta -n "__fish_posta_using_subcommand dns; and not __fish_seen_subcommand_from plan verify help" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand dns; and not __fish_seen_subcommand_from plan verify help" -f -a "plan" -d 'Write the zone file for the layout: SOA and NS, the domain\'s MX records (the switch and any backups), the switch\'s address, each office\'s subdomain MX and its server\'s address'
complete -c posta -n "__fish_posta_using_subcommand dns; and not __fish_seen_subcommand_from plan verify help" -f -a "verify" -d 'Compare the live zone with the plan (AXFR when the server allows it, otherwise queries for each planned name) and list every difference; exit 1 when there is drift'
complete -c posta -n "__fish_posta_using_subcommand dns; and not __fish_seen_subcommand_from plan verify help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posta -n "__fish_posta_using_subcommand dns; and __fish_seen_subcommand_from plan" -l out -d 'Write here (atomically) instead of stdout' -r -F
complete -c posta -n "__fish_posta_using_subcommand dns; and __fish_seen_subcommand_from plan" -l serial -d 'The SOA serial [default: today\'s YYYYMMDD01]' -r
complete -c posta -n "__fish_posta_using_subcommand dns; and __fish_seen_subcommand_from plan" -l layout -d 'The layout file [default: /etc/posta/routes.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand dns; and __fish_seen_subcommand_from plan" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand dns; and __fish_seen_subcommand_from plan" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand dns; and __fish_seen_subcommand_from plan" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand dns; and __fish_seen_subcommand_from plan" -s h -l help -d 'Print help'
complete -c posta -n "__fish_posta_using_subcommand dns; and __fish_seen_subcommand_from plan" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand dns; and __fish_seen_subcommand_from verify" -l server -d 'The authoritative server to ask [default: [dns] server, else the first NS address]' -r
complete -c posta -n "__fish_posta_using_subcommand dns; and __fish_seen_subcommand_from verify" -l layout -d 'The layout file [default: /etc/posta/routes.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand dns; and __fish_seen_subcommand_from verify" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand dns; and __fish_seen_subcommand_from verify" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand dns; and __fish_seen_subcommand_from verify" -l json -d 'Print the result as JSON'
complete -c posta -n "__fish_posta_using_subcommand dns; and __fish_seen_subcommand_from verify" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand dns; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help'
complete -c posta -n "__fish_posta_using_subcommand dns; and __fish_seen_subcommand_from verify" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand dns; and __fish_seen_subcommand_from help" -f -a "plan" -d 'Write the zone file for the layout: SOA and NS, the domain\'s MX records (the switch and any backups), the switch\'s address, each office\'s subdomain MX and its server\'s address'
complete -c posta -n "__fish_posta_using_subcommand dns; and __fish_seen_subcommand_from help" -f -a "verify" -d 'Compare the live zone with the plan (AXFR when the server allows it, otherwise queries for each planned name) and list every difference; exit 1 when there is drift'
complete -c posta -n "__fish_posta_using_subcommand dns; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posta -n "__fish_posta_using_subcommand completions" -s c -l config -d 'Site file describing the mail servers [default: /etc/posta/site.toml]' -r -F
complete -c posta -n "__fish_posta_using_subcommand completions" -l log-format -d 'Format of diagnostics on stderr' -r -f -a "text\t''
json\t''"
complete -c posta -n "__fish_posta_using_subcommand completions" -s v -l verbose -d 'More diagnostics on stderr: -v debug, -vv wire traffic (passwords redacted)'
complete -c posta -n "__fish_posta_using_subcommand completions" -s h -l help -d 'Print help'
complete -c posta -n "__fish_posta_using_subcommand completions" -s V -l version -d 'Print version'
complete -c posta -n "__fish_posta_using_subcommand help; and not __fish_seen_subcommand_from check migrate mirror takeover failback notify status watch drill keepalived config mta queue routes dns completions help" -f -a "check" -d 'Probe mail servers: SMTP, submission, SMTPS, IMAP(S), POP3(S) and the domain\'s DNS'
complete -c posta -n "__fish_posta_using_subcommand help; and not __fish_seen_subcommand_from check migrate mirror takeover failback notify status watch drill keepalived config mta queue routes dns completions help" -f -a "migrate" -d 'Bring mail home from mailserver2 to mailserver1, losing nothing and duplicating nothing'
complete -c posta -n "__fish_posta_using_subcommand help; and not __fish_seen_subcommand_from check migrate mirror takeover failback notify status watch drill keepalived config mta queue routes dns completions help" -f -a "mirror" -d 'Keep a warm copy of every mailbox of mailserver1 on mailserver2'
complete -c posta -n "__fish_posta_using_subcommand help; and not __fish_seen_subcommand_from check migrate mirror takeover failback notify status watch drill keepalived config mta queue routes dns completions help" -f -a "takeover" -d 'Move mailserver1\'s address to this host (takeover) or give it back (failback)'
complete -c posta -n "__fish_posta_using_subcommand help; and not __fish_seen_subcommand_from check migrate mirror takeover failback notify status watch drill keepalived config mta queue routes dns completions help" -f -a "failback" -d 'Move mailserver1\'s address to this host (takeover) or give it back (failback)'
complete -c posta -n "__fish_posta_using_subcommand help; and not __fish_seen_subcommand_from check migrate mirror takeover failback notify status watch drill keepalived config mta queue routes dns completions help" -f -a "notify" -d 'Show the notice posta sends users after a takeover or a failback ([notify] in the site file)'
complete -c posta -n "__fish_posta_using_subcommand help; and not __fish_seen_subcommand_from check migrate mirror takeover failback notify status watch drill keepalived config mta queue routes dns completions help" -f -a "status" -d 'Show who holds mailserver1\'s address or record, and the recent takeovers and failbacks'
complete -c posta -n "__fish_posta_using_subcommand help; and not __fish_seen_subcommand_from check migrate mirror takeover failback notify status watch drill keepalived config mta queue routes dns completions help" -f -a "watch" -d 'Run the health-check daemon on mailserver2: probe mailserver1, decide, act'
complete -c posta -n "__fish_posta_using_subcommand help; and not __fish_seen_subcommand_from check migrate mirror takeover failback notify status watch drill keepalived config mta queue routes dns completions help" -f -a "drill" -d 'Rehearse the whole failover on this machine, with posta\'s own parts'
complete -c posta -n "__fish_posta_using_subcommand help; and not __fish_seen_subcommand_from check migrate mirror takeover failback notify status watch drill keepalived config mta queue routes dns completions help" -f -a "keepalived" -d 'posta under keepalived (VRRP): keepalived elects who holds the address, posta checks the primary for it and does the mail work around each change'
complete -c posta -n "__fish_posta_using_subcommand help; and not __fish_seen_subcommand_from check migrate mirror takeover failback notify status watch drill keepalived config mta queue routes dns completions help" -f -a "config" -d 'Work with the site file'
complete -c posta -n "__fish_posta_using_subcommand help; and not __fish_seen_subcommand_from check migrate mirror takeover failback notify status watch drill keepalived config mta queue routes dns completions help" -f -a "mta" -d 'Run the bundled mini-MTA: mailserver2\'s backup MX (MX 20) storing mail in Maildirs, or the friend\'s relay (MX 30) queueing and forwarding it'
complete -c posta -n "__fish_posta_using_subcommand help; and not __fish_seen_subcommand_from check migrate mirror takeover failback notify status watch drill keepalived config mta queue routes dns completions help" -f -a "queue" -d 'Administer the mta\'s queue: list, show, flush, hold, release, delete, export'
complete -c posta -n "__fish_posta_using_subcommand help; and not __fish_seen_subcommand_from check migrate mirror takeover failback notify status watch drill keepalived config mta queue routes dns completions help" -f -a "routes" -d 'One domain over regional servers (the seed\'s inkacoca): build every server\'s tables from the offices\' own user lists, and prove they route'
complete -c posta -n "__fish_posta_using_subcommand help; and not __fish_seen_subcommand_from check migrate mirror takeover failback notify status watch drill keepalived config mta queue routes dns completions help" -f -a "dns" -d 'The zone for a routes layout: plan it, and compare it with what the name server says'
complete -c posta -n "__fish_posta_using_subcommand help; and not __fish_seen_subcommand_from check migrate mirror takeover failback notify status watch drill keepalived config mta queue routes dns completions help" -f -a "completions" -d 'Print a shell completion script to stdout'
complete -c posta -n "__fish_posta_using_subcommand help; and not __fish_seen_subcommand_from check migrate mirror takeover failback notify status watch drill keepalived config mta queue routes dns completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posta -n "__fish_posta_using_subcommand help; and __fish_seen_subcommand_from takeover" -f -a "vip" -d 'Virtual IP: mailserver2 takes mailserver1\'s address as an alias'
complete -c posta -n "__fish_posta_using_subcommand help; and __fish_seen_subcommand_from takeover" -f -a "dns" -d 'DNS: mailserver1\'s A record is rewritten to mailserver2\'s address'
complete -c posta -n "__fish_posta_using_subcommand help; and __fish_seen_subcommand_from failback" -f -a "vip" -d 'Virtual IP: mailserver2 takes mailserver1\'s address as an alias'
complete -c posta -n "__fish_posta_using_subcommand help; and __fish_seen_subcommand_from failback" -f -a "dns" -d 'DNS: mailserver1\'s A record is rewritten to mailserver2\'s address'
complete -c posta -n "__fish_posta_using_subcommand help; and __fish_seen_subcommand_from keepalived" -f -a "config" -d 'Print a keepalived.conf for this host from the site file: a vrrp_script running `posta check --nagios primary` on mailserver1 (its fall covers the takeover grace), the VIP, and `posta keepalived fifo` reading keepalived\'s vrrp_notify_fifo'
complete -c posta -n "__fish_posta_using_subcommand help; and __fish_seen_subcommand_from keepalived" -f -a "fifo" -d 'keepalived\'s vrrp_notify_fifo_script: reads `INSTANCE "name" STATE priority` lines from the FIFO and handles them one at a time, in the order keepalived wrote them. On mailserver2 becoming MASTER: takeover hooks, recorded; leaving MASTER: failback hooks, recorded, then the mta queue flushed and `posta migrate` started (a takeover arriving while it runs is handled at once). Runs until keepalived ends it with SIGTERM'
complete -c posta -n "__fish_posta_using_subcommand help; and __fish_seen_subcommand_from keepalived" -f -a "notify" -d 'keepalived\'s plain notify script, for a keepalived.conf that does not use the FIFO: `notify "posta keepalived notify --role backup"`. keepalived starts one per transition without waiting; each queues its notification and they are handled one at a time in the order they reached posta, as `fifo` does. Prefer `fifo`: processes keepalived starts within a few milliseconds may reach posta in either order'
complete -c posta -n "__fish_posta_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "check" -d 'Validate the site file, reporting every problem with file:line:column (exit 2 if any, or if there is no site file), then check on this host every secret file it names (owner-only and readable; the error names the section that needs it) and, when this host has the [backup] address, that the [vip] interface exists'
complete -c posta -n "__fish_posta_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "show" -d 'Print the validated site as a site file with all defaults filled in, which reads back the same (secret files by path, never their contents)'
complete -c posta -n "__fish_posta_using_subcommand help; and __fish_seen_subcommand_from mta" -f -a "explain" -d 'Explain what sendmail\'s tables decide for one recipient, like `sendmail -bt`'
complete -c posta -n "__fish_posta_using_subcommand help; and __fish_seen_subcommand_from mta" -f -a "passwd" -d 'Print a POP3 users-file line for USER: the password is read from stdin (one line, never from the command line) and hashed with SHA512-CRYPT, as `doveadm pw` does'
complete -c posta -n "__fish_posta_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "list" -d 'List queued messages: id, age, size, sender, recipients, next attempt, last error'
complete -c posta -n "__fish_posta_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "show" -d 'Show one message\'s envelope, state and headers'
complete -c posta -n "__fish_posta_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "flush" -d 'Ask the running mta to deliver now (all, or one domain)'
complete -c posta -n "__fish_posta_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "hold" -d 'Stop delivery attempts for these messages (they also do not expire)'
complete -c posta -n "__fish_posta_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "release" -d 'Put held messages back in the active queue'
complete -c posta -n "__fish_posta_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "delete" -d 'Remove messages without delivering them or sending a DSN'
complete -c posta -n "__fish_posta_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "export" -d 'Copy queued messages out for manual recovery, as an mbox file or a Maildir'
complete -c posta -n "__fish_posta_using_subcommand help; and __fish_seen_subcommand_from routes" -f -a "build" -d 'Write the switch\'s and each office\'s tables from the offices\' lists: sendmail\'s virtusertable, local-host-names and mailertable, Postfix\'s virtual and transport maps and the main.cf lines that use them; says what changed and reloads the servers whose tables changed'
complete -c posta -n "__fish_posta_using_subcommand help; and __fish_seen_subcommand_from routes" -f -a "check" -d 'Prove by evaluation that every user reaches exactly their office, office-local mail stays local, unknown users are refused and nothing loops'
complete -c posta -n "__fish_posta_using_subcommand help; and __fish_seen_subcommand_from dns" -f -a "plan" -d 'Write the zone file for the layout: SOA and NS, the domain\'s MX records (the switch and any backups), the switch\'s address, each office\'s subdomain MX and its server\'s address'
complete -c posta -n "__fish_posta_using_subcommand help; and __fish_seen_subcommand_from dns" -f -a "verify" -d 'Compare the live zone with the plan (AXFR when the server allows it, otherwise queries for each planned name) and list every difference; exit 1 when there is drift'
