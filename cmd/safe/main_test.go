package main

// End-to-end tests of the real `safe` command. testscript.Main installs this
// test binary as `safe` on PATH, so every `exec safe ...` in
// testdata/script/*.txt runs a real process, and `safe unlock` starts a real,
// detached agent process (cli.Executable resolves os.Args[0] through PATH).
//
// Custom script commands:
//
//	exitcode N CMD ARGS...     run CMD and require exit status N exactly
//	jsonfield FILE PATH [OUT]  print (or write to OUT) the value at a dotted
//	                           PATH (like recovery_key or 0.id) of a JSON file
//	                           (FILE may be stdout or stderr; a leading
//	                           insecure-KDF WARNING line is skipped)
//	jsonpick FILE KEY VALUE FIELD [OUT]
//	                           in a JSON array (FILE as for jsonfield), the
//	                           one object whose KEY is the string VALUE:
//	                           print (or write to OUT) its FIELD, like the
//	                           fingerprint of one member of
//	                           `safe org members ORG --json`
//	sqlite DB STMT...          run statements on a vault file in one
//	                           transaction (a SELECT prints its rows); an
//	                           UPDATE or DELETE that changes no row fails
//	totpcheck SEED             stdout holds the TOTP code of SEED for now
//	samekey FILE1 FILE2        both hold the same "type base64" public key on
//	                           their first line (comments may differ)
//	mkfile FILE SIZE           write SIZE bytes of fixed pseudo-random data
//	anyout REGEXP              stdout or stderr of the last command matches
//	keytext IN OUT MODE        rewrite the Recovery Key (or Secret Key) in
//	                           IN: MODE typo changes one character, MODE
//	                           loose writes it in lower case with spaces (as
//	                           a person might type)
//	grepall REGEXP DIR         some file under DIR matches REGEXP (with !,
//	                           none does): plaintext checks on a server's
//	                           data directory or a folder remote
//	serverenv FILE             wait (up to 10 s) until FILE holds the JSON
//	                           `safe serve --info-file` writes, then set URL
//	                           (https://HOST:PORT), ADDR (HOST:PORT) and FP
//	                           (the certificate fingerprint)
//	envfile VAR FILE           set VAR to the first line of FILE
//	envstr VAR GOSTRING        set VAR to the value of a Go string literal
//	                           ('"\x1b]0;x\x07"'): text with escapes and
//	                           control characters for one argument
//	totpcode SEED VAR [STEPS]  set VAR to SEED's TOTP code for the period
//	                           STEPS periods from now (default 0); a server
//	                           takes each code once, and one period of skew
//	secretkey FILE             write a new, well-formed Secret Key to FILE
//	                           (one no account has)
//
// Servers run in the background (`exec safe serve ... &srv&`, stopped with
// `kill -INT srv` and `wait srv`). Every agent and every server a script
// starts is stopped when the script ends, pass or fail (see stopAgents and
// stopServers; testscript also interrupts and waits for background commands).

import (
	"bytes"
	cryptorand "crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	_ "modernc.org/sqlite"

	"github.com/safehold/safehold/internal/keycode"
	"github.com/safehold/safehold/internal/totp"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"safe": main})
}

func TestScripts(t *testing.T) {
	p := testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(env *testscript.Env) error {
			work := env.WorkDir
			env.Defer(func() {
				if err := stopAgents(work); err != nil {
					env.T().Fatal(err)
				}
				if err := stopServers(work); err != nil {
					env.T().Fatal(err)
				}
			})
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exitcode":  cmdExitcode,
			"jsonfield": cmdJSONField,
			"jsonpick":  cmdJSONPick,
			"sqlite":    cmdSQLite,
			"totpcheck": cmdTOTPCheck,
			"samekey":   cmdSameKey,
			"mkfile":    cmdMkfile,
			"keytext":   cmdKeytext,
			"anyout":    cmdAnyout,
			"serverenv": cmdServerEnv,
			"envfile":   cmdEnvFile,
			"envstr":    cmdEnvStr,
			"totpcode":  cmdTOTPCode,
			"secretkey": cmdSecretKey,
			"grepall":   cmdGrepAll,
			"pgschema":  cmdPGSchema,
		},
		Condition: condition,
	}
	if d, ok := t.Deadline(); ok {
		p.Deadline = d.Add(-5 * time.Second)
	}
	testscript.Run(t, p)
}

// cmdExitcode runs a command and checks its exact exit status.
func cmdExitcode(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! exitcode")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: exitcode N command [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exitcode: bad status %q", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exitcode: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

// cmdJSONField extracts one value from a JSON document.
func cmdJSONField(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! jsonfield")
	}
	if len(args) != 2 && len(args) != 3 {
		ts.Fatalf("usage: jsonfield FILE PATH [OUTFILE]")
	}
	// The insecure-KDF WARNING line may precede JSON on stderr.
	text := ts.ReadFile(args[0])
	for strings.HasPrefix(text, "WARNING: ") {
		_, text, _ = strings.Cut(text, "\n")
	}
	var v any
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		ts.Fatalf("jsonfield: %s: %v", args[0], err)
	}
	if dec.More() {
		ts.Fatalf("jsonfield: %s holds more than one JSON value", args[0])
	}
	for _, key := range strings.Split(args[1], ".") {
		switch x := v.(type) {
		case map[string]any:
			next, ok := x[key]
			if !ok {
				ts.Fatalf("jsonfield: %s has no %q", args[0], args[1])
			}
			v = next
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(x) {
				ts.Fatalf("jsonfield: %s: no element %q in %q", args[0], key, args[1])
			}
			v = x[i]
		default:
			ts.Fatalf("jsonfield: %s: %q goes below a scalar", args[0], args[1])
		}
	}
	var out string
	if s, ok := v.(string); ok {
		out = s
	} else {
		b, err := json.Marshal(v)
		ts.Check(err)
		out = string(b)
	}
	if len(args) == 3 {
		ts.Check(os.WriteFile(ts.MkAbs(args[2]), []byte(out+"\n"), 0o600))
		return
	}
	fmt.Fprintln(ts.Stdout(), out)
}

// cmdJSONPick finds one object of a JSON array by a key's value and
// extracts one of its fields.
func cmdJSONPick(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! jsonpick")
	}
	if len(args) != 4 && len(args) != 5 {
		ts.Fatalf("usage: jsonpick FILE KEY VALUE FIELD [OUTFILE]")
	}
	text := ts.ReadFile(args[0])
	for strings.HasPrefix(text, "WARNING: ") {
		_, text, _ = strings.Cut(text, "\n")
	}
	var list []map[string]any
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	if err := dec.Decode(&list); err != nil {
		ts.Fatalf("jsonpick: %s: %v", args[0], err)
	}
	var hit map[string]any
	for _, obj := range list {
		if v, ok := obj[args[1]].(string); ok && v == args[2] {
			if hit != nil {
				ts.Fatalf("jsonpick: %s has several objects with %s %q", args[0], args[1], args[2])
			}
			hit = obj
		}
	}
	if hit == nil {
		ts.Fatalf("jsonpick: %s has no object with %s %q", args[0], args[1], args[2])
	}
	v, ok := hit[args[3]]
	if !ok {
		ts.Fatalf("jsonpick: the object with %s %q has no %q", args[1], args[2], args[3])
	}
	out, ok := v.(string)
	if !ok {
		b, err := json.Marshal(v)
		ts.Check(err)
		out = string(b)
	}
	if len(args) == 5 {
		ts.Check(os.WriteFile(ts.MkAbs(args[4]), []byte(out+"\n"), 0o600))
		return
	}
	fmt.Fprintln(ts.Stdout(), out)
}

// cmdSQLite edits a vault file behind safe's back, the way an attacker with
// write access to the file (or a sync folder) could.
func cmdSQLite(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! sqlite")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: sqlite DB STATEMENT...")
	}
	db, err := sql.Open("sqlite", "file:"+ts.MkAbs(args[0])+"?_pragma=busy_timeout(10000)&_txlock=immediate")
	ts.Check(err)
	defer db.Close()
	tx, err := db.Begin()
	ts.Check(err)
	defer tx.Rollback()
	for _, stmt := range args[1:] {
		words := strings.Fields(stmt)
		if len(words) == 0 {
			ts.Fatalf("sqlite: empty statement")
		}
		verb := strings.ToUpper(words[0])
		if verb == "SELECT" {
			rows, err := tx.Query(stmt)
			if err != nil {
				ts.Fatalf("sqlite: %s: %v", stmt, err)
			}
			cols, err := rows.Columns()
			ts.Check(err)
			for rows.Next() {
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				ts.Check(rows.Scan(ptrs...))
				var line []string
				for _, v := range vals {
					line = append(line, fmt.Sprint(v))
				}
				fmt.Fprintln(ts.Stdout(), strings.Join(line, "\t"))
			}
			ts.Check(rows.Err())
			rows.Close()
			continue
		}
		res, err := tx.Exec(stmt)
		if err != nil {
			ts.Fatalf("sqlite: %s: %v", stmt, err)
		}
		if verb == "UPDATE" || verb == "DELETE" {
			n, err := res.RowsAffected()
			ts.Check(err)
			if n == 0 {
				ts.Fatalf("sqlite: %s changed no row", stmt)
			}
		}
	}
	ts.Check(tx.Commit())
}

// cmdTOTPCheck compares the code on stdout with the one internal/totp
// computes now. The command ran moments ago, so a code from a few seconds
// back (the previous period, at a boundary) is accepted too.
func cmdTOTPCheck(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: totpcheck SEED")
	}
	got := strings.TrimSpace(ts.ReadFile("stdout"))
	cfg, err := totp.Parse(args[0])
	ts.Check(err)
	now := time.Now()
	var want []string
	for _, back := range []time.Duration{0, 5 * time.Second} {
		code, _, err := totp.Code(cfg, now.Add(-back))
		ts.Check(err)
		if code == got {
			return
		}
		want = append(want, code)
	}
	ts.Fatalf("totp code %q, want one of %q", got, want)
}

// cmdSameKey compares the key type and key of two authorized_keys lines.
func cmdSameKey(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: samekey FILE1 FILE2")
	}
	key := func(name string) string {
		line, _, _ := strings.Cut(ts.ReadFile(name), "\n")
		f := strings.Fields(line)
		if len(f) < 2 {
			ts.Fatalf("samekey: %s: %q is not an authorized_keys line", name, line)
		}
		return f[0] + " " + f[1]
	}
	a, b := key(args[0]), key(args[1])
	if (a == b) == neg {
		ts.Fatalf("samekey: %q and %q (negated: %v)", a, b, neg)
	}
}

// cmdMkfile writes a file of pseudo-random bytes (the same for the same
// size), for attachments that span several chunks.
func cmdMkfile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: mkfile FILE SIZE")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil || n < 0 {
		ts.Fatalf("mkfile: bad size %q", args[1])
	}
	var seed [32]byte
	copy(seed[:], "safehold cmd/safe test data seed")
	b := make([]byte, n)
	rand.NewChaCha8(seed).Read(b)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), b, 0o600))
}

// cmdAnyout matches a regular expression (multi-line mode, like stdout and
// stderr) against either output of the last command: verify reports some
// damage as a list of problems on stdout and some as an error on stderr.
func cmdAnyout(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: anyout REGEXP")
	}
	re, err := regexp.Compile("(?m)" + args[0])
	ts.Check(err)
	found := re.MatchString(ts.ReadFile("stdout")) || re.MatchString(ts.ReadFile("stderr"))
	if found == neg {
		ts.Fatalf("anyout %q: found %v, want %v", args[0], found, !neg)
	}
}

// cmdKeytext makes variants of a Recovery Key or a Secret Key as a person
// might type them.
func cmdKeytext(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: keytext IN OUT typo|loose")
	}
	key := strings.TrimSpace(ts.ReadFile(args[0]))
	if !strings.HasPrefix(key, "R1-") && !strings.HasPrefix(key, "S1-") || len(key) < 8 {
		ts.Fatalf("keytext: %s does not hold a Recovery Key or a Secret Key", args[0])
	}
	switch args[2] {
	case "typo":
		// One substitution inside the first group, with another letter
		// of the key alphabet, so only the checksum can catch it.
		c := byte('A')
		if key[3] == 'A' {
			c = 'B'
		}
		key = key[:3] + string(c) + key[4:]
	case "loose":
		key = strings.ToLower(strings.ReplaceAll(key, "-", " "))
	default:
		ts.Fatalf("keytext: unknown mode %q", args[2])
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(key+"\n"), 0o600))
}

// cmdServerEnv waits for a server's --info-file and exports its address.
// A script that starts a server again removes the file first, or this
// reads the old one at once.
func cmdServerEnv(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: serverenv FILE")
	}
	name := ts.MkAbs(args[0])
	var info struct {
		URL         string `json:"url"`
		Fingerprint string `json:"fingerprint"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The server writes the file atomically (rename), so a file that
		// exists is complete.
		raw, err := os.ReadFile(name)
		if err == nil {
			ts.Check(json.Unmarshal(raw, &info))
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			ts.Fatalf("serverenv: %v", err)
		}
		if time.Now().After(deadline) {
			ts.Fatalf("serverenv: no %s after 10 s: the server did not start (see its output after `wait`)", args[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
	addr, ok := strings.CutPrefix(info.URL, "https://")
	if !ok || addr == "" || len(info.Fingerprint) != 64 {
		ts.Fatalf("serverenv: %s holds url %q and fingerprint %q", args[0], info.URL, info.Fingerprint)
	}
	ts.Setenv("URL", info.URL)
	ts.Setenv("ADDR", addr)
	ts.Setenv("FP", info.Fingerprint)
}

// cmdEnvStr sets a variable to text no script line can hold literally
// (terminal escapes, control characters), from a Go string literal.
func cmdEnvStr(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: envstr VAR GOSTRING")
	}
	s, err := strconv.Unquote(args[1])
	if err != nil {
		ts.Fatalf("envstr: %s: %v", args[1], err)
	}
	ts.Setenv(args[0], s)
}

// cmdEnvFile sets a variable from a file, for values one command prints
// and a later one takes as an argument (a device id, a recovery code).
func cmdEnvFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: envfile VAR FILE")
	}
	line, _, _ := strings.Cut(ts.ReadFile(args[1]), "\n")
	line = strings.TrimSpace(line)
	if line == "" {
		ts.Fatalf("envfile: %s is empty", args[1])
	}
	ts.Setenv(args[0], line)
}

// cmdTOTPCode sets a variable to a TOTP code of SEED. The server takes
// each period's code only once and accepts one period of skew, so a
// script that needs two codes close together takes the next period's for
// the second (STEPS 1).
func cmdTOTPCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: totpcode SEED VAR [STEPS]")
	}
	cfg, err := totp.Parse(args[0])
	ts.Check(err)
	steps := 0
	if len(args) == 3 {
		if steps, err = strconv.Atoi(args[2]); err != nil || steps < -1 || steps > 1 {
			ts.Fatalf("totpcode: STEPS must be -1, 0 or 1, not %q", args[2])
		}
	}
	code, _, err := totp.Code(cfg, time.Now().Add(time.Duration(steps*cfg.Period)*time.Second))
	ts.Check(err)
	ts.Setenv(args[1], code)
}

// cmdSecretKey writes a fresh Secret Key: well formed (its checksum
// holds), but not the account's.
func cmdSecretKey(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: secretkey FILE")
	}
	sk, err := keycode.NewSecretKey(cryptorand.Reader)
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(sk.Reveal()+"\n"), 0o600))
}

// cmdGrepAll searches every regular file under a directory, as bytes (a
// database file is binary).
func cmdGrepAll(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: grepall REGEXP DIR")
	}
	re, err := regexp.Compile(args[0])
	ts.Check(err)
	var hits []string
	files := 0
	err = filepath.WalkDir(ts.MkAbs(args[1]), func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		files++
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if re.Match(b) {
			hits = append(hits, path)
		}
		return nil
	})
	ts.Check(err)
	if files == 0 {
		ts.Fatalf("grepall: no files under %s", args[1])
	}
	if neg && len(hits) > 0 {
		ts.Fatalf("grepall: %q found in %q", args[0], hits)
	}
	if !neg && len(hits) == 0 {
		ts.Fatalf("grepall: %q in none of the %d files under %s", args[0], files, args[1])
	}
}

// stopServers stops every `safe serve` still running in dir (its working
// directory or --data lies under dir). When a script fails, this runs
// before testscript interrupts the script's background commands, so the
// servers of a failed script end here; when it passes they have ended
// already, and a server found here was not started in the background.
func stopServers(dir string) error {
	return stopPIDs("safe serve", safePIDs(dir, "serve", "--data"))
}

// stopAgents ends every `safe agent` process serving a home under dir and
// waits for it to exit, so that no agent outlives its test (even when the
// script failed before its own `safe agent stop`) and none still writes
// into the directory while the test removes it. Agents are found by their
// command line ("safe agent --home DIR/..."), which the CLI always passes.
func stopAgents(dir string) error {
	pids, err := agentPIDs(dir)
	if err != nil {
		return err
	}
	return stopPIDs("agent", pids)
}

// stopPIDs sends SIGTERM to each process and waits for all to exit; one
// still running after 5 s is killed and reported.
func stopPIDs(what string, pids []int) error {
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				syscall.Kill(pid, syscall.SIGKILL)
				return fmt.Errorf("%s pid %d did not exit on SIGTERM; killed it", what, pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// agentPIDs lists the agent processes whose --home lies under dir.
func agentPIDs(dir string) ([]int, error) {
	return safePIDs(dir, "agent", "--home"), nil
}

// safePIDs lists the `safe SUB` processes whose working directory, or the
// directory given by flag (--home DIR or --data DIR, maybe relative), lies
// under dir. Off Linux (no /proc) it finds none, and the scripts' own
// cleanup has to do.
func safePIDs(dir, sub, flag string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	prefix := filepath.Clean(dir) + string(filepath.Separator)
	under := func(p string) bool {
		return strings.HasPrefix(filepath.Clean(p)+string(filepath.Separator), prefix)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if len(args) < 2 || filepath.Base(args[0]) != "safe" || args[1] != sub {
			continue
		}
		cwd, _ := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		match := cwd != "" && under(cwd)
		for i := 2; i+1 < len(args) && !match; i++ {
			if args[i] == flag {
				p := args[i+1]
				if !filepath.IsAbs(p) {
					p = filepath.Join(cwd, p)
				}
				match = under(p)
			}
		}
		if match && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// alive says whether pid still runs. An exited agent that nobody reaps (its
// parent is init, which in some containers does not reap) is a zombie: that
// counts as gone.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z' && stat[i+2] != 'X'
	}
	return true
}
