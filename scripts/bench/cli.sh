#!/usr/bin/env bash
# cli.sh — whole-process timings of the safe command line, as a user runs it.
#
# Usage: scripts/bench/cli.sh [OUTDIR]        (default OUTDIR: ./bench-out)
#
# Builds safe, creates vaults of SIZES items (default 1000 10000 100000) with
# `safe add --json` bulk arrays under a temporary SAFE_HOME, with the test
# KDF profile (SAFE_INSECURE_TEST_KDF=1) so that the KDF does not hide the
# rest, and runs hyperfine for every command the targets name. Results:
# OUTDIR/<bench>-<size>.md and .json (hyperfine exports), OUTDIR/rss.txt,
# OUTDIR/machine.txt and OUTDIR/summary.md (one table of everything).
#
# Environment:
#   SIZES   vault sizes                         (default "1000 10000 100000")
#   RUNS    hyperfine runs per command          (default 30)
#   WARMUP  hyperfine warm-up runs              (default 3)
#   SAFE    use this binary instead of building one
#   KEEP=1  keep the temporary vaults (their path is printed)
#
# Needs: go, hyperfine, jq, /usr/bin/time (Debian: apt-get install hyperfine
# jq time). The machine is shared: load averages are recorded next to every
# measurement; rerun when they are high.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mkdir -p "${1:-bench-out}" && cd "${1:-bench-out}" && pwd)
sizes=${SIZES:-"1000 10000 100000"}
runs=${RUNS:-30}
warmup=${WARMUP:-3}
gen="$repo/scripts/bench/gen-items.sh"

for tool in hyperfine jq /usr/bin/time; do
	command -v "$tool" >/dev/null || { echo "cli.sh: $tool is missing" >&2; exit 1; }
done

work=$(mktemp -d /tmp/safe-bench.XXXXXX)
homes=()
cleanup() {
	for h in "${homes[@]}"; do
		SAFE_HOME=$h "$safe" agent stop >/dev/null 2>&1 || true
	done
	if [[ ${KEEP:-} == 1 ]]; then
		echo "cli.sh: vaults kept in $work" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT

safe=${SAFE:-$work/safe}
if [[ -z ${SAFE:-} ]]; then
	(cd "$repo" && go build -o "$safe" ./cmd/safe)
fi
export SAFE_INSECURE_TEST_KDF=1
pwfile=$work/password
printf 'correct horse battery staple\n' >"$pwfile"

load() { cut -d' ' -f1-3 /proc/loadavg; }

{
	echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "nproc:    $(nproc)"
	echo "cpu:      $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "memory:   $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "kernel:   $(uname -r)"
	echo "go:       $(go version 2>/dev/null || echo n/a)"
	echo "safe:     $("$safe" version 2>/dev/null)"
	echo "commit:   $(cd "$repo" && git rev-parse --short HEAD 2>/dev/null)$(cd "$repo" && git diff --quiet HEAD 2>/dev/null || echo ' (working tree modified)')"
	echo "hyperfine: $(hyperfine --version)"
	echo "load at start: $(load)"
} >"$out/machine.txt"
cat "$out/machine.txt"

# populate HOME N: a fresh vault with N items, added 5,000 per `safe add --json`.
populate() {
	local home=$1 n=$2 first=0 chunk=5000 t0 t1
	mkdir -p "$home"
	homes+=("$home")
	t0=$(date +%s.%N)
	SAFE_HOME=$home "$safe" init --password-file "$pwfile" --json >/dev/null 2>&1
	while ((first < n)); do
		local c=$((n - first < chunk ? n - first : chunk))
		"$gen" "$first" "$c" | SAFE_HOME=$home "$safe" add --json >/dev/null 2>"$work/add.err" ||
			{ cat "$work/add.err" >&2; exit 1; }
		first=$((first + c))
	done
	t1=$(date +%s.%N)
	printf '%s items: populated in %.1f s, vault file %s\n' "$n" "$(echo "$t1 - $t0" | bc)" \
		"$(du -sh "$home" | cut -f1)" | tee -a "$out/populate.txt"
}

# agentcpu N: the CPU time (user+system, ms) the agent of vault N has used.
agentcpu() {
	local pid
	pid=$(SAFE_HOME=$work/h$1 "$safe" --json status 2>/dev/null | jq -r '.pid // empty') || true
	if [[ -z $pid || ! -r /proc/$pid/stat ]]; then
		echo 0
		return
	fi
	awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) * 1000 / hz}' "/proc/$pid/stat"
}

# bench NAME N [hyperfine args...]: one hyperfine run, exported, with the
# agent's CPU time per run (it is not in hyperfine's user/system columns,
# which count only the client process; --prepare commands are included).
bench() {
	local name=$1 n=$2 c0 c1
	shift 2
	echo "== $name ($n items), load $(load)"
	c0=$(agentcpu "$n")
	SAFE_HOME=$work/h$n hyperfine --warmup "$warmup" --runs "$runs" \
		--export-markdown "$out/$name-$n.md" --export-json "$out/$name-$n.json" "$@" 2>&1 |
		grep -v '^WARNING: this vault uses'
	c1=$(agentcpu "$n")
	echo "$name $n $(echo "scale=1; ($c1 - $c0) / ($runs + $warmup)" | bc) $(load)" >>"$out/load.txt"
}

: >"$out/populate.txt"
: >"$out/load.txt"
: >"$out/rss.txt"
for n in $sizes; do
	populate "$work/h$n" "$n"
done

# The floor: starting the binary and printing its version (no agent).
bench version 0 -N "$safe version"

for n in $sizes; do
	home=$work/h$n
	name="github 4242" # one item; the generator's n=4242 is a github title
	((n > 4242)) || name="github 42"
	export SAFE_HOME=$home
	# The agent's memory right after unlock: a fresh agent (the one that
	# populated the vault has the bulk adds' garbage), unlocked, nothing else.
	"$safe" agent stop >/dev/null 2>&1 || true
	"$safe" unlock --password-file "$pwfile" >/dev/null 2>&1
	pid=$("$safe" --json status 2>/dev/null | jq -r .pid)
	grep -E 'VmRSS|VmHWM|RssAnon|RssFile' "/proc/$pid/status" | tr -s ' \t' ' ' |
		sed "s/^/items=$n agent after fresh unlock: /" >>"$out/rss.txt"
	bench get "$n" -N "$safe get '$name'"
	bench get-reveal "$n" -N "$safe get '$name' --field password --reveal"
	bench find "$n" -N "$safe find github"
	bench ls "$n" -N "$safe ls"
	bench add "$n" -N "$safe add login --title bench-add --username u --generate"
	# Unlock alone (the agent is running but locked), then the issue's
	# compound command through a shell.
	bench unlock "$n" --prepare "$safe lock" "$safe unlock --password-file $pwfile"
	bench lock-unlock-get "$n" "$safe lock && $safe unlock --password-file $pwfile && $safe get '$name' --field password --reveal"
	# Peak RSS of the client process, five runs; the agent's separately.
	for _ in 1 2 3 4 5; do
		/usr/bin/time -f '%M' -o "$work/rss" "$safe" get "$name" >/dev/null 2>&1
		cat "$work/rss"
	done | sort -n | tail -1 | xargs printf 'items=%s safe-get max-rss-kib=%s\n' "$n" >>"$out/rss.txt"
	/usr/bin/time -v "$safe" get "$name" 2>&1 >/dev/null | grep -E 'Maximum resident|Elapsed' |
		sed "s/^/items=$n safe-get time -v: /" >>"$out/rss.txt"
	pid=$("$safe" --json status 2>/dev/null | jq -r .pid)
	grep -E 'VmRSS|VmHWM|RssAnon|RssFile' "/proc/$pid/status" | tr -s ' \t' ' ' |
		sed "s/^/items=$n agent after the series: /" >>"$out/rss.txt"
	unset SAFE_HOME
done
cat "$out/rss.txt"

# One table of everything: median and min are less sensitive to other
# processes on the machine than the mean.
{
	echo "| bench | items | mean ms | median ms | min ms | max ms | σ ms | client CPU ms (user+sys) | agent CPU ms | load after (1/5/15 min) |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
	while read -r name n acpu l1 l5 l15; do
		jq -r --arg name "$name" --arg n "$n" --arg acpu "$acpu" --arg load "$l1 $l5 $l15" \
			'.results[0] | "| \($name) | \($n) | \(.mean*1000|floor) | \(.median*1000|floor) | \(.min*1000|floor) | \(.max*1000|floor) | \(.stddev*1000|floor) | \((.user+.system)*1000|floor) | \($acpu) | \($load) |"' \
			"$out/$name-$n.json"
	done <"$out/load.txt"
} >"$out/summary.md"
cat "$out/summary.md"
