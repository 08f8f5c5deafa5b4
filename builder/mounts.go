package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

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
// context's or a stage's files, read-only. release drops the cache locks
// taken for sharing=locked and private once the RUN is over.
func (b *build) runMounts(ctx context.Context, st dockerfile.Step, binds []*bindPlan) (mounts []executor.Mount, release func(), err error) {
	var releases []func()
	release = func() {
		for _, r := range releases {
			r()
		}
	}
	for i, m := range st.Mounts {
		var em executor.Mount
		var rel func()
		switch m.Type {
		case instructions.MountTypeTmpfs:
			em = executor.Mount{Type: executor.MountTmpfs, Target: m.Target, Size: m.SizeLimit}
		case instructions.MountTypeCache:
			em, rel, err = b.cacheMount(ctx, m)
		case instructions.MountTypeBind:
			var bp *bindPlan
			if i < len(binds) {
				bp = binds[i]
			}
			em, err = b.bindMount(ctx, m, bp)
		default:
			// dockerfile's support table refuses secret and ssh mounts.
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
func (b *build) cacheMount(ctx context.Context, m dockerfile.Mount) (executor.Mount, func(), error) {
	if m.Mount.From != "" || m.Source != "" {
		// Refused by dockerfile's support table; ignoring them would be wrong.
		return executor.Mount{}, nil, fmt.Errorf("internal error: RUN --mount=type=cache with from= or source= reached the builder")
	}
	id := m.CacheID
	if id == "" {
		id = m.Target
	}
	sharing := store.Shared
	switch m.CacheSharing {
	case instructions.MountSharingLocked:
		sharing = store.Locked
	case instructions.MountSharingPrivate:
		sharing = store.Private
	}
	init := func(dir string) error {
		if err := b.setCacheDirMeta(dir, m); err != nil {
			return err
		}
		return b.seedCacheMount(ctx, id, dir, m)
	}
	dir, release, err := b.opts.Store.CacheMount(ctx, id, sharing, init)
	if err != nil {
		return executor.Mount{}, nil, err
	}
	if path, err := b.opts.Store.CacheMountPath(id); err == nil {
		b.mountsMu.Lock()
		b.mounts[id] = path
		b.mountsMu.Unlock()
	}
	return executor.Mount{Type: executor.MountBind, Source: dir, Target: m.Target, ReadOnly: m.ReadOnly}, release, nil
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
// or image, read-only: a writable bind would let RUN change them.
func (b *build) bindMount(ctx context.Context, m dockerfile.Mount, bp *bindPlan) (executor.Mount, error) {
	if !m.ReadOnly {
		// Refused by dockerfile's support table: there is no throwaway copy to write to.
		return executor.Mount{}, fmt.Errorf("internal error: RUN --mount=type=bind,rw reached the builder")
	}
	var host string
	var err error
	if m.From.Kind == dockerfile.SourceContext {
		host, err = b.contextCopy(ctx, bp)
	} else {
		host, err = b.stagePath(ctx, m.From, m.Source)
	}
	if err != nil {
		return executor.Mount{}, fmt.Errorf("RUN --mount source %s: %w", m.Source, err)
	}
	return executor.Mount{Type: executor.MountBind, Source: host, Target: m.Target, ReadOnly: true}, nil
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
// it as a chroot would.
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
		for _, l := range s.layers {
			if err := applyLayerWith(ctx, l, dir, layer.ExtractOptions{Mode: layer.Flatten, Owners: b.opts.Owners}); err != nil {
				return "", err
			}
		}
		b.flat[s.key] = dir
	}
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
// files, which it returns for the run (cache and tmpfs mounts add nothing,
// as in BuildKit).
func (b *build) mountsKey(ctx context.Context, st dockerfile.Step) (string, []*bindPlan, error) {
	type mountKey struct {
		Flags dockerfile.Mount
		From  string    `json:",omitempty"`
		Root  *srcFile  `json:",omitempty"`
		Files []srcFile `json:",omitempty"`
	}
	keys := make([]mountKey, len(st.Mounts))
	binds := make([]*bindPlan, len(st.Mounts))
	for i, m := range st.Mounts {
		keys[i].Flags = m
		if m.Type != instructions.MountTypeBind {
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
