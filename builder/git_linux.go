package builder

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// writeGit clones p's repository and copies its tree (or subdirectory)
// into p.Dst as a COPY copies a context directory: owners root (or
// --chown's), modes as git checks them out (0644, 0755), every mtime the
// step's time (SOURCE_DATE_EPOCH when set) or, with ?mtime=commit, the
// commit's. The tree is read through a descriptor refusing symlinks on the
// way, as the context is, so whatever the repository holds lands inside
// the layer directory.
func (w *writer) writeGit(ctx context.Context, p planned) error {
	g := p.Git
	work, cleanup, err := g.clone(ctx)
	if err != nil {
		return err
	}
	defer os.RemoveAll(cleanup)
	if g.Subdir != "" {
		if work, err = gitSubdir(work, g.Subdir); err != nil {
			return fmt.Errorf("%s: %w", g.Remote, err)
		}
	}
	root, err := os.OpenFile(work, os.O_RDONLY|unix.O_DIRECTORY|oPath, 0)
	if err != nil {
		return err
	}
	tree := &contextFS{dir: work, root: root} // no .dockerignore: BuildKit reads none
	defer tree.close()
	// Owners dropped as for context files; contents not hashed: the commit
	// keys them, and the copy checks sizes.
	d := &describer{from: tree, context: true}
	files, err := d.walk("/", p.Dst, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", g.Remote, err)
	}
	d.context = false
	if err := d.fill(fileRefs(files)); err != nil {
		return fmt.Errorf("%s: %w", g.Remote, err)
	}
	mtime := w.now
	if g.MTime == "commit" {
		mtime = g.commitAt
	}
	if err := w.ensureDir(p.Dst); err != nil {
		return err
	}
	saved := w.op.from
	w.op.from = tree
	defer func() { w.op.from = saved }()
	for _, f := range files {
		f.Mtime = mtime
		if err := w.copyNode(f); err != nil {
			return err
		}
	}
	return nil
}
