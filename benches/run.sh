#!/usr/bin/env bash
# Protocol-level benchmarks, side by side with the peers, in one run (issue 6).
#
#   bash benches/run.sh                  # everything: protocol cost, round trips, large bodies, write batching
#   bash benches/run.sh --quick          # fewer rounds and messages (a smoke test, ~5 minutes)
#   bash benches/run.sh --only protocol  # one section: protocol | rtt | large | batching
#
# Needs the loopback servers of .ci/servers/start.sh (smtp-sink on 127.0.0.1:2600, Postfix smtpd with PIPELINING +
# CHUNKING on 127.0.0.1:2526), Postfix's smtp-source, /usr/bin/time, python3, and strace for the batching section.
# The round-trip section also starts its own instant CHUNKING sink (benches/src/bin/chunking-sink.rs, port 2700).
# Every client is a separate process; client CPU (user + system) and peak RSS come from /usr/bin/time, wall time
# from the script's clock around the process. Rounds are interleaved (round 1 of every client, then round 2...);
# the summary gives medians with min-max and ratios to smtp-source. Raw results: target/bench-results/<date>/.
# Everything talks to 127.0.0.1 only; every loop is bounded; the delay proxy exits by itself after an hour.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
QUICK=0
ONLY=all
while (($#)); do
  case $1 in
    --quick) QUICK=1 ;;
    --only) ONLY=$2; shift ;;
    *) echo "usage: $0 [--quick] [--only protocol|rtt|large|batching]" >&2; exit 64 ;;
  esac
  shift
done

SINK=127.0.0.1:2600
PIPE=127.0.0.1:2526
SOURCE=$(command -v smtp-source || echo /usr/sbin/smtp-source)
[[ -x $SOURCE ]] || { echo "smtp-source not found (package postfix)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "/usr/bin/time not found (package time)" >&2; exit 1; }
for hp in $SINK $PIPE; do
  timeout 5 bash -c "exec 3<>/dev/tcp/${hp%:*}/${hp#*:}" 2>/dev/null \
    || { echo "no server on $hp: run bash .ci/servers/start.sh" >&2; exit 1; }
done

cargo build --release -p smtp-benches --bins >&2
LOAD=$CARGO_TARGET_DIR/release/smtp-load
PROXY=$CARGO_TARGET_DIR/release/delay-proxy
CSINK_BIN=$CARGO_TARGET_DIR/release/chunking-sink
CSINK=127.0.0.1:2700
OUT=$ROOT/target/bench-results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
RAW=$OUT/raw.tsv
echo -e "section\tscenario\tclient\tround\tmessages\tconnections\tbytes\tseconds\tcpu_s\trss_kb\trtt_ms" >"$RAW"
FROM=bench@example.test
TO=rcpt@sink.example.test
ROUNDS=$((QUICK ? 2 : 5))
RTT_ROUNDS=$((QUICK ? 1 : 3))

# run SECTION SCENARIO CLIENT ROUND MESSAGES CONNECTIONS BYTES RTT -- command...
run() {
  local section=$1 scenario=$2 client=$3 round=$4 messages=$5 connections=$6 bytes=$7 rtt=$8
  shift 9
  local tfile=$OUT/time.$$ start end
  start=$(date +%s%N)
  if ! /usr/bin/time -f "%U %S %M" -o "$tfile" "$@" >"$OUT/last.out" 2>"$OUT/last.err"; then
    # A client that fails is reported and left out of that round's figures; the run goes on.
    echo "FAILED: $section $scenario $client round $round: $*" | tee -a "$OUT/failures.log" >&2
    tee -a "$OUT/failures.log" <"$OUT/last.err" >&2
    return 0
  fi
  end=$(date +%s%N)
  read -r user sys rss <"$tfile"
  local seconds cpu
  seconds=$(python3 -c "print(($end - $start) / 1e9)")
  cpu=$(python3 -c "print($user + $sys)")
  echo -e "$section\t$scenario\t$client\t$round\t$messages\t$connections\t$bytes\t$seconds\t$cpu\t$rss\t$rtt" >>"$RAW"
  printf '  %-10s %-22s %-16s round %s: %6d msgs in %7.3f s, cpu %6.2f s, rss %6d KiB\n' \
    "$section" "$scenario" "$client" "$round" "$messages" "$seconds" "$cpu" "$rss" >&2
}

# client SECTION SCENARIO CLIENT ROUND SERVER MESSAGES CONNECTIONS SIZE NEWCONN STREAM RTT
client() {
  local section=$1 scenario=$2 client=$3 round=$4 server=$5 messages=$6 connections=$7 size=$8 newconn=$9
  local stream=${10} rtt=${11}
  if [[ $client == smtp-source ]]; then
    local flags=()
    ((newconn)) || flags+=(-d)
    # smtp-source's -l is the payload after its few header lines; close enough to SIZE for 2 KiB and above.
    run "$section" "$scenario" "$client" "$round" "$messages" "$connections" "$size" "$rtt" -- \
      "$SOURCE" "${flags[@]}" -s "$connections" -m "$messages" -l "$size" -f "$FROM" -t "$TO" "$server"
  else
    # ours-*-sepquit: the same client with QUIT sent after the verdict (not pipelined), for comparison.
    # ours-*-batch: the same client sending a connection's messages through one `send_batch` (the next envelope
    # pipelined behind the previous end of data).
    local base=${client%-sepquit}
    base=${base%-batch}
    local flags=(--client "$base" --server "$server" --messages "$messages"
      --connections "$connections" --size "$size")
    [[ $client == *-sepquit ]] && flags+=(--separate-quit)
    [[ $client == *-batch ]] && flags+=(--batch)
    ((newconn)) && flags+=(--new-connection)
    ((stream)) && flags+=(--stream)
    run "$section" "$scenario" "$client" "$round" "$messages" "$connections" "$size" "$rtt" -- "$LOAD" "${flags[@]}"
  fi
}

CLIENTS=(smtp-source ours-blocking ours-smol lettre-blocking lettre-tokio)

# Message counts per scenario: lettre needs a delayed ACK per message on loopback (~40 ms), so it sends fewer
# messages per run (the rate is what is compared).
count() { # SCENARIO CLIENT
  local fast slow
  case $1 in
    reuse) fast=10000 slow=150 ;;
    new-connection) fast=3000 slow=150 ;;
    concurrent-8) fast=20000 slow=800 ;;
  esac
  ((QUICK)) && fast=$((fast / 5)) slow=$((slow / 3))
  [[ $2 == lettre-* ]] && echo "$slow" || echo "$fast"
}

protocol() {
  echo "== protocol cost: 2 KiB messages to smtp-sink ($SINK), $ROUNDS rounds" >&2
  for round in $(seq 1 "$ROUNDS"); do
    for scenario in reuse new-connection concurrent-8; do
      local conns=1 newconn=0
      [[ $scenario == concurrent-8 ]] && conns=8
      [[ $scenario == new-connection ]] && newconn=1
      local clients=("${CLIENTS[@]}")
      ((newconn)) || clients+=(ours-blocking-batch ours-smol-batch)
      for c in "${clients[@]}"; do
        client protocol "$scenario" "$c" "$round" "$SINK" "$(count "$scenario" "$c")" "$conns" 2048 "$newconn" 0 0
      done
    done
  done
}

PROXY_PID=
PROXY0_PID=
stop_proxy() {
  [[ -n $PROXY_PID ]] && kill "$PROXY_PID" 2>/dev/null
  wait "$PROXY_PID" 2>/dev/null || true
  PROXY_PID=
}
CSINK_PID=
trap 'stop_proxy; [[ -n $PROXY0_PID ]] && kill "$PROXY0_PID" 2>/dev/null; [[ -n $CSINK_PID ]] && kill "$CSINK_PID" 2>/dev/null; true' EXIT

rtt() {
  echo "== round trips: through a proxy adding 5 ms each way, and through the same proxy adding nothing" >&2
  # PIPELINING only: smtp-sink. PIPELINING + CHUNKING: Postfix smtpd (which commits each message to its queue),
  # and the bench's own chunking-sink, which answers at once (Postfix's commit time varies with the pace, which
  # defeats the differential).
  "$CSINK_BIN" --listen "$CSINK" --max-seconds 3600 2>>"$OUT/chunking-sink.log" &
  CSINK_PID=$!
  sleep 0.3
  # Each load runs twice, through the proxy with 0 ms and with 5 ms each way, interleaved. The difference of the
  # times divided by the difference of the measured RTTs is the number of round trips a message waits for: server
  # and client processing time, the same in both runs, cancels out.
  for target in "pipelining $SINK 12600" "pipelining+chunking $PIPE 12526" "chunking-instant $CSINK 12700"; do
    read -r name upstream port <<<"$target"
    local rtt0 rtt5 p0=$((port + 10000))
    "$PROXY" --listen "127.0.0.1:$port" --upstream "$upstream" --delay-ms 5 --max-seconds 3600 2>>"$OUT/proxy.log" &
    PROXY_PID=$!
    "$PROXY" --listen "127.0.0.1:$p0" --upstream "$upstream" --delay-ms 0 --max-seconds 3600 2>>"$OUT/proxy.log" &
    PROXY0_PID=$!
    sleep 0.3
    rtt5=$("$LOAD" --rtt "127.0.0.1:$port" --samples 21 | sed 's/rtt_ms=//')
    rtt0=$("$LOAD" --rtt "127.0.0.1:$p0" --samples 21 | sed 's/rtt_ms=//')
    echo "  $name: measured RTT ${rtt5} ms through the 5 ms proxy, ${rtt0} ms through the 0 ms proxy" >&2
    for round in $(seq 1 "$RTT_ROUNDS"); do
      for scenario in reuse new-connection concurrent-8; do
        local conns=1 newconn=0 n=40
        [[ $scenario == concurrent-8 ]] && conns=8 n=160
        [[ $scenario == new-connection ]] && newconn=1 n=20
        ((QUICK)) && n=$((n / 2))
        local clients=("${CLIENTS[@]}")
        [[ $scenario == new-connection ]] && clients+=(ours-blocking-sepquit ours-smol-sepquit)
        [[ $scenario == new-connection ]] || clients+=(ours-blocking-batch ours-smol-batch)
        for c in "${clients[@]}"; do
          client "rtt-$name" "$scenario" "$c" "$round" "127.0.0.1:$port" "$n" "$conns" 2048 "$newconn" 0 "$rtt5"
          client "rtt0-$name" "$scenario" "$c" "$round" "127.0.0.1:$p0" "$n" "$conns" 2048 "$newconn" 0 "$rtt0"
        done
      done
    done
    stop_proxy
    kill "$PROXY0_PID" 2>/dev/null; wait "$PROXY0_PID" 2>/dev/null || true; PROXY0_PID=
  done
  kill "$CSINK_PID" 2>/dev/null; wait "$CSINK_PID" 2>/dev/null || true; CSINK_PID=
}

large() {
  echo "== large bodies to smtp-sink ($SINK)" >&2
  local mib10=$((10 * 1024 * 1024)) gib=$((1024 * 1024 * 1024))
  for round in $(seq 1 "$((QUICK ? 1 : 3))"); do
    for c in "${CLIENTS[@]}"; do
      client large 10MiB "$c" "$round" "$SINK" 5 1 "$mib10" 0 0 0
    done
    # ours streams the body (generated on the fly, never stored); a client that needs the message in memory
    # (lettre) would need 1 GiB of RSS, so only the streaming clients and smtp-source run this size.
    for c in smtp-source ours-blocking ours-smol; do
      client large 1GiB "$c" "$round" "$SINK" 1 1 "$gib" 0 $([[ $c == ours-* ]] && echo 1 || echo 0) 0
    done
  done
}

batching() {
  echo "== write batching: socket system calls per message (strace -f), 500 messages on one connection" >&2
  command -v strace >/dev/null || { echo "  strace not installed: apt-get install strace" >&2; return 0; }
  local n=500
  for target in "smtp-sink $SINK" "postfix-chunking $PIPE"; do
    read -r name server <<<"$target"
    for c in "${CLIENTS[@]}"; do
      local m=$n
      [[ $c == lettre-* ]] && m=100
      local cmd
      if [[ $c == smtp-source ]]; then
        cmd=("$SOURCE" -d -s 1 -m "$m" -l 2048 -f "$FROM" -t "$TO" "$server")
      else
        cmd=("$LOAD" --client "$c" --server "$server" --messages "$m")
      fi
      strace -f -o "$OUT/strace.$name.$c" -e trace=connect,write,writev,sendto,sendmsg,read,readv,recvfrom,recvmsg \
        "${cmd[@]}" >/dev/null 2>&1 || { echo "  FAILED: strace $c" >&2; continue; }
      python3 "$ROOT/benches/strace_count.py" "$OUT/strace.$name.$c" "$m" "$name" "$c" >>"$OUT/batching.tsv"
    done
  done
  echo "  (server, client, messages, socket writes, socket reads, empty reads (EAGAIN), writes/msg, reads/msg)" >&2
  cat "$OUT/batching.tsv" >&2
}

case $ONLY in
  all) protocol; rtt; large; batching ;;
  protocol) protocol ;;
  rtt) rtt ;;
  large) large ;;
  batching) batching ;;
  *) echo "unknown section $ONLY" >&2; exit 64 ;;
esac

python3 "$ROOT/benches/summarize.py" "$RAW" "$OUT/batching.tsv" | tee "$OUT/summary.md"
if [[ -s $OUT/failures.log ]]; then
  echo "### Failures (left out of the figures above)" | tee -a "$OUT/summary.md"
  sed 's/^/    /' "$OUT/failures.log" | tee -a "$OUT/summary.md"
fi
echo "raw results: $OUT" >&2
