package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-build/strata/internal/owners"
	"golang.org/x/sys/unix"
)

// ent is one entry of a crafted archive.
type ent struct {
	name, link   string
	typ          byte
	data         string
	pax          map[string]string
	major, minor int64 // of a device
	mode         int64 // 0o755 when 0
}

func file(name, data string) ent   { return ent{name: name, typ: tar.TypeReg, data: data} }
func dir(name string) ent          { return ent{name: name, typ: tar.TypeDir} }
func symlink(name, to string) ent  { return ent{name: name, typ: tar.TypeSymlink, link: to} }
func hardlink(name, to string) ent { return ent{name: name, typ: tar.TypeLink, link: to} }

func makeArchive(t testing.TB, entries ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o755, Size: int64(len(e.data)), PAXRecords: e.pax, Devmajor: e.major, Devminor: e.minor, Format: tar.FormatPAX}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if e.mode != 0 {
			hdr.Mode = e.mode
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.data))
	}
	tw.Close()
	return buf.Bytes()
}

func TestExtractStaysInside(t *testing.T) {
	cases := []struct {
		name    string
		entries []ent
		mode    ExtractMode
		wantErr string   // substring of the error, "" for success
		want    []string // regular files that must exist inside root
	}{
		{name: "dotdot", entries: []ent{file("../../escape", "x")}, want: []string{"escape"}},
		{name: "absolute", entries: []ent{file("/abs/file", "x")}, want: []string{"abs/file"}},
		{name: "symlink then file", entries: []ent{symlink("l", "/"), file("l/evil", "x")}, want: []string{"evil"}},
		{name: "relative symlink", entries: []ent{symlink("l", "../../outside"), file("l/secret", "x")}, want: []string{"outside/secret"}},
		{name: "on-disk relative symlink", entries: []ent{file("rel-escape/secret", "x")}, want: []string{"outside/secret"}},
		{name: "on-disk absolute symlink", entries: []ent{file("abs-escape/new", "x")}, want: []string{"{outside}/new"}},
		{name: "symlink replaced by dir", entries: []ent{symlink("d", "../outside"), dir("d/"), file("d/f", "x")}, want: []string{"d/f"}},
		{name: "file over symlink", entries: []ent{symlink("f", "../outside/secret"), file("f", "x")}, want: []string{"f"}},
		{name: "file over on-disk symlink", entries: []ent{file("rel-escape", "x")}, want: []string{"rel-escape"}},
		{name: "symlink after missing dir", entries: []ent{symlink("s", "../outside"), symlink("l", "missing/../s"), file("l/pwned", "x")}, want: []string{"outside/pwned"}},
		{name: "whiteout after missing dir", entries: []ent{symlink("l", "missing/../rel-escape"), file("l/.wh.secret", "")}},
		{name: "hardlink outside", entries: []ent{hardlink("h", "../outside/secret")}, wantErr: `"h"`},
		{name: "hardlink through symlink", entries: []ent{hardlink("h", "rel-escape/secret")}, wantErr: `"h"`},
		{name: "hardlink inside", entries: []ent{file("a", "x"), hardlink("b", "/../a")}, want: []string{"a", "b"}},
		{name: "symlink loop", entries: []ent{symlink("a", "b"), symlink("b", "a"), file("a/x", "x")}, wantErr: "symbolic links"},
		{name: "root replaced", entries: []ent{file("a/..", "x")}, wantErr: "root"},
		{name: "whiteout of parent", entries: []ent{file("sub/.wh...", "")}, wantErr: "invalid whiteout"},
		{name: "whiteout of dot", entries: []ent{file(".wh..", "")}, wantErr: "invalid whiteout"},
		{name: "whiteout through symlink", entries: []ent{file("rel-escape/.wh.secret", "")}},
		{name: "opaque through symlink", entries: []ent{file("abs-escape/.wh..wh..opq", "")}},
		{name: "overlay whiteout through symlink", mode: OverlayLower, entries: []ent{file("rel-escape/.wh.secret", "")}},
		{name: "overlay char 0:0", mode: OverlayLower, entries: []ent{{name: "c", typ: tar.TypeChar}}, wantErr: "overlay lower"},
		{name: "forged opaque xattr", mode: OverlayLower, entries: []ent{{name: "d/", typ: tar.TypeDir, pax: map[string]string{"SCHILY.xattr.trusted.overlay.opaque": "y"}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sb := newSandbox(t)
			_, err := Extract(context.Background(), bytes.NewReader(makeArchive(t, tc.entries...)), sb.root, ExtractOptions{Mode: tc.mode, Owners: testOwners()})
			sb.untouched(t)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				p := filepath.Join(sb.root, strings.ReplaceAll(w, "{outside}", sb.outside))
				if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
					t.Errorf("%s is not a regular file inside the target: %v", w, err)
				}
			}
			if v, _ := getxattr(filepath.Join(sb.root, "d"), overlayOpaqueXattr); v != nil {
				t.Error("an xattr from the archive made a directory opaque")
			}
		})
	}
}

func TestExtractSizeLimit(t *testing.T) {
	bomb := compress(t, Gzip, makeArchive(t, file("zeros", strings.Repeat("\x00", 4<<20))), 0)
	sb := newSandbox(t)
	_, err := Extract(context.Background(), bytes.NewReader(bomb), sb.root, ExtractOptions{MaxSize: 1 << 20, Owners: owners.Recorded})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "zeros") {
		t.Errorf("got %v, want ErrTooLarge naming the entry", err)
	}
	exact := makeArchive(t, file("f", "x"))
	if _, err := Extract(context.Background(), bytes.NewReader(exact), t.TempDir(), ExtractOptions{MaxSize: int64(len(exact)), Owners: owners.Recorded}); err != nil {
		t.Errorf("an archive of exactly MaxSize bytes failed: %v", err)
	}
}

// TestFlattenWhiteouts: whiteouts delete what lies below; an opaque
// marker keeps what the same layer adds, in any entry order.
func TestFlattenWhiteouts(t *testing.T) {
	root := t.TempDir()
	makeTree(t, root, []node{
		{path: "a/keep", kind: "file", mode: 0o644},
		{path: "a/gone", kind: "file", mode: 0o644},
		{path: "o/old", kind: "file", mode: 0o644},
		{path: "o/sub/old", kind: "file", mode: 0o644},
	}, treeTime)
	archive := makeArchive(t, file("a/.wh.gone", ""), dir("o/"), file("o/-new", "n"), file("o/.wh..wh..opq", ""), file("o/z", "z"))
	if _, err := Extract(context.Background(), bytes.NewReader(archive), root, ExtractOptions{Owners: owners.Recorded}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range describeTree(t, root, describeOptions{noTimes: true}) {
		got = append(got, strings.Fields(l)[0])
	}
	if want := []string{"a", "a/keep", "o", "o/-new", "o/z"}; !slices.Equal(got, want) {
		t.Errorf("tree %q, want %q", got, want)
	}
}

func TestExtractRestoresDirTimesLast(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: treeTime})
	tw.WriteHeader(&tar.Header{Name: "d/f", Typeflag: tar.TypeReg, Mode: 0o644, ModTime: treeTime})
	tw.Close()
	root := t.TempDir()
	if _, err := Extract(context.Background(), &buf, root, ExtractOptions{Owners: owners.Recorded}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(root, "d"))
	if err != nil || !fi.ModTime().Equal(treeTime) {
		t.Errorf("directory mtime %v, want %v", fi.ModTime(), treeTime)
	}
}

// TestSparseBomb: a sparse entry claims gigabytes from a few bytes of
// archive; MaxSize bounds what is written, not only what is read.
func TestSparseBomb(t *testing.T) {
	src := t.TempDir()
	f, _ := os.Create(filepath.Join(src, "holes"))
	f.Truncate(64 << 30)
	f.Close()
	archive := external(t, "tar", nil, "--sparse", "-C", src, "-cf", "-", "holes")
	if len(archive) > 1<<20 {
		t.Fatalf("tar did not store holes: %d bytes", len(archive))
	}
	sb := newSandbox(t)
	_, err := Extract(context.Background(), bytes.NewReader(archive), sb.root, ExtractOptions{MaxSize: 1 << 20, Owners: owners.Recorded})
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("got %v, want ErrTooLarge", err)
	}
}

func TestResolvePath(t *testing.T) {
	sb := newSandbox(t)
	cases := map[string]string{
		"/etc/passwd":         "etc/passwd",
		"../../x":             "x",
		"rel-escape/secret":   "outside/secret",
		"abs-escape/a/../b":   strings.TrimPrefix(sb.outside, "/") + "/b",
		"rel-escape/../../..": "",
	}
	for in, want := range cases {
		got, err := ResolvePath(sb.root, in)
		if err != nil || got != filepath.Join(sb.root, want) {
			t.Errorf("ResolvePath(%q) = %q, %v; want %q", in, got, err, filepath.Join(sb.root, want))
		}
	}
}

// TestImpliedDirsIgnoreUmask extracts a file whose parents the archive never names, under
// umask 077: the implied directories are 0755 all the same.
func TestImpliedDirsIgnoreUmask(t *testing.T) {
	old := unix.Umask(0o077)
	defer unix.Umask(old)
	dst := t.TempDir()
	if _, err := Extract(context.Background(), bytes.NewReader(makeArchive(t, file("a/b/c", "x"))), dst, ExtractOptions{Mode: Flatten}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"a", "a/b"} {
		fi, err := os.Stat(filepath.Join(dst, d))
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: mode %v (%v), want 0755", d, fi.Mode().Perm(), err)
		}
	}
}
