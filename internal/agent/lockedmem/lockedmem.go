// Package lockedmem allocates buffers for key material outside the Go heap:
// anonymous memory mappings whose data pages are locked into RAM (never
// written to swap), excluded from core dumps, wiped on fork, and fenced by an
// inaccessible guard page on each side.
//
// Layout of one allocation, in pages of os.Getpagesize() bytes:
//
//	+-------------+----------------------------------+-------------+
//	| guard page  | data pages (mlocked, DONTDUMP)    | guard page  |
//	| PROT_NONE   | [ slack ... | n bytes of Bytes() ]| PROT_NONE   |
//	+-------------+----------------------------------+-------------+
//
// The n usable bytes end exactly at the trailing guard page, so an overflow
// by even one byte faults instead of reading or writing a neighbour. Go's
// bounds checks already stop overflows from Go code; the guard pages are
// there for everything else (cgo, unsafe, kernel bugs that leak adjacent
// memory).
//
// Locking can fail when RLIMIT_MEMLOCK is too small. Alloc then still returns
// a usable buffer, records the reason, and Locked reports false, so that the
// caller can tell the user ("keys in locked memory: no") instead of refusing
// to unlock.
package lockedmem

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// MaxSize bounds one allocation. Key material is small; the limit keeps a
// caller bug from exhausting RAM with locked pages.
const MaxSize = 16 << 20

// ErrSize reports a requested size outside 1..MaxSize.
var ErrSize = errors.New("lockedmem: size out of range")

// Buffer is a guarded, locked allocation. Its methods are safe for
// concurrent use, but the slice returned by Bytes is not protected: the
// caller must not use it after Destroy (the memory is unmapped and any access
// faults).
type Buffer struct {
	mu        sync.Mutex
	mapping   []byte // whole mapping: guard + data pages + guard
	pages     []byte // data pages only
	data      []byte // the n usable bytes, at the end of pages
	lockErr   error  // why mlock failed, nil if the pages are locked
	frozen    bool
	destroyed bool

	// beforeUnmap, if set (by tests in this package), is called by Destroy
	// after the wipe and before munmap, with the data pages.
	beforeUnmap func(pages []byte)
}

// Alloc returns a zeroed buffer of n bytes in locked, guarded memory. It
// fails only if the mapping itself cannot be made; a failure to lock the
// pages is recorded (see Locked and LockError), not returned.
func Alloc(n int) (*Buffer, error) {
	return alloc(n, unix.Mlock)
}

func alloc(n int, mlock func([]byte) error) (*Buffer, error) {
	if n <= 0 || n > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrSize, n)
	}
	page := os.Getpagesize()
	dataLen := (n + page - 1) / page * page
	total := dataLen + 2*page
	mapping, err := unix.Mmap(-1, 0, total, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("lockedmem: mmap %d bytes: %w", total, err)
	}
	fail := func(what string, err error) (*Buffer, error) {
		_ = unix.Munmap(mapping)
		return nil, fmt.Errorf("lockedmem: %s: %w", what, err)
	}
	if err := unix.Mprotect(mapping[:page], unix.PROT_NONE); err != nil {
		return fail("protect leading guard page", err)
	}
	if err := unix.Mprotect(mapping[page+dataLen:], unix.PROT_NONE); err != nil {
		return fail("protect trailing guard page", err)
	}
	pages := mapping[page : page+dataLen : page+dataLen]
	// Core dumps must not contain the keys. Supported since Linux 3.4; a
	// failure means the kernel cannot honour the request, so refuse.
	if err := unix.Madvise(pages, unix.MADV_DONTDUMP); err != nil {
		return fail("madvise DONTDUMP", err)
	}
	// A forked child (Go never forks without exec, but cgo code might) sees
	// zeros instead of keys. Linux 4.14+; best effort.
	_ = unix.Madvise(pages, unix.MADV_WIPEONFORK)
	b := &Buffer{
		mapping: mapping,
		pages:   pages,
		data:    pages[dataLen-n : dataLen : dataLen],
	}
	if err := mlock(pages); err != nil {
		b.lockErr = fmt.Errorf("lockedmem: mlock %d bytes (raise RLIMIT_MEMLOCK, see ulimit -l): %w", dataLen, err)
	}
	return b, nil
}

// Bytes returns the buffer's n bytes. Its capacity is n, so append copies to
// the Go heap instead of writing into the slack: never append to it. After
// Destroy, Bytes returns nil.
func (b *Buffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.destroyed {
		return nil
	}
	return b.data
}

// Len returns the usable size n, or 0 after Destroy.
func (b *Buffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.destroyed {
		return 0
	}
	return len(b.data)
}

// Locked reports whether the data pages are locked in RAM.
func (b *Buffer) Locked() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lockErr == nil && !b.destroyed
}

// LockError returns why the pages could not be locked, or nil if they are.
// It is a warning for the user, not a failure of the allocation.
func (b *Buffer) LockError() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lockErr
}

// Freeze makes the data pages read-only: a later write faults. Use it once a
// key is in place.
func (b *Buffer) Freeze() error {
	return b.protect(true)
}

// Melt makes frozen data pages writable again.
func (b *Buffer) Melt() error {
	return b.protect(false)
}

func (b *Buffer) protect(frozen bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.destroyed {
		return errors.New("lockedmem: buffer destroyed")
	}
	prot := unix.PROT_READ | unix.PROT_WRITE
	if frozen {
		prot = unix.PROT_READ
	}
	if err := unix.Mprotect(b.pages, prot); err != nil {
		return fmt.Errorf("lockedmem: mprotect: %w", err)
	}
	b.frozen = frozen
	return nil
}

// Destroy wipes the data pages, unlocks and unmaps the whole allocation. It
// is idempotent. Every slice obtained from Bytes is invalid afterwards.
func (b *Buffer) Destroy() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.destroyed {
		return nil
	}
	b.destroyed = true
	var errs []error
	if b.frozen {
		if err := unix.Mprotect(b.pages, unix.PROT_READ|unix.PROT_WRITE); err != nil {
			// Cannot wipe; unmapping still returns the pages to the kernel,
			// which zeroes them before any reuse.
			errs = append(errs, fmt.Errorf("lockedmem: mprotect before wipe: %w", err))
		} else {
			b.frozen = false
		}
	}
	if !b.frozen {
		clear(b.pages)
	}
	if b.beforeUnmap != nil {
		b.beforeUnmap(b.pages)
	}
	if b.lockErr == nil {
		if err := unix.Munlock(b.pages); err != nil {
			errs = append(errs, fmt.Errorf("lockedmem: munlock: %w", err))
		}
	}
	if err := unix.Munmap(b.mapping); err != nil {
		errs = append(errs, fmt.Errorf("lockedmem: munmap: %w", err))
	}
	b.mapping, b.pages, b.data = nil, nil, nil
	return errors.Join(errs...)
}
