package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/internal/owners"
	"github.com/strata-build/strata/layer"
)

// addStream writes the layer of an ADD whose only source is one archive
// from the build context unpacked at "/" of a scratch base, without
// flags (W2: FROM scratch + ADD rootfs.tar.gz /): the archive is read
// once and its canonical tar written from an index of the tree it gives
// (layer.ReadCanonical), instead of being extracted and the directory
// walked. The layer's bytes are the same (layer's differential tests);
// it has no directory to adopt, so a later step that needs the tree
// extracts the blob. ok is false when the step is not of that kind or the
// archive needs extracting (layer.ErrNotCanonical): copy then does what
// it always did, which also reports what is wrong with the archive.
func (b *build) addStream(ctx context.Context, s *state, cp *copyPlan) (l *layer.Layer, ok bool, err error) {
	op := cp.op
	if !op.add || !op.context || op.dest != "/" || len(cp.files) != 1 || len(op.heredocs) > 0 ||
		op.chownSpec != "" || op.chmod != "" || op.mode != nil || len(op.exclude) > 0 || op.checksum != "" {
		return nil, false, nil
	}
	p := cp.files[0]
	if !p.Extract || p.URLTime != nil || p.Git != nil || p.Data != nil || len(p.Files) != 1 || p.Dst != "/" {
		return nil, false, nil
	}
	// Another base's layers would need waiting for to place the step (the
	// archive's layer itself does not depend on them; not done yet).
	if len(s.layers) != 0 || !ownersOnDisk(b.opts.Owners) {
		return nil, false, nil
	}
	src := p.Files[0]
	rootSetgid := false
	if fi, err := os.Stat(b.tmp); err == nil {
		// The step's directory is made in b.tmp: its group and setgid bit
		// reach the directories an archive implies.
		rootSetgid = fi.Mode()&fs.ModeSetgid != 0
	}
	start := time.Now()
	f, err := op.from.open(src.entry)
	if err != nil {
		return nil, true, changed(src, err)
	}
	defer f.Close()
	h := sha256.New()
	r := io.TeeReader(f, h)
	opts := layer.CanonOptions{
		Write:      layer.WriteOptions{Source: layer.FromDir, Compression: b.opts.Compression, Epoch: b.opts.Epoch, Owners: b.opts.Owners},
		TmpDir:     b.tmp,
		Start:      start,
		RootSetgid: rootSetgid,
	}
	a, err := layer.ReadCanonical(ctx, r, opts)
	if errors.Is(err, layer.ErrNotCanonical) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, fmt.Errorf("reading %s: %w", displaySrc(p.srcPath), err)
	}
	defer a.Close()
	// The planned hash covers the whole file, past the tar's end too.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return nil, true, changed(src, err)
	}
	if hex.EncodeToString(h.Sum(nil)) != src.Sum {
		return nil, true, changed(src, nil)
	}
	if l, err = b.putCanonical(ctx, a); err == nil {
		streamedADDs.Add(1)
	}
	return l, true, err
}

// streamedADDs counts the layers addStream wrote, so tests see which way
// a step went.
var streamedADDs atomic.Int64

// putCanonical stores a's layer blob through the store's atomic blob
// write, compressing on one goroutine while the store hashes and writes.
func (b *build) putCanonical(ctx context.Context, a *layer.CanonicalArchive) (*layer.Layer, error) {
	mt, err := b.opts.Compression.MediaType()
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	var diffID v1.Hash
	done := make(chan error, 1)
	go func() {
		var err error
		diffID, err = a.WriteLayer(ctx, pw)
		pw.CloseWithError(err)
		done <- err
	}()
	digest, size, err := b.opts.Store.PutBlob(ctx, pr, v1.Hash{})
	// A failed store write must not leave the writer blocked on the pipe;
	// the writer then fails with the store's error, which is the cause the
	// user sees (a full disk, say), not the pipe's.
	if err != nil {
		pr.CloseWithError(err)
	} else {
		pr.CloseWithError(errors.New("layer blob not stored"))
	}
	if werr := <-done; werr != nil && (err == nil || !errors.Is(werr, err)) {
		// The writer failed first (the archive, the context): its error
		// is the cause, and the store's is its echo through the pipe.
		err = werr
	}
	if err != nil {
		return nil, fmt.Errorf("writing layer: %w", err)
	}
	l, err := b.opts.Store.Layer(v1.Descriptor{MediaType: mt, Size: size, Digest: digest}, diffID)
	if err != nil {
		return nil, fmt.Errorf("writing layer: %w", err)
	}
	return l, nil
}

// ownersOnDisk: the archive's owners are chowned on disk by a root that
// can take every id (the initial user namespace's, or one mapping all of
// them), as the stream assumes; elsewhere (rootless, a partial mapping
// where chown may fail) the extraction decides.
func ownersOnDisk(p owners.Policy) bool {
	return (p == nil || p == owners.Host) && os.Geteuid() == 0 && fullIDMaps()
}

var fullIDMaps = sync.OnceValue(func() bool {
	for _, m := range []string{"/proc/self/uid_map", "/proc/self/gid_map"} {
		b, err := os.ReadFile(m)
		if err != nil || strings.Join(strings.Fields(string(b)), " ") != "0 0 4294967295" {
			return false
		}
	}
	return true
})
