#!/usr/bin/env bash
# perf-http1.sh — HTTP/1.1 keep-alive throughput and latency: wrk -> direct
# nginx, wrk -> haproxy -> nginx and wrk -> meshproxy -> nginx, interleaved
# in rounds (direct, haproxy, meshproxy, direct, ...) within one run so that
# the machine's drift hits every target alike.
#
# Usage:  bash scripts/perf-http1.sh          (or: make perf-http1)
#
# Environment (all optional):
#   ROUNDS=5          rounds; each round runs every target once
#   DURATION=10s      wrk duration of one run
#   WARMUP=3s         one unrecorded wrk run per target before round 1
#   CONNS=32          wrk connections (-c)
#   THREADS=1         wrk threads (-t)
#   PROXY_CPU=0       CPU for haproxy and meshproxy (one core each run)
#   LOAD_CPU=1        CPU for wrk and the nginx backend
#   PORT_BASE=18080   first port tried: nginx, haproxy, meshproxy, meshproxy admin
#                     take four consecutive free ports from here up
#   MESHPROXY=path    meshproxy binary to use (default: go build into the temp dir,
#                     or bin/meshproxy when go is not available)
#   OUT_DIR=dir       where raw outputs go (default out/perf-http1/<timestamp>)
#   PROFILE=1         after the rounds, take a CPU profile of meshproxy under the
#                     same load (PROFILE_SECONDS=10) and save pprof -top output
#   ENFORCE=1         exit 3 when meshproxy misses the targets below
#   KEEP_TMP=1        keep the temp dir (runtime configs, nginx prefix)
#   DISTURB_PCT=10    a round is "disturbed" when, in any of its runs, work
#                     other than ours (user+system time of other processes)
#                     took more than this share of either CPU; the verdict
#                     uses the quiet rounds when there are any
#
# Targets (docs/performance.md): at CONNS > 1 (32 keep-alive connections by
# default) meshproxy's requests/s >= 0.85x haproxy's and its CPU per
# request <= 1.25x haproxy's; at CONNS=1 its p50 <= 1.1x haproxy's.
#
# CPU pinning (2-core box): the proxy under test gets CPU $PROXY_CPU to
# itself; wrk and nginx share CPU $LOAD_CPU. Both proxies are single-threaded
# by configuration (haproxy nbthread 1, meshproxy GOMAXPROCS=1) and pinned to
# the same CPU, so they are treated identically. Direct runs use only
# $LOAD_CPU. The script records each CPU's busy share during every run: if
# the load CPU is saturated while the proxy CPU is not, the run measured the
# load side, not the proxy (see docs/performance.md).
#
# It needs wrk, haproxy, nginx and curl (Debian: apt-get install -y wrk
# haproxy nginx-light curl) and installs nothing itself. Every process it
# starts is stopped by PID on every exit path.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT_BASE=${PORT_BASE:-18080}
PROFILE=${PROFILE:-0}
PROFILE_SECONDS=${PROFILE_SECONDS:-10}
ENFORCE=${ENFORCE:-0}
DISTURB_PCT=${DISTURB_PCT:-10}

RPS_TARGET=0.85
CPU_TARGET=1.25
P50_TARGET=1.1

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TS=$(date -u +%Y%m%dT%H%M%SZ)
OUT_DIR=${OUT_DIR:-$ROOT/out/perf-http1/$TS}

PERF_NAME=perf-http1
# shellcheck source=lib/perf-common.sh source-path=SCRIPTDIR
source "$ROOT/scripts/lib/perf-common.sh"

# ---- prerequisites -------------------------------------------------------
missing=()
require_tools wrk:wrk haproxy:haproxy nginx:nginx-light curl:curl taskset:util-linux
report_missing "wrk haproxy nginx-light curl"
check_rounds
[[ $DURATION =~ ^[1-9][0-9]*[smh]?$ ]] || die "DURATION must look like 10s, got '$DURATION'"
[[ $WARMUP =~ ^[0-9]+[smh]?$ ]] || die "WARMUP must look like 3s or 0, got '$WARMUP'"

init_pinning PROXY_CPU LOAD_CPU

find_free_ports 4 four
NGINX_PORT=$base
HAPROXY_PORT=$((base + 1))
MESH_PORT=$((base + 2))
ADMIN_PORT=$((base + 3))

# ---- cleanup ---------------------------------------------------------------
init_cleanup

# ---- meshproxy binary --------------------------------------------------------
if [[ -n ${MESHPROXY:-} ]]; then
	[[ -x $MESHPROXY ]] || die "MESHPROXY=$MESHPROXY is not executable"
elif command -v go >/dev/null 2>&1; then
	log "building meshproxy"
	(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -o "$TMP/meshproxy" ./cmd/meshproxy) || die "go build failed"
	MESHPROXY=$TMP/meshproxy
elif [[ -x $ROOT/bin/meshproxy ]]; then
	MESHPROXY=$ROOT/bin/meshproxy
else
	die "no meshproxy binary: run 'make build' or set MESHPROXY"
fi
cp "$MESHPROXY" "$OUT_DIR/meshproxy" # the exact binary measured, for pprof

# ---- configurations ----------------------------------------------------------
write_nginx_conf "" "" "127.0.0.1:$NGINX_PORT reuseport"

# haproxy does the same per-request header work as meshproxy: X-Forwarded-For,
# X-Forwarded-Proto and a generated X-Request-Id (UUID v4).
cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
    log stderr format short local0 emerg
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 120s
frontend outbound
    bind 127.0.0.1:$HAPROXY_PORT
    option forwardfor
    unique-id-format %[uuid()]
    unique-id-header X-Request-Id
    http-request set-header X-Forwarded-Proto http if !{ req.hdr(X-Forwarded-Proto) -m found }
    default_backend backend
backend backend
    http-reuse always
    server nginx 127.0.0.1:$NGINX_PORT
EOF

cat >"$TMP/meshproxy.yaml" <<EOF
admin: 127.0.0.1:$ADMIN_PORT
admin_debug: $([ "${PROFILE:-0}" = 1 ] && echo true || echo false)
drain_timeout: 2s
listeners:
- name: outbound
  address: 127.0.0.1:$MESH_PORT
  protocol: auto
  routes:
  - match: {}
    cluster: backend
clusters:
- name: backend
  protocol: http1
  endpoints: [127.0.0.1:$NGINX_PORT]
  pool: {max_idle_per_endpoint: 256}
EOF
cp "$TMP/nginx/nginx.conf" "$OUT_DIR/nginx.conf"
cp "$TMP/haproxy.cfg" "$OUT_DIR/haproxy.cfg"
cp "$TMP/meshproxy.yaml" "$OUT_DIR/meshproxy.yaml"

haproxy -c -q -f "$TMP/haproxy.cfg" || die "haproxy rejected its configuration"
check_nginx_conf
"$MESHPROXY" --validate --config "$TMP/meshproxy.yaml" >/dev/null || die "meshproxy rejected its configuration"

# ---- start the servers ---------------------------------------------------------
(on_cpu "$LOAD_CPU" nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf") >"$OUT_DIR/nginx.log" 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
(on_cpu "$PROXY_CPU" haproxy -db -f "$TMP/haproxy.cfg") >"$OUT_DIR/haproxy.log" 2>&1 &
HAPROXY_PID=$!
PIDS+=("$HAPROXY_PID")
(export GOMAXPROCS=1; on_cpu "$PROXY_CPU" "$MESHPROXY" --config "$TMP/meshproxy.yaml" --log-level warn) >"$OUT_DIR/meshproxy.log" 2>&1 &
MESH_PID=$!
PIDS+=("$MESH_PID")

wait_http() { # wait_http NAME PID URL
	local i
	for ((i = 0; i < 100; i++)); do
		kill -0 "$2" 2>/dev/null || die "$1 exited at start; see $OUT_DIR/$1.log"
		if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$3" || true) == 200 ]]; then return 0; fi
		sleep 0.1
	done
	die "$1 not answering 200 on $3 after 10s; see $OUT_DIR/$1.log"
}
wait_http nginx "$NGINX_PID" "http://127.0.0.1:$NGINX_PORT/"
wait_http haproxy "$HAPROXY_PID" "http://127.0.0.1:$HAPROXY_PORT/"
wait_http meshproxy "$MESH_PID" "http://127.0.0.1:$ADMIN_PORT/ready"
wait_http meshproxy "$MESH_PID" "http://127.0.0.1:$MESH_PORT/"
for t in direct:$NGINX_PORT haproxy:$HAPROXY_PORT meshproxy:$MESH_PORT; do
	body=$(curl -s --max-time 2 "http://127.0.0.1:${t#*:}/")
	[[ $body == "hello, world" ]] || die "${t%%:*}: unexpected body '$body'"
done
remember_nginx_workers "$NGINX_PID"

# ---- environment ------------------------------------------------------------------
{
	env_host
	echo "haproxy: $(haproxy -v 2>&1 | head -1 | awk '{print $3}')"
	env_tools_tail
	env_source meshproxy "$MESHPROXY" cmd proxy internal go.mod
	if ((PIN)); then
		echo "pinning: haproxy, meshproxy on CPU $PROXY_CPU; wrk, nginx on CPU $LOAD_CPU"
	else
		echo "pinning: none"
	fi
	echo "load: wrk -t$THREADS -c$CONNS -d$DURATION --latency, $ROUNDS rounds, warm-up $WARMUP per target"
	echo "proxies: haproxy nbthread 1, http-reuse always; meshproxy GOMAXPROCS=1, max_idle_per_endpoint 256"
} >"$OUT_DIR/env.txt"

# ---- measurement ----------------------------------------------------------------
TARGETS=(direct haproxy meshproxy)
declare -A URL=(
	[direct]="http://127.0.0.1:$NGINX_PORT/"
	[haproxy]="http://127.0.0.1:$HAPROXY_PORT/"
	[meshproxy]="http://127.0.0.1:$MESH_PORT/"
)
declare -A SPID=([direct]="" [haproxy]=$HAPROXY_PID [meshproxy]=$MESH_PID)

child_ticks() { # CHILD= user+sys of this shell's waited-for children (wrk), in jiffies
	times >"$TMP/times" # in this shell: a $(...) subshell has no such children
	CHILD=$(awk -v hz="$CLK_TCK" 'NR==2{t=0; for(i=1;i<=2;i++){split($i,a,/[ms]/); t+=a[1]*60+a[2]} printf "%.0f", t*hz}' "$TMP/times")
}
to_us() { # 123.4us | 1.2ms | 2.0s -> microseconds
	awk -v v="$1" 'BEGIN{n=v+0; if(v~/us$/)m=1; else if(v~/ms$/)m=1000; else if(v~/s$/)m=1e6; else m=1; printf "%.1f", n*m}'
}

WRK_PID=""
run_wrk() { # run_wrk TARGET DURATION OUTFILE
	(on_cpu "$LOAD_CPU" wrk -t"$THREADS" -c"$CONNS" -d"$2" --latency "${URL[$1]}") >"$3" 2>&1 &
	WRK_PID=$!
	PIDS+=("$WRK_PID")
	local rc=0
	wait "$WRK_PID" || rc=$?
	unset 'PIDS[${#PIDS[@]}-1]' # reaped: its PID may be reused
	WRK_PID=""
	((rc == 0)) || die "wrk against $1 failed (exit $rc); see $3"
}

if [[ $WARMUP != 0 && $WARMUP != 0s ]]; then
	for t in "${TARGETS[@]}"; do
		log "warm-up $t ($WARMUP)"
		run_wrk "$t" "$WARMUP" "$OUT_DIR/warmup-$t.txt"
	done
fi

CLK_TCK=$(getconf CLK_TCK)
NGINX_PIDS=("$NGINX_PID" "${NGINX_WORKERS[@]}")
# results.tsv columns: busy = share of the CPU not idle (incl. irq/softirq);
# proc_cpu = the proxy process's share of one CPU; user_us, sys_us = its
# user and kernel CPU time per request (µs); foreign_* = user+system
# time on that CPU not spent by our processes (other work on the machine).
printf 'round\ttarget\trps\tp50_us\tp99_us\terrors\tproxy_cpu_busy\tload_cpu_busy\tproc_cpu\tforeign_proxy_cpu\tforeign_load_cpu\tsteal\tuser_us\tsys_us\n' >"$OUT_DIR/results.tsv"
for ((r = 1; r <= ROUNDS; r++)); do
	for t in "${TARGETS[@]}"; do
		f="$OUT_DIR/round$r-$t.txt"
		log "round $r/$ROUNDS: $t"
		read -r pb0 ps0 pt0 < <(cpu_ticks "$PROXY_CPU")
		read -r lb0 ls0 lt0 < <(cpu_ticks "$LOAD_CPU")
		pu0=$(cpu_user_sys "$PROXY_CPU") lu0=$(cpu_user_sys "$LOAD_CPU")
		px0=$(proc_ticks "$HAPROXY_PID" "$MESH_PID") ng0=$(proc_ticks "${NGINX_PIDS[@]}")
		child_ticks
		ch0=$CHILD
		su0=0 ss0=0
		[[ -n ${SPID[$t]} ]] && read -r su0 ss0 < <(awk '{print $14, $15}' "/proc/${SPID[$t]}/stat")
		run_wrk "$t" "$DURATION" "$f"
		read -r pb1 ps1 pt1 < <(cpu_ticks "$PROXY_CPU")
		read -r lb1 ls1 lt1 < <(cpu_ticks "$LOAD_CPU")
		pu1=$(cpu_user_sys "$PROXY_CPU") lu1=$(cpu_user_sys "$LOAD_CPU")
		px1=$(proc_ticks "$HAPROXY_PID" "$MESH_PID") ng1=$(proc_ticks "${NGINX_PIDS[@]}")
		child_ticks
		ch1=$CHILD
		procpct="-" user_us="-" sys_us="-"
		nreq=$(awk '/ requests in /{print $1}' "$f")
		if [[ -n ${SPID[$t]} ]]; then
			read -r su1 ss1 < <(awk '{print $14, $15}' "/proc/${SPID[$t]}/stat")
			procpct=$(pct $((su1 - su0 + ss1 - ss0)) $((pt1 - pt0)))
			user_us=$(awk -v d=$((su1 - su0)) -v n="$nreq" -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", d/hz*1e6/n}')
			sys_us=$(awk -v d=$((ss1 - ss0)) -v n="$nreq" -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", d/hz*1e6/n}')
		fi
		rps=$(awk '/^Requests\/sec:/{print $2}' "$f")
		p50=$(awk '$1=="50%"{print $2}' "$f")
		p99=$(awk '$1=="99%"{print $2}' "$f")
		[[ -n $rps && -n $p50 && -n $p99 ]] || die "could not parse wrk output $f"
		errs=$(awk '/Socket errors:/{gsub(/,/,""); n+=$4+$6+$8+$10} /Non-2xx or 3xx responses:/{n+=$NF} END{print n+0}' "$f")
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$t" "$rps" "$(to_us "$p50")" "$(to_us "$p99")" "$errs" \
			"$(pct $((pb1 - pb0)) $((pt1 - pt0)))" "$(pct $((lb1 - lb0)) $((lt1 - lt0)))" "$procpct" \
			"$(pct $((pu1 - pu0 - (px1 - px0))) $((pt1 - pt0)))" \
			"$(pct $((lu1 - lu0 - (ng1 - ng0) - (ch1 - ch0))) $((lt1 - lt0)))" \
			"$(pct $((ps1 - ps0 + ls1 - ls0)) $((pt1 - pt0 + lt1 - lt0)))" "$user_us" "$sys_us" \
			>>"$OUT_DIR/results.tsv"
	done
done

# ---- optional profile ------------------------------------------------------------
if [[ $PROFILE == 1 ]]; then
	log "profiling meshproxy for ${PROFILE_SECONDS}s under the same load"
	(on_cpu "$LOAD_CPU" wrk -t"$THREADS" -c"$CONNS" -d"$((PROFILE_SECONDS + 3))s" --latency "${URL[meshproxy]}") >"$OUT_DIR/profile-wrk.txt" 2>&1 &
	WRK_PID=$!
	PIDS+=("$WRK_PID")
	sleep 1
	curl -s --max-time "$((PROFILE_SECONDS + 30))" -o "$OUT_DIR/cpu.prof" \
		"http://127.0.0.1:$ADMIN_PORT/debug/pprof/profile?seconds=$PROFILE_SECONDS" || log "profile download failed"
	wait "$WRK_PID" || true
	unset 'PIDS[${#PIDS[@]}-1]' # reaped: its PID may be reused
	WRK_PID=""
	if [[ -s $OUT_DIR/cpu.prof ]] && command -v go >/dev/null 2>&1; then
		go tool pprof -top -nodecount=40 "$OUT_DIR/meshproxy" "$OUT_DIR/cpu.prof" >"$OUT_DIR/pprof-top-flat.txt" 2>&1 || true
		go tool pprof -top -cum -nodecount=40 "$OUT_DIR/meshproxy" "$OUT_DIR/cpu.prof" >"$OUT_DIR/pprof-top-cum.txt" 2>&1 || true
	fi
fi

# ---- report --------------------------------------------------------------------------
quiet_rounds
col() { # col TARGET COLUMN [ROUNDS] -> values over all rounds, or over the listed ones
	awk -F'\t' -v t="$1" -v c="$2" -v only="${3:-}" 'BEGIN{n=split(only,a," "); for(i=1;i<=n;i++)ok[a[i]]=1}
		NR>1 && $2==t && (n==0 || ($1 in ok)){print $c}' "$OUT_DIR/results.tsv"
}
ratios() { # ratios [ROUNDS] -> "rps_ratio p50_ratio rps_round p50_round": ratio of medians, median of per-round ratios
	local rm rh pm ph rr pr
	rm=$(col meshproxy 3 "${1:-}" | median) rh=$(col haproxy 3 "${1:-}" | median)
	pm=$(col meshproxy 4 "${1:-}" | median) ph=$(col haproxy 4 "${1:-}" | median)
	rr=$(paste <(col meshproxy 3 "${1:-}") <(col haproxy 3 "${1:-}") | awk '{print $1/$2}' | median)
	pr=$(paste <(col meshproxy 4 "${1:-}") <(col haproxy 4 "${1:-}") | awk '{print $1/$2}' | median)
	awk -v a="$rm" -v b="$rh" -v c="$pm" -v d="$ph" -v e="$rr" -v f="$pr" 'BEGIN{printf "%.3f %.3f %.3f %.3f\n", a/b, c/d, e, f}'
}
read -r all_rps all_p50 all_rps_r all_p50_r < <(ratios)
if ((NQUIET > 0)); then
	read -r q_rps q_p50 q_rps_r q_p50_r < <(ratios "$QUIET")
	basis="quiet rounds ($NQUIET of $ROUNDS)"
	v_rps=$q_rps v_p50=$q_p50
else
	basis="all rounds (none was quiet: rerun on a quieter machine)"
	v_rps=$all_rps v_p50=$all_p50
fi
cpu_ratio=$(awk -v a="$(paste <(col meshproxy 13) <(col meshproxy 14) | awk '{print $1+$2}' | median)" \
	-v b="$(paste <(col haproxy 13) <(col haproxy 14) | awk '{print $1+$2}' | median)" 'BEGIN{printf "%.3f", a/b}')
# Which targets apply: throughput and CPU with many connections, latency
# with one (at 32 connections p50 is the throughput ratio by Little's law).
if ((CONNS > 1)); then
	verdict_rps=$(awk -v x="$v_rps" -v t="$RPS_TARGET" 'BEGIN{print (x>=t)?"met":"MISSED"}')
	verdict_cpu=$(awk -v x="$cpu_ratio" -v t="$CPU_TARGET" 'BEGIN{print (x<=t)?"met":"MISSED"}')
	verdict_p50=met t_rps="≥ $RPS_TARGET" t_cpu="≤ $CPU_TARGET" t_p50="" show_p50=""
else
	verdict_p50=$(awk -v x="$v_p50" -v t="$P50_TARGET" 'BEGIN{print (x<=t)?"met":"MISSED"}')
	verdict_rps=met verdict_cpu=met t_rps="" t_cpu="" t_p50="≤ $P50_TARGET" show_p50=$verdict_p50
fi
show_rps=${t_rps:+$verdict_rps} show_cpu=${t_cpu:+$verdict_cpu}
{
	echo "## HTTP/1.1 keep-alive: direct vs haproxy vs meshproxy"
	echo
	sed 's/^/    /' "$OUT_DIR/env.txt"
	echo
	echo "All $ROUNDS rounds (medians over rounds):"
	echo
	echo "| target | req/s | req/s min–max | p50 µs | p99 µs | errors | proxy CPU$PROXY_CPU busy | load CPU$LOAD_CPU busy | proxy process CPU | proxy CPU µs/req user+sys | foreign CPU (proxy/load) |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for t in "${TARGETS[@]}"; do
		spread=$(col "$t" 3 | min_max)
		errs=$(col "$t" 6 | awk '{n+=$1} END{print n+0}')
		pc=$(col "$t" 9 | awk '$1!="-"' | median)
		us="–"
		if [[ $pc == nan ]]; then pc="–"; else
			pc="$pc%"
			us="$(col "$t" 13 | median) + $(col "$t" 14 | median)"
		fi
		printf '| %s | %.0f | %s | %.0f | %.0f | %s | %s%% | %s%% | %s | %s | %s%% / %s%% |\n' \
			"$t" "$(col "$t" 3 | median)" "$spread" "$(col "$t" 4 | median)" "$(col "$t" 5 | median)" "$errs" \
			"$(col "$t" 7 | median)" "$(col "$t" 8 | median)" "$pc" "$us" "$(col "$t" 10 | median)" "$(col "$t" 11 | median)"
	done
	echo
	if ((NQUIET > 0 && NQUIET < ROUNDS)); then
		echo "Quiet rounds only (${QUIET% }: foreign CPU ≤ $DISTURB_PCT% on both CPUs in every run):"
		echo
		echo "| target | req/s | req/s min–max | p50 µs | p99 µs |"
		echo "|---|---:|---:|---:|---:|"
		for t in "${TARGETS[@]}"; do
			spread=$(col "$t" 3 "$QUIET" | min_max)
			printf '| %s | %.0f | %s | %.0f | %.0f |\n' "$t" "$(col "$t" 3 "$QUIET" | median)" "$spread" \
				"$(col "$t" 4 "$QUIET" | median)" "$(col "$t" 5 "$QUIET" | median)"
		done
		echo
	fi
	echo "| meshproxy / haproxy | rounds | ratio of medians | median of per-round ratios | target | verdict |"
	echo "|---|---|---:|---:|---:|---|"
	if ((NQUIET > 0 && NQUIET < ROUNDS)); then
		printf '| req/s | quiet (%s) | %s | %s | %s | %s |\n' "$NQUIET" "$q_rps" "$q_rps_r" "$t_rps" "$show_rps"
		printf '| p50 latency | quiet (%s) | %s | %s | %s | %s |\n' "$NQUIET" "$q_p50" "$q_p50_r" "$t_p50" "$show_p50"
		printf '| req/s | all (%s) | %s | %s | | |\n' "$ROUNDS" "$all_rps" "$all_rps_r"
		printf '| p50 latency | all (%s) | %s | %s | | |\n' "$ROUNDS" "$all_p50" "$all_p50_r"
	else
		printf '| req/s | all (%s) | %s | %s | %s | %s |\n' "$ROUNDS" "$all_rps" "$all_rps_r" "$t_rps" "$show_rps"
		printf '| p50 latency | all (%s) | %s | %s | %s | %s |\n' "$ROUNDS" "$all_p50" "$all_p50_r" "$t_p50" "$show_p50"
	fi
	printf '| proxy CPU per request (user+sys µs/req) | all (%s) | %s | | %s | %s |\n' "$ROUNDS" "$cpu_ratio" "$t_cpu" "$show_cpu"
	echo
	echo "Verdict basis: $basis."
	echo "Raw wrk outputs and results.tsv: $OUT_DIR"
	echo "Only ratios within one interleaved run are meaningful: the machine is shared and noisy."
} | tee "$OUT_DIR/results.md"

if [[ $ENFORCE == 1 ]] && [[ $verdict_rps != met || $verdict_cpu != met || $verdict_p50 != met ]]; then
	exit 3
fi
