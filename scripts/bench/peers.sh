#!/usr/bin/env bash
# peers.sh — the cli.sh measurements for safe's peers: keepassxc-cli, pass
# and gopass, on stores with the same entries (scripts/bench/gen-items.sh).
#
# Usage: scripts/bench/peers.sh [OUTDIR]       (default OUTDIR: ./bench-out)
#
# Install the peers first (Debian 12):
#   apt-get update && apt-get install -y hyperfine keepassxc pass jq time
# gopass: GOPASS=/path/to/gopass, else `gopass` on PATH, else this script
# builds github.com/gopasspw/gopass@$GOPASS_VERSION into a temporary GOBIN
# (never into safe's go.mod; Debian's gopass 1.5 is from 2017).
#
# Environment:
#   N        entries per store         (default 10000)
#   RUNS     hyperfine runs            (default 30)
#   WARMUP   hyperfine warm-up runs    (default 3)
#   GOPASS_VERSION                     (default v1.15.15)
#   KEEP=1   keep the temporary stores
#
# pass and gopass share one password store: every entry is its own
# gpg-encrypted file, made here with one `gpg --multifile --encrypt` to a
# passphrase-less test key in a temporary GNUPGHOME. keepassxc-cli gets a
# KDBX imported from KeePass XML with the smallest decryption time it allows
# (-t 100, AES-KDF tuned to 100 ms on this machine); show on a one-entry
# database with the same setting measures start-up + KDF, so that the rest
# (the part that grows with the database) can be told apart.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mkdir -p "${1:-bench-out}" && cd "${1:-bench-out}" && pwd)
n=${N:-10000}
runs=${RUNS:-30}
warmup=${WARMUP:-3}
gen="$repo/scripts/bench/gen-items.sh"

for tool in hyperfine jq gpg pass keepassxc-cli /usr/bin/time; do
	command -v "$tool" >/dev/null || { echo "peers.sh: $tool is missing" >&2; exit 1; }
done

work=$(mktemp -d /tmp/safe-peers.XXXXXX)
export GNUPGHOME=$work/gnupg
cleanup() {
	gpgconf --kill gpg-agent >/dev/null 2>&1 || true
	if [[ ${KEEP:-} == 1 ]]; then
		echo "peers.sh: stores kept in $work" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT

gopass=${GOPASS:-$(command -v gopass || true)}
if [[ -z $gopass ]]; then
	# `go install gopass@version` needs the proxy's version list, which may
	# be unavailable; a throwaway module that requires it works either way.
	v=${GOPASS_VERSION:-v1.15.15}
	mkdir -p "$work/gopass-build"
	(
		cd "$work/gopass-build"
		printf 'module benchgopass\n\ngo 1.24\n\nrequire github.com/gopasspw/gopass %s\n' "$v" >go.mod
		printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/gopasspw/gopass"\n' >tools.go
		go mod tidy >/dev/null 2>&1
		GOFLAGS=-mod=mod go build -o "$work/gopass" github.com/gopasspw/gopass
	)
	gopass=$work/gopass
fi

load() { cut -d' ' -f1-3 /proc/loadavg; }
{
	echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "entries:  $n"
	echo "pass:     $(dpkg-query -W -f '${Version}' pass 2>/dev/null || pass version | grep -o 'v[0-9.]*')"
	echo "gopass:   $("$gopass" --version 2>/dev/null | head -1)"
	echo "keepassxc-cli: $(keepassxc-cli --version)"
	echo "gpg:      $(gpg --version | head -1)"
	echo "load at start: $(load)"
} | tee "$out/peers-machine.txt"

# The test key: no passphrase, so gpg-agent never prompts.
mkdir -m 700 "$GNUPGHOME"
gpg --batch --pinentry-mode loopback --passphrase '' \
	--quick-gen-key 'Safehold Bench <bench@example.invalid>' future-default default never 2>/dev/null
fpr=$(gpg --list-keys --with-colons | awk -F: '/^fpr/ {print $10; exit}')

# The entry every "get" reads: one of the generator's Github titles.
idx=4242
((n > idx)) || idx=42
name="Github-$idx"  # pass and gopass
kname="Github $idx" # keepassxc

# pass/gopass store: "Github-4242" holds the password, then username and URL
# lines (pass's convention).
t0=$(date +%s.%N)
export PASSWORD_STORE_DIR=$work/pass
pass init "$fpr" >/dev/null
mkdir -p "$work/plain"
"$gen" 0 "$n" tsv | awk -F'\t' -v d="$work/plain" '{
	f = $1; gsub(/ /, "-", f)
	printf "%s\nusername: %s\nurl: %s\n", $3, $2, $4 > (d "/" f); close(d "/" f) }'
(cd "$work/plain" && find . -type f -printf '%f\n' | xargs gpg --batch --yes --trust-model always -r "$fpr" --multifile --encrypt)
mv "$work"/plain/*.gpg "$PASSWORD_STORE_DIR"/ 2>/dev/null || find "$work/plain" -name '*.gpg' -exec mv -t "$PASSWORD_STORE_DIR" {} +
rm -rf "$work/plain"
t1=$(date +%s.%N)
printf 'pass store: %d entries in %.1f s\n' "$(find "$PASSWORD_STORE_DIR" -name '*.gpg' | wc -l)" "$(echo "$t1 - $t0" | bc)" | tee "$out/peers-populate.txt"

# gopass: its own config, the fs storage backend (no git), a copy of the store.
export GOPASS_HOMEDIR=$work/gopass-home GOPASS_NO_NOTIFY=true GOPASS_NO_REMINDER=true
mkdir -p "$work/gopass-store"
"$gopass" --yes init --crypto gpgcli --storage fs --path "$work/gopass-store" "$fpr" </dev/null >/dev/null 2>&1
cp "$PASSWORD_STORE_DIR"/*.gpg "$work/gopass-store"/ 2>/dev/null ||
	find "$PASSWORD_STORE_DIR" -name '*.gpg' -exec cp -t "$work/gopass-store" {} +

# keepassxc: KeePass 2 XML → KDBX, password on stdin.
kpw=$work/kp.pw
printf 'bench-password\n' >"$kpw"
"$gen" 0 "$n" tsv | awk -F'\t' '
BEGIN {
	print "<?xml version=\"1.0\" encoding=\"utf-8\" standalone=\"yes\"?>"
	print "<KeePassFile><Meta><Generator>safehold-bench</Generator><DatabaseName>bench</DatabaseName></Meta><Root><Group><UUID>RRRRRRRRRRRRRRRRRRRRRA==</UUID><Name>Root</Name>"
}
{ printf "<Entry><UUID>%020dAA==</UUID><String><Key>Title</Key><Value>%s</Value></String><String><Key>UserName</Key><Value>%s</Value></String><String><Key>Password</Key><Value ProtectInMemory=\"True\">%s</Value></String><String><Key>URL</Key><Value>%s</Value></String></Entry>\n", NR, $1, $2, $3, $4 }
END { print "</Group></Root></KeePassFile>" }' >"$work/kp.xml"
head -3 "$work/kp.xml" | sed 's/<Entry>.*//' >"$work/kp1.xml"
"$gen" "$idx" 1 tsv | awk -F'\t' '{ printf "<Entry><UUID>%020dAA==</UUID><String><Key>Title</Key><Value>%s</Value></String><String><Key>Password</Key><Value>%s</Value></String></Entry>\n", 1, $1, $3 }' >>"$work/kp1.xml"
echo "</Group></Root></KeePassFile>" >>"$work/kp1.xml"
printf 'bench-password\nbench-password\n' | keepassxc-cli import -q -p -t 100 "$work/kp.xml" "$work/kp.kdbx"
printf 'bench-password\nbench-password\n' | keepassxc-cli import -q -p -t 100 "$work/kp1.xml" "$work/kp1.kdbx"
keepassxc-cli db-info -q "$work/kp.kdbx" <"$kpw" | grep -E 'KDF|Cipher|entries:' | sed 's/^/keepassxc 10k: /' | tee -a "$out/peers-populate.txt"
keepassxc-cli db-info -q "$work/kp1.kdbx" <"$kpw" | grep -E 'KDF|entries:' | sed 's/^/keepassxc 1-entry: /' | tee -a "$out/peers-populate.txt"

: >"$out/peers-load.txt"
bench() {
	local name=$1
	shift
	echo "== $name, load $(load)"
	echo "$name $(load)" >>"$out/peers-load.txt"
	hyperfine --warmup "$warmup" --runs "$runs" \
		--export-markdown "$out/peer-$name.md" --export-json "$out/peer-$name.json" "$@"
}

echo x >"$work/add-secret"

bench pass-get -N "pass show $name"
bench gopass-get -N "$gopass show -o $name"
bench keepassxc-get "keepassxc-cli show -q -a Password $work/kp.kdbx '$kname' < $kpw"
bench keepassxc-get-1entry "keepassxc-cli show -q -a Password $work/kp1.kdbx '$kname' < $kpw"
bench keepassxc-version -N "keepassxc-cli --version"
bench pass-find -N "pass find github"
bench gopass-find -N "$gopass find github"
bench keepassxc-find "keepassxc-cli search -q $work/kp.kdbx github < $kpw"
bench pass-ls -N "pass ls"
bench gopass-ls -N "$gopass ls --flat"
bench keepassxc-ls "keepassxc-cli ls -q -R -f $work/kp.kdbx < $kpw"
bench pass-add "pass insert -f -e bench-add < $work/add-secret"
bench gopass-add "$gopass insert -f bench-add < $work/add-secret"
bench keepassxc-add -S bash "keepassxc-cli add -q -u u -g $work/kp.kdbx bench-add-\$RANDOM\$RANDOM < $kpw"

: >"$out/peers-rss.txt"
rss() {
	local label=$1
	shift
	for _ in 1 2 3 4 5; do
		/usr/bin/time -f '%M' -o "$work/rss" sh -c "$*" >/dev/null 2>&1
		cat "$work/rss"
	done | sort -n | tail -1 | xargs printf '%s max-rss-kib=%s\n' "$label" >>"$out/peers-rss.txt"
}
rss pass-get "pass show $name"
rss gopass-get "$gopass show -o $name"
rss keepassxc-get "keepassxc-cli show -q -a Password $work/kp.kdbx '$kname' < $kpw"
cat "$out/peers-rss.txt"

{
	echo "| bench | entries | mean ms | median ms | min ms | max ms | σ ms | CPU ms (user+sys) | load before (1/5/15 min) |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
	while read -r bname l1 l5 l15; do
		entries=$n
		[[ $bname == *1entry ]] && entries=1
		[[ $bname == *version ]] && entries=0
		jq -r --arg name "$bname" --arg n "$entries" --arg load "$l1 $l5 $l15" \
			'.results[0] | "| \($name) | \($n) | \(.mean*1000|floor) | \(.median*1000|floor) | \(.min*1000|floor) | \(.max*1000|floor) | \(.stddev*1000|floor) | \((.user+.system)*1000|floor) | \($load) |"' \
			"$out/peer-$bname.json"
	done <"$out/peers-load.txt"
} >"$out/peers-summary.md"
cat "$out/peers-summary.md"
