//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/safehold/safehold/internal/envelope"
	"github.com/safehold/safehold/internal/kdf"
	"github.com/safehold/safehold/internal/store"
)

// TestMemoryAfterLock reads the memory of the real agent process and looks
// for the password, the Master Key, the vault key and the Secret Key
// (docs/design.md §9.9, "Memory after lock: what is checked"):
//
//   - unlocked (control): the Master Key must be found, which proves that
//     the search sees the agent's memory, locked pages included;
//   - after `safe lock`, on the running agent, and after the idle timeout,
//     with gdb holding the agent at its exit_group (the last moment its
//     memory exists): no secret may be left in a locked buffer, and at exit
//     no locked buffer may still be mapped. Copies in freed Go heap memory,
//     which Go gives no way to wipe, are reported as a known gap; with
//     SAFE_MEMTEST_STRICT=1 they fail the test.
//
// The Secret Key is stored in clear in the vault file (§3.5) and a locked
// agent keeps the account record to unlock again, so it is reported, not
// checked. Reading another process's memory needs ptrace rights over it:
// the agent is not dumpable (§8.17), so this takes CAP_SYS_PTRACE (root in
// CI); without it the test skips.
func TestMemoryAfterLock(t *testing.T) {
	if testing.Short() {
		t.Skip("builds safe and runs a server")
	}
	h := newProcHarness(t)
	pw := memPassword(t)
	pwFile := filepath.Join(h.dir, "mem-pw")
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const home = "mem"
	h.must(home, "init", "--password-file", pwFile)
	// Register on a server, so that the account has a Secret Key.
	url, fp := h.server()
	h.must(home, "account", "register", "--server", url, "--email", "mem@example.com", "--password-file", pwFile, "--fingerprint", fp, "--manual")
	h.must(home, "agent", "stop")

	keys := memDeriveKeys(t, filepath.Join(h.dir, home, "vault.db"), pw)
	const itemPassword = "Item-pw-7f3c9a1e5b2d8046-unique"
	needles := []memNeedle{
		{name: "password", b: []byte(pw), secret: true},
		{name: "password (base64, as sent in the unlock request)", b: []byte(base64.StdEncoding.EncodeToString([]byte(pw))), secret: true},
		{name: "password XOR 0x36 (an HMAC ipad keyed with it)", b: memXOR([]byte(pw), 0x36), secret: true},
		{name: "password XOR 0x5c (an HMAC opad keyed with it)", b: memXOR([]byte(pw), 0x5c), secret: true},
		{name: "Master Key", b: keys.mk, secret: true},
		{name: "Secret Key", b: keys.sk},
		// Decrypted item data is ordinary Go memory, not wiped (§8.16):
		// reported only.
		{name: "a revealed item password", b: []byte(itemPassword)},
	}
	for i, vk := range keys.vaultKeys {
		needles = append(needles, memNeedle{name: fmt.Sprintf("vault key %d", i+1), b: vk, secret: true})
	}

	// work adds two items, reveals a password and lists: every op
	// that handles secrets in the agent, besides unlock.
	work := func(t *testing.T, title string) {
		h.addLogin(home, title, "ann", itemPassword)
		h.addLogin(home, title+"-mail", "ann", "other-"+itemPassword[:8])
		if got := h.password(home, title); got != itemPassword {
			t.Fatalf("get --reveal gave %q", got)
		}
		h.must(home, "ls")
	}

	t.Run("lock", func(t *testing.T) {
		h.must(home, "unlock", "--password-file", pwFile, "--timeout", "10m")
		work(t, "mem-bank")
		pid := memAgentPID(t, h)

		mem := memRead(t, pid)
		t.Logf("unlocked agent (pid %d): %d readable mappings, %d bytes", pid, len(mem), memTotal(mem))
		found := memSearch(mem, needles)
		memLog(t, "unlocked", needles, found)
		if len(found["Master Key"]) == 0 {
			t.Fatal("control failed: the Master Key is not found in the unlocked agent's memory, so the search proves nothing")
		}

		h.must(home, "lock")
		if out := h.must(home, "status"); !strings.Contains(out, "(locked)") {
			t.Fatalf("status after lock:\n%s", out)
		}
		mem = memRead(t, pid)
		found = memSearch(mem, needles)
		memLog(t, "after safe lock", needles, found)
		memCheck(t, "after safe lock", needles, found)
		h.must(home, "agent", "stop")
	})

	t.Run("idle timeout", func(t *testing.T) {
		gdb, err := exec.LookPath("gdb")
		if err != nil {
			t.Skip("no gdb: cannot dump the agent at the moment it exits after its idle timeout")
		}
		h.must(home, "unlock", "--password-file", pwFile, "--timeout", "3s")
		work(t, "mem-idle")
		pid := memAgentPID(t, h)
		memRequirePtrace(t, pid)
		atExit := memStopAtExit(t, gdb, pid)
		// A request after gdb is in place re-arms the idle timer, so the
		// timer fires while the agent is traced, however long gdb took.
		if got := h.password(home, "mem-idle"); got != itemPassword {
			t.Fatalf("get --reveal gave %q", got)
		}
		start := time.Now()
		var mem []memRegion
		if err := atExit(func() { mem = memRead(t, pid) }); err != nil {
			t.Fatal(err)
		}
		t.Logf("the agent reached exit_group %v after the last request (idle timeout 3s; slower under gdb)", time.Since(start).Round(100*time.Millisecond))
		for deadline := time.Now().Add(10 * time.Second); alive(pid); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("agent %d still runs after its idle timeout", pid)
			}
		}
		t.Logf("agent at exit: %d readable mappings, %d bytes", len(mem), memTotal(mem))
		found := memSearch(mem, needles)
		memLog(t, "at exit after the idle timeout", needles, found)
		for _, r := range mem {
			if r.locked {
				t.Errorf("a locked buffer is still mapped when the agent exits: %s", r.desc)
			}
		}
		memCheck(t, "after the idle timeout", needles, found)
	})
}

// memPassword is 40 random letters and digits: long and distinctive, so a
// match in memory is the password and nothing else.
func memPassword(t *testing.T) string {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
	b := make([]byte, 40)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

type memKeys struct {
	mk, sk    []byte
	vaultKeys [][]byte
}

// memDeriveKeys opens the vault file's account record with the password,
// as vault.Vault.passwordMasterKey does (docs/design.md §3.4, §6.4): KDF
// header and Secret Key from the record, the cascade, then the password
// wrap; and each personal vault's key with the Master Key. Only exported
// packages are used, so no production code exists for the test alone.
func memDeriveKeys(t *testing.T, path, pw string) memKeys {
	t.Helper()
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	raw, err := st.Account()
	if err != nil {
		t.Fatal(err)
	}
	var acct struct {
		Account      string `json:"account"`
		KDF          []byte `json:"kdf"`
		PasswordWrap []byte `json:"password_wrap"`
		SecretKey    []byte `json:"secret_key"`
	}
	if err := json.Unmarshal(raw, &acct); err != nil {
		t.Fatal(err)
	}
	if len(acct.SecretKey) != kdf.SecretKeySize {
		t.Fatalf("the account record has a %d-byte Secret Key after register", len(acct.SecretKey))
	}
	hdr, err := kdf.ParseHeader(acct.KDF)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kdf.DeriveWith([]byte(pw), acct.SecretKey, hdr.Params, hdr.Salts, true)
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Wipe()
	mk, err := envelope.Open(keys.KEK(), envelope.Context{Purpose: "master-key/password", Account: acct.Account}, acct.PasswordWrap)
	if err != nil {
		t.Fatalf("open the password wrap: %v", err)
	}
	out := memKeys{mk: mk, sk: acct.SecretKey}
	recs, err := st.Vaults()
	if err != nil {
		t.Fatal(err)
	}
	for id, raw := range recs {
		var vr struct {
			Key []byte `json:"key"`
			Org string `json:"org"`
		}
		if err := json.Unmarshal(raw, &vr); err != nil {
			t.Fatal(err)
		}
		if vr.Org != "" {
			continue
		}
		vk, err := envelope.Open(mk, envelope.Context{Purpose: "vault-key", Account: acct.Account, Vault: id}, vr.Key)
		if err != nil {
			t.Fatalf("open vault %s key: %v", id, err)
		}
		out.vaultKeys = append(out.vaultKeys, vk)
	}
	if len(out.vaultKeys) == 0 {
		t.Fatal("no vault key opened")
	}
	return out
}

func memAgentPID(t *testing.T, h *procHarness) int {
	t.Helper()
	pids, _ := agentPIDs(h.dir)
	if len(pids) != 1 {
		t.Fatalf("want one agent, found %v", pids)
	}
	return pids[0]
}

// memNeedle is a byte string to look for; secret ones must be absent once
// the agent is locked.
type memNeedle struct {
	name   string
	b      []byte
	secret bool
}

// memRegion is one readable piece of the agent's memory.
type memRegion struct {
	start  uint64
	desc   string // the maps line, and its VmFlags
	locked bool   // VmFlags has "lo" or "dd" (not "dp"): a lockedmem buffer
	data   []byte
}

func memTotal(rs []memRegion) int {
	n := 0
	for _, r := range rs {
		n += len(r.data)
	}
	return n
}

// memRequirePtrace skips the test when this process may not read the
// agent's memory (the agent is not dumpable: only CAP_SYS_PTRACE can).
func memRequirePtrace(t *testing.T, pid int) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err == nil {
		f.Close()
		return
	}
	if errors.Is(err, os.ErrPermission) {
		t.Skipf("cannot read the agent's memory (%v): the agent is not dumpable (PR_SET_DUMPABLE 0), so this needs CAP_SYS_PTRACE; run as root", err)
	}
	t.Fatal(err)
}

// memRead reads every readable mapping of pid through /proc/PID/mem, with
// each mapping's VmFlags from /proc/PID/smaps ("lo" locked, "dd" excluded
// from core dumps: the lockedmem buffers have both).
func memRead(t *testing.T, pid int) []memRegion {
	t.Helper()
	memRequirePtrace(t, pid)
	smaps, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			t.Skipf("cannot read the agent's smaps (%v): needs CAP_SYS_PTRACE", err)
		}
		t.Fatal(err)
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	type mapping struct {
		start, end uint64
		line, perm string
		flags      string
	}
	var maps []*mapping
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && len(fields[1]) == 4 {
			lo, hi, _ := strings.Cut(fields[0], "-")
			start, err1 := strconv.ParseUint(lo, 16, 64)
			end, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 == nil && err2 == nil {
				maps = append(maps, &mapping{start: start, end: end, line: line, perm: fields[1]})
				continue
			}
		}
		if rest, ok := strings.CutPrefix(line, "VmFlags:"); ok && len(maps) > 0 {
			maps[len(maps)-1].flags = strings.TrimSpace(rest)
		}
	}
	var out []memRegion
	for _, m := range maps {
		if m.perm[0] != 'r' || strings.HasSuffix(m.line, "[vvar]") || strings.HasSuffix(m.line, "[vsyscall]") {
			continue
		}
		buf := make([]byte, m.end-m.start)
		n, err := mem.ReadAt(buf, int64(m.start))
		if err != nil && n == 0 {
			continue // e.g. a mapping unmapped since smaps was read
		}
		fl := strings.Fields(m.flags)
		// "dp" (droppable) with "dd" is the kernel's vDSO getrandom state,
		// which the Go runtime maps: not a key buffer.
		locked := (slices.Contains(fl, "lo") || slices.Contains(fl, "dd")) && !slices.Contains(fl, "dp")
		out = append(out, memRegion{start: m.start, desc: m.line + " [" + m.flags + "]", locked: locked, data: buf[:n]})
	}
	return out
}

// memStopAtExit attaches gdb to pid and stops the agent when it calls
// exit_group, after it locked, wiped and unmapped its buffers (§8.14): the
// last moment its memory exists. It returns once gdb is in place; the
// function returned waits for that stop, runs read on the stopped process
// and lets it exit.
func memStopAtExit(t *testing.T, gdb string, pid int) func(read func()) error {
	t.Helper()
	dir := t.TempDir()
	stopped, resume := filepath.Join(dir, "stopped"), filepath.Join(dir, "resume")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	cmd := exec.CommandContext(ctx, gdb, "-nx", "-batch", "-iex", "set auto-load off",
		"-ex", "set pagination off",
		"-ex", "handle SIGURG nostop noprint pass",
		"-ex", "handle SIGPIPE nostop noprint pass",
		"-ex", "catch syscall exit_group",
		"-ex", "echo memtest-armed\\n",
		"-ex", "continue",
		"-ex", fmt.Sprintf("shell touch %s; while [ ! -e %s ]; do sleep 0.05; done", stopped, resume),
		"-ex", "detach",
		"-p", strconv.Itoa(pid))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.WriteFile(resume, nil, 0o600)
		cancel()
		cmd.Wait()
	})
	var log bytes.Buffer
	r := bufio.NewReader(out)
	for {
		line, err := r.ReadString('\n')
		log.WriteString(line)
		if strings.Contains(line, "memtest-armed") {
			break
		}
		if err != nil {
			t.Fatalf("gdb did not attach to the agent: %v\n%s%s", err, log.String(), stderr.String())
		}
	}
	rest := make(chan struct{})
	go func() {
		io.Copy(&log, r)
		close(rest)
	}()
	return func(read func()) error {
		for !fileExists(stopped) {
			if ctx.Err() != nil || cmd.ProcessState != nil {
				return fmt.Errorf("gdb did not stop the agent at its exit:\n%s%s", log.String(), stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		read()
		os.WriteFile(resume, nil, 0o600)
		err := cmd.Wait()
		<-rest
		if !strings.Contains(log.String(), "exit_group") {
			return fmt.Errorf("gdb did not stop the agent at exit_group (%v):\n%s%s", err, log.String(), stderr.String())
		}
		return nil
	}
}

// memFound is one occurrence of a needle.
type memFound struct {
	where  string
	locked bool
}

func (f memFound) String() string { return f.where }

// memSearch finds every occurrence of each needle.
func memSearch(rs []memRegion, needles []memNeedle) map[string][]memFound {
	found := map[string][]memFound{}
	for _, n := range needles {
		for _, r := range rs {
			for off := 0; ; {
				i := bytes.Index(r.data[off:], n.b)
				if i < 0 {
					break
				}
				found[n.name] = append(found[n.name], memFound{fmt.Sprintf("%#x in %s", r.start+uint64(off+i), r.desc), r.locked})
				off += i + 1
			}
		}
	}
	return found
}

func memLog(t *testing.T, when string, needles []memNeedle, found map[string][]memFound) {
	t.Helper()
	for _, n := range needles {
		t.Logf("%s: %s: %d copies", when, n.name, len(found[n.name]))
		for i, w := range found[n.name] {
			if i == 8 {
				t.Logf("    … %d more", len(found[n.name])-i)
				break
			}
			t.Logf("    %s", w)
		}
	}
}

// memCheck fails when a secret is still in a locked buffer (lockedmem:
// wiped and unmapped at lock, so this must never happen). A copy in the
// ordinary Go heap is what Go does not let the agent wipe (docs/design.md
// §9.9): reported as a known gap, and a failure with SAFE_MEMTEST_STRICT=1.
func memCheck(t *testing.T, when string, needles []memNeedle, found map[string][]memFound) {
	t.Helper()
	strict := os.Getenv("SAFE_MEMTEST_STRICT") == "1"
	for _, n := range needles {
		if !n.secret {
			continue
		}
		for _, f := range found[n.name] {
			if f.locked {
				t.Errorf("%s: the %s is still in a locked buffer: %s", when, n.name, f)
			}
		}
		if c := len(found[n.name]); c > 0 {
			if strict {
				t.Errorf("%s: the %s is still in the agent's heap (%d copies), first at %s", when, n.name, c, found[n.name][0])
			} else {
				t.Logf("KNOWN GAP %s: the %s is in freed Go heap memory (%d copies; design §9.9; SAFE_MEMTEST_STRICT=1 fails on it)", when, n.name, c)
			}
		}
	}
}

func memXOR(b []byte, x byte) []byte {
	out := make([]byte, len(b))
	for i := range b {
		out[i] = b[i] ^ x
	}
	return out
}
