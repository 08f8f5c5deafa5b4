package cache

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/internal/durable"
	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/registry"
	"github.com/strata-build/strata/store"
)

// An OCI layout directory (type=local) holds the same manifest as a
// registry export, tagged in index.json with the ref-name annotation. It
// is written blobs first, each by rename, and index.json last by rename,
// so an export killed at any point leaves the previous cache readable;
// blobs no manifest of the new index uses are removed afterwards.

const refNameAnnotation = "org.opencontainers.image.ref.name"

type layoutDir string

func (d layoutDir) blob(h v1.Hash) string {
	return filepath.Join(string(d), "blobs", h.Algorithm, h.Hex)
}

// readBlob reads a small blob and checks its digest.
func (d layoutDir) readBlob(h v1.Hash) ([]byte, error) {
	if h.Algorithm != "sha256" || len(h.Hex) != 64 {
		return nil, fmt.Errorf("bad digest %s", h)
	}
	f, err := openRegular(d.blob(h))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMetadata+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxMetadata {
		return nil, fmt.Errorf("blob %s is larger than a cache's metadata can be", h)
	}
	got, _, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	if got != h {
		return nil, fmt.Errorf("blob %s has digest %s", h, got)
	}
	return b, nil
}

func (d layoutDir) index() (*v1.IndexManifest, error) {
	f, err := openRegular(filepath.Join(string(d), "index.json"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMetadata+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxMetadata {
		return nil, fmt.Errorf("index.json is larger than a cache's index can be")
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("reading index.json: %w", err)
	}
	return &idx, nil
}

// openRegular opens p for reading if it is a regular file, not through a
// symlink: a cache directory is restored from somewhere else (a CI cache),
// and a FIFO or a device there must not block or feed the build.
func openRegular(p string) (*os.File, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", p)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// manifestFor is the manifest tagged tag, or the only one.
func (d layoutDir) manifestFor(tag string) (*v1.Descriptor, error) {
	idx, err := d.index()
	if err != nil {
		return nil, err
	}
	for i, m := range idx.Manifests {
		if m.Annotations[refNameAnnotation] == tag {
			return &idx.Manifests[i], nil
		}
	}
	if len(idx.Manifests) == 1 {
		return &idx.Manifests[0], nil
	}
	return nil, fmt.Errorf("index.json has no manifest tagged %q", tag)
}

func importLocal(spec Spec, blobs *registry.Blobs) (*Imported, []string, error) {
	dir := layoutDir(spec.Dir)
	desc, err := dir.manifestFor(spec.Tag)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("no cache there yet")
	}
	if err != nil {
		return nil, nil, err
	}
	raw, err := dir.readBlob(desc.Digest)
	if err != nil {
		return nil, nil, fmt.Errorf("reading its manifest: %w", err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, nil, fmt.Errorf("reading its manifest: %w", err)
	}
	if m.Config.MediaType != ConfigMediaType {
		return nil, nil, fmt.Errorf("its manifest is not a strata cache (config %s)", m.Config.MediaType)
	}
	cfg, err := dir.readBlob(m.Config.Digest)
	if err != nil {
		return nil, nil, fmt.Errorf("reading its config: %w", err)
	}
	st := blobs.Store()
	src := source{
		name: spec.Dir,
		size: func(h v1.Hash) (int64, error) {
			fi, err := os.Stat(dir.blob(h))
			if errors.Is(err, fs.ErrNotExist) {
				return 0, store.ErrNotFound
			}
			if err != nil {
				return 0, err
			}
			return fi.Size(), nil
		},
		layer: func(d v1.Descriptor, diffID v1.Hash) (*layer.Layer, error) {
			d.MediaType = registry.OCILayerType(d.MediaType)
			if _, err := layer.CompressionOf(d.MediaType); err != nil {
				return nil, err
			}
			// Copied into the store, checked against its digest, when
			// first read.
			var mu sync.Mutex
			var failed error // once its content failed the check, always
			open := func() (io.ReadCloser, error) {
				mu.Lock()
				defer mu.Unlock()
				if failed != nil {
					return nil, failed
				}
				if ok, err := st.HasBlob(d.Digest); err != nil || !ok {
					f, err := openRegular(dir.blob(d.Digest))
					if err != nil {
						return nil, fmt.Errorf("cache %s: %w", spec.Dir, err)
					}
					_, verr, err := registry.StoreVerified(context.Background(), st, f, d, diffID)
					f.Close()
					if verr != nil {
						failed = fmt.Errorf("cache %s: layer %s: %w", spec.Dir, d.Digest, verr)
						return nil, failed
					}
					if err != nil {
						return nil, fmt.Errorf("cache %s: layer %s: %w", spec.Dir, d.Digest, err)
					}
				}
				return st.OpenBlob(d.Digest)
			}
			return layer.New(d, diffID, open), nil
		},
	}
	return read(src, &m, cfg, nil)
}

// writeLayout writes the blobs and then the manifest into the layout dir,
// tagged tag, and removes the blobs no tagged manifest uses any more.
func writeLayout(ctx context.Context, dir layoutDir, tag string, manifest []byte, blobs []blobSource) error {
	if err := os.MkdirAll(filepath.Join(string(dir), "blobs", "sha256"), 0o755); err != nil {
		return err
	}
	// Written into and cleaned: never through a symlink to elsewhere.
	for _, sub := range []string{"blobs", "blobs/sha256"} {
		if fi, err := os.Lstat(filepath.Join(string(dir), sub)); err != nil || !fi.IsDir() {
			return fmt.Errorf("%s/%s is not a directory (a symlink?): not writing a cache there", dir, sub)
		}
	}
	// One export at a time per directory; imports need no lock (every
	// file appears by rename).
	unlock, err := lockDir(ctx, string(dir))
	if err != nil {
		return err
	}
	defer unlock()
	for _, b := range blobs {
		if err := dir.writeBlob(ctx, b); err != nil {
			return err
		}
	}
	mdesc, err := dir.writeBlobBytes(manifest)
	if err != nil {
		return err
	}
	if err := dir.writeFile("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	idx, err := dir.index()
	if errors.Is(err, fs.ErrNotExist) {
		idx, err = &v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}, nil
	}
	if err != nil {
		// A damaged index is replaced: the cache is derived data.
		idx = &v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	}
	kept := idx.Manifests[:0]
	for _, m := range idx.Manifests {
		if m.Annotations[refNameAnnotation] != tag {
			kept = append(kept, m)
		}
	}
	mdesc.MediaType = types.OCIManifestSchema1
	mdesc.ArtifactType = ArtifactType
	mdesc.Annotations = map[string]string{refNameAnnotation: tag}
	idx.Manifests = append(kept, mdesc)
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if err := dir.writeFile("index.json", b); err != nil {
		return err
	}
	return dir.collect(idx)
}

// blobSource is a blob an export writes.
type blobSource struct {
	desc v1.Descriptor
	open func() (io.ReadCloser, error)
}

func (d layoutDir) writeBlob(ctx context.Context, b blobSource) error {
	dst := d.blob(b.desc.Digest)
	if fi, err := os.Stat(dst); err == nil && fi.Size() == b.desc.Size {
		return nil
	}
	rc, err := b.open()
	if err != nil {
		return err
	}
	defer rc.Close()
	tmp, err := d.temp()
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h, _, err := layer.CopyHashed(ctx, tmp, rc)
	if err == nil && h != b.desc.Digest {
		err = fmt.Errorf("blob %s read back as %s", b.desc.Digest, h)
	}
	if err != nil {
		tmp.Close()
		return err
	}
	return durable.Commit(tmp, dst)
}

func (d layoutDir) writeBlobBytes(data []byte) (v1.Descriptor, error) {
	h, n, err := v1.SHA256(bytes.NewReader(data))
	if err != nil {
		return v1.Descriptor{}, err
	}
	desc := v1.Descriptor{Digest: h, Size: n}
	return desc, d.writeBlob(context.Background(), blobSource{desc: desc, open: func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}})
}

func (d layoutDir) writeFile(name string, data []byte) error {
	tmp, err := d.temp()
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	return durable.Commit(tmp, filepath.Join(string(d), name))
}

func (d layoutDir) temp() (*os.File, error) {
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, err
	}
	return os.OpenFile(filepath.Join(string(d), "blobs", "sha256", ".tmp-"+hex.EncodeToString(r[:])), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
}

// collect removes the blobs that no manifest of idx uses (walking nested
// indexes, as an OCI layout shared with other tools may hold them), and the
// temporary files of exports that died. Anything it cannot read makes it
// keep everything; it removes only files named as blobs or as its own
// temporary files.
func (d layoutDir) collect(idx *v1.IndexManifest) error {
	keep := map[string]bool{}
	var walk func(ds []v1.Descriptor, depth int) bool
	walk = func(ds []v1.Descriptor, depth int) bool {
		if depth > 8 {
			return false
		}
		for _, md := range ds {
			keep[md.Digest.Hex] = true
			raw, err := d.readBlob(md.Digest)
			if err != nil {
				return false
			}
			var probe struct {
				Manifests []v1.Descriptor `json:"manifests"`
				Config    *v1.Descriptor  `json:"config"`
				Layers    []v1.Descriptor `json:"layers"`
			}
			if json.Unmarshal(raw, &probe) != nil {
				return false
			}
			switch {
			case probe.Config != nil:
				keep[probe.Config.Digest.Hex] = true
				for _, l := range probe.Layers {
					keep[l.Digest.Hex] = true
				}
			case probe.Manifests != nil:
				if !walk(probe.Manifests, depth+1) {
					return false
				}
			default:
				return false
			}
		}
		return true
	}
	if !walk(idx.Manifests, 0) {
		return nil
	}
	blobs := filepath.Join(string(d), "blobs", "sha256")
	des, err := os.ReadDir(blobs)
	if err != nil {
		return err
	}
	for _, de := range des {
		n := de.Name()
		ours := strings.HasPrefix(n, ".tmp-") || len(n) == 64 && strings.Trim(n, "0123456789abcdef") == ""
		if ours && !keep[n] {
			os.Remove(filepath.Join(blobs, n))
		}
	}
	return nil
}

// lockDir takes an exclusive flock of the directory dir, waiting (and
// giving up when ctx ends) while another export holds it.
func lockDir(ctx context.Context, dir string) (func(), error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { unix.Close(fd) }, nil
		}
		if err != unix.EWOULDBLOCK {
			unix.Close(fd)
			return nil, fmt.Errorf("locking %s: %w", dir, err)
		}
		select {
		case <-ctx.Done():
			unix.Close(fd)
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
