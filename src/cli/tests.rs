use super::*;
use clap::CommandFactory;

#[test]
fn definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn json_and_nagios_conflict() {
    let r = Cli::try_parse_from(["posta", "check", "--json", "--nagios"]);
    assert!(r.is_err());
}
