package lockedmem

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

const helperEnv = "SAFEHOLD_LOCKEDMEM_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "overflow", "underflow", "frozen-write":
		faultHelper(os.Getenv(helperEnv))
		os.Exit(0) // not reached if the access faults
	default:
		os.Exit(99)
	}
}

// faultHelper touches memory that must be inaccessible; the runtime turns the
// SIGSEGV into a fatal "unexpected fault address" error.
func faultHelper(mode string) {
	b, err := Alloc(32)
	if err != nil {
		os.Exit(98)
	}
	d := b.Bytes()
	base := unsafe.Pointer(unsafe.SliceData(d))
	var p *byte
	switch mode {
	case "overflow": // first byte after the data: trailing guard page
		p = (*byte)(unsafe.Add(base, len(d)))
	case "underflow": // the byte before the data pages: leading guard page
		p = (*byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(b.pages)), -1))
	case "frozen-write":
		if err := b.Freeze(); err != nil {
			os.Exit(97)
		}
		p = (*byte)(base)
	}
	*p = 1
	os.Stdout.WriteString("no fault " + strconv.Itoa(int(*p)) + "\n")
}

func TestAllocReadWrite(t *testing.T) {
	for _, n := range []int{1, 32, os.Getpagesize() - 1, os.Getpagesize(), os.Getpagesize() + 1, 3 * os.Getpagesize()} {
		b, err := Alloc(n)
		if err != nil {
			t.Fatalf("Alloc(%d): %v", n, err)
		}
		d := b.Bytes()
		if len(d) != n || cap(d) != n || b.Len() != n {
			t.Fatalf("Alloc(%d): len %d cap %d Len %d", n, len(d), cap(d), b.Len())
		}
		if !bytes.Equal(d, make([]byte, n)) {
			t.Fatalf("Alloc(%d): not zeroed", n)
		}
		for i := range d {
			d[i] = byte(i * 7)
		}
		for i := range d {
			if d[i] != byte(i*7) {
				t.Fatalf("Alloc(%d): byte %d reads %d", n, i, d[i])
			}
		}
		// The data ends exactly where the trailing guard page starts.
		end := uintptr(unsafe.Pointer(unsafe.SliceData(d))) + uintptr(n)
		if end%uintptr(os.Getpagesize()) != 0 {
			t.Fatalf("Alloc(%d): data does not end on a page boundary", n)
		}
		if !b.Locked() || b.LockError() != nil {
			t.Fatalf("Alloc(%d): not locked: %v", n, b.LockError())
		}
		if err := b.Destroy(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAllocSizeBounds(t *testing.T) {
	for _, n := range []int{0, -1, MaxSize + 1} {
		if _, err := Alloc(n); !errors.Is(err, ErrSize) {
			t.Errorf("Alloc(%d) = %v, want ErrSize", n, err)
		}
	}
}

func TestDestroyWipesAndIsIdempotent(t *testing.T) {
	b, err := Alloc(100)
	if err != nil {
		t.Fatal(err)
	}
	copy(b.Bytes(), bytes.Repeat([]byte{0xA5}, 100))
	if err := b.Freeze(); err != nil { // Destroy must melt before wiping
		t.Fatal(err)
	}
	var seen []byte
	b.beforeUnmap = func(pages []byte) { seen = bytes.Clone(pages) }
	if err := b.Destroy(); err != nil {
		t.Fatal(err)
	}
	if len(seen) != os.Getpagesize() {
		t.Fatalf("hook saw %d bytes, want one page", len(seen))
	}
	if !bytes.Equal(seen, make([]byte, len(seen))) {
		t.Fatal("data pages not wiped before unmap")
	}
	if err := b.Destroy(); err != nil {
		t.Fatalf("second Destroy: %v", err)
	}
	if b.Bytes() != nil || b.Len() != 0 || b.Locked() {
		t.Fatal("destroyed buffer still exposes data")
	}
	if err := b.Freeze(); err == nil {
		t.Fatal("Freeze after Destroy succeeded")
	}
}

func TestMlockFailureFallsBack(t *testing.T) {
	b, err := alloc(64, func([]byte) error { return unix.ENOMEM })
	if err != nil {
		t.Fatalf("alloc with failing mlock: %v", err)
	}
	defer b.Destroy()
	if b.Locked() {
		t.Fatal("Locked() = true after mlock failure")
	}
	if !errors.Is(b.LockError(), unix.ENOMEM) || !strings.Contains(b.LockError().Error(), "RLIMIT_MEMLOCK") {
		t.Fatalf("LockError() = %v", b.LockError())
	}
	copy(b.Bytes(), "still usable")
	if string(b.Bytes()[:12]) != "still usable" {
		t.Fatal("fallback buffer not usable")
	}
}

func TestFreezeMelt(t *testing.T) {
	b, err := Alloc(8)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Destroy()
	if err := b.Freeze(); err != nil {
		t.Fatal(err)
	}
	if err := b.Melt(); err != nil {
		t.Fatal(err)
	}
	b.Bytes()[0] = 1 // writable again: must not fault
}

func TestDataPagesAreDontDumpAndLocked(t *testing.T) {
	b, err := Alloc(16)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Destroy()
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b.pages)))
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skipf("no smaps: %v", err)
	}
	hdr := strconv.FormatUint(uint64(start), 16) + "-"
	i := bytes.Index(smaps, []byte("\n"+hdr))
	if i < 0 {
		t.Fatalf("mapping %s not found in smaps", hdr)
	}
	// The block of this mapping ends with its VmFlags line.
	lines := strings.Split(string(smaps[i+1:]), "\n")
	var flags, locked string
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, "VmFlags:") {
			flags = l
			break
		}
		if strings.HasPrefix(l, "Locked:") {
			locked = l
		}
	}
	if !strings.Contains(flags, " dd") {
		t.Errorf("data pages lack the DONTDUMP flag: %q", flags)
	}
	if !strings.Contains(flags, " lo") {
		t.Errorf("data pages lack the locked flag: %q (Locked line %q)", flags, locked)
	}
}

func TestGuardPagesFault(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess test")
	}
	for _, mode := range []string{"overflow", "underflow", "frozen-write"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), helperEnv+"="+mode, "GOTRACEBACK=single")
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("helper did not fail: err=%v output=%q", err, out)
			}
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return // killed by SIGSEGV directly: also a fault
			}
			if !bytes.Contains(out, []byte("unexpected fault address")) && !bytes.Contains(out, []byte("SIGSEGV")) {
				t.Fatalf("helper failed without a fault: %v\n%s", err, out)
			}
		})
	}
}
