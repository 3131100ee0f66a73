package wireguard

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzParseWGQuick checks that whatever parses validates, exports to text
// that parses back to the same profile, and that the export is a fixed
// point (parse -> export is byte-identical on canonical input).
func FuzzParseWGQuick(f *testing.F) {
	f.Add([]byte(wantConf))
	f.Add([]byte("[Interface]\nPrivateKey = AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\nAddress = 10.0.0.1, fd00::1\n"))
	f.Add([]byte("[interface]\r\nprivatekey=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8= # c\r\n[Peer]\nPublicKey = AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nEndpoint = [2001:DB8:0::1]:0443\nAllowedIPs = ::1/0\nPersistentKeepalive = off\n"))
	f.Add([]byte("[Interface]\nPostUp = x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseWGQuick(data)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("parsed profile does not validate: %v", err)
		}
		out, err := ExportWGQuick(p)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := ParseWGQuick(out)
		if err != nil {
			t.Fatalf("export does not parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(p, p2) {
			t.Fatalf("export/parse changed the profile:\n%s", out)
		}
		out2, _ := ExportWGQuick(p2)
		if !bytes.Equal(out, out2) {
			t.Fatalf("export not canonical:\n%s\n---\n%s", out, out2)
		}
		j, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var p3 Profile
		if err := json.Unmarshal(j, &p3); err != nil || !reflect.DeepEqual(p, p3) {
			t.Fatalf("JSON round trip: %v", err)
		}
	})
}

// FuzzUnmarshalJSON checks that the stored encoding is canonical.
func FuzzUnmarshalJSON(f *testing.F) {
	f.Add([]byte(wantJSON))
	f.Add([]byte(`{"v":1,"interface":{"private_key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","addresses":[],"dns":[],"listen_port":0,"mtu":0},"peers":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var p Profile
		if err := json.Unmarshal(data, &p); err != nil {
			return
		}
		out, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, data); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, compact.Bytes()) {
			t.Fatalf("not canonical:\n in  %s\n out %s", compact.Bytes(), out)
		}
	})
}
