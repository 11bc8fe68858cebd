#!/usr/bin/env bash
# perf-loadgen.sh — the load generator's own throughput: `meshbench load
# --rate max` against wrk (HTTP/1.1) and against h2load (h2c, prior
# knowledge), all driving the same nginx backend, interleaved in rounds
# (wrk, meshbench http1, h2load, meshbench h2c, then the next round with
# each pair's order swapped) within one run so that the machine's drift hits
# every tool alike.
#
# Usage:  bash scripts/perf-loadgen.sh        (or: make perf-loadgen)
#
# Environment (all optional):
#   ROUNDS=5          rounds; each round runs every tool once
#   DURATION=10s      duration of one run (with a unit: s, m or h)
#   WARMUP=3s         one unrecorded run per tool before round 1 (0: none)
#   CONNS=32          HTTP/1.1 connections: wrk -c, meshbench --connections
#   H2CONNS=4         h2c connections: h2load -c, meshbench --connections
#   STREAMS=32        h2c concurrent streams per connection: h2load -m,
#                     meshbench --streams
#   GEN_CPU=0         CPU for the load generator under test (wrk -t1, h2load
#                     -t1, meshbench GOMAXPROCS=1: one thread of work each)
#   BACKEND_CPU=1     CPU for the nginx backend (one worker)
#   PROTOCOLS="http1 h2c"  which comparisons to run
#   PORT_BASE=18180   first port tried: nginx's HTTP/1.1 and h2c listeners take
#                     two consecutive free ports from here up
#   MESHBENCH=path    meshbench binary to measure (default: `make build`, then
#                     bin/meshbench)
#   OUT_DIR=dir       where raw outputs go (default out/perf-loadgen/<timestamp>)
#   PROFILE=1         after the rounds (outside the measurement): count system
#                     calls and context switches per request of every tool with
#                     `perf stat`, and take a `perf record -g` CPU profile of
#                     meshbench load for each protocol (PROFILE_SECONDS=10);
#                     needs perf (Debian: linux-perf)
#   ENFORCE=1         exit 3 when meshbench misses the target below
#   KEEP_TMP=1        keep the temp dir (nginx prefix)
#   DISTURB_PCT=10    a round is "disturbed" when, in any of its runs, work
#                     other than ours (user+system time of other processes)
#                     took more than this share of either CPU; the verdict
#                     uses the quiet rounds when there are any
#
# Target: meshbench load --rate max requests/s >= 0.9x wrk's (HTTP/1.1) and
# >= 0.9x h2load's (h2c), same connections, same streams, one thread each.
#
# CPU pinning (2-core box): the load generator under test gets CPU $GEN_CPU to
# itself and nginx gets CPU $BACKEND_CPU. Every generator is held to one
# thread of work (wrk -t1, h2load -t1, meshbench GOMAXPROCS=1) and pinned to
# the same CPU, so they are treated identically. The script records each
# CPU's busy share during every run: when the backend CPU is saturated, the
# run measured nginx, not the generator, and the generator's CPU time per
# request (from its rusage, i.e. the user+sys of /proc/PID/stat at exit) is
# then the fairer comparison (see docs/performance.md).
#
# It needs wrk, h2load, nginx, curl, taskset and jq or python3 (Debian:
# apt-get install -y wrk nghttp2-client nginx-light curl) and installs nothing
# itself. Every process it starts is stopped by PID on every exit path.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
CONNS=${CONNS:-32}
H2CONNS=${H2CONNS:-4}
STREAMS=${STREAMS:-32}
GEN_CPU=${GEN_CPU:-0}
BACKEND_CPU=${BACKEND_CPU:-1}
PROTOCOLS=${PROTOCOLS:-http1 h2c}
PORT_BASE=${PORT_BASE:-18180}
PROFILE=${PROFILE:-0}
PROFILE_SECONDS=${PROFILE_SECONDS:-10}
ENFORCE=${ENFORCE:-0}
DISTURB_PCT=${DISTURB_PCT:-10}

RPS_TARGET=0.9

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TS=$(date -u +%Y%m%dT%H%M%SZ)
OUT_DIR=${OUT_DIR:-$ROOT/out/perf-loadgen/$TS}

PERF_NAME=perf-loadgen
# shellcheck source=lib/perf-common.sh source-path=SCRIPTDIR
source "$ROOT/scripts/lib/perf-common.sh"

# ---- prerequisites -------------------------------------------------------
missing=()
require_tools wrk:wrk h2load:nghttp2-client nginx:nginx-light curl:curl taskset:util-linux
if command -v jq >/dev/null 2>&1; then
	JSON=jq
elif command -v python3 >/dev/null 2>&1; then
	JSON=python3
else
	missing+=("jq or python3 (Debian package: jq)")
fi
if [[ $PROFILE == 1 ]] && ! command -v perf >/dev/null 2>&1; then
	missing+=("perf, for PROFILE=1 (Debian package: linux-perf)")
fi
report_missing "wrk nghttp2-client nginx-light curl jq"
check_rounds
[[ $DURATION =~ ^[1-9][0-9]*[smh]$ ]] || die "DURATION must look like 10s, got '$DURATION'"
[[ $WARMUP =~ ^(0|[1-9][0-9]*[smh])$ ]] || die "WARMUP must look like 3s or 0, got '$WARMUP'"
[[ $PROFILE_SECONDS =~ ^[1-9][0-9]*$ ]] || die "PROFILE_SECONDS must be a positive integer, got '$PROFILE_SECONDS'"
for v in CONNS H2CONNS STREAMS; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
for p in $PROTOCOLS; do
	[[ $p == http1 || $p == h2c ]] || die "PROTOCOLS: unknown protocol '$p' (http1, h2c)"
done
[[ -n ${PROTOCOLS// /} ]] || die "PROTOCOLS is empty"

init_pinning GEN_CPU BACKEND_CPU
pin_args() { # pin_args CPU -> "taskset -c CPU" words, or nothing without pinning
	if ((PIN)); then echo "taskset -c $1"; fi
}

find_free_ports 2 two
H1_PORT=$base
H2_PORT=$((base + 1))

# ---- cleanup ---------------------------------------------------------------
init_cleanup

# ---- meshbench binary ----------------------------------------------------------
if [[ -n ${MESHBENCH:-} ]]; then
	[[ -x $MESHBENCH ]] || die "MESHBENCH=$MESHBENCH is not executable"
else
	log "building bin/meshbench (make build)"
	make -s -C "$ROOT" build >"$OUT_DIR/build.log" 2>&1 || { cat "$OUT_DIR/build.log" >&2; die "make build failed"; }
	MESHBENCH=$ROOT/bin/meshbench
	[[ -x $MESHBENCH ]] || die "make build did not produce $MESHBENCH"
fi
cp "$MESHBENCH" "$OUT_DIR/meshbench" # the exact binary measured, for perf report
MESHBENCH=$OUT_DIR/meshbench         # and run that copy: a rebuild during the run changes nothing

# ---- nginx configuration -------------------------------------------------------
write_nginx_conf "# One listener speaks HTTP/1.1, the other HTTP/2 over cleartext with prior
# knowledge (h2c; nginx 1.22: \"listen ... http2\" without ssl)." \
	"# also bounds the requests of one HTTP/2 connection (nginx >= 1.19.7)" \
	"127.0.0.1:$H1_PORT reuseport" "127.0.0.1:$H2_PORT reuseport http2"
cp "$TMP/nginx/nginx.conf" "$OUT_DIR/nginx.conf"
check_nginx_conf

# ---- start the backend -----------------------------------------------------------
(on_cpu "$BACKEND_CPU" nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf") >"$OUT_DIR/nginx.log" 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")

wait_http() { # wait_http URL [curl options...]
	local url=$1 i
	shift
	for ((i = 0; i < 100; i++)); do
		kill -0 "$NGINX_PID" 2>/dev/null || die "nginx exited at start; see $OUT_DIR/nginx.log and $TMP/nginx/logs/error.log"
		if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$@" "$url" || true) == 200 ]]; then return 0; fi
		sleep 0.1
	done
	die "nginx not answering 200 on $url after 10s; see $OUT_DIR/nginx.log"
}
H1_URL="http://127.0.0.1:$H1_PORT/"
H2_URL="http://127.0.0.1:$H2_PORT/"
wait_http "$H1_URL"
wait_http "$H2_URL" --http2-prior-knowledge
body=$(curl -s --max-time 2 "$H1_URL")
[[ $body == "hello, world" ]] || die "HTTP/1.1 listener: unexpected body '$body'"
got=$(curl -s --max-time 2 --http2-prior-knowledge -o "$TMP/h2body" -w '%{http_version}' "$H2_URL")
[[ $got == 2 && $(cat "$TMP/h2body") == "hello, world" ]] ||
	die "h2c listener: expected HTTP/2 with prior knowledge and 'hello, world', got version '$got', body '$(cat "$TMP/h2body")'"
remember_nginx_workers "$NGINX_PID"

# ---- environment ------------------------------------------------------------------
{
	env_host
	echo "h2load: $(h2load --version 2>&1 | head -1)"
	env_tools_tail
	env_source meshbench "$MESHBENCH" cmd loadgen proxy internal go.mod
	if ((PIN)); then
		echo "pinning: load generator under test on CPU $GEN_CPU; nginx (one worker) on CPU $BACKEND_CPU"
	else
		echo "pinning: none"
	fi
	echo "http1: wrk -t1 -c$CONNS -d$DURATION vs GOMAXPROCS=1 meshbench load --protocol http1 --rate max --connections $CONNS --duration $DURATION"
	echo "h2c: h2load -t1 -c$H2CONNS -m$STREAMS -D $DURATION vs GOMAXPROCS=1 meshbench load --protocol h2c --rate max --connections $H2CONNS --streams $STREAMS --duration $DURATION"
	echo "rounds: $ROUNDS, warm-up $WARMUP per tool"
} >"$OUT_DIR/env.txt"

# ---- measurement ----------------------------------------------------------------
child_times() { # CHILD_U, CHILD_S = user, sys seconds of this shell's waited-for children
	# The generator is our direct child (taskset execs it): once reaped, its
	# whole rusage (all threads; what /proc/PID/stat says at exit) is here.
	times >"$TMP/times" # in this shell: a $(...) subshell has no such children
	read -r CHILD_U CHILD_S < <(awk 'NR==2{for(i=1;i<=2;i++){split($i,a,/[ms]/); t[i]=a[1]*60+a[2]} printf "%.3f %.3f\n", t[1], t[2]}' "$TMP/times")
}
json_get() { # json_get FILE FIELD (dotted path)
	if [[ $JSON == jq ]]; then
		jq -r ".$2" "$1"
	else
		python3 -c 'import json,sys
v=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): v=v[k]
print(v)' "$1" "$2"
	fi
}

# The four runs: TOOL -> protocol, command line (after the CPU pinning).
declare -A PROTO=([wrk]=http1 [meshbench-http1]=http1 [h2load]=h2c [meshbench-h2c]=h2c)
declare -A REF=([http1]=wrk [h2c]=h2load)
tool_cmd() { # tool_cmd TOOL DURATION OUTFILE -> sets CMD (array)
	case $1 in
	wrk) CMD=(wrk -t1 -c"$CONNS" -d"$2" "$H1_URL") ;;
	h2load) CMD=(h2load -t1 -c"$H2CONNS" -m"$STREAMS" -D "$2" "$H2_URL") ;;
	meshbench-http1) CMD=(env GOMAXPROCS=1 "$MESHBENCH" load --target "$H1_URL" --protocol http1 --rate max
		--connections "$CONNS" --duration "$2" --quiet --out "${3%.txt}.json") ;;
	meshbench-h2c) CMD=(env GOMAXPROCS=1 "$MESHBENCH" load --target "$H2_URL" --protocol h2c --rate max
		--connections "$H2CONNS" --streams "$STREAMS" --duration "$2" --quiet --out "${3%.txt}.json") ;;
	esac
}

GEN_PID=""
run_tool() { # run_tool TOOL DURATION OUTFILE [wrapper words...]: run pinned to GEN_CPU and wait
	local tool=$1 dur=$2 f=$3 rc=0
	shift 3
	tool_cmd "$tool" "$dur" "$f"
	printf '%q ' "${CMD[@]}" >"${f%.txt}.cmd"
	echo >>"${f%.txt}.cmd"
	# env execs the generator, taskset execs env: GEN_PID is the generator.
	(on_cpu "$GEN_CPU" "$@" "${CMD[@]}") >"$f" 2>&1 &
	GEN_PID=$!
	PIDS+=("$GEN_PID")
	wait "$GEN_PID" || rc=$?
	unset 'PIDS[${#PIDS[@]}-1]' # reaped: its PID may be reused
	GEN_PID=""
	((rc == 0)) || die "$tool failed (exit $rc); see $f"
}

parse_run() { # parse_run TOOL OUTFILE -> "rps requests errors"
	local tool=$1 f=$2 j
	case $tool in
	wrk)
		awk '/^Requests\/sec:/{r=$2} / requests in /{n=$1}
			/Socket errors:/{gsub(/,/,""); e+=$4+$6+$8+$10} /Non-2xx or 3xx responses:/{e+=$NF}
			END{if(r==""||n=="")exit 1; print r, n, e+0}' "$f"
		;;
	h2load)
		# requests: N total, N started, N done, N succeeded, N failed (errored and timed out included), ...
		awk '/^finished in /{r=$4} /^requests: /{gsub(/,/,""); n=$6; e=$10}
			END{if(r==""||n=="")exit 1; print r, n, e+0}' "$f"
		;;
	meshbench-*)
		j=${f%.txt}.json
		[[ -s $j ]] || return 1
		echo "$(json_get "$j" achieved_rate) $(json_get "$j" requests) $(json_get "$j" errors.total)"
		;;
	esac
}

TOOLS=()
for p in $PROTOCOLS; do
	TOOLS+=("${REF[$p]}" "meshbench-$p")
done

if [[ $WARMUP != 0 ]]; then
	for t in "${TOOLS[@]}"; do
		log "warm-up $t ($WARMUP)"
		run_tool "$t" "$WARMUP" "$OUT_DIR/warmup-$t.txt"
	done
fi

CLK_TCK=$(getconf CLK_TCK)
NGINX_PIDS=("$NGINX_PID" "${NGINX_WORKERS[@]}")
# results.tsv columns: busy = share of the CPU not idle (incl. irq/softirq);
# gen_proc_cpu = the generator process's share of one CPU; user_us, sys_us =
# its user and kernel CPU time per request (µs); nginx_us = nginx's CPU time
# per request (µs); foreign_* = user+system time on that CPU not spent by our
# processes (other work on the machine).
printf 'round\tprotocol\ttool\trps\trequests\terrors\tgen_cpu_busy\tbackend_cpu_busy\tgen_proc_cpu\tforeign_gen_cpu\tforeign_backend_cpu\tsteal\tuser_us\tsys_us\tnginx_us\n' >"$OUT_DIR/results.tsv"
for ((r = 1; r <= ROUNDS; r++)); do
	for p in $PROTOCOLS; do
		# Alternate which tool of a pair goes first, so neither always runs
		# just after the other protocol's pair.
		if ((r % 2)); then order=("${REF[$p]}" "meshbench-$p"); else order=("meshbench-$p" "${REF[$p]}"); fi
		for t in "${order[@]}"; do
			f="$OUT_DIR/round$r-$t.txt"
			log "round $r/$ROUNDS: $t"
			read -r gb0 gs0 gt0 < <(cpu_ticks "$GEN_CPU")
			read -r bb0 bs0 bt0 < <(cpu_ticks "$BACKEND_CPU")
			gu0=$(cpu_user_sys "$GEN_CPU") bu0=$(cpu_user_sys "$BACKEND_CPU")
			ng0=$(proc_ticks "${NGINX_PIDS[@]}")
			child_times
			cu0=$CHILD_U cs0=$CHILD_S
			run_tool "$t" "$DURATION" "$f"
			child_times
			cu1=$CHILD_U cs1=$CHILD_S
			read -r gb1 gs1 gt1 < <(cpu_ticks "$GEN_CPU")
			read -r bb1 bs1 bt1 < <(cpu_ticks "$BACKEND_CPU")
			gu1=$(cpu_user_sys "$GEN_CPU") bu1=$(cpu_user_sys "$BACKEND_CPU")
			ng1=$(proc_ticks "${NGINX_PIDS[@]}")
			read -r rps nreq errs < <(parse_run "$t" "$f") || die "could not parse the output of $t: $f"
			[[ -n ${nreq:-} && $nreq != 0 ]] || die "$t completed no requests; see $f"
			# Generator CPU in jiffies, to compare with the per-CPU counters.
			gen_j=$(awk -v a="$cu0" -v b="$cu1" -v c="$cs0" -v d="$cs1" -v hz="$CLK_TCK" 'BEGIN{printf "%.0f", (b-a+d-c)*hz}')
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$p" "$t" "$rps" "$nreq" "$errs" \
				"$(pct $((gb1 - gb0)) $((gt1 - gt0)))" "$(pct $((bb1 - bb0)) $((bt1 - bt0)))" \
				"$(pct "$gen_j" $((gt1 - gt0)))" \
				"$(pct $((gu1 - gu0 - gen_j)) $((gt1 - gt0)))" \
				"$(pct $((bu1 - bu0 - (ng1 - ng0))) $((bt1 - bt0)))" \
				"$(pct $((gs1 - gs0 + bs1 - bs0)) $((gt1 - gt0 + bt1 - bt0)))" \
				"$(awk -v a="$cu0" -v b="$cu1" -v n="$nreq" 'BEGIN{printf "%.2f", (b-a)*1e6/n}')" \
				"$(awk -v a="$cs0" -v b="$cs1" -v n="$nreq" 'BEGIN{printf "%.2f", (b-a)*1e6/n}')" \
				"$(awk -v d=$((ng1 - ng0)) -v n="$nreq" -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", d/hz*1e6/n}')" \
				>>"$OUT_DIR/results.tsv"
		done
	done
done

# ---- optional profile (outside the measurement) --------------------------------
if [[ $PROFILE == 1 ]]; then
	# perf runs pinned with the generator (perf stat only counts in the
	# kernel; perf record samples at 499 Hz, which costs the generator little).
	printf 'tool\trequests\tsyscalls_per_req\tctx_switches_per_req\tcpu_us_per_req\n' >"$OUT_DIR/profile-syscalls.tsv"
	for t in "${TOOLS[@]}"; do
		log "profile: system calls and context switches of $t (${PROFILE_SECONDS}s)"
		f="$OUT_DIR/profile-stat-$t.txt"
		run_tool "$t" "${PROFILE_SECONDS}s" "$f" perf stat -x, -o "$OUT_DIR/profile-stat-$t.csv" \
			-e raw_syscalls:sys_enter,context-switches,task-clock --
		if read -r _ nreq _ < <(parse_run "$t" "$f") && [[ -s $OUT_DIR/profile-stat-$t.csv ]]; then
			awk -F, -v t="$t" -v n="$nreq" '$3=="raw_syscalls:sys_enter"{s=$1} $3=="context-switches"{c=$1} $3=="task-clock"{k=$1}
				END{printf "%s\t%s\t%.2f\t%.3f\t%.2f\n", t, n, s/n, c/n, k*1000/n}' "$OUT_DIR/profile-stat-$t.csv" >>"$OUT_DIR/profile-syscalls.tsv"
		fi
	done
	for p in $PROTOCOLS; do
		t=meshbench-$p
		log "profile: perf record -g of $t (${PROFILE_SECONDS}s)"
		run_tool "$t" "${PROFILE_SECONDS}s" "$OUT_DIR/profile-record-$t.txt" \
			perf record -q -F 499 -g -o "$OUT_DIR/perf-$t.data" --
		perf report -i "$OUT_DIR/perf-$t.data" --stdio --no-children --sort symbol --percent-limit 0.7 -g none \
			>"$OUT_DIR/perf-top-flat-$t.txt" 2>/dev/null || log "perf report failed for $t"
		perf report -i "$OUT_DIR/perf-$t.data" --stdio --children --sort symbol --percent-limit 2 -g none \
			>"$OUT_DIR/perf-top-cum-$t.txt" 2>/dev/null || true
	done
fi

# ---- report --------------------------------------------------------------------------
quiet_rounds
col() { # col TOOL COLUMN [ROUNDS] -> values over all rounds, or over the listed ones
	awk -F'\t' -v t="$1" -v c="$2" -v only="${3:-}" 'BEGIN{n=split(only,a," "); for(i=1;i<=n;i++)ok[a[i]]=1}
		NR>1 && $3==t && (n==0 || ($1 in ok)){print $c}' "$OUT_DIR/results.tsv"
}
cpu_col() { col "$1" 13 "${2:-}" | paste - <(col "$1" 14 "${2:-}") | awk '{print $1+$2}'; }
ratios() { # ratios PROTOCOL [ROUNDS] -> "rps_ratio rps_round cpu_ratio": meshbench ÷ reference
	local m=meshbench-$1 ref=${REF[$1]} rm rr rs cm cr
	rm=$(col "$m" 4 "${2:-}" | median) rr=$(col "$ref" 4 "${2:-}" | median)
	rs=$(paste <(col "$m" 4 "${2:-}") <(col "$ref" 4 "${2:-}") | awk '{print $1/$2}' | median)
	cm=$(cpu_col "$m" "${2:-}" | median) cr=$(cpu_col "$ref" "${2:-}" | median)
	awk -v a="$rm" -v b="$rr" -v c="$rs" -v d="$cm" -v e="$cr" 'BEGIN{printf "%.3f %.3f %.3f\n", a/b, c, d/e}'
}
verdict() { awk -v x="$1" -v t="$RPS_TARGET" 'BEGIN{print (x>=t)?"met":"MISSED"}'; }
if ((NQUIET > 0)); then
	basis="quiet rounds ($NQUIET of $ROUNDS)"
	else
	basis="all rounds (none was quiet: rerun on a quieter machine)"
fi
ALL_MET=1
declare -A RATIOS_ALL RATIOS_QUIET VERDICT
for p in $PROTOCOLS; do
	RATIOS_ALL[$p]=$(ratios "$p")
	if ((NQUIET > 0 && NQUIET < ROUNDS)); then
		RATIOS_QUIET[$p]=$(ratios "$p" "$QUIET")
		VERDICT[$p]=$(verdict "${RATIOS_QUIET[$p]%% *}")
	else
		VERDICT[$p]=$(verdict "${RATIOS_ALL[$p]%% *}")
	fi
	[[ ${VERDICT[$p]} == met ]] || ALL_MET=0
done
{
	echo "## Load generator: meshbench load vs wrk and h2load"
	echo
	sed 's/^/    /' "$OUT_DIR/env.txt"
	echo
	echo "All $ROUNDS rounds (medians over rounds):"
	echo
	echo "| protocol | tool | req/s | req/s min–max | errors | gen CPU$GEN_CPU busy | backend CPU$BACKEND_CPU busy | generator process CPU | generator CPU µs/req user + sys | nginx CPU µs/req | foreign CPU (gen/backend) |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for t in "${TOOLS[@]}"; do
		spread=$(col "$t" 4 | min_max)
		errs=$(col "$t" 6 | awk '{n+=$1} END{print n+0}')
		printf '| %s | %s | %.0f | %s | %s | %s%% | %s%% | %s%% | %s + %s = %.2f | %s | %s%% / %s%% |\n' \
			"${PROTO[$t]}" "$t" "$(col "$t" 4 | median)" "$spread" "$errs" \
			"$(col "$t" 7 | median)" "$(col "$t" 8 | median)" "$(col "$t" 9 | median)" \
			"$(col "$t" 13 | median)" "$(col "$t" 14 | median)" "$(cpu_col "$t" | median)" "$(col "$t" 15 | median)" \
			"$(col "$t" 10 | median)" "$(col "$t" 11 | median)"
	done
	echo
	if ((NQUIET > 0 && NQUIET < ROUNDS)); then
		echo "Quiet rounds only (${QUIET% }: foreign CPU ≤ $DISTURB_PCT% on both CPUs in every run):"
		echo
		echo "| protocol | tool | req/s | req/s min–max | generator CPU µs/req |"
		echo "|---|---|---:|---:|---:|"
		for t in "${TOOLS[@]}"; do
			spread=$(col "$t" 4 "$QUIET" | min_max)
			printf '| %s | %s | %.0f | %s | %.2f |\n' "${PROTO[$t]}" "$t" "$(col "$t" 4 "$QUIET" | median)" "$spread" "$(cpu_col "$t" "$QUIET" | median)"
		done
		echo
	fi
	echo "| ratio | rounds | req/s: ratio of medians | req/s: median of per-round ratios | target | verdict | generator CPU µs/req: ratio of medians |"
	echo "|---|---|---:|---:|---:|---|---:|"
	for p in $PROTOCOLS; do
		read -r a_rps a_rr a_cpu <<<"${RATIOS_ALL[$p]}"
		v=${VERDICT[$p]}
		if ((NQUIET > 0 && NQUIET < ROUNDS)); then
			read -r q_rps q_rr q_cpu <<<"${RATIOS_QUIET[$p]}"
			printf '| meshbench / %s (%s) | quiet (%s) | %s | %s | ≥ %s | %s | %s |\n' "${REF[$p]}" "$p" "$NQUIET" "$q_rps" "$q_rr" "$RPS_TARGET" "$v" "$q_cpu"
			printf '| meshbench / %s (%s) | all (%s) | %s | %s | | | %s |\n' "${REF[$p]}" "$p" "$ROUNDS" "$a_rps" "$a_rr" "$a_cpu"
		else
			printf '| meshbench / %s (%s) | all (%s) | %s | %s | ≥ %s | %s | %s |\n' "${REF[$p]}" "$p" "$ROUNDS" "$a_rps" "$a_rr" "$RPS_TARGET" "$v" "$a_cpu"
		fi
	done
	echo
	echo "Verdict basis: $basis. A generator CPU µs/req ratio above 1 means meshbench spends that many"
	echo "times the reference tool's CPU per request; when the backend CPU is saturated in the reference"
	echo "tool's runs, its req/s is nginx's capacity and the CPU ratio is the generator-to-generator comparison."
	if [[ $PROFILE == 1 && -s $OUT_DIR/profile-syscalls.tsv ]]; then
		echo
		echo "Per request, from one extra ${PROFILE_SECONDS}s run of each tool under \`perf stat\` (not part of the rounds):"
		echo
		echo "| tool | system calls / req | context switches / req | task-clock µs / req |"
		echo "|---|---:|---:|---:|"
		awk -F'\t' 'NR>1{printf "| %s | %s | %s | %s |\n", $1, $3, $4, $5}' "$OUT_DIR/profile-syscalls.tsv"
		echo
		echo "CPU profiles of meshbench: perf-top-flat-*.txt, perf-top-cum-*.txt (perf report -i perf-*.data)."
	fi
	echo
	echo "Raw outputs and results.tsv: $OUT_DIR"
	echo "Only ratios within one interleaved run are meaningful: the machine is shared and noisy."
} | tee "$OUT_DIR/results.md"

if [[ $ENFORCE == 1 && $ALL_MET == 0 ]]; then
	exit 3
fi
