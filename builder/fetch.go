package builder

import (
	"context"
	// digest.Parse accepts an algorithm only once its hash is linked in.
	_ "crypto/sha256"
	_ "crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/dfgitutil"
	"github.com/opencontainers/go-digest"
)

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// fetch downloads an ADD URL into dir and checks --checksum. It returns
// the file and the server's Last-Modified time (the Unix epoch when the
// server sends none, so the layer does not depend on when it was built).
func (d downloader) fetch(ctx context.Context, rawURL, checksum string) (string, time.Time, error) {
	if d.shared != nil {
		return d.shared.fetch(ctx, d, rawURL, checksum)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("ADD %s: %w", rawURL, err)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("ADD %s: %w", rawURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", time.Time{}, fmt.Errorf("ADD %s: %s", rawURL, resp.Status)
	}
	f, err := os.CreateTemp(d.dir, "download-")
	if err != nil {
		return "", time.Time{}, err
	}
	defer f.Close()
	check, err := newChecksum(checksum)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("ADD %s: %w", rawURL, err)
	}
	if _, err := io.Copy(io.MultiWriter(f, check), resp.Body); err != nil {
		return "", time.Time{}, fmt.Errorf("ADD %s: %w", rawURL, err)
	}
	if err := check.verify(); err != nil {
		return "", time.Time{}, fmt.Errorf("ADD %s: %w", rawURL, err)
	}
	mtime := time.Unix(0, 0)
	if lm, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		mtime = lm
	}
	return f.Name(), mtime, nil
}

// downloader fetches ADD URLs into a temporary directory.
type downloader struct {
	client *http.Client
	dir    string
	// sources records what was fetched, for provenance.
	sources *sourceLog
	// shared, in a build of several platforms, downloads each URL once
	// for them all.
	shared *downloads
}

// downloads are the ADD URLs a BuildPlatforms fetched, by URL and
// checksum: every platform gets the same bytes from one request, as the
// step a build-platform stage shares must (a server may answer each
// request otherwise).
type downloads struct {
	dir string // removed when every platform's build is over
	mu  sync.Mutex
	m   map[string]*download
	// gits are the ADD git sources resolved (ls-remote), by source and
	// options: one commit for every platform, however long apart their
	// steps run.
	gits map[string]*gitResolution
}

type gitResolution struct {
	mu   sync.Mutex
	done bool
	g    *gitSource
	err  error
}

// resolveGit is resolveGit (the ref to its commit), once for every
// platform of a BuildPlatforms; each gets its own copy, cloned into its
// own directory.
func (d downloader) resolveGit(ctx context.Context, ref *dfgitutil.GitRef, checksum string, keep *bool) (*gitSource, error) {
	if d.shared == nil {
		return resolveGit(ctx, ref, checksum, keep, d.dir)
	}
	k, err := json.Marshal(struct {
		Ref      *dfgitutil.GitRef
		Checksum string
		Keep     *bool
	}{ref, checksum, keep})
	if err != nil {
		return nil, err
	}
	s := d.shared
	s.mu.Lock()
	r := s.gits[string(k)]
	if r == nil {
		r = &gitResolution{}
		s.gits[string(k)] = r
	}
	s.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.done {
		g, err := resolveGit(ctx, ref, checksum, keep, s.dir)
		if errors.Is(err, context.Canceled) {
			return nil, err
		}
		r.done, r.g, r.err = true, g, err
	}
	if r.err != nil {
		return nil, r.err
	}
	g := *r.g
	g.tmp = d.dir
	return &g, nil
}

type download struct {
	mu    sync.Mutex
	done  bool
	file  string
	mtime time.Time
	err   error
}

// fetch is d.fetch, once per URL and checksum; an interrupted download is
// tried again by the next platform asking.
func (s *downloads) fetch(ctx context.Context, d downloader, rawURL, checksum string) (string, time.Time, error) {
	k := rawURL + "\x00" + checksum
	s.mu.Lock()
	e := s.m[k]
	if e == nil {
		e = &download{}
		s.m[k] = e
	}
	s.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.done {
		return e.file, e.mtime, e.err
	}
	d.shared, d.dir = nil, s.dir
	file, mtime, err := d.fetch(ctx, rawURL, checksum)
	if !errors.Is(err, context.Canceled) {
		e.done, e.file, e.mtime, e.err = true, file, mtime, err
	}
	return file, mtime, err
}

// checksum verifies a download against ADD --checksum.
type checksum struct {
	want digest.Digest // "" verifies nothing
	hash.Hash
}

// newChecksum parses --checksum as BuildKit does (digest.Parse): sha256,
// sha384 or sha512 and the algorithm's length of lowercase hex. The
// step's key needs no part of it: it covers the downloaded bytes, which
// verify accepts only when they match.
func newChecksum(want string) (*checksum, error) {
	if want == "" {
		return &checksum{Hash: nopHash{}}, nil
	}
	d, err := digest.Parse(want)
	if err != nil {
		return nil, fmt.Errorf("--checksum=%s: %w (want sha256:, sha384: or sha512: and the hex digest)", want, err)
	}
	return &checksum{want: d, Hash: d.Algorithm().Hash()}, nil
}

// verify reports whether what was written matches the checksum.
func (c *checksum) verify() error {
	if c.want == "" {
		return nil
	}
	if got := digest.NewDigest(c.want.Algorithm(), c.Hash); got != c.want {
		return fmt.Errorf("checksum mismatch: want %s, got %s", c.want, got)
	}
	return nil
}

// nopHash is the hash of a download without --checksum: nothing to
// compute.
type nopHash struct{}

func (nopHash) Write(p []byte) (int, error) { return len(p), nil }
func (nopHash) Sum(b []byte) []byte         { return b }
func (nopHash) Reset()                      {}
func (nopHash) Size() int                   { return 0 }
func (nopHash) BlockSize() int              { return 1 }

// urlBase is the file name an ADDed URL gets in a destination directory.
func urlBase(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "download"
	}
	if b := path.Base(u.Path); b != "/" && b != "." {
		return b
	}
	return "download"
}
