package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/executor"
	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/store"
)

// cacheVersion changes whenever what a key covers or an entry holds
// changes, so entries from an older strata are never misread.
// v2: COPY keys every attribute the writer copies (owners, devices, hard
// links, xattrs); metadata steps no longer advance the filesystem chain.
const cacheVersion = "strata-cache-v2"

// What a step's key covers. Each input is read by the same code that
// uses it, so nothing can change a step's output without changing its key:
//
//   - Parent: the key of the filesystem the step starts from: the base
//     (scratch and the platform, or an image's manifest digest, or the
//     parent stage's key) and every earlier RUN, COPY, ADD and WORKDIR.
//     Metadata steps (ENV, ARG, LABEL, USER, ...) do not change it: a step
//     that depends on them keys what it reads of them itself, as BuildKit's
//     operations do, so a new LABEL or an unused build arg keeps later
//     COPYs cached.
//   - Platform, Kind, Command (the instruction with its words expanded:
//     sources, destination, --chown, --chmod, --from, flags) and Layer (the
//     compression and SOURCE_DATE_EPOCH layers are written with), for all.
//   - RUN (Run): the executor.Spec it runs with (runSpec: argv through the
//     stage's SHELL, environment, working directory, user, network,
//     hostname) less what cannot change its result (the step's own
//     directories, the output writers, the --build-arg proxy variables,
//     which Docker keeps out of keys too); the mounts' flags and the
//     content their binds expose (mountsKey); and the history text (it
//     lists the build args).
//   - COPY and ADD (Copy): the plan the writer executes, field by field
//     (planned and srcFile: destination, kind, mode, owner where kept,
//     size, sha256, link target, device number, kept xattrs, hard-link
//     identity; heredoc text; a download's content and Last-Modified), the
//     resolved destination, --chown's ids, --chmod's mode; for --from the
//     source stage's or image's key instead of its files.
//   - WORKDIR (Workdir): the directory and the USER that owns it.
//   - Metadata steps: the step before them (Prev) and the environment and
//     args they see; their entries hold only history, so a cached build
//     repeats the history times.
//
// Read but deliberately not keyed: a copied file's mtime (a touch keeps
// the cache, as in BuildKit; SOURCE_DATE_EPOCH clamps times in new layers)
// and the value of a secret.
type keyInput struct {
	Version  string
	Parent   string
	Prev     string `json:",omitempty"`
	Platform string
	Kind     string
	Command  any
	Layer    string
	Env      []string         `json:",omitempty"`
	Args     []dockerfile.Arg `json:",omitempty"`
	Run      *runKey          `json:",omitempty"`
	Copy     string           `json:",omitempty"`
	Workdir  *workdirKey      `json:",omitempty"`
}

// runKey is what a RUN's key covers beyond the common inputs.
type runKey struct {
	Spec      executor.Spec
	Mounts    string
	CreatedBy string
}

type workdirKey struct {
	Dir, User string
}

// key is the sha256 of k's JSON encoding, streamed into the hash: the
// encoding holds the whole environment.
func (k keyInput) key() (string, error) {
	k.Version = cacheVersion
	return digestJSON(k)
}

// Cache is where step results are looked up and kept, by key (keyInput).
// The local store is one (storeCache); a registry-backed cache is another
// implementation of the same two methods. Get must not fetch a layer's
// bytes: the entry's Layer reads its blob only when something needs it (a
// later RUN's lowers, an output).
type Cache interface {
	// Get returns the entry for key, or nil when there is none (or it
	// cannot be used, say its blob is gone).
	Get(ctx context.Context, key string) (*CacheEntry, error)
	// Put keeps e under key.
	Put(ctx context.Context, key string, e *CacheEntry) error
}

// CacheEntry is what a hit reuses: the layer (none for a step that made
// no layer) and the history entry, with its original time, so a cached
// build gives the same digest.
type CacheEntry struct {
	Layer   *layer.Layer
	History v1.History
}

// storeCache keeps entries in the local store: one small JSON record a key,
// naming a blob of the store.
type storeCache struct{ st *store.Store }

type storeRecord struct {
	Layer   *v1.Descriptor `json:"layer,omitempty"`
	DiffID  *v1.Hash       `json:"diffID,omitempty"`
	History v1.History     `json:"history"`
}

func (c storeCache) Get(_ context.Context, key string) (*CacheEntry, error) {
	b, err := c.st.CacheGet(key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading build cache: %w", err)
	}
	var r storeRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, nil
	}
	e := &CacheEntry{History: r.History}
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

func (c storeCache) Put(_ context.Context, key string, e *CacheEntry) error {
	r := storeRecord{History: e.History}
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
	return c.st.CachePut(key, b)
}

// copyKey is what a COPY or ADD's key covers beyond the common inputs:
// its plan as the writer will carry it out, and the options the writer
// applies to every file.
func copyKey(op *copyOp, plan []planned, fromKey string) (string, error) {
	in := struct {
		Dest    string
		Chown   *keyOwner
		Mode    *fs.FileMode
		Add     bool
		Context bool
		From    string `json:",omitempty"`
		Plan    []planned
	}{Dest: op.dest, Mode: op.mode, Add: op.add, Context: op.context, From: fromKey, Plan: plan}
	if op.chown != nil {
		in.Chown = &keyOwner{UID: op.chown.uid, GID: op.chown.gid}
	}
	return digestJSON(in)
}

// digestJSON is the sha256 of v's JSON encoding, streamed into the hash.
func digestJSON(v any) (string, error) {
	h := sha256.New()
	if err := json.NewEncoder(h).Encode(v); err != nil {
		return "", fmt.Errorf("encoding cache key: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return readerSHA256(f, p)
}

func readerSHA256(r io.Reader, name string) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", fmt.Errorf("hashing %s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
