package cache

import (
	"bytes"
	"errors"
	"sync"

	"github.com/strata-build/strata/store"
)

// writer keeps the local store's records (entries, explain records and their slots) off
// the build's critical path: Put hands them over and returns, and one goroutine writes them
// to the store, each whole under a temporary name and renamed into place. A file written
// costs ~0.2 to 1 ms on a busy disk and a step writes four; a metadata step is otherwise
// well under a millisecond. Until a record is on disk it is read from memory, so this
// process sees its own writes at once. Flush waits for everything handed over (the
// builder calls it when a stage ends); a process killed before that loses the records of
// its last few milliseconds, which are then misses.
type writer struct {
	st *store.Store

	mu   sync.Mutex
	cond *sync.Cond // signalled when a batch is written
	// pending are the records not yet taken by the goroutine; inflight the batch it is
	// writing. The latest value of a name wins.
	pending, inflight map[string][]byte
	running           bool
	// handed counts the values handed over, written those in the store.
	handed, written uint64
	err             error // the first write error, returned by Flush
}

func newWriter(st *store.Store) *writer {
	w := &writer{st: st, pending: map[string][]byte{}}
	w.cond = sync.NewCond(&w.mu)
	return w
}

// maxPending bounds the records waiting for the goroutine (a few MB): a build of thousands
// of steps on a slow disk waits for it rather than holding them all.
const maxPending = 1024

// put hands value over to be stored under name.
func (w *writer) put(name string, value []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.pending) >= maxPending {
		w.cond.Wait()
	}
	w.pending[name] = value
	w.handed++
	if !w.running {
		w.running = true
		go w.run()
	}
}

// get is name's value: the one not yet written when there is one, else the store's.
func (w *writer) get(name string) ([]byte, error) {
	w.mu.Lock()
	v, ok := w.pending[name]
	if !ok {
		v, ok = w.inflight[name]
	}
	w.mu.Unlock()
	if ok {
		return v, nil
	}
	return w.st.CacheGet(name)
}

func (w *writer) run() {
	w.mu.Lock()
	for len(w.pending) > 0 {
		w.inflight, w.pending = w.pending, map[string][]byte{}
		batch, upto := w.inflight, w.handed
		w.cond.Broadcast() // room for put
		w.mu.Unlock()
		var err error
		for name, v := range batch {
			// A record the store holds already (a rebuild of the same steps) is not
			// written again: a new file costs an inode, ~0.2 ms on a busy filesystem,
			// reading it far less (and marks it used, for prune).
			if old, rerr := w.st.CacheGet(name); rerr == nil && bytes.Equal(old, v) {
				continue
			}
			err = errors.Join(err, w.st.CacheHint(name, v))
		}
		w.mu.Lock()
		w.inflight, w.written = nil, upto
		if err != nil && w.err == nil {
			w.err = err
		}
		w.cond.Broadcast()
	}
	w.running = false
	w.mu.Unlock()
}

// flush waits until everything handed over before it is written (not what other stages
// hand over meanwhile); it returns the first write error.
func (w *writer) flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for target := w.handed; w.written < target; {
		w.cond.Wait()
	}
	return w.err
}
