#!/usr/bin/env bash
# The regression gate's error rates on this machine (docs/gate.md): RUNS
# rounds, each running the gate of SPEC three times against bin/meshproxy
# as the base, in turn with
#   same     an identical copy of it            (a verdict other than ok is a false alarm)
#   cpu      CPU_SPIN of busy-waiting per forwarded request and proxy, after the response
#   latency  LATENCY of busy-waiting per forwarded request and proxy, before forwarding
# (both built by internal/inject: go build -overlay, no hook in the proxy).
# The kinds are interleaved round by round, so that the machine's drift
# spreads over all three alike. Tallies go to OUT/tally.tsv, a summary to
# OUT/summary.txt, each gate's files to OUT/KIND/ROUND and its run (about
# 10 MB) to OUT/runs/KIND/ROUND, where `meshbench gate --baseline OTHER.yaml
# RUN` judges it again with other thresholds without measuring anew.
#
#   bash scripts/gate-rates.sh RUNS SPEC OUT
set -euo pipefail

runs=${1:?usage: gate-rates.sh RUNS SPEC OUT}
spec=${2:?usage: gate-rates.sh RUNS SPEC OUT}
out=${3:?usage: gate-rates.sh RUNS SPEC OUT}
cpu_spin=${CPU_SPIN:-45us}
latency=${LATENCY:-50us}
kinds=${KINDS:-same cpu latency}

mkdir -p "$out/bin"
base="$out/bin/meshproxy-base"
cp bin/meshproxy "$base"
cp bin/meshproxy "$out/bin/meshproxy-same"
go run ./internal/inject/cmd/inject -kind cpu -amount "$cpu_spin" -out "$out/bin/meshproxy-cpu"
go run ./internal/inject/cmd/inject -kind latency -amount "$latency" -out "$out/bin/meshproxy-latency"

tally="$out/tally.tsv"
[ -f "$tally" ] || printf 'round\tkind\texit\tverdict\tseconds\n' > "$tally"
for i in $(seq 1 "$runs"); do
	for kind in $kinds; do
		report="$out/$kind/$i"
		mkdir -p "$report"
		start=$(date +%s)
		code=0
		bin/meshbench gate --baseline "$spec" --base-proxy "$base" --candidate-proxy "$out/bin/meshproxy-$kind" \
			--out "$out/runs/$kind/$i" --report "$report" >/dev/null 2>"$report/gate.log" || code=$?
		took=$(( $(date +%s) - start ))
		verdict=$(sed -n 's/^gate: \([A-Z]*\).*/\1/p' "$report/gate.log" | tail -1)
		printf '%s\t%s\t%s\t%s\t%s\n' "$i" "$kind" "$code" "${verdict:-none}" "$took" >> "$tally"
		echo "round $i/$runs $kind: exit $code ${verdict:-} in ${took}s"
	done
done

awk -F'\t' 'NR > 1 {
	n[$2]++; s[$2] += $5
	if ($3 == 0) ok[$2]++; else if ($3 == 1) reg[$2]++; else if ($3 == 3) inc[$2]++; else bad[$2]++
} END {
	for (k in n) printf "%-8s runs %3d  ok %3d  regression %3d  inconclusive %3d  other %3d  mean wall time %.0f s\n",
		k, n[k], ok[k], reg[k], inc[k], bad[k], s[k] / n[k]
}' "$tally" | sort | tee "$out/summary.txt"
