#!/bin/sh
# gen-items.sh FIRST COUNT [FORMAT]
#
# Prints COUNT deterministic benchmark login entries numbered FIRST..FIRST+COUNT-1.
# FORMAT is "safe" (default: one JSON array for `safe add --json`) or "tsv"
# (name<TAB>username<TAB>password<TAB>url per line, for the peer loaders).
# Titles are "<Service> <n>" with 40 services, capitalised as people type
# them, so `find github` hits 1/40 of the entries and "github 4242"
# (n = 4242, 4242 mod 40 = 2 -> Github) names one.
set -eu
first=${1:?first index}
count=${2:?count}
format=${3:-safe}
awk -v first="$first" -v count="$count" -v format="$format" 'BEGIN {
	split("amazon apple github gitlab google microsoft netflix paypal reddit slack spotify twitter " \
	      "dropbox linkedin facebook instagram ebay yahoo zoom adobe atlassian bitbucket docker " \
	      "heroku digitalocean cloudflare fastly stripe twilio sendgrid mailchimp shopify wordpress " \
	      "medium quora stackoverflow steam discord twitch protonmail", svc, " ")
	nsvc = 40
	alnum = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
	srand(first + 7)
	if (format == "safe") printf "["
	for (i = first; i < first + count; i++) {
		s = svc[(i % nsvc) + 1]
		t = toupper(substr(s, 1, 1)) substr(s, 2)
		pw = ""
		for (k = 0; k < 20; k++) pw = pw substr(alnum, int(rand() * length(alnum)) + 1, 1)
		user = sprintf("user%d@example.com", i)
		url = sprintf("https://%s.example.com/login/%d", s, i)
		if (format == "tsv") {
			printf "%s %d\t%s\t%s\t%s\n", t, i, user, pw, url
			continue
		}
		if (i > first) printf ","
		printf "{\"type\":\"login\",\"title\":\"%s %d\",\"username\":\"%s\",\"password\":\"%s\",\"urls\":[\"%s\"],\"tags\":[\"bench\",\"t%d\"],\"folder\":\"Bench/F%d\",\"notes\":\"benchmark entry %d\"}\n", t, i, user, pw, url, i % 10, i % 20, i
	}
	if (format == "safe") printf "]\n"
}'
