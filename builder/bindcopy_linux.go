package builder

import (
	"context"
	"os"
	"path"
)

// contextCopy writes the planned files into a directory of the build's, as
// COPY would (owned by root, the kept xattrs, contents checked against the
// plan), and returns what to bind: the step sees exactly what its key
// covers, owned 0:0 as COPY and Docker show context files, and nothing the
// context gains or loses meanwhile.
func (b *build) contextCopy(ctx context.Context, bp *bindPlan) (string, error) {
	dir, err := os.MkdirTemp(b.tmp, "bind-")
	if err != nil {
		return "", err
	}
	w := &writer{op: &copyOp{from: b.context, context: true}, out: dir, now: b.now(), owners: b.opts.Owners}
	if bp.root.Kind != kindDir {
		f := bp.root
		f.Dst = "/" + path.Base(f.entry.rel)
		if err := w.copyNode(f); err != nil {
			return "", err
		}
		return w.host(f.Dst), nil
	}
	for _, f := range bp.files {
		if err := w.copyNode(f); err != nil {
			return "", err
		}
	}
	if err := w.finish(); err != nil {
		return "", err
	}
	if err := os.Chmod(dir, w.modeOf(bp.root)); err != nil {
		return "", err
	}
	return dir, setXattrs(dir, bp.root.Xattrs)
}
