package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/progress"
	"github.com/strata-build/strata/store"
)

// Blobs makes layers whose blobs live in a registry until something reads
// their bytes (a RUN's lowers, COPY's merged view, an output that holds
// them): the first read downloads the blob into the store, checked against
// its digest and size, and every later read is local. A base image's layers
// and a registry cache's are such layers, so a build whose steps all hit
// downloads no layer, and a push to the same registry mounts them instead
// (layer.Layer.Origin).
type Blobs struct {
	st   *store.Store
	reg  Config
	ctx  context.Context
	sink progress.Sink

	mu       sync.Mutex
	inflight map[v1.Hash]*download
	// remote are the repositories of the layers Layer made whose blobs
	// were not local, by digest: Snapshot streams those.
	remote map[v1.Hash]name.Repository
	// failed are the blobs whose content is not what the layer claims
	// (layer.VerifyContent), by digest and diffID: their layers stay
	// unusable for the rest of the build, though the blob, whose digest
	// is right, stays in the store (unless it was streamed: Snapshot
	// commits nothing of such a layer).
	failed map[string]error
}

type download struct {
	done chan struct{}
	err  error
	// streamed: the bytes went to an extraction too (Snapshot), whose
	// failure is no reason for a plain read of the blob to fail.
	streamed bool
}

// NewBlobs reads blobs into st through reg for as long as ctx lasts (an
// output written after the build may still need one), reporting each
// download to sink (nil: discarded).
func NewBlobs(ctx context.Context, st *store.Store, reg Config, sink progress.Sink) *Blobs {
	if sink == nil {
		sink = progress.Discard
	}
	return &Blobs{st: st, reg: reg, ctx: ctx, sink: sink, inflight: map[v1.Hash]*download{}, remote: map[v1.Hash]name.Repository{}, failed: map[string]error{}}
}

// Store is where the blobs are downloaded to.
func (bl *Blobs) Store() *store.Store { return bl.st }

// Config is the registry configuration the blobs are read with.
func (bl *Blobs) Config() Config { return bl.reg }

// Layer is the layer desc of repo, with diffID from its image's config (or
// a cache entry): the store's blob when it has it, else read from repo on
// first use. Either way the layer notes repo as its origin.
func (bl *Blobs) Layer(desc v1.Descriptor, diffID v1.Hash, repo name.Repository) (*layer.Layer, error) {
	desc.MediaType = OCILayerType(desc.MediaType)
	if _, err := layer.CompressionOf(desc.MediaType); err != nil {
		return nil, fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	if ok, err := bl.st.HasBlob(desc.Digest); err != nil {
		return nil, err
	} else if ok {
		l, err := bl.st.Layer(desc, diffID)
		if err != nil {
			return nil, err
		}
		return l.WithOrigin(repo.String()), nil
	}
	open := func() (io.ReadCloser, error) {
		if err := bl.Fetch(desc, diffID, repo); err != nil {
			return nil, err
		}
		return bl.st.OpenBlob(desc.Digest)
	}
	bl.mu.Lock()
	if _, ok := bl.remote[desc.Digest]; !ok {
		bl.remote[desc.Digest] = repo
	}
	bl.mu.Unlock()
	return layer.New(desc, diffID, open).WithOrigin(repo.String()), nil
}

// Snapshot is the store's snapshot of l (store.Store.Snapshot), made in
// one pass from the download when l is a layer of Layer whose blob is not
// local yet: the bytes read from the registry are stored, hashed,
// decompressed once, hashed again and extracted as they arrive, and the
// blob and the snapshot are committed only when the blob is the layer's
// (store.Store.SnapshotStream). A layer whose content is not what it
// claims fails as Fetch fails, for the rest of the build.
func (bl *Blobs) Snapshot(ctx context.Context, l *layer.Layer, opts layer.ExtractOptions) (string, error) {
	desc := l.Descriptor()
	bl.mu.Lock()
	repo, remote := bl.remote[desc.Digest]
	bl.mu.Unlock()
	if !remote {
		return bl.st.Snapshot(ctx, l, opts)
	}
	diffID, err := l.DiffID()
	if err != nil {
		return "", fmt.Errorf("reading layer diffID: %w", err)
	}
	// fetch runs under the snapshot's lock, as a step's Snapshot reads
	// the blob (Fetch) under it: one order for the lock and the download.
	return bl.st.SnapshotStream(ctx, l, opts, func(ingest store.Ingest) error {
		return bl.fetch(ctx, desc, diffID, repo, ingest)
	})
}

// Stored is layer d of an image in the store: its blob, or, when the blob
// is not local, a lazy layer read from the origin the store recorded
// (store.Store.SetOrigin).
func (bl *Blobs) Stored(d v1.Descriptor, diffID v1.Hash) (*layer.Layer, error) {
	ok, err := bl.st.HasBlob(d.Digest)
	if err != nil {
		return nil, err
	}
	origin, oerr := bl.st.Origin(d.Digest)
	if ok {
		l, err := bl.st.Layer(d, diffID)
		if err != nil || oerr != nil {
			return l, err
		}
		return l.WithOrigin(origin), nil
	}
	if oerr != nil {
		return nil, fmt.Errorf("layer blob %s is not in the store and no registry is known to hold it", d.Digest)
	}
	repo, err := bl.reg.ParseRepo(origin)
	if err != nil {
		return nil, err
	}
	return bl.Layer(d, diffID, repo)
}

// Fetch downloads blob desc from repo into the store, once however many
// readers ask at the same time, checking it against its digest and, for a
// layer (diffID set), its media type and diffID (layer.VerifyContent).
func (bl *Blobs) Fetch(desc v1.Descriptor, diffID v1.Hash, repo name.Repository) error {
	return bl.fetch(nil, desc, diffID, repo, nil)
}

// fetch is Fetch, storing the blob through ingest when it downloads it
// (nil: StoreVerified); the end of ictx (if set) ends that download too.
func (bl *Blobs) fetch(ictx context.Context, desc v1.Descriptor, diffID v1.Hash, repo name.Repository, ingest store.Ingest) error {
	claim := desc.Digest.String() + " " + diffID.String()
	bl.mu.Lock()
	if err := bl.failed[claim]; err != nil {
		bl.mu.Unlock()
		return err
	}
	bl.mu.Unlock()
	if ok, err := bl.st.HasBlob(desc.Digest); err == nil && ok {
		return nil
	}
	bl.mu.Lock()
	d, busy := bl.inflight[desc.Digest]
	if !busy {
		d = &download{done: make(chan struct{})}
		bl.inflight[desc.Digest] = d
	}
	bl.mu.Unlock()
	if busy {
		select {
		case <-d.done:
			var verr *verifyError
			if d.err != nil && (!d.streamed || errors.As(d.err, &verr)) {
				return d.err
			}
			// Downloaded for another claim of the same blob: check ours;
			// or a streamed extraction failed: read the blob ourselves.
			return bl.fetch(ictx, desc, diffID, repo, ingest)
		case <-bl.ctx.Done():
			return bl.ctx.Err()
		}
	}
	d.streamed = ingest != nil
	d.err = bl.download(ictx, desc, diffID, repo, ingest)
	bl.mu.Lock()
	delete(bl.inflight, desc.Digest)
	var verr *verifyError
	if errors.As(d.err, &verr) {
		bl.failed[claim] = d.err
	}
	bl.mu.Unlock()
	close(d.done)
	return d.err
}

// verifyError is a blob whose content is not what its layer claims.
type verifyError struct{ err error }

func (e *verifyError) Error() string { return e.err.Error() }
func (e *verifyError) Unwrap() error { return e.err }

// idleTimeout is how long a download may go without receiving a byte
// before it is given up: a registry that stalls mid-blob would otherwise
// hang the build.
var idleTimeout = 2 * time.Minute

func (bl *Blobs) download(ictx context.Context, desc v1.Descriptor, diffID v1.Hash, repo name.Repository, ingest store.Ingest) (err error) {
	id := "download:" + desc.Digest.String()
	start := time.Now()
	bl.sink.Event(progress.VertexStarted{ID: id, Name: fmt.Sprintf("downloading %s from %s", desc.Digest, repo), Started: start})
	defer func() {
		if err != nil {
			bl.sink.Event(progress.VertexError{ID: id, Message: err.Error(), Duration: time.Since(start)})
			return
		}
		bl.sink.Event(progress.VertexDone{ID: id, Duration: time.Since(start)})
	}()
	ctx, cancel := context.WithCancelCause(bl.ctx)
	defer cancel(nil)
	if ictx != nil {
		// A streamed download's extraction is cancelled with its build.
		defer context.AfterFunc(ictx, func() { cancel(context.Cause(ictx)) })()
	}
	stalled := fmt.Errorf("no data from %s for %v", repo, idleTimeout)
	idle := time.AfterFunc(idleTimeout, func() { cancel(stalled) })
	defer idle.Stop()
	fail := func(err error) error {
		if cause := context.Cause(ctx); cause == stalled {
			err = cause
		}
		return fmt.Errorf("downloading %s from %s: %w", desc.Digest, repo, err)
	}
	rl, err := remote.Layer(repo.Digest(desc.Digest.String()), bl.reg.RemoteOptions(ctx)...)
	if err != nil {
		return fail(err)
	}
	rc, err := rl.Compressed()
	if err != nil {
		return fail(err)
	}
	defer rc.Close()
	var body io.Reader = &countingReader{r: rc, id: id, total: desc.Size, sink: bl.sink, idle: idle}
	if ingest == nil {
		ingest = func(ctx context.Context, r io.Reader) (int64, error, error) {
			return StoreVerified(ctx, bl.st, r, desc, diffID)
		}
	}
	n, verr, err := ingest(ctx, body)
	if err != nil {
		return fail(err)
	}
	bl.sink.Event(progress.Transfer{ID: id, Name: "downloading", Current: n, Total: desc.Size, Done: true})
	if n != desc.Size {
		// The digest matched, so the descriptor lied about the size: a
		// manifest carrying it would be refused by every registry.
		return fmt.Errorf("downloading %s from %s: %d bytes, its descriptor says %d", desc.Digest, repo, n, desc.Size)
	}
	if verr != nil {
		return &verifyError{fmt.Errorf("layer %s from %s: %w", desc.Digest, repo, verr)}
	}
	return nil
}

// StoreVerified stores the blob r into st, checked against desc's digest
// and, when diffID is set, checked as a layer (layer.VerifyContent) while
// it streams in. verr is the layer check's failure; the blob, whose digest
// is right, is stored either way.
func StoreVerified(ctx context.Context, st *store.Store, r io.Reader, desc v1.Descriptor, diffID v1.Hash) (n int64, verr, err error) {
	if diffID == (v1.Hash{}) {
		_, n, err = st.PutBlob(ctx, r, desc.Digest)
		return n, nil, err
	}
	verified := make(chan error, 1)
	pr, pw := io.Pipe()
	go func() { verified <- layer.VerifyContent(pr, desc.MediaType, diffID) }()
	_, n, err = st.PutBlob(ctx, io.TeeReader(r, pw), desc.Digest)
	pw.CloseWithError(err)
	verr = <-verified
	return n, verr, err
}

// countingReader reports a download's progress every MiB or so.
type countingReader struct {
	r       io.Reader
	id      string
	total   int64
	n, sent int64
	sink    progress.Sink
	idle    *time.Timer
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.idle.Reset(idleTimeout)
	}
	c.n += int64(n)
	if c.n-c.sent >= max(1<<20, c.total/50) {
		c.sent = c.n
		c.sink.Event(progress.Transfer{ID: c.id, Name: "downloading", Current: c.n, Total: c.total})
	}
	return n, err
}

// OCILayerType maps Docker's layer media types onto their OCI equal (same
// bytes), so a manifest never mixes the two families.
func OCILayerType(mt types.MediaType) types.MediaType {
	switch mt {
	case types.DockerLayer:
		return types.OCILayer
	case types.DockerUncompressedLayer:
		return types.OCIUncompressedLayer
	case types.DockerForeignLayer:
		return types.OCIRestrictedLayer
	}
	return mt
}
