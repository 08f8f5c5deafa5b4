package fsroot

import (
	"errors"
	"io/fs"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-build/strata/internal/importguard"
)

// mapFS is a tree in memory: path -> "d" (directory), "f" (file), "l:target" (symlink) or
// "e" (a path whose lookup fails with errBroken).
type mapFS map[string]string

var errBroken = errors.New("broken")

type info struct{ mode fs.FileMode }

func (i info) Name() string       { return "" }
func (i info) Size() int64        { return 0 }
func (i info) Mode() fs.FileMode  { return i.mode }
func (i info) ModTime() time.Time { return time.Time{} }
func (i info) IsDir() bool        { return i.mode.IsDir() }
func (i info) Sys() any           { return nil }

func (m mapFS) Lstat(p string) (fs.FileInfo, error) {
	v, ok := m[p]
	switch {
	case !ok:
		return nil, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
	case v == "d":
		return info{fs.ModeDir}, nil
	case v == "e":
		return nil, errBroken
	case strings.HasPrefix(v, "l:"):
		return info{fs.ModeSymlink}, nil
	}
	return info{}, nil
}

func (m mapFS) Readlink(p string) (string, error) { return strings.TrimPrefix(m[p], "l:"), nil }

// TestResolve pins the walk over any FS: what the build context's view relies on (a
// Readlink that hands back an absolute target it computed itself), ".." walked as written,
// a lookup error other than not-existing ending the walk, and ELOOP past MaxSymlinks with
// the message layer's extractor has always given.
func TestResolve(t *testing.T) {
	m := mapFS{
		"/etc": "d", "/etc/passwd": "f", "/usr": "d", "/usr/lib": "d",
		"/lib":      "l:usr/lib",
		"/escape":   "l:../../../etc",
		"/abs":      "l:/etc",
		"/rewrite":  "l:/usr/lib", // the context's Readlink makes a relative target absolute
		"/via-gone": "l:missing/../abs",
		"/loop":     "l:loop",
		"/bad":      "e",
	}
	for _, tt := range []struct{ in, want string }{
		{"/", "/"},
		{"", "/"},
		{"etc/passwd", "/etc/passwd"},
		{"/lib/x", "/usr/lib/x"},
		{"/escape/passwd", "/etc/passwd"},
		{"/lib/../../etc", "/etc"},
		{"/lib/..", "/usr"}, // ".." after a link climbs from its target; as text it would be "/"
		{"/rewrite/y", "/usr/lib/y"},
		{"/via-gone/passwd", "/etc/passwd"},
		{"/missing/../abs", "/etc"},
		{"/../../..", "/"},
	} {
		got, err := Resolve(m, tt.in)
		if err != nil || got != tt.want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := Resolve(m, "/bad/x"); !errors.Is(err, errBroken) {
		t.Errorf("Resolve through a failing lookup: %v, want %v", err, errBroken)
	}
	_, err := Resolve(m, "/loop")
	if !errors.Is(err, syscall.ELOOP) || err.Error() != "resolving /loop: too many levels of symbolic links" {
		t.Errorf("Resolve of a loop: %v, want ELOOP", err)
	}
	chain := mapFS{"/a": "l:."}
	for n, wantErr := range map[int]bool{MaxSymlinks: false, MaxSymlinks + 1: true} {
		if _, err := Resolve(chain, strings.Repeat("/a", n)); (err != nil) != wantErr {
			t.Errorf("%d links: %v, want an error %t", n, err, wantErr)
		}
	}
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{"": "/", "a/../..": "/", "/l/../x": "/x", "./a//b/": "/a/b"} {
		if got := Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Split("/a//./b/../c/"); strings.Join(got, ",") != "a,b,..,c" {
		t.Errorf("Split = %q", got)
	}
}

func TestImports(t *testing.T) { importguard.Check(t, nil) }
