package builder

import (
	"context"
	"os"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/store"
)

// prefetcher extracts the snapshots of resolved bases in the background,
// one layer at a time in the order given, so that the extraction overlaps
// with whatever the build does before a step needs the lowers. It only
// warms the store: a step still calls Store.Snapshot itself (idempotent,
// flock-guarded) after waiting, so an extraction error surfaces in the
// step that needs the layer, and a failed prefetch is simply retried.
type prefetcher struct {
	store *store.Store
	opts  layer.ExtractOptions
	ctx   context.Context
	mu    sync.Mutex
	queue []*prefetchJob
	jobs  map[v1.Hash]*prefetchJob // by diffID
	busy  bool                     // the worker goroutine is running
	wg    sync.WaitGroup
}

type prefetchJob struct {
	layer *layer.Layer
	done  chan struct{}
}

// newPrefetcher extracts until ctx ends; stop waits for the extraction
// in progress to return.
func newPrefetcher(ctx context.Context, store *store.Store, opts layer.ExtractOptions) *prefetcher {
	return &prefetcher{store: store, opts: opts, ctx: ctx, jobs: map[v1.Hash]*prefetchJob{}}
}

// start queues the layers whose snapshots are missing.
func (p *prefetcher) start(layers []*layer.Layer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range layers {
		diffID, err := l.DiffID()
		if err != nil || p.jobs[diffID] != nil || p.hasSnapshot(diffID) {
			continue
		}
		j := &prefetchJob{layer: l, done: make(chan struct{})}
		p.jobs[diffID] = j
		p.queue = append(p.queue, j)
	}
	if len(p.queue) > 0 && !p.busy {
		p.busy = true
		p.wg.Add(1)
		go p.run()
	}
}

func (p *prefetcher) hasSnapshot(diffID v1.Hash) bool {
	dir, err := p.store.SnapshotPath(diffID)
	if err != nil {
		return false
	}
	_, err = os.Lstat(dir)
	return err == nil
}

// run works through the queue; an error is left for the step to meet.
func (p *prefetcher) run() {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		if len(p.queue) == 0 {
			p.busy = false
			p.mu.Unlock()
			return
		}
		j := p.queue[0]
		p.queue = p.queue[1:]
		p.mu.Unlock()
		if p.ctx.Err() == nil {
			// The step that needs the layer calls Snapshot again and
			// meets the error, if it was not a passing one.
			_, _ = p.store.Snapshot(p.ctx, j.layer, p.opts)
		}
		close(j.done)
	}
}

// wait returns once the prefetch of l, if any, has finished, or ctx ends.
func (p *prefetcher) wait(ctx context.Context, l *layer.Layer) error {
	diffID, err := l.DiffID()
	if err != nil {
		return nil
	}
	p.mu.Lock()
	j := p.jobs[diffID]
	p.mu.Unlock()
	if j == nil {
		return nil
	}
	select {
	case <-j.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop waits for the worker, which ends early once its context is done.
func (p *prefetcher) stop() { p.wg.Wait() }
