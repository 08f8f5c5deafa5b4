package layer

import (
	"io"
	"sync/atomic"
)

// asyncWriter hands writes to a goroutine, so that hashing and writing one
// stage of the layer pipeline overlap with the stage before it (a layer
// write otherwise runs the tar walk, two sha256 and the file write on one
// core while the compressor waits). Writes are copied into a few reused
// buffers; errors surface from the next Write or from Close. The real error
// (ENOSPC, say) is what surfaces, so the user sees the cause.
type asyncWriter struct {
	queue chan []byte
	free  chan []byte
	done  chan error
	err   atomic.Pointer[error]
}

// Every layer write holds two of these (the diffID hash and the blob
// file), so their buffers are part of strata's peak RSS: 256 KiB writes
// (the size the tar stream is batched to) keep sha256 and the file write
// at full speed, and five of them cost 1.25 MiB where 1 MiB ones cost 5.
const (
	asyncBufSize = 256 << 10
	asyncDepth   = 4
)

func newAsyncWriter(w io.Writer) *asyncWriter {
	a := &asyncWriter{
		queue: make(chan []byte, asyncDepth),
		free:  make(chan []byte, asyncDepth+1),
		done:  make(chan error, 1),
	}
	for range asyncDepth + 1 {
		a.free <- make([]byte, 0, asyncBufSize)
	}
	go a.run(w)
	return a
}

func (a *asyncWriter) run(w io.Writer) {
	var err error
	for b := range a.queue {
		if err == nil {
			if _, err = w.Write(b); err != nil {
				a.err.Store(&err)
			}
		}
		a.free <- b[:0]
	}
	a.done <- err
}

func (a *asyncWriter) Write(p []byte) (int, error) {
	if err := a.err.Load(); err != nil {
		return 0, *err
	}
	n := len(p)
	for len(p) > 0 {
		buf := <-a.free
		k := min(len(p), cap(buf))
		a.queue <- append(buf, p[:k]...)
		p = p[k:]
	}
	return n, nil
}

// Close waits for every queued write and returns the first error.
func (a *asyncWriter) Close() error {
	close(a.queue)
	return <-a.done
}
