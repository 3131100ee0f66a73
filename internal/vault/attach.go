package vault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/safehold/safehold/internal/envelope"
	"github.com/safehold/safehold/internal/item"
	"github.com/safehold/safehold/internal/store"
)

// ChunkSize is how much plaintext one attachment chunk holds.
const ChunkSize = 64 << 10

// MaxAttachmentSize bounds one attachment (64 GiB).
const MaxAttachmentSize = 64 << 30

func attachmentContext(acct, vault, id, blob string) envelope.Context {
	return envelope.Context{Purpose: purposeAttachment, Account: acct, Vault: vault, Item: id, Field: blob}
}

// Attach stores the data read from r as an attachment named name on the item
// ref names. It streams: memory stays bounded whatever the size. The chunks
// commit first, in their own transaction, with the blob marked pending; the
// item revision that refers to them commits next and clears the mark. A
// crash between leaves only marked chunks, which the next unlock removes.
func (v *Vault) Attach(ctx context.Context, ref, name string, r io.Reader) (item.Item, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > item.MaxTitle || strings.ContainsAny(name, "/\\\x00\n") {
		return item.Item{}, fmt.Errorf("%w: attachment name %q must be a plain file name", item.ErrInvalid, name)
	}
	s, o, err := v.resolve(ctx, ref, false)
	if err != nil {
		return item.Item{}, err
	}
	it, err := v.read(s, o.ID)
	if err != nil {
		return item.Item{}, err
	}
	if slices.ContainsFunc(it.Attachments, func(a item.Attachment) bool { return a.Name == name }) {
		return item.Item{}, fmt.Errorf("%w: %q already has an attachment named %q; remove it first", item.ErrInvalid, it.Title, name)
	}
	blob, err := newID(v.opts.Rand)
	if err != nil {
		return item.Item{}, err
	}
	key, err := randomKey(v.opts.Rand)
	if err != nil {
		return item.Item{}, err
	}
	defer key.Wipe()
	sealer, header, err := envelope.NewStreamSealer(v.opts.Rand, key, attachmentContext(s.acct, s.id, it.ID, blob))
	if err != nil {
		return item.Item{}, err
	}
	a := item.Attachment{ID: blob, Name: name, Key: key.Clone(), Header: header, Added: v.opts.now().UTC()}
	// Chunks go in their own transaction first, marked pending; the item
	// revision that makes them reachable comes after and clears the mark.
	// A crash between leaves marked chunks that nothing refers to, sealed
	// under a key that was never stored, and the item as it was: never a
	// broken item. The next unlock drops them.
	err = v.st.Update(ctx, func(tx *store.Tx) error {
		if err := tx.MarkPending(s.id, blob); err != nil {
			return err
		}
		buf := make([]byte, ChunkSize)
		next := make([]byte, ChunkSize)
		n, err := io.ReadFull(r, buf)
		for idx := int64(0); ; idx++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
				return fmt.Errorf("read attachment: %w", err)
			}
			final := err != nil
			var m int
			var nextErr error
			if !final {
				m, nextErr = io.ReadFull(r, next)
				if errors.Is(nextErr, io.EOF) {
					final = true
				}
			}
			ct, serr := sealer.SealChunk(uint64(idx), final, buf[:n])
			if serr != nil {
				return serr
			}
			if err := tx.PutChunk(s.id, blob, idx, ct); err != nil {
				return err
			}
			a.Size += int64(n)
			a.Chunks = idx + 1
			if a.Size > MaxAttachmentSize {
				return fmt.Errorf("%w: attachment larger than %d bytes", item.ErrInvalid, int64(MaxAttachmentSize))
			}
			if final {
				return nil
			}
			buf, next = next, buf
			n, err = m, nextErr
		}
	})
	if err != nil {
		return item.Item{}, err
	}
	it.Attachments = append(it.Attachments, a)
	it.Modified = v.opts.now().UTC()
	items := []item.Item{it}
	if err := v.write(ctx, s, items, nil, blob); err != nil {
		return item.Item{}, err
	}
	return items[0], nil
}

// ReadAttachment writes the attachment named name of the item ref names to
// w, authenticating every chunk; it refuses truncated, reordered or swapped
// chunks.
func (v *Vault) ReadAttachment(ctx context.Context, ref, name string, w io.Writer) (int64, error) {
	it, err := v.Get(ctx, ref)
	if err != nil {
		return 0, err
	}
	i := slices.IndexFunc(it.Attachments, func(a item.Attachment) bool { return a.Name == name || a.ID == name })
	if i < 0 {
		return 0, fmt.Errorf("%w: %q has no attachment %q", ErrNotFound, it.Title, name)
	}
	a := it.Attachments[i]
	s, err := v.vaultOf(it.ID)
	if err != nil {
		return 0, err
	}
	opener, err := envelope.NewStreamOpener(a.Key, attachmentContext(s.acct, s.id, it.ID, a.ID), a.Header)
	if err != nil {
		return 0, tampered("attachment %q header: %v", a.Name, err)
	}
	var total int64
	for idx := int64(0); idx < a.Chunks; idx++ {
		ct, err := v.st.Chunk(s.id, a.ID, idx)
		if errors.Is(err, store.ErrNotFound) {
			return total, tampered("attachment %q chunk %d is missing", a.Name, idx)
		}
		if err != nil {
			return total, err
		}
		pt, err := opener.OpenChunk(uint64(idx), idx == a.Chunks-1, ct)
		if err != nil {
			return total, tampered("attachment %q chunk %d does not open: it was modified, moved or truncated", a.Name, idx)
		}
		n, err := w.Write(pt)
		total += int64(n)
		if err != nil {
			return total, fmt.Errorf("write attachment: %w", err)
		}
	}
	if total != a.Size {
		return total, tampered("attachment %q is %d bytes, want %d", a.Name, total, a.Size)
	}
	return total, nil
}

// Detach removes an attachment from the current revision. Its chunks stay
// while earlier revisions refer to them; purging the item removes them.
func (v *Vault) Detach(ctx context.Context, ref, name string) (item.Item, error) {
	s, o, err := v.resolve(ctx, ref, false)
	if err != nil {
		return item.Item{}, err
	}
	it, err := v.read(s, o.ID)
	if err != nil {
		return item.Item{}, err
	}
	i := slices.IndexFunc(it.Attachments, func(a item.Attachment) bool { return a.Name == name || a.ID == name })
	if i < 0 {
		return item.Item{}, fmt.Errorf("%w: %q has no attachment %q", ErrNotFound, it.Title, name)
	}
	it.Attachments = slices.Delete(it.Attachments, i, i+1)
	it.Modified = v.opts.now().UTC()
	items := []item.Item{it}
	if err := v.write(ctx, s, items, nil); err != nil {
		return item.Item{}, err
	}
	return items[0], nil
}
