package store

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

// TestQueuePipe: bytes arrive whole and in order whatever the write sizes,
// the writer's error reaches the reader after the queued bytes, and a
// reader that gives up unblocks a writer waiting on a full queue.
func TestQueuePipe(t *testing.T) {
	data := make([]byte, 3*queueChunks*chunkSize+12345)
	for i := range data {
		data[i] = byte(i * 7 / 5)
	}
	q := newQueuePipe()
	go func() {
		for p := data; len(p) > 0; {
			n := min(len(p), 1+len(p)%(3*chunkSize))
			q.Write(p[:n])
			p = p[n:]
		}
		q.CloseWithError(nil)
	}()
	got, err := io.ReadAll(q)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes (%v), want the %d written", len(got), err, len(data))
	}

	boom := errors.New("network down")
	q = newQueuePipe()
	go func() { q.Write([]byte("abc")); q.CloseWithError(boom) }()
	got, err = io.ReadAll(q)
	if string(got) != "abc" || !errors.Is(err, boom) {
		t.Errorf("read %q, %v: want abc, then the writer's error", got, err)
	}

	q = newQueuePipe()
	gone := errors.New("extraction failed")
	wrote := make(chan error, 1)
	go func() {
		_, err := q.Write(make([]byte, 2*queueChunks*chunkSize)) // more than the queue holds
		wrote <- err
	}()
	time.Sleep(50 * time.Millisecond)
	q.CloseRead(gone)
	select {
	case err := <-wrote:
		if !errors.Is(err, gone) {
			t.Errorf("write after the reader gave up: %v, want its error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a writer stayed blocked after the reader gave up")
	}
	if _, err := q.Write([]byte("x")); !errors.Is(err, gone) {
		t.Errorf("a later write: %v, want the reader's error", err)
	}
}
