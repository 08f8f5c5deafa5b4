package builder

import (
	"context"
	"fmt"
	"os"

	"github.com/strata-build/strata/layer"
)

// workdir creates a missing WORKDIR as BuildKit does (mkdir -p, owned by
// the current USER), in a layer of its own, so a RUN as that user can
// write there. The owner follows BuildKit's mkdir (llb.WithUser): a name
// gets its uid and primary gid from passwd, the ids a RUN as that user
// gets too; a name the image lacks, or no /etc/passwd at all, is 0:0. An
// existing directory, or /, adds no layer: BuildKit's mkdir changes
// nothing then and its exporter drops the empty layer.
func (b *build) workdir(ctx context.Context, s *state) (*layer.Layer, error) {
	cfg := s.config.Config
	if cfg.WorkingDir == "/" {
		return nil, nil
	}
	lowers, err := b.lowers(ctx, s)
	if err != nil {
		return nil, err
	}
	image := mergedFS{lowers: lowers}
	dir, err := resolvePath(image, cfg.WorkingDir)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", cfg.WorkingDir, err)
	}
	if e, err := image.lstat(dir); err == nil {
		if !e.info.IsDir() {
			return nil, fmt.Errorf("%s is not a directory", cfg.WorkingDir)
		}
		return nil, nil
	}
	own, err := ownerFor(cfg.User, image)
	if err != nil {
		return nil, fmt.Errorf("USER %s: %w", cfg.User, err)
	}
	out, err := os.MkdirTemp(b.tmp, "workdir-")
	if err != nil {
		return nil, fmt.Errorf("creating WORKDIR directory: %w", err)
	}
	defer b.removeUnadopted(out)
	w := &writer{op: &copyOp{image: image, chown: own}, out: out, now: b.now(), owners: b.opts.Owners}
	if err := w.ensureDir(dir); err != nil {
		return nil, err
	}
	if err := w.finish(); err != nil {
		return nil, err
	}
	return b.writeLayer(ctx, out, layer.FromDir)
}
