package peer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// pipe is one end of an in-memory MsgConn pair, standing in for a channel
// connection: messages are copied, arrive in order, are at most max bytes,
// and at most depth of them wait in each direction (a writer blocks
// beyond). Closing either end closes both: the other end reads what was
// already sent, then io.EOF.
type pipe struct {
	in     <-chan []byte
	out    chan<- []byte
	done   chan struct{}
	once   *sync.Once
	max    int
	maxLen *atomic.Int64 // the longest message written, both ways
}

func newPipe(depth, max int) (a, b *pipe) {
	ab, ba := make(chan []byte, depth), make(chan []byte, depth)
	done, once, maxLen := make(chan struct{}), new(sync.Once), new(atomic.Int64)
	return &pipe{in: ba, out: ab, done: done, once: once, max: max, maxLen: maxLen},
		&pipe{in: ab, out: ba, done: done, once: once, max: max, maxLen: maxLen}
}

func (p *pipe) WriteMessage(m []byte) error {
	if len(m) > p.max {
		return fmt.Errorf("pipe: a message of %d bytes, more than %d", len(m), p.max)
	}
	select {
	case <-p.done:
		return io.ErrClosedPipe
	default:
	}
	for {
		old := p.maxLen.Load()
		if int64(len(m)) <= old || p.maxLen.CompareAndSwap(old, int64(len(m))) {
			break
		}
	}
	select {
	case p.out <- bytes.Clone(m):
		return nil
	case <-p.done:
		return io.ErrClosedPipe
	}
}

func (p *pipe) ReadMessage() ([]byte, error) {
	select {
	case m := <-p.in:
		return m, nil
	case <-p.done:
		select {
		case m := <-p.in:
			return m, nil
		default:
			return nil, io.EOF
		}
	}
}

func (p *pipe) Close() error {
	p.once.Do(func() { close(p.done) })
	return nil
}

// errCut is the error of a cut connection.
var errCut = errors.New("connection cut by the test")

// cut is a MsgConn that breaks at its reads' or writes' count: that read
// or write closes the connection and fails with errCut. A count <= 0
// never cuts.
type cut struct {
	MsgConn
	reads, writes atomic.Int64
}

func (c *cut) ReadMessage() ([]byte, error) {
	if c.reads.Load() > 0 && c.reads.Add(-1) == 0 {
		c.Close()
		return nil, errCut
	}
	return c.MsgConn.ReadMessage()
}

func (c *cut) WriteMessage(m []byte) error {
	if c.writes.Load() > 0 && c.writes.Add(-1) == 0 {
		c.Close()
		return errCut
	}
	return c.MsgConn.WriteMessage(m)
}
