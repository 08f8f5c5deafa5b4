package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/strata-build/strata/cache"
)

// stager writes the content of a COPY's context files into a directory of
// its own while describer hashes them for the key, so that one read feeds
// both the key and the copy: on a miss the writer renames each staged file
// into the step's directory instead of reading the context again. The
// directory is a sibling of the step's (both under the build's work
// directory, one filesystem), never inside it, so no staged name can meet
// a copied one or reach a layer, whatever happens to the step.
//
// A file the context's stat cache covers is not staged: a warm build reads
// no content, and its step most likely hits.
type stager struct {
	tmp string // where dir is made, on the first file staged
	n   atomic.Int64
	// first runs once, when the first file is staged: a file the stat
	// cache does not know predicts a miss, so the base's extraction can
	// start now rather than once the key has missed.
	first func()
	once  sync.Once
	// dir is the staging directory, made 0700 by the first file staged
	// (dirErr when it could not be).
	dir    string
	dirErr error
	// cleanup removes dir once the plan holding it is unreachable (a hit:
	// the step never runs, and nothing else would).
	cleanup runtime.Cleanup
	plan    *copyPlan
}

// stagedFile is a context file's content, staged: the file holding it and
// the source's stat once it was read, which the writer checks again before
// using it.
type stagedFile struct {
	path string
	st   statEntry
}

// stagesCopies reports whether a COPY from the context stages its files.
// Not when a key may hit in an imported cache: a fresh checkout (every
// stat new) served by --cache-from would write the context for nothing.
func (b *build) stagesCopies() bool {
	if l, ok := b.cache.(*cache.Layered); ok && len(l.Imports) > 0 {
		return false
	}
	return true
}

// newStager stages the files of one COPY of s, planned as cp.
func (b *build) newStager(s *state, cp *copyPlan) *stager {
	layers := s.layers
	return &stager{tmp: b.tmp, plan: cp, first: func() {
		if b.prefetch != nil {
			b.prefetch.start(layers)
		}
	}}
}

// start makes the staging directory (MkdirTemp: 0700), once.
func (s *stager) start() {
	s.dir, s.dirErr = os.MkdirTemp(s.tmp, "stage-")
	if s.dirErr != nil {
		s.dirErr = fmt.Errorf("creating COPY staging directory: %w", s.dirErr)
		return
	}
	s.cleanup = runtime.AddCleanup(s.plan, func(dir string) { os.RemoveAll(dir) }, s.dir)
	s.plan = nil
	s.first()
}

// discard removes the staging directory and what is left in it. It runs
// once the describer is done, so start has run or never will.
func (s *stager) discard() {
	if s == nil || s.dir == "" {
		return
	}
	s.cleanup.Stop()
	os.RemoveAll(s.dir)
}

// file hashes the context file f: from the stat cache when it covers f,
// else by reading it once into a staged copy. The staged bytes are the
// hashed ones; a file whose stat moved while it was read fails as changed.
func (s *stager) file(c *contextFS, f *srcFile) (string, *stagedFile, error) {
	cur, statOK := statOf(f.entry.info)
	if c.sums != nil {
		if sum, ok := c.sums.cached(f.entry); ok {
			return sum, nil, nil
		}
	}
	if !statOK {
		sum, err := treeSHA256(c, f.entry)
		return sum, nil, err
	}
	if s.once.Do(s.start); s.dirErr != nil {
		return "", nil, s.dirErr
	}
	in, err := c.open(f.entry)
	if err != nil {
		return "", nil, err
	}
	defer in.Close()
	name := filepath.Join(s.dir, strconv.FormatInt(s.n.Add(1), 10))
	out, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", nil, fmt.Errorf("staging %s: %w", displaySrc(f.entry.rel), err)
	}
	h := sha256.New()
	n, err := copyHashing(out, in, h)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", nil, fmt.Errorf("staging %s: %w", displaySrc(f.entry.rel), err)
	}
	// Checked on the open file, once read: what was hashed is the file
	// described, or the context is changing under the build.
	after, err := fstatInfo(int(in.Fd()), f.entry.info.Name())
	if err != nil {
		return "", nil, err
	}
	if st, ok := statOf(after); n != f.Size || !ok || !sameStat(st, cur) {
		return "", nil, changed(*f, nil)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if c.sums != nil {
		c.sums.learn(f.entry, sum)
	}
	return sum, &stagedFile{path: name, st: cur}, nil
}

// copyHashing copies in to out, hashing every byte written.
func copyHashing(out io.Writer, in io.Reader, h io.Writer) (int64, error) {
	bp := hashBuffers.Get().(*[]byte)
	defer hashBuffers.Put(bp)
	buf := *bp
	var n int64
	for {
		k, err := in.Read(buf)
		if k > 0 {
			h.Write(buf[:k])
			if _, werr := out.Write(buf[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// changed is the error for a source file that is not what was planned: the
// context changed while the build read it.
func changed(f srcFile, err error) error {
	msg := fmt.Sprintf("context changed while it was being read: %s", displaySrc(f.entry.rel))
	if err != nil {
		return fmt.Errorf("%s: %w", msg, err)
	}
	return errors.New(msg)
}
