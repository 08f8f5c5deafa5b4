// Package cache is where build steps' results are looked up and kept:
// the local store (Local), caches imported from a registry or an OCI
// layout directory (Import, with the image's own inline records), the
// two together (Layered), and the export of a build's entries (Export).
// Keys are the builder's (see builder/cache.go); this package never reads
// them, it only matches them. The export format is in format.go and
// docs/cache.md.
package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/store"
)

// Cache is where step results are looked up and kept, by key. Get must not
// read a layer's bytes: an entry's Layer reads its blob only when
// something needs it (a later RUN's lowers, an output).
type Cache interface {
	// Get returns the entry for key, or nil when there is none (or it
	// cannot be used, say its blob is gone).
	Get(ctx context.Context, key string) (*Entry, error)
	// Put keeps e under key.
	Put(ctx context.Context, key string, e *Entry) error
}

// Explainer finds the entries closest to a step that missed, for
// --explain-cache: those made for the same step of the same stage, or
// with the same instruction.
type Explainer interface {
	Similar(ctx context.Context, e *Explain) ([]*Explain, error)
}

// Entry is what a hit reuses: the layer (none for a step that made no
// layer) and the history entry, with its original time, so a cached build
// gives the same digest; and what its key covered, for explaining misses.
type Entry struct {
	Layer   *layer.Layer
	History v1.History
	// Explain is what the step's key covered (nil when unknown).
	Explain *Explain
}

// Local keeps entries in the local store: one small JSON record a key,
// naming a blob of the store; the explain record apart, read only to
// explain a miss.
type Local struct {
	st *store.Store
	w  *writer
}

// NewLocal is the cache of st.
func NewLocal(st *store.Store) *Local { return &Local{st: st, w: newWriter(st)} }

// Flush waits until every record Put handed over is in the store, and returns the first
// error writing one.
func (c *Local) Flush() error {
	if err := c.w.flush(); err != nil {
		return fmt.Errorf("writing build cache: %w", err)
	}
	return nil
}

type localRecord struct {
	// Key is the key the record was written for; records from before it was recorded
	// have none (they were written with fsync).
	Key     string         `json:"key,omitempty"`
	Layer   *v1.Descriptor `json:"layer,omitempty"`
	DiffID  *v1.Hash       `json:"diffID,omitempty"`
	History v1.History     `json:"history"`
}

// Get is the entry for key whose blob is still in the store.
func (c *Local) Get(_ context.Context, key string) (*Entry, error) {
	b, err := c.w.get(key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading build cache: %w", err)
	}
	var r localRecord
	if err := json.Unmarshal(b, &r); err != nil || (r.Key != "" && r.Key != key) {
		// Not this key's record (see Put): a miss.
		return nil, nil
	}
	e := &Entry{History: r.History}
	if r.Layer == nil || r.DiffID == nil {
		return e, nil
	}
	// A blob pruned since is a miss.
	if ok, err := c.st.HasBlob(r.Layer.Digest); err != nil || !ok {
		return nil, err
	}
	if e.Layer, err = c.st.Layer(*r.Layer, *r.DiffID); err != nil {
		return nil, fmt.Errorf("reading cached layer: %w", err)
	}
	return e, nil
}

// Put keeps e under key, and its explain record under the step's slot.
//
// The records are written in the background (see writer), each whole and renamed into
// place, but not fsynced: two fsyncs a step (the file, its directory) cost more than the
// rest of a metadata step. Durability is not what keeps a hit right: the blob a record names was made durable before the record was
// written (the store commits blobs with fsync), and a record that does not survive a crash
// whole (lost, empty, or holding stale blocks of another file) is a miss, since it does not
// parse or does not name its key. A crash loses at most the entries of the last seconds.
func (c *Local) Put(_ context.Context, key string, e *Entry) error {
	r := localRecord{Key: key, History: e.History}
	if e.Layer != nil {
		d := e.Layer.Descriptor()
		r.Layer = &d
		diffID, _ := e.Layer.DiffID()
		r.DiffID = &diffID
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding cache entry: %w", err)
	}
	c.w.put(key, b)
	if e.Explain != nil {
		return c.putExplain(key, e.Explain)
	}
	return nil
}
