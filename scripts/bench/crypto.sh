#!/usr/bin/env bash
# crypto.sh — Argon2id against the C reference, and the cascade AEAD's
# throughput on one core, in one run.
#
# Usage: scripts/bench/crypto.sh [OUTDIR]      (default OUTDIR: ./bench-out)
#
# Needs go, hyperfine and the reference argon2 CLI (Debian: apt-get install
# argon2). Both sides hash "pw" with salt "somesalt", 64 MiB, t=2, 32-byte
# output, p=1 and p=2 (`argon2 ... -m 16` is 2^16 KiB). -r prints the raw
# hash only: without it the CLI hashes twice (it verifies what it printed),
# which would double its time. ROUNDS repeats the
# whole comparison (default 3) because other processes on a shared machine
# disturb single runs.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mkdir -p "${1:-bench-out}" && cd "${1:-bench-out}" && pwd)
rounds=${ROUNDS:-3}
load() { cut -d' ' -f1-3 /proc/loadavg; }

: >"$out/crypto.txt"
for r in $(seq "$rounds"); do
	{
		echo "## round $r, load $(load)"
		(cd "$repo" && go test -run '^$' -bench 'Argon2id' -benchtime 10x -count 1 ./internal/kdf/) | grep '^Benchmark'
		for p in 1 2; do
			hyperfine --warmup 1 --runs 10 --export-json "$out/argon2-c-p$p-r$r.json" \
				"printf pw | argon2 somesalt -id -t 2 -m 16 -p $p -l 32 -r" >/dev/null
			jq -r --arg p "$p" '.results[0] | "C argon2 m=64MiB,t=2,p=\($p): mean \(.mean*1000|floor) ms, median \(.median*1000|floor) ms, min \(.min*1000|floor) ms"' "$out/argon2-c-p$p-r$r.json"
		done
		# One core: the cascade is sequential per message anyway.
		(cd "$repo" && go test -run '^$' -bench '^Benchmark(Seal|Open)$/64KiB' -cpu 1 -count 3 ./internal/envelope/) | grep '^Benchmark'
	} | tee -a "$out/crypto.txt"
done
