#!/usr/bin/env bash
# Fails when a module of src/ imports (`crate::MODULE`) from a layer above its own, so the shape
# of the source tree cannot drift back into cycles (README, Architecture). The layers, bottom up:
#
#   0  durable secret service dns clock shutdown retry
#                               plain helpers and types every layer may use (the one retry
#                               policy among them), DNS names and the one wire exchange with a
#                               DNS server
#   1  config                   the site file
#   2  proto                    sans-I/O wire formats
#   3  client                   the async drivers that own sockets
#   4  health notify            probes and verdicts; notices telling users of an event
#   5  takeover migrate mirror mta routes   the jobs
#   6  watch drill zone         what decides, rehearses, and checks a routes zone
#   7  cli                      the arguments (clap definitions)
#   8  cmd docs                 the edge: subcommands, generated man pages
#
# A module may use any lower layer, and its own layer only where SIDEWAYS allows it. Unit-test
# files (tests.rs, tests/) are exempt: a test may compare one module's defaults with another's.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A layer=(
  [durable]=0 [secret]=0 [service]=0 [dns]=0 [clock]=0 [shutdown]=0 [retry]=0
  [config]=1
  [proto]=2
  [client]=3
  [health]=4 [notify]=4
  [takeover]=5 [migrate]=5 [mirror]=5 [mta]=5 [routes]=5
  [watch]=6 [drill]=6 [zone]=6
  [cli]=7
  [cmd]=8 [docs]=8
)
# Same-layer imports that are allowed, as "from>to": migrate reads what the mta stored (its
# Maildirs, users and recipients files); routes checks its tables with the mta's own evaluator;
# the DNS exchange resends with the one retry policy; the mirror maps folder names as migrate
# does.
SIDEWAYS=" migrate>mta routes>mta dns>retry mirror>migrate "

status=0
while IFS= read -r file; do
  case "$file" in
    */tests.rs | */tests/*) continue ;;
  esac
  rel=${file#src/}
  from=${rel%%/*}
  from=${from%.rs}
  [ -n "${layer[$from]+x}" ] || continue
  while IFS=: read -r line to; do
    to=${to#crate::}
    [ "$to" != "$from" ] || continue
    [ -n "${layer[$to]+x}" ] || continue
    if [ "${layer[$to]}" -gt "${layer[$from]}" ] ||
      { [ "${layer[$to]}" -eq "${layer[$from]}" ] && [[ $SIDEWAYS != *" $from>$to "* ]]; }; then
      echo "$file:$line: $from (layer ${layer[$from]}) imports crate::$to (layer ${layer[$to]})" >&2
      status=1
    fi
  done < <(grep -on 'crate::[a-z_]*' "$file" | sort -u)
done < <(find src -name '*.rs' | sort)
if [ "$status" -ne 0 ]; then
  echo "check-layers: a module imports from a layer above its own (see the table in $0)" >&2
else
  echo "check-layers: every import goes down the layers"
fi
exit "$status"
