package server

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// apiDoc is the API reference this package must agree with.
const apiDoc = "../../docs/api.md"

// endpointHeading matches an endpoint's heading in docs/api.md, e.g.
// "### 2.5 POST /v1/login" (the section number is optional).
var endpointHeading = regexp.MustCompile(`^###\s+(?:\d+(?:\.\d+)*\s+)?(GET|HEAD|POST|PUT|PATCH|DELETE)\s+(/\S*)\s*$`)

func readAPIDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(apiDoc)
	if err != nil {
		t.Fatalf("read the API reference: %v", err)
	}
	return string(b)
}

// docEndpoints returns "METHOD PATTERN" for each endpoint heading, with
// the number of headings naming it.
func docEndpoints(doc string) map[string]int {
	out := map[string]int{}
	for line := range strings.SplitSeq(doc, "\n") {
		if m := endpointHeading.FindStringSubmatch(line); m != nil {
			out[m[1]+" "+m[2]]++
		}
	}
	return out
}

// TestAPIDocEndpoints fails when a route the server serves has no heading
// in docs/api.md, or a heading names a route the server does not serve.
func TestAPIDocEndpoints(t *testing.T) {
	documented := docEndpoints(readAPIDoc(t))
	if len(documented) == 0 {
		t.Fatalf("%s has no endpoint headings like %q", apiDoc, "### 2.5 POST /v1/login")
	}

	// A draining server answers 503 before any handler runs, but the mux
	// still resolves each request's pattern into the metrics: so this
	// checks the real handler tree, and needs no store.
	s := &Server{metrics: newMetrics(), log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now}
	s.draining.Store(true)
	h := s.routes()

	served := map[string]bool{}
	for _, e := range s.endpoints() {
		key := e.method + " " + e.pattern
		served[key] = true
		if documented[key] == 0 {
			t.Errorf("the server serves %q but %s has no heading %q", key, apiDoc, "### N.N "+key)
		}
	}
	wildcard := regexp.MustCompile(`\{[a-z]+\}`)
	var keys []string
	for key := range documented {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		if n := documented[key]; n > 1 {
			t.Errorf("%s has %d headings for %q, want one", apiDoc, n, key)
		}
		if !served[key] {
			t.Errorf("%s documents %q but the server has no such route", apiDoc, key)
			continue
		}
		method, pattern, _ := strings.Cut(key, " ")
		path := wildcard.ReplaceAllString(pattern, "abs2csd61g9d528rbpagxt416r")
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, path, nil))
		s.metrics.mu.Lock()
		n := s.metrics.requests[reqKey{route: key, method: method, code: http.StatusServiceUnavailable}]
		s.metrics.mu.Unlock()
		if n != 1 {
			t.Errorf("%s %s does not reach the route %q", method, path, key)
		}
	}
}

// stringConsts returns the string constants of a Go file whose names
// start with prefix, by name.
func stringConsts(t *testing.T, file, prefix string) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatalf("parse %s: %v", file, err)
	}
	out := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, prefix) || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatalf("%s: %s: %v", file, name.Name, err)
				}
				out[name.Name] = v
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s has no string constants named %s*", file, prefix)
	}
	return out
}

// TestAPIDocValues fails when docs/api.md has no table row for an error
// code (api.Code*), a log-append rule (api.Rule*), a login-history reason
// or a metric the server exports.
func TestAPIDocValues(t *testing.T) {
	doc := readAPIDoc(t)
	// A table row naming v in its first cell, perhaps indented (a table
	// inside a list item).
	row := func(v string) bool {
		return regexp.MustCompile("(?m)^[ \t]*\\| `" + regexp.QuoteMeta(v) + "` \\|").MatchString(doc)
	}

	for _, c := range []struct{ file, prefix string }{
		{"../api/api.go", "Code"},
		{"../api/api.go", "Rule"},
		{"accounts.go", "reason"},
	} {
		for name, v := range stringConsts(t, c.file, c.prefix) {
			if !row(v) {
				t.Errorf("%s has no table row for %s = %q (a line starting \"| `%s` |\")", apiDoc, name, v, v)
			}
		}
	}

	m := newMetrics()
	m.observe("GET /healthz", http.MethodGet, http.StatusOK, time.Millisecond)
	var buf bytes.Buffer
	m.write(&buf)
	names := 0
	for line := range strings.SplitSeq(buf.String(), "\n") {
		rest, ok := strings.CutPrefix(line, "# TYPE ")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rest, " ")
		names++
		if !row(name) {
			t.Errorf("%s has no table row for the metric %q", apiDoc, name)
		}
	}
	if names == 0 {
		t.Fatal("the metrics exposition has no # TYPE lines")
	}
}
