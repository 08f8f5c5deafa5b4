package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/executor"
	"github.com/strata-build/strata/internal/owners"
	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/progress"
	"github.com/strata-build/strata/store"
)

// runMounts turns RUN --mount flags into sandbox mounts: tmpfs as is,
// cache as a directory kept in the store across builds, bind as the
// context's or a stage's files (rw: a throwaway copy of them). release
// drops the cache locks taken once the RUN is over.
func (b *build) runMounts(ctx context.Context, st dockerfile.Step, binds []*bindPlan) (mounts []executor.Mount, release func(), err error) {
	var releases []func()
	release = func() {
		for _, r := range releases {
			r()
		}
	}
	held, err := b.heldCaches(ctx, st)
	if err != nil {
		return nil, nil, err
	}
	nSSH := 0
	for i, m := range st.Mounts {
		var em executor.Mount
		var rel func()
		switch m.Type {
		case instructions.MountTypeTmpfs:
			em = executor.Mount{Type: executor.MountTmpfs, Target: m.Target, Size: m.SizeLimit}
		case instructions.MountTypeCache:
			em, rel, err = b.cacheMount(ctx, m, held)
		case instructions.MountTypeBind:
			var bp *bindPlan
			if i < len(binds) {
				bp = binds[i]
			}
			em, err = b.bindMount(ctx, m, bp)
		case instructions.MountTypeSecret:
			var ok bool
			if em, ok, err = b.secretMount(m); err == nil && !ok {
				continue
			}
		case instructions.MountTypeSSH:
			var ok bool
			var c io.Closer
			em, c, ok, err = b.sshMount(m, nSSH)
			nSSH++
			if c != nil {
				rel = func() { c.Close() }
			}
			if err == nil && !ok {
				continue
			}
		default:
			err = fmt.Errorf("internal error: RUN --mount=type=%s reached the builder", m.Type)
		}
		if rel != nil {
			releases = append(releases, rel)
		}
		if err != nil {
			release()
			return nil, nil, err
		}
		mounts = append(mounts, em)
	}
	return mounts, release, nil
}

// cacheMount is a directory the store keeps across builds, named by the
// cache id (the target when none is given), created with the mount's owner
// and mode. sharing=shared lets concurrent builds use it at once, locked
// waits for the others, private takes a fresh directory when it is busy.
// release drops the lock, if any, once the RUN is over.
//
// from= and source= follow BuildKit's dispatchRunMounts and cache
// manager: with from=, a new cache starts as the tree of that stage or
// image (BuildKit makes the cache a mutable copy of its input), and the
// cache is one per id and tree (BuildKit names it "id:" and the input's
// ref), so caches seeded from different trees never mix. source= mounts
// that subdirectory of the cache, which must exist; with from= and no
// source=, uid, gid or mode make BuildKit mount a /cache directory it
// creates in the tree (setCacheUIDGID), and so does Strata.
func (b *build) cacheMount(ctx context.Context, m dockerfile.Mount, held heldCaches) (executor.Mount, func(), error) {
	id, storeID, from, sub, sharing, err := b.cacheSpec(ctx, m)
	if err != nil {
		return executor.Mount{}, nil, err
	}
	if held.exclusive[storeID] {
		sharing = store.Locked
		if dir, ok := held.dirs[storeID]; ok {
			// Locked by an earlier mount of this step: the same cache.
			host := dir
			if sub != "/" {
				if host, err = existingIn(dir, sub); err != nil {
					return executor.Mount{}, nil, fmt.Errorf("RUN --mount=type=cache source %s: %w", m.Source, err)
				}
			}
			return executor.Mount{Type: executor.MountBind, Source: host, Target: m.Target, ReadOnly: m.ReadOnly}, nil, nil
		}
	}
	init := func(dir string) error {
		if from == nil {
			if sub == "/" {
				if err := b.setCacheDirMeta(dir, m); err != nil {
					return err
				}
			}
			return b.seedCacheMount(ctx, storeID, dir, m)
		}
		if b.opts.CacheMountSeed != nil {
			if l, _ := b.opts.CacheMountSeed(storeID); l != nil {
				// An imported cache of this id and tree: what it held.
				return b.seedCacheMount(ctx, storeID, dir, m)
			}
		}
		if err := b.flatten(ctx, from, dir); err != nil {
			return fmt.Errorf("RUN --mount=type=cache,from=%s: %w", m.Mount.From, err)
		}
		if sub == "/cache" && m.Source == "" {
			return b.mkdirCache(dir, m)
		}
		return nil
	}
	dir, release, err := b.opts.Store.CacheMount(ctx, storeID, sharing, init)
	if err != nil {
		return executor.Mount{}, nil, err
	}
	if held.exclusive[storeID] {
		held.dirs[storeID] = dir
	}
	if sharing == store.Shared {
		// A shared flock held while the step runs: a step that resolves a
		// path in this cache (sub above) holds the store's exclusive one,
		// so it waits for this step, and this one for it.
		unlock, err := flockDir(ctx, dir)
		if err != nil {
			release()
			return executor.Mount{}, nil, fmt.Errorf("cache mount %s: %w", id, err)
		}
		release = unlock
	}
	host := dir
	if sub != "/" {
		if host, err = existingIn(dir, sub); err != nil {
			release()
			return executor.Mount{}, nil, fmt.Errorf("RUN --mount=type=cache source %s: %w", m.Source, err)
		}
	}
	if p, err := b.opts.Store.CacheMountPath(storeID); err == nil {
		b.mountsMu.Lock()
		b.mounts[storeID] = p
		b.mountsMu.Unlock()
	}
	return executor.Mount{Type: executor.MountBind, Source: host, Target: m.Target, ReadOnly: m.ReadOnly}, release, nil
}

// cacheSpec is what a cache mount's flags make of it: the cache id, the
// store's id (one per id and from= tree), the from= tree, the path inside
// the cache to bind, and the sharing the step needs.
func (b *build) cacheSpec(ctx context.Context, m dockerfile.Mount) (id, storeID string, from *state, sub string, sharing store.Sharing, err error) {
	id = m.CacheID
	if id == "" {
		id = m.Target
	}
	storeID = id
	if m.Mount.From != "" {
		s, err := b.source(ctx, m.From)
		if err != nil {
			return "", "", nil, "", 0, fmt.Errorf("RUN --mount=type=cache,from=%s: %w", m.Mount.From, err)
		}
		from, storeID = s, id+":"+s.key
	}
	sub = path.Join("/", m.Source)
	if sub == "/" && from != nil && (m.UID != nil || m.GID != nil || m.Mode != nil) {
		sub = "/cache"
	}
	sharing = store.Shared
	switch m.CacheSharing {
	case instructions.MountSharingLocked:
		sharing = store.Locked
	case instructions.MountSharingPrivate:
		sharing = store.Private
	}
	if sub != "/" {
		// A path inside the cache is resolved here and bound by the
		// sandbox later: no other step may change the cache in between
		// (a symlink swapped in would bind a host directory), so the
		// step has the cache to itself, as sharing=locked.
		sharing = store.Locked
	}
	return id, storeID, from, sub, sharing, nil
}

// heldCaches are the caches a RUN mounts more than once, one of the mounts
// needing the cache to itself (source=, sharing=locked): the step locks
// such a cache once, exclusively, and all its mounts of it bind that
// directory. A second lock would wait for the first for ever (flocks of two
// descriptors conflict, even in one process).
type heldCaches struct {
	exclusive map[string]bool   // store ids
	dirs      map[string]string // store id → directory, once locked
}

func (b *build) heldCaches(ctx context.Context, st dockerfile.Step) (heldCaches, error) {
	h := heldCaches{exclusive: map[string]bool{}, dirs: map[string]string{}}
	count := map[string]int{}
	locked := map[string]bool{}
	for _, m := range st.Mounts {
		if m.Type != instructions.MountTypeCache {
			continue
		}
		_, storeID, _, _, sharing, err := b.cacheSpec(ctx, m)
		if err != nil {
			return h, err
		}
		count[storeID]++
		locked[storeID] = locked[storeID] || sharing == store.Locked
	}
	for id, n := range count {
		h.exclusive[id] = n > 1 && locked[id]
	}
	return h, nil
}

// mkdirCache creates BuildKit's /cache directory in a cache seeded from a
// tree, with the mount's owner and mode; like BuildKit's mkdir, one that
// exists is left as it is. The tree is the new cache's, seen by no step
// yet: resolving in it cannot race.
func (b *build) mkdirCache(dir string, m dockerfile.Mount) error {
	tree := mergedFS{lowers: []string{dir}}
	resolved, err := resolvePath(tree, "/cache")
	if err != nil {
		return err
	}
	p := filepath.Join(dir, resolved)
	if err := os.Mkdir(p, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return err
	}
	return b.setCacheDirMeta(p, m)
}

// flockDir takes a shared flock on dir, against the store's exclusive one
// (sharing=locked, private), polling so that ctx can end the wait, and
// returns its release.
func flockDir(ctx context.Context, dir string) (func(), error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// seedCacheMount fills a new cache mount directory with what an imported
// cache holds for id (--cache-from with cache-mounts=true), extracted as a
// layer would be: nothing of it can land outside dir. Content that cannot
// be extracted is left out with a warning: the mount starts empty.
func (b *build) seedCacheMount(ctx context.Context, id, dir string, m dockerfile.Mount) error {
	if b.opts.CacheMountSeed == nil {
		return nil
	}
	l, from := b.opts.CacheMountSeed(id)
	if l == nil {
		return nil
	}
	err := applyLayerWith(ctx, l, dir, layer.ExtractOptions{Mode: layer.Flatten, Owners: b.opts.Owners})
	if err == nil || ctx.Err() != nil {
		return err
	}
	b.prog.sink.Event(progress.Warning{Message: fmt.Sprintf("cache %s: cache mount %s left empty: %v", from, id, err)})
	des, rerr := os.ReadDir(dir)
	for _, de := range des {
		if rerr == nil {
			rerr = os.RemoveAll(filepath.Join(dir, de.Name()))
		}
	}
	if rerr != nil {
		return fmt.Errorf("emptying cache mount %s: %w", id, rerr)
	}
	return b.setCacheDirMeta(dir, m)
}

// setCacheDirMeta applies the mount's uid, gid and mode (0755 root by
// default, as BuildKit).
func (b *build) setCacheDirMeta(dir string, m dockerfile.Mount) error {
	mode := os.FileMode(0o755)
	if m.Mode != nil {
		mode = os.FileMode(*m.Mode)
	}
	uid, gid := 0, 0
	if m.UID != nil {
		uid = int(*m.UID)
	}
	if m.GID != nil {
		gid = int(*m.GID)
	}
	own := b.opts.Owners
	if own == nil {
		own = owners.Host
	}
	if err := own.Lchown(dir, uid, gid); err != nil {
		return err
	}
	return os.Chmod(dir, mode)
}

// bindMount binds files of the context (never outside it) or of a stage
// or image. Read-only unless rw: the step then writes to a throwaway copy,
// as BuildKit's rw bind (no output), never to the context or the stage.
func (b *build) bindMount(ctx context.Context, m dockerfile.Mount, bp *bindPlan) (executor.Mount, error) {
	var host string
	var err error
	switch {
	case m.From.Kind == dockerfile.SourceContext:
		// contextCopy makes a fresh copy for each step: writable as is.
		host, err = b.contextCopy(ctx, bp)
	case m.ReadOnly:
		host, err = b.stagePath(ctx, m.From, m.Source)
	default:
		host, err = b.stageCopy(ctx, m.From, m.Source)
	}
	if err != nil {
		return executor.Mount{}, fmt.Errorf("RUN --mount source %s: %w", m.Source, err)
	}
	return executor.Mount{Type: executor.MountBind, Source: host, Target: m.Target, ReadOnly: m.ReadOnly}, nil
}

// bindPlan is a context bind mount's source as its key describes it: the
// file, or the directory and the files below it.
type bindPlan struct {
	root  srcFile
	files []srcFile
}

// planContextBind describes a bind of the context's src: only files
// .dockerignore lets through, with their content hashed.
func (b *build) planContextBind(src string) (*bindPlan, error) {
	resolved, e, err := b.resolveContext(src)
	if err != nil {
		return nil, err
	}
	d := &describer{from: b.context, context: true}
	bp := &bindPlan{}
	if bp.root, err = d.describe(e, "/"); err != nil {
		return nil, err
	}
	if bp.root.Kind == kindDir {
		if bp.files, err = d.walk(resolved, "/", nil); err != nil {
			return nil, err
		}
	}
	return bp, d.fill(append([]*srcFile{&bp.root}, fileRefs(bp.files)...))
}

// resolveContext resolves src in the context, refusing paths and
// symlinks that leave it and files that .dockerignore excludes.
func (b *build) resolveContext(src string) (string, entry, error) {
	p, err := checkInside(src)
	if err != nil {
		return "", entry{}, err
	}
	resolved, err := resolvePath(b.context, p)
	if err != nil {
		return "", entry{}, err
	}
	e, err := b.context.lstat(resolved)
	return resolved, e, err
}

// stagePath flattens a stage or image once per build and resolves src in
// it as a chroot would. The tree is shared: only read-only mounts get it.
func (b *build) stagePath(ctx context.Context, from dockerfile.Source, src string) (string, error) {
	s, err := b.source(ctx, from)
	if err != nil {
		return "", err
	}
	b.pullMu.Lock()
	defer b.pullMu.Unlock()
	dir, ok := b.flat[s.key]
	if !ok {
		if dir, err = os.MkdirTemp(b.tmp, "mount-"); err != nil {
			return "", err
		}
		if err := b.flatten(ctx, s, dir); err != nil {
			return "", err
		}
		b.flat[s.key] = dir
	}
	return existingIn(dir, src)
}

// stageCopy is stagePath in a tree of the step's own, flattened afresh,
// for a writable bind: what the step writes is thrown away with it.
func (b *build) stageCopy(ctx context.Context, from dockerfile.Source, src string) (string, error) {
	s, err := b.source(ctx, from)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(b.tmp, "mount-rw-")
	if err != nil {
		return "", err
	}
	if err := b.flatten(ctx, s, dir); err != nil {
		return "", err
	}
	return existingIn(dir, src)
}

// flatten extracts the layers of s into dir, one tree; extraction keeps
// everything inside dir.
func (b *build) flatten(ctx context.Context, s *state, dir string) error {
	for _, l := range s.layers {
		if err := applyLayerWith(ctx, l, dir, layer.ExtractOptions{Mode: layer.Flatten, Owners: b.opts.Owners}); err != nil {
			return err
		}
	}
	return nil
}

// existingIn resolves src in the tree dir as a chroot would (symlinks and
// .. stay inside) and returns its host path; it must exist.
func existingIn(dir, src string) (string, error) {
	tree := mergedFS{lowers: []string{dir}}
	resolved, err := resolvePath(tree, src)
	if err != nil {
		return "", err
	}
	if _, err := tree.lstat(resolved); err != nil {
		return "", err
	}
	return filepath.Join(dir, resolved), nil
}

// mountsKey is what a RUN's mounts add to its cache key: the flags, and
// what binds expose: a stage's or image's key, or the described context
// files, which it returns for the run. A cache mount adds the key of its
// from= tree, an input of the step in BuildKit (what a new cache starts
// as), but never the cache's content, as in BuildKit: a cache is a hint.
// tmpfs mounts add nothing.
func (b *build) mountsKey(ctx context.Context, st dockerfile.Step) (string, []*bindPlan, error) {
	type mountKey struct {
		Flags dockerfile.Mount
		From  string    `json:",omitempty"`
		Root  *srcFile  `json:",omitempty"`
		Files []srcFile `json:",omitempty"`
		// Missing is an optional secret or agent the build was not given: the step then
		// sees no file or socket, which can change what it writes. Never the value
		// (BuildKit's rule, README "Secrets and SSH"), only whether there is one.
		Missing bool `json:",omitempty"`
	}
	keys := make([]mountKey, len(st.Mounts))
	binds := make([]*bindPlan, len(st.Mounts))
	for i, m := range st.Mounts {
		keys[i].Flags = m
		keys[i].Missing = !b.given(m)
		cacheFrom := m.Type == instructions.MountTypeCache && m.Mount.From != ""
		if m.Type != instructions.MountTypeBind && !cacheFrom {
			continue
		}
		if m.From.Kind != dockerfile.SourceContext {
			s, err := b.source(ctx, m.From)
			if err != nil {
				return "", nil, err
			}
			keys[i].From = s.key
			continue
		}
		bp, err := b.planContextBind(m.Source)
		if err != nil {
			return "", nil, fmt.Errorf("RUN --mount source %s: %w", m.Source, err)
		}
		binds[i], keys[i].Root, keys[i].Files = bp, &bp.root, bp.files
	}
	sum, err := digestJSON(keys)
	return sum, binds, err
}
