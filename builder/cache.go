package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/layer"
)

// cacheVersion changes whenever what a key covers or an entry holds
// changes, so entries from an older strata are never misread.
const cacheVersion = "strata-cache-v1"

// keyInput is everything a step's result depends on. The parent key
// covers the base and every earlier step, hence the whole config the step
// starts from.
type keyInput struct {
	Version  string
	Parent   string
	Platform string
	Kind     string
	Command  any
	Env      []string
	Args     []dockerfile.Arg
	Content  string // COPY/ADD: digest of the sources
	Layer    string // how new layers are written (compression, epoch)
	Network  string
}

// key is the SHA-256 of k's json.Marshal encoding. The encoding holds the
// whole environment, so it is streamed into the hash rather than built
// in a buffer per step: json.Encoder writes json.Marshal's bytes and a
// newline, which dropLast keeps out of the hash. Hashing a running digest
// of the environment instead would change every key, as the env's bytes
// come after the parent key's.
func (k keyInput) key() (string, error) {
	k.Version = cacheVersion
	h := sha256.New()
	w := &dropLast{w: h}
	if err := json.NewEncoder(w).Encode(k); err != nil {
		return "", fmt.Errorf("encoding cache key: %w", err)
	}
	if !w.has || w.last != '\n' {
		return "", errors.New("encoding cache key: no final newline")
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// dropLast writes everything written to it but the last byte, which it
// keeps in last.
type dropLast struct {
	w    io.Writer
	last byte
	has  bool
}

func (d *dropLast) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if d.has {
		if _, err := d.w.Write([]byte{d.last}); err != nil {
			return 0, err
		}
	}
	if _, err := d.w.Write(p[:len(p)-1]); err != nil {
		return 0, err
	}
	d.last, d.has = p[len(p)-1], true
	return len(p), nil
}

// cacheEntry is what a hit reuses: the layer (none for a metadata step)
// and the history entry, with its original time.
type cacheEntry struct {
	Layer   *v1.Descriptor `json:"layer,omitempty"`
	DiffID  *v1.Hash       `json:"diffID,omitempty"`
	History v1.History     `json:"history"`
}

// cacheGet returns the entry for key, or nil when there is none or its
// layer blob is gone (pruned).
func cacheGet(s *layer.Store, key string) (*cacheEntry, *layer.Layer, error) {
	b, err := s.CacheGet(key)
	if errors.Is(err, layer.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading build cache: %w", err)
	}
	var e cacheEntry
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, nil, nil
	}
	if e.Layer == nil || e.DiffID == nil {
		return &e, nil, nil
	}
	if ok, err := s.HasBlob(e.Layer.Digest); err != nil || !ok {
		return nil, nil, err
	}
	l, err := s.Layer(*e.Layer, *e.DiffID)
	if err != nil {
		return nil, nil, fmt.Errorf("reading cached layer: %w", err)
	}
	return &e, l, nil
}

func cachePut(s *layer.Store, key string, l *layer.Layer, h v1.History) error {
	e := cacheEntry{History: h}
	if l != nil {
		d := l.Descriptor()
		e.Layer = &d
		diffID, _ := l.DiffID()
		e.DiffID = &diffID
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encoding cache entry: %w", err)
	}
	return s.CachePut(key, b)
}

// contentDigest hashes what a COPY or ADD reads, file by file: path,
// mode, owner, size, link target and content, never the mtime, so
// touching a file keeps the cache and editing one misses it.
func contentDigest(op *copyOp, plan []planned) (string, error) {
	h := sha256.New()
	for _, p := range plan {
		fmt.Fprintf(h, "dst %s extract=%t\n", p.dst, p.extract)
		if p.data != nil {
			fmt.Fprintf(h, "data %d %s\n", len(*p.data), *p.data)
			continue
		}
		if !p.src.info.IsDir() || p.mtime != nil {
			if err := hashEntry(h, op.from, "", p.src); err != nil {
				return "", err
			}
			continue
		}
		if err := hashTree(h, op.from, p.srcPath, "."); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashTree(h io.Writer, t srcTree, dir, rel string) error {
	names, err := t.readDir(dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		e, err := t.lstat(path.Join(dir, n))
		if err != nil {
			return err
		}
		if err := hashEntry(h, t, path.Join(rel, n), e); err != nil {
			return err
		}
		if e.info.IsDir() {
			if err := hashTree(h, t, path.Join(dir, n), path.Join(rel, n)); err != nil {
				return err
			}
		}
	}
	return nil
}

// hashEntry hashes one source file's metadata and content. Context files
// land as 0:0 (or --chown's ids, in the instruction), so their host owner
// is left out; an image's files keep theirs.
func hashEntry(h io.Writer, t srcTree, rel string, e entry) error {
	var own owner
	if _, context := t.(*contextFS); !context {
		own = ownerOf(e.info)
	}
	var link, sum string
	switch {
	case e.info.Mode()&os.ModeSymlink != 0:
		link, _ = os.Readlink(e.host)
	case e.info.Mode().IsRegular():
		var err error
		if sum, err = sumOf(t, e); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(h, "%q %o %d:%d %d %q %s\n", rel, uint32(e.info.Mode()), own.uid, own.gid, e.info.Size(), link, sum)
	return err
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
