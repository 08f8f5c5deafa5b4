package builder

import (
	"context"
	"os"
	"runtime"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/registry"
	"github.com/strata-build/strata/store"
)

// prefetcher extracts the snapshots of resolved bases in the background,
// every layer at once (they are independent overlay lowers), so that the
// extraction overlaps with whatever the build does before a step needs
// the lowers. A layer whose blob is still in its registry is downloaded
// and extracted in one pass (registry.Blobs.Snapshot), at most
// maxDownloads at a time; one whose blob is local is extracted from it, at
// most one per CPU at a time. It only warms the store: a step still calls
// Store.Snapshot itself (idempotent, flock-guarded) after waiting, so an
// extraction error surfaces in the step that needs the layer, and a failed
// prefetch is simply retried.
type prefetcher struct {
	store *store.Store
	opts  layer.ExtractOptions
	ctx   context.Context
	mu    sync.Mutex
	jobs  map[v1.Hash]*prefetchJob // by diffID
	// blobs, once a base is pulled, streams its layers' downloads into
	// their extraction.
	blobs *registry.Blobs
	// downloads and extractions bound the jobs running: network streams,
	// and decompressions of local blobs (CPU).
	downloads, extractions chan struct{}
	wg                     sync.WaitGroup
}

// maxDownloads bounds the layers downloaded at the same time, as docker
// pull does (its default is 3; BuildKit's containerd fetches up to 3-4).
const maxDownloads = 4

type prefetchJob struct {
	layer *layer.Layer
	done  chan struct{}
}

// newPrefetcher extracts until ctx ends; stop waits for the extractions
// in progress to return.
func newPrefetcher(ctx context.Context, store *store.Store, opts layer.ExtractOptions) *prefetcher {
	return &prefetcher{
		store: store, opts: opts, ctx: ctx, jobs: map[v1.Hash]*prefetchJob{},
		downloads:   make(chan struct{}, maxDownloads),
		extractions: make(chan struct{}, max(1, runtime.GOMAXPROCS(0))),
	}
}

// useBlobs streams the layers that bl reads from a registry (a pulled
// base's) into their extraction; nil-safe for builds made without one.
func (p *prefetcher) useBlobs(bl *registry.Blobs) {
	if p == nil || bl == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blobs = bl
}

// start begins the extraction of the layers whose snapshots are missing.
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
		p.wg.Add(1)
		go p.run(j, p.blobs)
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

// run extracts j's layer once a slot is free; an error is left for the
// step to meet.
func (p *prefetcher) run(j *prefetchJob, blobs *registry.Blobs) {
	defer p.wg.Done()
	defer close(j.done)
	slots := p.extractions
	if digest, err := j.layer.Digest(); err == nil {
		if local, err := p.store.HasBlob(digest); err == nil && !local {
			slots = p.downloads
		}
	}
	select {
	case slots <- struct{}{}:
		defer func() { <-slots }()
	case <-p.ctx.Done():
		return
	}
	if p.ctx.Err() != nil {
		return
	}
	// The step that needs the layer calls Snapshot again and meets the
	// error, if it was not a passing one.
	if blobs != nil {
		_, _ = blobs.Snapshot(p.ctx, j.layer, p.opts)
	} else {
		_, _ = p.store.Snapshot(p.ctx, j.layer, p.opts)
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

// stop waits for the extractions, which end early once the context is done.
func (p *prefetcher) stop() { p.wg.Wait() }
