package importer

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"testing"
)

// fuzzCheck fails when a parser returned both a result and an error, or
// produced an entry that item validation refuses.
func fuzzCheck(t *testing.T, res *Result, err error) {
	t.Helper()
	if err != nil {
		if res != nil {
			t.Fatalf("both a result and an error: %v", err)
		}
		return
	}
	checkValid(t, res)
}

func addFile(f *testing.F, name string) {
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
}

func FuzzBitwardenJSON(f *testing.F) {
	addFile(f, "bitwarden.json")
	addFile(f, "bitwarden_encrypted.json")
	f.Add([]byte(`{"encrypted":false,"items":[{"type":1,"name":"a\nb","login":{"uris":[{"uri":"http://x\u007f"}]},"fields":[{"name":"","type":3,"linkedId":7}]}]}`))
	f.Add([]byte(`{"items":[{"type":3,"name":"c","card":{"expMonth":"13","expYear":"x"}},{"type":4,"identity":{"x":"y"}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := BitwardenJSON(bytes.NewReader(data))
		fuzzCheck(t, res, err)
		if err == nil {
			// What was read writes back out and reads again.
			var buf bytes.Buffer
			if err := WriteBitwardenJSON(&buf, res.Entries); err != nil {
				t.Fatal(err)
			}
			again, err := BitwardenJSON(&buf)
			if err != nil {
				t.Fatal(err)
			}
			checkValid(t, again)
		}
	})
}

func FuzzBitwardenCSV(f *testing.F) {
	addFile(f, "bitwarden.csv")
	f.Add([]byte("type,name,login_uri,login_username,login_password,fields\nlogin,,\"a,b,\"\"c\",u,p,\": x\n\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := BitwardenCSV(bytes.NewReader(data))
		fuzzCheck(t, res, err)
	})
}

func FuzzChromeCSV(f *testing.F) {
	addFile(f, "chrome.csv")
	f.Add([]byte("\ufeffname,url,username,password,extra\r\n,\x7f,u,p,e\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := ChromeCSV(bytes.NewReader(data))
		fuzzCheck(t, res, err)
	})
}

func FuzzFirefoxCSV(f *testing.F) {
	addFile(f, "firefox.csv")
	f.Add([]byte("url,username,password,timeCreated,timePasswordChanged\nhttps://a,u,p,-1,99999999999999999999\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := FirefoxCSV(bytes.NewReader(data))
		fuzzCheck(t, res, err)
	})
}

// FuzzOnePUX fuzzes export.data inside an otherwise good archive (where
// the JSON parser is reached) and, separately, whole archives.
func FuzzOnePUX(f *testing.F) {
	good := zipDir(f, "testdata/1pux", nil)
	data, err := os.ReadFile("testdata/1pux/export.data")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data, good)
	f.Add([]byte(`{"accounts":[{"vaults":[{"items":[{"categoryUuid":"002","details":{"sections":[{"fields":[{"id":"expiry","value":{"monthYear":-5}},{"value":{"date":1e30}},{"value":{"file":{"documentId":"nope"}}}]}]}}]}]}]}`), []byte("PK\x05\x06"))
	f.Fuzz(func(t *testing.T, exportData, archive []byte) {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		zr, err := zip.NewReader(bytes.NewReader(good), int64(len(good)))
		if err != nil {
			t.Fatal(err)
		}
		for _, zf := range zr.File {
			w, _ := zw.Create(zf.Name)
			if zf.Name == "export.data" {
				w.Write(exportData)
				continue
			}
			rc, _ := zf.Open()
			io.Copy(w, rc)
			rc.Close()
		}
		zw.Close()
		res, err := OnePUX(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		fuzzCheck(t, res, err)
		res, err = OnePUX(bytes.NewReader(archive), int64(len(archive)))
		fuzzCheck(t, res, err)
	})
}

// FuzzPassEntry fuzzes the parsing of one decrypted pass file.
func FuzzPassEntry(f *testing.F) {
	f.Add("dir/name", []byte("pw\nlogin: u\nurl: https://x\notpauth://totp/x?secret=A\nk: v\nfree\n"))
	f.Add("", []byte("\r\n---\r\n:\r\n \x00: x\r\n"))
	f.Fuzz(func(t *testing.T, rel string, data []byte) {
		var c collector
		c.add(passEntry(rel, data))
		checkValid(t, &c.res)
	})
}
