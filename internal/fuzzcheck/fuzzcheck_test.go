package fuzzcheck

import (
	"bytes"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const corpusHeader = "go test fuzz v1"

type target struct {
	name  string // FuzzXxx
	dir   string // package directory, relative to the module root
	pos   string // file:line of the declaration, relative to the module root
	arity int    // number of fuzzed values, or -1 if unknown
}

// TestEveryFuzzTargetHasSeedCorpus fails when a fuzz target has no committed
// seed corpus, or when a corpus file is not in the "go test fuzz v1" format
// or holds the wrong number of values.
func TestEveryFuzzTargetHasSeedCorpus(t *testing.T) {
	root := moduleRoot(t)
	targets := findTargets(t, root)
	if len(targets) == 0 {
		t.Fatalf("found no fuzz targets under %s; the walk is broken", root)
	}
	for _, tg := range targets {
		rel := filepath.ToSlash(filepath.Join(tg.dir, "testdata", "fuzz", tg.name))
		hint := "write it with scripts/fuzz-seeds, or copy inputs from $(go env GOCACHE)/fuzz"
		entries, err := os.ReadDir(filepath.Join(root, rel))
		if errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s (%s) has no seed corpus: want %s/ with at least one %q file; %s", tg.name, tg.pos, rel, corpusHeader, hint)
			continue
		}
		if err != nil {
			t.Errorf("%s (%s): %v", tg.name, tg.pos, err)
			continue
		}
		n := 0
		for _, e := range entries {
			if !e.Type().IsRegular() {
				continue
			}
			p := filepath.ToSlash(filepath.Join(rel, e.Name()))
			b, err := os.ReadFile(filepath.Join(root, p))
			if err != nil {
				t.Errorf("%s: %v", p, err)
				continue
			}
			vals, ok := parseCorpusFile(b)
			if !ok {
				t.Errorf("%s: corpus file for %s (%s) does not start with %q", p, tg.name, tg.pos, corpusHeader)
				continue
			}
			if tg.arity >= 0 && vals != tg.arity {
				t.Errorf("%s: corpus file holds %d value(s), %s (%s) fuzzes %d", p, vals, tg.name, tg.pos, tg.arity)
				continue
			}
			n++
		}
		if n == 0 {
			t.Errorf("%s (%s) has an empty seed corpus: want at least one %q file in %s/; %s", tg.name, tg.pos, corpusHeader, rel, hint)
		}
	}
	t.Logf("%d fuzz targets checked", len(targets))
}

// parseCorpusFile reports whether b is a "go test fuzz v1" file and how many
// values it holds (one per non-empty line; %q-quoted values hold no newline).
func parseCorpusFile(b []byte) (values int, ok bool) {
	lines := strings.Split(string(b), "\n")
	if strings.TrimSuffix(lines[0], "\r") != corpusHeader {
		return 0, false
	}
	for _, l := range lines[1:] {
		if strings.TrimSpace(l) != "" {
			values++
		}
	}
	return values, true
}

// moduleRoot finds the directory holding go.mod, upward from the test's directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod found above the test directory")
		}
		dir = parent
	}
}

// findTargets parses every *_test.go file in the module (not in testdata,
// vendor, hidden or _-prefixed directories, nor in nested modules) for
// top-level func FuzzXxx(f *testing.F).
func findTargets(t *testing.T, root string) []target {
	t.Helper()
	var out []target
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root {
				if name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
					return filepath.SkipDir
				}
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if !strings.HasSuffix(name, "_test.go") || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.Contains(src, []byte("func Fuzz")) {
			return nil
		}
		f, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		testingName := importName(f, "testing")
		if testingName == "" {
			return nil
		}
		relDir, _ := filepath.Rel(root, filepath.Dir(path))
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !isFuzzName(fn.Name.Name) || !takesF(fn, testingName) {
				continue
			}
			p := fset.Position(fn.Pos())
			relFile, _ := filepath.Rel(root, p.Filename)
			out = append(out, target{
				name:  fn.Name.Name,
				dir:   relDir,
				pos:   filepath.ToSlash(relFile) + ":" + strconv.Itoa(p.Line),
				arity: fuzzArity(fn),
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].pos < out[j].pos })
	return out
}

// importName is the name under which f imports path, or "".
func importName(f *ast.File, path string) string {
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == path {
			if imp.Name != nil {
				return imp.Name.Name
			}
			return filepath.Base(path)
		}
	}
	return ""
}

// isFuzzName follows go test: "Fuzz" not followed by a lower-case letter.
func isFuzzName(name string) bool {
	if !strings.HasPrefix(name, "Fuzz") {
		return false
	}
	rest := name[len("Fuzz"):]
	return rest == "" || !(rest[0] >= 'a' && rest[0] <= 'z')
}

func takesF(fn *ast.FuncDecl, testingName string) bool {
	params := fn.Type.Params.List
	if len(params) != 1 || len(params[0].Names) > 1 || fn.Type.Results != nil {
		return false
	}
	star, ok := params[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	x, ok := sel.X.(*ast.Ident)
	return ok && x.Name == testingName && sel.Sel.Name == "F"
}

// fuzzArity counts the fuzzed parameters of the function literal passed to
// f.Fuzz (all but the leading *testing.T), or returns -1.
func fuzzArity(fn *ast.FuncDecl) int {
	arity := -1
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) != 1 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "Fuzz" {
			return true
		}
		lit, ok := call.Args[0].(*ast.FuncLit)
		if !ok {
			return true
		}
		count := 0
		for _, p := range lit.Type.Params.List {
			if len(p.Names) == 0 {
				count++
			} else {
				count += len(p.Names)
			}
		}
		arity = count - 1
		return false
	})
	return arity
}
