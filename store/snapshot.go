package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/internal/durable"
	"github.com/strata-build/strata/layer"
)

// Snapshot returns the directory holding l extracted as an overlay lower
// directory, extracting it on first use. The directory is keyed by diffID
// and is complete whenever it exists: extraction goes to a temporary
// directory that is renamed into place once the content is verified to
// hash to the diffID. A layer written with WriteOptions.Adopt has its
// directory moved here instead, when owners are on disk. Concurrent
// callers for one layer extract it once.
// opts.Mode is ignored (always OverlayLower). Callers must not modify the
// returned directory.
func (s *Store) Snapshot(ctx context.Context, l v1.Layer, opts layer.ExtractOptions) (string, error) {
	return s.snapshot(ctx, l, 0, opts, nil)
}

// Ingest reads a layer's blob from r as it arrives (r is typically a
// download) and stores and extracts it in one pass. dctx is the reader's
// own context (a download's deadline), which ends the ingest too. verr is
// a layer.ContentError: the blob's bytes are the ones its digest names but
// not what the layer claims of them (compression, diffID).
type Ingest func(dctx context.Context, r io.Reader) (n int64, verr, err error)

// SnapshotStream is Snapshot for a layer whose blob may not be in the
// store yet. When neither the snapshot nor the blob is here, fetch is
// called under the snapshot's lock and either feeds the blob's bytes to
// ingest as they arrive, or returns nil having stored the blob some other
// way (another reader downloaded it meanwhile), which is then extracted as
// Snapshot does. ingest writes the bytes to a temporary blob file, hashing
// them, and extracts them at once into a temporary snapshot directory,
// decompressing them once and hashing the tar stream: only when the
// digest, the size, the compression and the diffID are all the layer's is
// the blob committed, then the snapshot renamed into place. On any error
// or cancellation (or a kill) neither is: a download that lies leaves
// nothing behind, and a failed stream is retried by the next Snapshot.
func (s *Store) SnapshotStream(ctx context.Context, l v1.Layer, opts layer.ExtractOptions, fetch func(Ingest) error) (string, error) {
	return s.snapshot(ctx, l, 0, opts, fetch)
}

// SnapshotCopy returns the n-th further snapshot directory of l (n >= 1),
// for a stack of layers that holds l n+1 times: overlayfs refuses one
// directory twice among its lowers (the kernel logs "conflicting lowerdir
// path" and the mount fails with ELOOP), and neither copy may be dropped:
// the upper one covers what the layers between them changed, and without
// the lower one a directory only the copies hold would no longer be merged
// (overlayfs shows a merged directory with one link).
// BuildKit never meets this: containerd's snapshotter keys a snapshot by
// its chain of parents, not by its diffID. A copy is extracted from the
// blob as Snapshot's first extraction is (never adopted), lives beside it
// as <diffID>-<n>, and is complete whenever it exists. Copies are only
// derived data: a prune, which keeps snapshots by diffID, removes them.
func (s *Store) SnapshotCopy(ctx context.Context, l v1.Layer, n int, opts layer.ExtractOptions) (string, error) {
	if n < 1 {
		return "", fmt.Errorf("snapshot copy %d: copies count from 1", n)
	}
	return s.snapshot(ctx, l, n, opts, nil)
}

// snapshot is the n-th directory of l: 0 is the snapshot, more a copy;
// fetch, if set, streams a missing blob (SnapshotStream).
func (s *Store) snapshot(ctx context.Context, l v1.Layer, n int, opts layer.ExtractOptions, fetch func(Ingest) error) (string, error) {
	diffID, err := l.DiffID()
	if err != nil {
		return "", fmt.Errorf("snapshot: reading diffID: %w", err)
	}
	if err := checkHash(diffID); err != nil {
		return "", fmt.Errorf("snapshot: %w", err)
	}
	name := diffID.Hex
	if n > 0 {
		name += "-" + strconv.Itoa(n)
	}
	dst := s.path("snapshots", diffID.Algorithm, name)
	if exists(dst) {
		// Used again: for prune's least-recently-used order (the lock
		// file, as the tree's own times are the step's to see).
		touch(s.path("locks", "snapshot-"+name+".lock"))
		return dst, nil
	}
	lock, err := lockFile(s.path("locks", "snapshot-"+name+".lock"), true, true)
	if err != nil {
		return "", fmt.Errorf("snapshot %s: %w", diffID, err)
	}
	defer lock.unlock()
	if exists(dst) {
		return dst, nil
	}
	// Only the first directory may be the adopted one: adoption moves it.
	onDisk := opts.Owners == nil || opts.Owners.OnDisk()
	if ours, ok := l.(*layer.Layer); ok && ours.Adoption() != nil && onDisk && n == 0 {
		adopted, err := ours.Adoption().Into(dst)
		if err != nil {
			return "", fmt.Errorf("snapshot %s: %w", diffID, err)
		}
		if adopted {
			return dst, nil
		}
	}
	if fetch != nil {
		streamed, err := s.streamSnapshot(ctx, l, diffID, dst, opts, fetch)
		if err != nil {
			return "", fmt.Errorf("snapshot %s: %w", diffID, err)
		}
		if streamed {
			return dst, nil
		}
	}
	if err := s.extractSnapshot(ctx, l, diffID, dst, opts); err != nil {
		return "", fmt.Errorf("snapshot %s: %w", diffID, err)
	}
	return dst, nil
}

// streamSnapshot is SnapshotStream's work once the lock is held: false
// when the blob is (or became) local and is to be extracted from the store.
func (s *Store) streamSnapshot(ctx context.Context, l v1.Layer, diffID v1.Hash, dst string, opts layer.ExtractOptions, fetch func(Ingest) error) (bool, error) {
	want, err := claimOf(l)
	if err != nil {
		return false, err
	}
	want.diffID = diffID
	if ok, err := s.HasBlob(want.digest); err != nil || ok {
		return false, err
	}
	var tmp string // the extracted directory, once its blob is committed
	defer func() {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
	}()
	ingest := func(dctx context.Context, r io.Reader) (int64, error, error) {
		if tmp != "" {
			return 0, nil, errors.New("layer blob ingested twice")
		}
		dir, n, verr, err := s.ingest(ctx, dctx, r, want, opts)
		tmp = dir
		return n, verr, err
	}
	if err := fetch(ingest); err != nil {
		return false, err
	}
	if tmp == "" {
		return false, nil
	}
	// As extractSnapshot: on disk before the rename makes it visible.
	if err := durable.SyncFS(tmp); err != nil {
		return false, err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return false, fmt.Errorf("moving snapshot into place: %w", err)
	}
	tmp = ""
	return true, durable.SyncDir(s.path("snapshots", diffID.Algorithm))
}

// layerClaim is what a manifest and a config say of a layer's blob.
type layerClaim struct {
	digest, diffID v1.Hash
	size           int64
	mediaType      types.MediaType
}

func claimOf(l v1.Layer) (layerClaim, error) {
	var c layerClaim
	var err error
	if c.digest, err = l.Digest(); err != nil {
		return c, fmt.Errorf("reading layer digest: %w", err)
	}
	if err := checkHash(c.digest); err != nil {
		return c, err
	}
	if c.size, err = l.Size(); err != nil {
		return c, fmt.Errorf("reading layer size: %w", err)
	}
	if c.mediaType, err = l.MediaType(); err != nil {
		return c, fmt.Errorf("reading layer media type: %w", err)
	}
	return c, nil
}

// extractFailure is an extraction error handed to the blob's copy through
// the pipe between them, to be told apart from the reader's own errors.
type extractFailure struct{ err error }

func (e *extractFailure) Error() string { return e.err.Error() }

// ingest copies r into a temporary blob file and, through a pipe, into
// an extraction to a temporary directory, and commits the blob when it is
// what want says; dir is the extracted directory then, else "" (removed).
func (s *Store) ingest(ctx, dctx context.Context, r io.Reader, want layerClaim, opts layer.ExtractOptions) (dir string, n int64, verr, err error) {
	// The build's context and the download's both end it.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer context.AfterFunc(dctx, func() { cancel(context.Cause(dctx)) })()
	dir, err = os.MkdirTemp(s.session, "snapshot-")
	if err != nil {
		return "", 0, nil, err
	}
	defer func() {
		if err != nil || verr != nil {
			os.RemoveAll(dir)
			dir = ""
		}
	}()
	// MkdirTemp made it 0700; as the root of a mount it must be traversable.
	if err := os.Chmod(dir, 0o755); err != nil {
		return dir, 0, nil, err
	}
	blob, err := s.tempFile("blob")
	if err != nil {
		return dir, 0, nil, err
	}
	defer os.Remove(blob.Name())
	type extracted struct {
		diffID v1.Hash
		err    error
	}
	done := make(chan extracted, 1)
	pipe := newQueuePipe()
	go func() {
		opts.Mode = layer.OverlayLower
		got, err := layer.ExtractBlob(ctx, pipe, dir, opts, want.mediaType)
		var ce *layer.ContentError
		if err != nil && !errors.As(err, &ce) {
			pipe.CloseRead(&extractFailure{err})
		} else {
			// The rest of the blob is still hashed: its digest says
			// whether the claim or the bytes are wrong. Only the copy's
			// own error can end this read.
			_, _ = io.Copy(io.Discard, pipe)
		}
		done <- extracted{got, err}
	}()
	h, n, cerr := layer.CopyHashed(ctx, blob, io.TeeReader(r, pipe))
	pipe.CloseWithError(cerr)
	x := <-done
	var xf *extractFailure
	var ce *layer.ContentError
	switch {
	case errors.As(cerr, &xf):
		err = xf.err
	case cerr != nil:
		err = cerr
	case h != want.digest:
		err = fmt.Errorf("storing blob: content has digest %s, want %s", h, want.digest)
	case n != want.size:
		err = fmt.Errorf("%d bytes, its descriptor says %d", n, want.size)
	case errors.As(x.err, &ce):
		verr = x.err
	case x.err != nil:
		err = x.err
	default:
		verr = layer.CheckDiffID(x.diffID, want.diffID)
	}
	if err == nil && verr == nil {
		err = s.commitBlob(blob, h)
	}
	if err != nil || verr != nil {
		blob.Close()
	}
	return dir, n, verr, err
}

func (s *Store) extractSnapshot(ctx context.Context, l v1.Layer, diffID v1.Hash, dst string, opts layer.ExtractOptions) error {
	tmp, err := os.MkdirTemp(s.session, "snapshot-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// MkdirTemp made it 0700; as the root of a mount it must be traversable.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("opening layer: %w", err)
	}
	defer rc.Close()
	opts.Mode = layer.OverlayLower
	got, err := layer.Extract(ctx, rc, tmp, opts)
	if err != nil {
		return err
	}
	if got != diffID {
		return fmt.Errorf("layer content has diffID %s", got)
	}
	// Nothing re-checks a snapshot once it is in place, so its files must be on
	// disk before the rename makes it visible (a power loss could leave them empty).
	if err := durable.SyncFS(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("moving snapshot into place: %w", err)
	}
	return durable.SyncDir(s.path("snapshots", diffID.Algorithm))
}

// SnapshotPath is where the snapshot of diffID lives, whether it exists.
func (s *Store) SnapshotPath(diffID v1.Hash) (string, error) {
	if err := checkHash(diffID); err != nil {
		return "", err
	}
	return s.path("snapshots", diffID.Algorithm, diffID.Hex), nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return !errors.Is(err, fs.ErrNotExist)
}
