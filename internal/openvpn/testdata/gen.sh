#!/bin/sh
# Regenerates client.ovpn: a realistic OpenVPN client profile with an inline
# CA, client certificate, client key and tls-crypt key, made with openssl.
# The keys are test keys for this fixture only. Run from this directory.
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
	-out ca.crt -days 3650 -subj /CN=Safehold-Test-CA 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout client.key \
	-out client.csr -subj /CN=alice 2>/dev/null
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
	-out client.crt 2>/dev/null
# An OpenVPN static key as openvpn --genkey writes it: 256 bytes in hex.
{
	echo '#'
	echo '# 2048 bit OpenVPN static key'
	echo '#'
	echo '-----BEGIN OpenVPN Static key V1-----'
	openssl rand -hex 256 | fold -w 32
	echo '-----END OpenVPN Static key V1-----'
} > ta.key
out=$OLDPWD/client.ovpn
{
	cat <<'END'
# Example Corp VPN: client profile
client
dev tun
proto udp
remote vpn.example.com 1194
remote vpn2.example.com 443 tcp
resolv-retry infinite
nobind
persist-key
persist-tun
remote-cert-tls server
cipher AES-256-GCM
auth-user-pass
verb 3
END
	echo '<ca>'; cat ca.crt; echo '</ca>'
	echo '<cert>'; cat client.crt; echo '</cert>'
	echo '<key>'; cat client.key; echo '</key>'
	echo '<tls-crypt>'; cat ta.key; echo '</tls-crypt>'
} > "$out"
