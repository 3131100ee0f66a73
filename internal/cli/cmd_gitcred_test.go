package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseGitCred(t *testing.T) {
	in := "capability[]=authtype\nprotocol=https\nhost=git.example.com:8443\npath=org/repo.git\n" +
		"username=ann\npassword=p=w d\nwwwauth[]=Basic realm=\"x\"\n\nprotocol=ignored-after-blank\n"
	got, err := parseGitCred(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := gitCred{Protocol: "https", Host: "git.example.com:8443", Path: "org/repo.git", Username: "ann", Password: "p=w d"}
	if got != want {
		t.Fatalf("%+v", got)
	}
	// url= sets the parts it holds; later lines win.
	got, err = parseGitCred(strings.NewReader("username=x\nurl=http://bob:pw@h:80/a/b\nhost=h2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (gitCred{Protocol: "http", Host: "h2", Path: "a/b", Username: "bob", Password: "pw"}); got != want {
		t.Fatalf("url: %+v", got)
	}
	if got.credURL() != "http://h2/a/b" {
		t.Fatalf("credURL %q", got.credURL())
	}
	for _, tc := range []struct{ in, msg string }{
		{"protocol=https\nnot a pair\n", "line 2 is not key=value"},
		{"=x\n", "line 1 is not key=value"},
		{"host=a\x00b\n", "NUL"},
		{"url=no-scheme\n", "url is not"},
		{"host=" + strings.Repeat("a", maxCredLine) + "\n", "longer than"},
		{strings.Repeat("k=v\n", maxCredLines+1), "more than 1024 lines"},
	} {
		_, err := parseGitCred(strings.NewReader(tc.in))
		if !errors.Is(err, errCredSyntax) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%.30q: %v, want %q", tc.in, err, tc.msg)
		}
	}
}

func TestWriteGitCred(t *testing.T) {
	var b bytes.Buffer
	if err := writeGitCred(&b, "ann", "p=w"); err != nil || b.String() != "username=ann\npassword=p=w\n" {
		t.Fatalf("%q, %v", b.String(), err)
	}
	b.Reset()
	if err := writeGitCred(&b, "", "pw"); err != nil || b.String() != "password=pw\n" {
		t.Fatalf("%q, %v", b.String(), err)
	}
	b.Reset()
	if err := writeGitCred(&b, "ann", "two\nlines"); err == nil || b.Len() != 0 {
		t.Fatalf("a line break went through: %q", b.String())
	}
}

func TestMatchScore(t *testing.T) {
	req := gitCred{Protocol: "https", Host: "git.example.com"}
	reqPath := gitCred{Protocol: "https", Host: "git.example.com", Path: "org/repo.git"}
	for _, tc := range []struct {
		url  string
		req  gitCred
		want int // -1 no, 0 fits, 1 host-wide, 2 parent path, 3 exact path
	}{
		{"https://git.example.com", req, 1},
		{"https://GIT.example.com:443/", req, 1},
		{"git.example.com", req, 1},
		{"https://git.example.com/org/repo", req, 0},
		{"http://git.example.com", req, -1},
		{"https://git.example.com:8443", req, -1},
		{"https://example.com", req, -1},
		{"https://git.example.com.evil.net", req, -1},
		{"ssh://git.example.com", req, -1},
		{"https://git.example.com", reqPath, 1},
		{"https://git.example.com/org/repo.git", reqPath, 3},
		{"https://git.example.com/org/repo", reqPath, 3},
		{"https://git.example.com/org", reqPath, 2},
		{"https://git.example.com/or", reqPath, -1},
		{"https://git.example.com/other/repo.git", reqPath, -1},
		{"http://h:80", gitCred{Protocol: "http", Host: "h"}, 1},
		{"::bad", req, -1},
		{"https://git.example.com", gitCred{Host: "git.example.com"}, -1},
	} {
		got := matchScore(tc.url, tc.req)
		switch {
		case got >= exactPath:
			got = 3
		case got >= 2:
			got = 2
		}
		if got != tc.want {
			t.Errorf("%s for %+v: %d, want %d", tc.url, tc.req, got, tc.want)
		}
	}
}

// FuzzParseGitCred checks that the parser never panics and that what it
// reads writes back (as git would send it) to the same description.
func FuzzParseGitCred(f *testing.F) {
	f.Add([]byte("protocol=https\nhost=example.com\npath=a/b\nusername=u\npassword=p\n\n"))
	f.Add([]byte("url=https://u:p@example.com:8443/x\n"))
	f.Add([]byte("capability[]=authtype\nwwwauth[]=Basic\n"))
	f.Add([]byte("bad\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := parseGitCred(bytes.NewReader(in))
		if err != nil {
			return
		}
		var b bytes.Buffer
		for _, kv := range [][2]string{{"protocol", c.Protocol}, {"host", c.Host}, {"path", c.Path}, {"username", c.Username}, {"password", c.Password}} {
			if kv[1] != "" {
				b.WriteString(kv[0] + "=" + kv[1] + "\n")
			}
		}
		c2, err := parseGitCred(&b)
		if err != nil || c2 != c {
			t.Fatalf("%+v wrote back as %+v: %v", c, c2, err)
		}
	})
}
