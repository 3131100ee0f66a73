package cli

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Export only on the user's command (security.md §2 row 16, "export
// triggers planted in configuration"): the functions that write vault
// contents or account secrets out of the vault are reachable from the
// commands that exist for that and from nowhere else. These tests read the
// module's source, so that a new call site anywhere (a sync note, a
// server answer, an agent operation) fails them until it is added below on
// purpose.

// exportWriter is a function that writes secrets out of the vault, and the
// only non-test files (relative to the module root) that may use it.
type exportWriter struct {
	pkg  string // package path relative to the module
	name string // function name; "Type.Method" for a method
	// allowed are the files that may use it; the test also fails if one
	// of them no longer does, so the list stays exact.
	allowed []string
}

var exportWriters = []exportWriter{
	// Every item, in one file: `safe export` only.
	{"internal/kdbx", "Write", []string{"internal/cli/cmd_export.go"}},
	{"internal/archive", "Write", []string{"internal/cli/cmd_export.go"}},
	{"internal/importer", "WriteBitwardenJSON", []string{"internal/cli/cmd_export.go"}},
	// One secret each, on a command named for it:
	// the Secret Key (and, if given, the Recovery Key) in the kit PDF,
	// `safe kit --out`;
	{"internal/kit", "WritePDF", []string{"internal/cli/cmd_kit.go"}},
	// a VPN profile with its private key, `safe vpn export` (cmd_types.go;
	// cmd_vpnimport.go also compares an imported file with its canonical
	// form, which it wipes without writing);
	{"internal/wireguard", "ExportWGQuick", []string{"internal/cli/cmd_types.go", "internal/cli/cmd_vpnimport.go"}},
	{"internal/openvpn", "Profile.Export", []string{"internal/cli/cmd_vpnimport.go"}},
	// an SSH private key in OpenSSH form: no command uses it yet.
	{"internal/sshkey", "Export", nil},
}

// answerPath are the packages that handle what a server, a folder remote or
// a peer sends, and the agent that runs sync in the background.
var answerPath = []string{
	"internal/api", "internal/remote", "internal/vault", "internal/service",
	"internal/server", "internal/agent", "internal/peer", "internal/peerauth",
	"internal/link", "internal/channel", "internal/org",
}

// unreachableFromAnswers are the writer packages none of answerPath may
// import, directly or not. (internal/wireguard is imported by internal/item
// to check profiles; the call-site test covers its writer.)
var unreachableFromAnswers = []string{
	"internal/kdbx", "internal/archive", "internal/importer", "internal/kit",
	"internal/openvpn", "internal/sshkey",
}

// srcFile is one parsed Go file of the module.
type srcFile struct {
	rel  string // path relative to the module root, with slashes
	pkg  string // its package's path relative to the module ("" at the root)
	test bool
	ast  *ast.File
}

// moduleRoot returns the directory holding go.mod and the module path.
func moduleRoot(t *testing.T) (string, string) {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if f, err := os.Open(filepath.Join(dir, "go.mod")); err == nil {
			defer f.Close()
			s := bufio.NewScanner(f)
			for s.Scan() {
				if m, ok := strings.CutPrefix(strings.TrimSpace(s.Text()), "module "); ok {
					return dir, strings.Trim(strings.TrimSpace(m), `"`)
				}
			}
			t.Fatal("go.mod has no module line")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// parseModule parses every Go file of the module (testdata, vendor and
// hidden directories excepted).
func parseModule(t *testing.T) (files []srcFile, module string) {
	t.Helper()
	root, module := moduleRoot(t)
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		files = append(files, srcFile{rel: rel, pkg: path.Dir(rel), test: strings.HasSuffix(name, "_test.go"), ast: f})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range files {
		if files[i].pkg == "." {
			files[i].pkg = ""
		}
	}
	if len(files) < 100 {
		t.Fatalf("parsed only %d files under %s", len(files), root)
	}
	return files, module
}

// importsOf maps the names a file uses for module packages to those
// packages (relative paths); pkgNames gives each package's declared name.
func importsOf(t *testing.T, f srcFile, module string, pkgNames map[string]string) map[string]string {
	out := map[string]string{}
	for _, spec := range f.ast.Imports {
		p, err := strconv.Unquote(spec.Path.Value)
		if err != nil {
			t.Fatal(err)
		}
		rel, ok := strings.CutPrefix(p, module+"/")
		if !ok {
			continue
		}
		name := pkgNames[rel]
		if spec.Name != nil {
			name = spec.Name.Name
		}
		if name == "." {
			t.Errorf("%s dot-imports %s: its calls cannot be checked", f.rel, p)
		}
		out[name] = rel
	}
	return out
}

// writerUses returns, for each writer (by index), the non-test files that
// refer to it.
func writerUses(t *testing.T, files []srcFile, module string) map[int][]string {
	t.Helper()
	pkgNames := map[string]string{}
	for _, f := range files {
		if !f.test {
			pkgNames[f.pkg] = f.ast.Name.Name
		}
	}
	uses := map[int][]string{}
	add := func(i int, file string) {
		if !slices.Contains(uses[i], file) {
			uses[i] = append(uses[i], file)
		}
	}
	for _, f := range files {
		if f.test {
			continue // tests may write what they like
		}
		imports := importsOf(t, f, module, pkgNames)
		// Selector names and declared names, which are not uses of a
		// package-level function of the same name.
		notUse := map[*ast.Ident]bool{}
		argCall := map[ast.Expr]bool{} // the Fun of calls with arguments
		ast.Inspect(f.ast, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				notUse[n.Sel] = true
			case *ast.FuncDecl:
				notUse[n.Name] = true
			case *ast.Field:
				for _, id := range n.Names {
					notUse[id] = true
				}
			case *ast.KeyValueExpr:
				if id, ok := n.Key.(*ast.Ident); ok {
					notUse[id] = true
				}
			case *ast.CallExpr:
				if len(n.Args) > 0 {
					argCall[n.Fun] = true
				}
			}
			return true
		})
		ast.Inspect(f.ast, func(n ast.Node) bool {
			for i, w := range exportWriters {
				_, method, isMethod := strings.Cut(w.name, ".")
				switch n := n.(type) {
				case *ast.SelectorExpr:
					if isMethod {
						// A method is found by name: x.Export used as a
						// value or called without arguments outside its
						// package (TestExportWritersUnambiguous keeps
						// the name unique).
						if n.Sel.Name == method && f.pkg != w.pkg && !argCall[n] {
							add(i, f.rel)
						}
						continue
					}
					if x, ok := n.X.(*ast.Ident); ok && imports[x.Name] == w.pkg && n.Sel.Name == w.name {
						add(i, f.rel)
					}
				case *ast.Ident:
					if !isMethod && f.pkg == w.pkg && n.Name == w.name && !notUse[n] {
						add(i, f.rel) // inside its own package
					}
				}
			}
			return true
		})
	}
	return uses
}

// TestExportWritersCalledOnlyFromTheirCommands: the export writers are
// used only from the files named in exportWriters (and tests).
func TestExportWritersCalledOnlyFromTheirCommands(t *testing.T) {
	files, module := parseModule(t)
	uses := writerUses(t, files, module)
	for i, w := range exportWriters {
		for _, file := range uses[i] {
			if !slices.Contains(w.allowed, file) {
				t.Errorf("%s uses %s.%s, which writes secrets out of the vault: only %v may (security.md row 16); if this is a new user command for it, add the file to exportWriters", file, path.Base(w.pkg), w.name, w.allowed)
			}
		}
		for _, file := range w.allowed {
			if !slices.Contains(uses[i], file) {
				t.Errorf("%s no longer uses %s.%s: remove it from exportWriters", file, path.Base(w.pkg), w.name)
			}
		}
	}
}

// TestExportWritersUnambiguous: each writer exists where the list says,
// and a method writer's name is declared by no other method, so that the
// name-based search above finds exactly its uses.
func TestExportWritersUnambiguous(t *testing.T) {
	files, _ := parseModule(t)
	for _, w := range exportWriters {
		typ, method, isMethod := strings.Cut(w.name, ".")
		found := false
		for _, f := range files {
			if f.test {
				continue
			}
			for _, d := range f.ast.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok {
					continue
				}
				switch {
				case !isMethod && fd.Recv == nil && fd.Name.Name == w.name && f.pkg == w.pkg:
					found = true
				case isMethod && fd.Recv != nil && fd.Name.Name == method:
					if f.pkg == w.pkg && recvName(fd) == typ {
						found = true
					} else if fd.Type.Params.NumFields() == 0 {
						t.Errorf("%s declares another method %s without arguments (on %s): make the search for %s.%s type-aware", f.rel, method, recvName(fd), w.pkg, w.name)
					}
				}
			}
		}
		if !found {
			t.Errorf("%s.%s is not declared: update exportWriters", w.pkg, w.name)
		}
	}
}

func recvName(fd *ast.FuncDecl) string {
	e := fd.Recv.List[0].Type
	if s, ok := e.(*ast.StarExpr); ok {
		e = s.X
	}
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

// TestAnswerPathCannotReachExportWriters: no package that handles what a
// remote or peer sends imports a writer package, directly or through
// another module package, so no answer can start an export.
func TestAnswerPathCannotReachExportWriters(t *testing.T) {
	files, module := parseModule(t)
	deps := map[string][]string{} // package → module packages it imports (non-test)
	for _, f := range files {
		if f.test {
			continue
		}
		for _, spec := range f.ast.Imports {
			p, _ := strconv.Unquote(spec.Path.Value)
			if rel, ok := strings.CutPrefix(p, module+"/"); ok && !slices.Contains(deps[f.pkg], rel) {
				deps[f.pkg] = append(deps[f.pkg], rel)
			}
		}
		if _, ok := deps[f.pkg]; !ok {
			deps[f.pkg] = nil
		}
	}
	for _, w := range unreachableFromAnswers {
		if _, ok := deps[w]; !ok {
			t.Errorf("package %s does not exist: update unreachableFromAnswers", w)
		}
	}
	roots := 0
	for pkg := range deps {
		if !slices.ContainsFunc(answerPath, func(a string) bool { return pkg == a || strings.HasPrefix(pkg, a+"/") }) {
			continue
		}
		roots++
		// Breadth first, remembering how each package was reached.
		via := map[string]string{pkg: ""}
		queue := []string{pkg}
		for len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			if slices.Contains(unreachableFromAnswers, p) {
				chain := []string{p}
				for q := via[p]; q != ""; q = via[q] {
					chain = append(chain, q)
				}
				slices.Reverse(chain)
				t.Errorf("%s reaches the export writer package %s: %s", pkg, p, strings.Join(chain, " → "))
				continue
			}
			for _, d := range deps[p] {
				if _, seen := via[d]; !seen {
					via[d] = p
					queue = append(queue, d)
				}
			}
		}
	}
	if roots < len(answerPath) {
		t.Errorf("found %d answer-path packages, want at least %d: update answerPath", roots, len(answerPath))
	}
}
