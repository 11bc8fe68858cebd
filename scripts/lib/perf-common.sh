# shellcheck shell=bash
# perf-common.sh — shared helpers of the benchmark scripts perf-http1.sh and
# perf-loadgen.sh; sourced by them, not run on its own.
#
# It provides:
#   die, log                      messages prefixed with "$PERF_NAME: " on stderr
#   require_tools, report_missing prerequisites check (appends to the missing array)
#   check_rounds                  ROUNDS must be a positive integer
#   init_pinning A B              NCPU, PIN from the CPU variables named A and B
#   on_cpu CPU cmd...             exec cmd pinned to CPU (or unpinned when PIN=0)
#   port_busy, find_free_ports    consecutive free loopback ports (sets base)
#   init_cleanup                  TMP, PIDS, NGINX_WORKERS, stop_pid, cleanup and
#                                 the EXIT/INT/TERM traps; creates OUT_DIR
#   write_nginx_conf, check_nginx_conf, remember_nginx_workers
#                                 the nginx backend (one worker, fixed body)
#   env_host, env_tools_tail, env_source
#                                 lines of the env.txt environment block
#   cpu_ticks, cpu_user_sys, proc_ticks, pct
#                                 CPU sampling from /proc/stat and /proc/PID/stat
#   median, min_max, quiet_rounds report helpers (QUIET, NQUIET over results.tsv)
#
# The sourcing script sets PERF_NAME (e.g. perf-http1) before using any of
# these, and ROOT, OUT_DIR as it computes them.

die() { echo "$PERF_NAME: $*" >&2; exit 1; }
log() { echo "$PERF_NAME: $*" >&2; }

# ---- prerequisites -----------------------------------------------------------
require_tools() { # require_tools cmd:package... -> appends the absent ones to missing
	local tool cmd pkg
	for tool in "$@"; do
		cmd=${tool%%:*} pkg=${tool#*:}
		command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd (Debian package: $pkg)")
	done
}
report_missing() { # report_missing "packages to install": exit 1 when missing is not empty
	if ((${#missing[@]})); then
		echo "$PERF_NAME: missing tools:" >&2
		printf '  %s\n' "${missing[@]}" >&2
		echo "install them with: apt-get update && apt-get install -y $1" >&2
		exit 1
	fi
}
check_rounds() {
	[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got '$ROUNDS'"
}

# ---- CPU pinning -------------------------------------------------------------
init_pinning() { # init_pinning VAR_A VAR_B: two CPU variables (by name) -> NCPU, PIN
	NCPU=$(nproc)
	PIN=1
	if ((NCPU < 2)); then
		log "warning: only $NCPU CPU; running without CPU pinning"
		PIN=0
	elif ((${!1} >= NCPU || ${!2} >= NCPU)) || [[ ${!1} == "${!2}" ]]; then
		die "$1=${!1} and $2=${!2} must be two different CPUs below $NCPU"
	fi
}
on_cpu() { # on_cpu CPU cmd... : exec cmd pinned to CPU (taskset execs, so $! is cmd's PID)
	local cpu=$1
	shift
	if ((PIN)); then exec taskset -c "$cpu" "$@"; else exec "$@"; fi
}

# ---- ports -------------------------------------------------------------------
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# find_free_ports N WORD: N consecutive free ports from PORT_BASE up (other
# benchmarks may share the machine); the first is left in base.
find_free_ports() {
	local n=$1 i busy
	for ((base = PORT_BASE; base < PORT_BASE + 400; base += n)); do
		busy=0
		for ((i = 0; i < n; i++)); do
			if port_busy $((base + i)); then busy=1 && break; fi
		done
		((busy)) || break
	done
	((base < PORT_BASE + 400)) || die "no $2 free ports in 127.0.0.1:$PORT_BASE-$((PORT_BASE + 399)); set PORT_BASE"
}

# ---- cleanup -----------------------------------------------------------------
stop_pid() { # stop_pid PID: TERM, wait up to 5s, then KILL
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "pid $pid did not stop on TERM; killing"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	local rc=$? i pid
	trap - EXIT INT TERM
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		stop_pid "${PIDS[i]}"
	done
	for pid in "${NGINX_WORKERS[@]}"; do # normally already stopped by its master
		if [[ $(cat "/proc/$pid/comm" 2>/dev/null) == nginx ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
	done
	if [[ ${KEEP_TMP:-0} == 1 ]]; then log "temp dir kept: $TMP"; else rm -rf "$TMP"; fi
	exit "$rc"
}
init_cleanup() { # TMP, PIDS, NGINX_WORKERS, the traps; then creates OUT_DIR
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/$PERF_NAME.XXXXXX")
	PIDS=()          # every process we started (our children), in start order
	NGINX_WORKERS=() # nginx's worker(s): children of the nginx master
	trap cleanup EXIT
	trap 'log "interrupted"; exit 130' INT
	trap 'log "terminated"; exit 143' TERM
	mkdir -p "$OUT_DIR"
	log "raw outputs: $OUT_DIR"
}

# ---- nginx backend -------------------------------------------------------------
# write_nginx_conf HEAD_COMMENT KEEPALIVE_COMMENT LISTEN...: $TMP/nginx/nginx.conf,
# one worker, keep-alive, a fixed 13-byte body, no logging. HEAD_COMMENT
# (comment lines after the first) and KEEPALIVE_COMMENT may be empty; each
# LISTEN is the argument of one listen directive.
write_nginx_conf() {
	local head=$1 ka=$2 l
	shift 2
	mkdir -p "$TMP/nginx/logs" "$TMP/nginx/tmp"
	{
		echo "# Backend: one worker, keep-alive, a fixed 13-byte body, no logging."
		[[ -z $head ]] || printf '%s\n' "$head"
		cat <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_timeout 120s;
EOF
		[[ -z $ka ]] || echo "    $ka"
		cat <<EOF
    keepalive_requests 100000000;
    client_body_temp_path $TMP/nginx/tmp/body;
    proxy_temp_path $TMP/nginx/tmp/proxy;
    fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
    uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
    scgi_temp_path $TMP/nginx/tmp/scgi;
    server {
EOF
		for l in "$@"; do echo "        listen $l;"; done
		cat <<EOF
        location / {
            default_type text/plain;
            return 200 "hello, world\n";
        }
    }
}
EOF
	} >"$TMP/nginx/nginx.conf"
}
check_nginx_conf() {
	nginx -t -q -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" 2>"$TMP/nginx-t.log" ||
		{ cat "$TMP/nginx-t.log" >&2; die "nginx rejected its configuration"; }
}
# nginx's worker is a child of its master, which stops it; remember it so that
# cleanup can make sure it is gone.
remember_nginx_workers() { # remember_nginx_workers MASTER_PID
	local kids=()
	read -ra kids <"/proc/$1/task/$1/children" || true
	NGINX_WORKERS=("${kids[@]}")
}

# ---- environment (env.txt lines) -------------------------------------------------
env_host() { # date, cpu, nproc, kernel, virtualization, wrk
	echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "cpu: $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)"
	echo "nproc: $NCPU"
	echo "kernel: $(uname -sr)"
	echo "virtualization: $( (systemd-detect-virt 2>/dev/null || lscpu 2>/dev/null | awk -F': *' '/Hypervisor vendor/{print $2}') | head -1)"
	echo "wrk: $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
}
env_tools_tail() { # nginx, go
	echo "nginx: $(nginx -v 2>&1 | sed 's/.*nginx\///')"
	echo "go: $(go version 2>/dev/null | awk '{print $3}' || echo n/a)"
}
env_source() { # env_source NAME BINARY PATH...: source revision, local changes, binary hash
	local name=$1 bin=$2 under p
	shift 2
	under=""
	for p in "$@"; do
		if [[ $p == *.* ]]; then under+=" $p"; else under+=" $p/"; fi
	done
	echo "$name: source $(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo '(no git)')" \
		"($(cd "$ROOT" && git status --porcelain -- "$@" 2>/dev/null | wc -l) files changed or untracked under${under})," \
		"binary sha256 $(sha256sum "$bin" | cut -c1-12)"
}

# ---- CPU sampling ------------------------------------------------------------------
cpu_ticks() { # cpu_ticks N -> "busy steal total" jiffies of cpuN
	awk -v c="cpu$1" '$1==c{b=$2+$3+$4+$7+$8; t=0; for(i=2;i<=9;i++)t+=$i; print b, $9, t}' /proc/stat
}
cpu_user_sys() { # cpu_user_sys N -> user+nice+system jiffies of cpuN (no irq/softirq)
	awk -v c="cpu$1" '$1==c{print $2+$3+$4}' /proc/stat
}
proc_ticks() { # proc_ticks PID... -> summed utime+stime jiffies
	local pid sum=0 v
	for pid in "$@"; do
		v=$(awk '{print $14+$15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
		sum=$((sum + v))
	done
	echo "$sum"
}
pct() { awk -v n="$1" -v d="$2" 'BEGIN{v=(d>0)?100*n/d:0; if(v<0)v=0; printf "%.0f", v}'; }

# ---- report helpers -------------------------------------------------------------------
median() { sort -g | awk '{a[NR]=$1} END{if(NR==0){print "nan"; exit} if(NR%2)print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
min_max() { sort -g | awk 'NR==1{lo=$1} {hi=$1} END{printf "%.0f–%.0f", lo, hi}'; } # values on stdin -> "min–max"
# quiet_rounds -> QUIET (space-separated round numbers), NQUIET. A round is
# disturbed when, during any of its runs, something other than our processes
# used more than DISTURB_PCT of either CPU (results.tsv columns 10 and 11).
quiet_rounds() {
	QUIET=$(awk -F'\t' -v lim="$DISTURB_PCT" 'NR>1{r[$1]=1; if($10>lim||$11>lim)bad[$1]=1} END{for(k in r)if(!(k in bad))print k}' "$OUT_DIR/results.tsv" | sort -n | tr '\n' ' ')
	# shellcheck disable=SC2034 # used by the sourcing script
	NQUIET=$(wc -w <<<"$QUIET")
}
