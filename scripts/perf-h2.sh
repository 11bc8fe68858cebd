#!/usr/bin/env bash
# perf-h2.sh — HTTP/2 cleartext (h2c) and gRPC unary throughput through one
# proxy: direct, haproxy (proto h2 on both sides) and meshproxy (h2c on both
# sides), interleaved in rounds (direct, haproxy, meshproxy, direct, ...)
# within one run so that the machine's drift hits every target alike.
#
#   h2c:  h2load -c CONNS -m STREAMS -> [proxy] -> nginx (h2c, prior knowledge)
#   grpc: meshbench load --protocol grpc --connections CONNS --streams STREAMS
#         --rate max -> [proxy] -> meshbench backend (grpc.testing UnaryCall)
#
# Usage:  bash scripts/perf-h2.sh          (or: make perf-h2)
#
# Environment (all optional):
#   ROUNDS=5          rounds; each round runs every target of every load once
#   DURATION=10s      duration of one run
#   WARMUP=3s         one unrecorded run per target before round 1
#   CONNS=4           connections
#   STREAMS=32        concurrent streams per connection
#   LOADS="h2c grpc"  which loads to run
#   PROXY_CPU=0       CPU of haproxy and meshproxy (one core each, one worker)
#   LOAD_CPU=1        CPU of the load generator and the backends
#   PORT_BASE=18180   first port tried; seven consecutive free ports are taken
#   MESHPROXY=path    meshproxy binary (default: go build into the temp dir)
#   MESHBENCH=path    meshbench binary (default: go build into the temp dir)
#   OUT_DIR=dir       where raw outputs go (default out/perf-h2/<timestamp>)
#   ENFORCE=1         exit 3 when meshproxy misses a target below
#   KEEP_TMP=1        keep the temp dir
#   DISTURB_PCT=10    a round is "disturbed" when other work took more than this
#                     share of either CPU during one of its runs; the verdict
#                     uses the quiet rounds when there are any
#
# Target (docs/performance.md): meshproxy requests/s >= 0.8x haproxy's, for
# h2c and for gRPC unary.
#
# Both proxies run one worker (haproxy nbthread 1, meshproxy GOMAXPROCS=1)
# pinned to $PROXY_CPU; the load generator and the backends share $LOAD_CPU.
# It needs h2load (nghttp2-client), haproxy, nginx and curl and installs
# nothing itself. Every process it starts is stopped by PID on every exit.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
CONNS=${CONNS:-4}
STREAMS=${STREAMS:-32}
LOADS=${LOADS:-h2c grpc}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT_BASE=${PORT_BASE:-18180}
ENFORCE=${ENFORCE:-0}
DISTURB_PCT=${DISTURB_PCT:-10}

RPS_TARGET=0.8

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TS=$(date -u +%Y%m%dT%H%M%SZ)
OUT_DIR=${OUT_DIR:-$ROOT/out/perf-h2/$TS}

PERF_NAME=perf-h2
# shellcheck source=lib/perf-common.sh source-path=SCRIPTDIR
source "$ROOT/scripts/lib/perf-common.sh"

# ---- prerequisites -------------------------------------------------------
missing=()
require_tools h2load:nghttp2-client haproxy:haproxy nginx:nginx-light curl:curl taskset:util-linux
report_missing "nghttp2-client haproxy nginx-light curl"
check_rounds
[[ $DURATION =~ ^[1-9][0-9]*s$ ]] || die "DURATION must be whole seconds such as 10s, got '$DURATION'"
[[ $WARMUP =~ ^[0-9]+s$ ]] || die "WARMUP must be whole seconds such as 3s or 0s, got '$WARMUP'"
[[ $CONNS =~ ^[1-9][0-9]*$ && $STREAMS =~ ^[1-9][0-9]*$ ]] || die "CONNS and STREAMS must be positive integers"
for l in $LOADS; do [[ $l == h2c || $l == grpc ]] || die "LOADS: '$l' is neither h2c nor grpc"; done

init_pinning PROXY_CPU LOAD_CPU
find_free_ports 7 seven
NGINX_PORT=$base
BACKEND_HTTP=$((base + 1))
BACKEND_GRPC=$((base + 2))
HAPROXY_H2=$((base + 3))
HAPROXY_GRPC=$((base + 4))
MESH_PORT=$((base + 5))
ADMIN_PORT=$((base + 6))

init_cleanup

# ---- binaries --------------------------------------------------------------------
build() { # build NAME VAR: the binary VAR names, or one built from this checkout
	local name=$1 var=$2
	if [[ -n ${!var:-} ]]; then
		[[ -x ${!var} ]] || die "$var=${!var} is not executable"
		return
	fi
	command -v go >/dev/null 2>&1 || die "no go to build $name: set $var"
	log "building $name"
	(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -o "$TMP/$name" "./cmd/$name") || die "go build $name failed"
	printf -v "$var" '%s' "$TMP/$name"
}
build meshproxy MESHPROXY
build meshbench MESHBENCH
cp "$MESHPROXY" "$OUT_DIR/meshproxy"

# ---- configurations --------------------------------------------------------------
write_nginx_conf "# h2c with prior knowledge (listen ... http2 without ssl)." "" "127.0.0.1:$NGINX_PORT http2"

# haproxy does the same per-request header work as meshproxy: X-Forwarded-For,
# X-Forwarded-Proto and a generated X-Request-Id (UUID v4).
cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
    log stderr format short local0 emerg
defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server 60s
frontend h2c
    bind 127.0.0.1:$HAPROXY_H2 proto h2
    option forwardfor
    unique-id-format %[uuid()]
    unique-id-header X-Request-Id
    http-request set-header X-Forwarded-Proto http if !{ req.hdr(X-Forwarded-Proto) -m found }
    default_backend nginx
frontend grpc
    bind 127.0.0.1:$HAPROXY_GRPC proto h2
    option forwardfor
    unique-id-format %[uuid()]
    unique-id-header X-Request-Id
    http-request set-header X-Forwarded-Proto http if !{ req.hdr(X-Forwarded-Proto) -m found }
    default_backend grpc
backend nginx
    http-reuse always
    server nginx 127.0.0.1:$NGINX_PORT proto h2
backend grpc
    http-reuse always
    server backend 127.0.0.1:$BACKEND_GRPC proto h2
EOF

cat >"$TMP/meshproxy.yaml" <<EOF
admin: 127.0.0.1:$ADMIN_PORT
drain_timeout: 2s
listeners:
- name: outbound
  address: 127.0.0.1:$MESH_PORT
  protocol: auto
  routes:
  - name: grpc
    match: {headers: [{name: content-type, regex: "application/grpc.*"}]}
    cluster: grpc
  - name: h2c
    cluster: nginx
clusters:
- name: nginx
  protocol: h2c
  endpoints: [127.0.0.1:$NGINX_PORT]
- name: grpc
  protocol: h2c
  endpoints: [127.0.0.1:$BACKEND_GRPC]
EOF
cp "$TMP/nginx/nginx.conf" "$OUT_DIR/nginx.conf"
cp "$TMP/haproxy.cfg" "$OUT_DIR/haproxy.cfg"
cp "$TMP/meshproxy.yaml" "$OUT_DIR/meshproxy.yaml"
haproxy -c -q -f "$TMP/haproxy.cfg" || die "haproxy rejected its configuration"
check_nginx_conf
"$MESHPROXY" --validate --config "$TMP/meshproxy.yaml" >/dev/null || die "meshproxy rejected its configuration"

# ---- start the servers -------------------------------------------------------------
(on_cpu "$LOAD_CPU" nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf") >"$OUT_DIR/nginx.log" 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
(export GOMAXPROCS=1; on_cpu "$LOAD_CPU" "$MESHBENCH" backend --listen "127.0.0.1:$BACKEND_HTTP" --grpc-listen "127.0.0.1:$BACKEND_GRPC" --name backend) >"$OUT_DIR/backend.log" 2>&1 &
BACKEND_PID=$!
PIDS+=("$BACKEND_PID")
(on_cpu "$PROXY_CPU" haproxy -db -f "$TMP/haproxy.cfg") >"$OUT_DIR/haproxy.log" 2>&1 &
HAPROXY_PID=$!
PIDS+=("$HAPROXY_PID")
(export GOMAXPROCS=1; on_cpu "$PROXY_CPU" "$MESHPROXY" --config "$TMP/meshproxy.yaml" --log-level warn) >"$OUT_DIR/meshproxy.log" 2>&1 &
MESH_PID=$!
PIDS+=("$MESH_PID")

wait_ok() { # wait_ok NAME PID CMD...: until CMD succeeds, for 10 s
	local name=$1 pid=$2 i
	shift 2
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || die "$name exited at start; see $OUT_DIR/$name.log"
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	die "$name does not answer after 10s: $*; see $OUT_DIR/$name.log"
}
h2get() { curl -sf --http2-prior-knowledge --max-time 1 -o /dev/null "$1"; }
grpc1() { "$MESHBENCH" load --quiet --protocol grpc --target "$1" --requests 1 --timeout 1s; }
wait_ok nginx "$NGINX_PID" h2get "http://127.0.0.1:$NGINX_PORT/"
wait_ok backend "$BACKEND_PID" grpc1 "127.0.0.1:$BACKEND_GRPC"
wait_ok haproxy "$HAPROXY_PID" h2get "http://127.0.0.1:$HAPROXY_H2/"
wait_ok meshproxy "$MESH_PID" curl -sf --max-time 1 "http://127.0.0.1:$ADMIN_PORT/ready"
wait_ok meshproxy "$MESH_PID" h2get "http://127.0.0.1:$MESH_PORT/"
wait_ok haproxy "$HAPROXY_PID" grpc1 "127.0.0.1:$HAPROXY_GRPC"
wait_ok meshproxy "$MESH_PID" grpc1 "127.0.0.1:$MESH_PORT"
remember_nginx_workers "$NGINX_PID"

{
	env_host
	echo "h2load: $(h2load --version 2>&1 | head -1)"
	echo "haproxy: $(haproxy -v 2>&1 | head -1 | awk '{print $3}')"
	env_tools_tail
	env_source meshproxy "$MESHPROXY" cmd proxy internal go.mod
	if ((PIN)); then
		echo "pinning: haproxy, meshproxy on CPU $PROXY_CPU; load generator, nginx, backend on CPU $LOAD_CPU"
	else
		echo "pinning: none"
	fi
	echo "load: $CONNS connections x $STREAMS streams, $DURATION per run, $ROUNDS rounds, warm-up $WARMUP per target"
	echo "proxies: haproxy nbthread 1, proto h2 on both sides; meshproxy GOMAXPROCS=1, h2c on both sides"
} >"$OUT_DIR/env.txt"

# ---- measurement ---------------------------------------------------------------------
declare -A URL=(
	[h2c/direct]="http://127.0.0.1:$NGINX_PORT/"
	[h2c/haproxy]="http://127.0.0.1:$HAPROXY_H2/"
	[h2c/meshproxy]="http://127.0.0.1:$MESH_PORT/"
	[grpc/direct]="127.0.0.1:$BACKEND_GRPC"
	[grpc/haproxy]="127.0.0.1:$HAPROXY_GRPC"
	[grpc/meshproxy]="127.0.0.1:$MESH_PORT"
)
declare -A SPID=([direct]="" [haproxy]=$HAPROXY_PID [meshproxy]=$MESH_PID)
TARGETS=()
for l in $LOADS; do for p in direct haproxy meshproxy; do TARGETS+=("$l/$p"); done; done

LOAD_PID=""
run_load() { # run_load LOAD/PROXY DURATION OUTFILE
	local target=$1 secs=${2%s}
	case ${target%%/*} in
	h2c) (on_cpu "$LOAD_CPU" h2load -c "$CONNS" -m "$STREAMS" -D "$secs" "${URL[$target]}") >"$3" 2>&1 & ;;
	grpc) (on_cpu "$LOAD_CPU" "$MESHBENCH" load --protocol grpc --target "${URL[$target]}" --connections "$CONNS" \
		--streams "$STREAMS" --rate max --duration "$2" --quiet) >"$3" 2>&1 & ;;
	esac
	LOAD_PID=$!
	PIDS+=("$LOAD_PID")
	local rc=0
	wait "$LOAD_PID" || rc=$?
	unset 'PIDS[${#PIDS[@]}-1]' # reaped: its PID may be reused
	LOAD_PID=""
	((rc == 0)) || die "the load against $target failed (exit $rc); see $3"
}
parse() { # parse LOAD FILE -> "rps latency_us errors"
	case $1 in
	h2c) awk '/^finished in/{gsub(/,/,""); rps=$4} /^requests:/{fail=$10+$12} /^time for request:/{
			v=$6; m=1; if(v~/ms$/)m=1000; else if(v~/us$/)m=1; else if(v~/s$/)m=1e6; lat=v*m}
			END{printf "%s %.0f %d\n", rps, lat, fail}' "$2" ;;
	grpc) awk '/achieved/{for(i=1;i<=NF;i++)if($i=="achieved"){v=$(i+1); sub(/\/s$/,"",v); rps=v}}
			/^response time/{for(i=1;i<=NF;i++)if($i=="p50"){v=$(i+1); m=1; if(v~/ms$/)m=1000; else if(v~/µs$/)m=1; else if(v~/s$/)m=1e6; lat=v*m}}
			/^errors:/{err=$2} END{printf "%s %.0f %d\n", rps, lat, err}' "$2" ;;
	esac
}

if [[ $WARMUP != 0s ]]; then
	for t in "${TARGETS[@]}"; do
		log "warm-up $t ($WARMUP)"
		run_load "$t" "$WARMUP" "$OUT_DIR/warmup-${t//\//-}.txt"
	done
fi

CLK_TCK=$(getconf CLK_TCK)
NGINX_PIDS=("$NGINX_PID" "${NGINX_WORKERS[@]}")
# results.tsv: latency is h2load's mean time per request (h2c) or meshbench's
# p50 (grpc); foreign_* = CPU time on that CPU not spent by our processes
# (columns 10 and 11, which quiet_rounds reads).
printf 'round\ttarget\trps\tlatency_us\terrors\tproxy_cpu_busy\tload_cpu_busy\tproc_cpu\tcpu_us_per_req\tforeign_proxy_cpu\tforeign_load_cpu\n' >"$OUT_DIR/results.tsv"
for ((r = 1; r <= ROUNDS; r++)); do
	for t in "${TARGETS[@]}"; do
		f="$OUT_DIR/round$r-${t//\//-}.txt"
		log "round $r/$ROUNDS: $t"
		proxy=${t#*/}
		read -r pb0 _ pt0 < <(cpu_ticks "$PROXY_CPU")
		read -r lb0 _ lt0 < <(cpu_ticks "$LOAD_CPU")
		pu0=$(cpu_user_sys "$PROXY_CPU") lu0=$(cpu_user_sys "$LOAD_CPU")
		px0=$(proc_ticks "$HAPROXY_PID" "$MESH_PID") bk0=$(proc_ticks "${NGINX_PIDS[@]}" "$BACKEND_PID")
		sp0=0
		[[ -n ${SPID[$proxy]} ]] && sp0=$(proc_ticks "${SPID[$proxy]}")
		times >"$TMP/times0"
		run_load "$t" "$DURATION" "$f"
		times >"$TMP/times1"
		read -r pb1 _ pt1 < <(cpu_ticks "$PROXY_CPU")
		read -r lb1 _ lt1 < <(cpu_ticks "$LOAD_CPU")
		pu1=$(cpu_user_sys "$PROXY_CPU") lu1=$(cpu_user_sys "$LOAD_CPU")
		px1=$(proc_ticks "$HAPROXY_PID" "$MESH_PID") bk1=$(proc_ticks "${NGINX_PIDS[@]}" "$BACKEND_PID")
		ch=$(paste "$TMP/times0" "$TMP/times1" | awk -v hz="$CLK_TCK" 'NR==2{
			t=0; for(i=1;i<=4;i++){split($i,a,/[ms]/); v=(a[1]*60+a[2])*hz; t+=(i<=2)?-v:v} printf "%.0f", t}')
		read -r rps lat errs < <(parse "${t%%/*}" "$f")
		[[ -n $rps && -n $lat ]] || die "could not parse the load's output $f"
		procpct="-" cpu_us="-"
		if [[ -n ${SPID[$proxy]} ]]; then
			sp1=$(proc_ticks "${SPID[$proxy]}")
			procpct=$(pct $((sp1 - sp0)) $((pt1 - pt0)))
			cpu_us=$(awk -v d=$((sp1 - sp0)) -v rps="$rps" -v s="${DURATION%s}" -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", d/hz*1e6/(rps*s)}')
		fi
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$t" "$rps" "$lat" "$errs" \
			"$(pct $((pb1 - pb0)) $((pt1 - pt0)))" "$(pct $((lb1 - lb0)) $((lt1 - lt0)))" "$procpct" "$cpu_us" \
			"$(pct $((pu1 - pu0 - (px1 - px0))) $((pt1 - pt0)))" \
			"$(pct $((lu1 - lu0 - (bk1 - bk0) - ch)) $((lt1 - lt0)))" >>"$OUT_DIR/results.tsv"
	done
done

# ---- report ------------------------------------------------------------------------------
quiet_rounds
col() { # col TARGET COLUMN [ROUNDS]
	awk -F'\t' -v t="$1" -v c="$2" -v only="${3:-}" 'BEGIN{n=split(only,a," "); for(i=1;i<=n;i++)ok[a[i]]=1}
		NR>1 && $2==t && (n==0 || ($1 in ok)){print $c}' "$OUT_DIR/results.tsv"
}
basis="all rounds (none was quiet: rerun on a quieter machine)"
only=""
if ((NQUIET > 0)); then basis="quiet rounds ($NQUIET of $ROUNDS)" only=$QUIET; fi
missed=0
{
	echo "## h2c and gRPC unary: direct vs haproxy vs meshproxy"
	echo
	sed 's/^/    /' "$OUT_DIR/env.txt"
	echo
	echo "All $ROUNDS rounds (medians over rounds; latency: h2load's mean per request for h2c, meshbench's p50 for gRPC):"
	echo
	echo "| load | target | req/s | req/s min–max | latency µs | errors | proxy process CPU | proxy CPU µs/req | foreign CPU (proxy/load) |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
	for t in "${TARGETS[@]}"; do
		printf '| %s | %s | %.0f | %s | %.0f | %s | %s | %s | %s%% / %s%% |\n' "${t%%/*}" "${t#*/}" \
			"$(col "$t" 3 | median)" "$(col "$t" 3 | min_max)" "$(col "$t" 4 | median)" \
			"$(col "$t" 5 | awk '{n+=$1} END{print n+0}')" "$(col "$t" 8 | awk '$1!="-"' | median | sed 's/nan/–/; s/^[0-9.]*$/&%/')" \
			"$(col "$t" 9 | awk '$1!="-"' | median | sed 's/nan/–/')" "$(col "$t" 10 | median)" "$(col "$t" 11 | median)"
	done
	echo
	echo "| meshproxy / haproxy | rounds | req/s: ratio of medians | median of per-round ratios | CPU µs/req ratio | target | verdict |"
	echo "|---|---|---:|---:|---:|---:|---|"
	for l in $LOADS; do
		m=$(col "$l/meshproxy" 3 "$only" | median) h=$(col "$l/haproxy" 3 "$only" | median)
		per=$(paste <(col "$l/meshproxy" 3 "$only") <(col "$l/haproxy" 3 "$only") | awk '{print $1/$2}' | median | awk '{printf "%.3f", $1}')
		cpu=$(awk -v a="$(col "$l/meshproxy" 9 "$only" | median)" -v b="$(col "$l/haproxy" 9 "$only" | median)" 'BEGIN{printf "%.2f", a/b}')
		ratio=$(awk -v a="$m" -v b="$h" 'BEGIN{printf "%.3f", a/b}')
		verdict=$(awk -v x="$ratio" -v t="$RPS_TARGET" 'BEGIN{print (x>=t)?"met":"MISSED"}')
		[[ $verdict == met ]] || missed=1
		printf '| %s req/s | %s | %s | %s | %s | ≥ %s | %s |\n' "$l" "${basis%% (*}" "$ratio" "$per" "$cpu" "$RPS_TARGET" "$verdict"
	done
	echo
	for l in $LOADS; do
		hc=$(col "$l/haproxy" 8 "$only" | median)
		if awk -v x="$hc" 'BEGIN{exit !(x < 90)}'; then
			echo "$l: haproxy's process used ${hc}% of its CPU, so the load side, not haproxy, set its rate: the req/s ratio is an upper bound of meshproxy's; the CPU µs/req ratio compares the proxies' work."
		fi
	done
	echo "Verdict basis: $basis."
	echo "Raw outputs and results.tsv: $OUT_DIR"
	echo "Only ratios within one interleaved run are meaningful: the machine is shared and noisy."
} | tee "$OUT_DIR/results.md"

if [[ $ENFORCE == 1 && $missed == 1 ]]; then
	exit 3
fi
