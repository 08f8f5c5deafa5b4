package store

import (
	"errors"
	"io"
	"sync"
)

// queuePipe is io.Pipe with a bounded queue between its ends: a write
// returns once its bytes are queued, not once they are read, so the
// download of a streamed layer (its network reads, the blob file's
// writes and hash) runs ahead of the extraction instead of taking turns
// with it: io.Pipe hands every write over synchronously, and each of
// those thousands of handovers waits for the other goroutine to run.
type queuePipe struct {
	ch     chan []byte
	closed chan struct{} // closed when the reader gives up
	once   sync.Once
	mu     sync.Mutex
	rerr   error // why the reader gave up
	werr   error // why the writer stopped; nil is io.EOF
	cur    []byte
	buf    []byte // the chunk cur is part of, for the pool
}

// queueChunks chunks of chunkSize bytes bound the queue: 1 MiB, which
// lets the download run ahead without weighing on the build's memory.
const (
	queueChunks = 32
	chunkSize   = 32 << 10
)

var chunkPool = sync.Pool{New: func() any { b := make([]byte, 0, chunkSize); return &b }}

func newQueuePipe() *queuePipe {
	return &queuePipe{ch: make(chan []byte, queueChunks), closed: make(chan struct{})}
}

// Write queues a copy of p; it fails once the reader has given up.
func (q *queuePipe) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		// In chunks of at most chunkSize: the queue's bound in bytes.
		bp := chunkPool.Get().(*[]byte)
		b := append((*bp)[:0], p[:min(len(p), chunkSize)]...)
		select {
		case <-q.closed:
			return written, q.readErr()
		default:
		}
		select {
		case q.ch <- b:
		case <-q.closed:
			return written, q.readErr()
		}
		written += len(b)
		p = p[len(b):]
	}
	return written, nil
}

// CloseWithError ends the writes: the reader sees err (nil: io.EOF) once
// it has read what was queued. Only the writer's goroutine calls it.
func (q *queuePipe) CloseWithError(err error) {
	q.mu.Lock()
	q.werr = err
	q.mu.Unlock()
	close(q.ch)
}

// Read reads the queued bytes in order.
func (q *queuePipe) Read(p []byte) (int, error) {
	if len(q.cur) == 0 {
		q.recycle()
		select {
		case b, ok := <-q.ch:
			if !ok {
				q.mu.Lock()
				defer q.mu.Unlock()
				if q.werr != nil {
					return 0, q.werr
				}
				return 0, io.EOF
			}
			q.cur, q.buf = b, b
		case <-q.closed:
			return 0, q.readErr()
		}
	}
	n := copy(p, q.cur)
	q.cur = q.cur[n:]
	return n, nil
}

func (q *queuePipe) recycle() {
	if q.buf != nil {
		b := q.buf[:0]
		chunkPool.Put(&b)
	}
	q.buf = nil
}

// CloseRead gives up reading: writes fail with err from now on.
func (q *queuePipe) CloseRead(err error) {
	if err == nil {
		err = errors.New("read end closed")
	}
	q.once.Do(func() {
		q.mu.Lock()
		q.rerr = err
		q.mu.Unlock()
		close(q.closed)
	})
}

func (q *queuePipe) readErr() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.rerr
}
