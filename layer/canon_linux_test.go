package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// canonResult is what canonDiff found for one archive.
type canonResult int

const (
	canonStreamed canonResult = iota // both ways gave the same layer
	canonFellBack                    // ReadCanonical left it to the extraction
)

// canonDiff writes the layer of archive both ways, extracting it into a
// fresh directory and walking that (what ADD did), and through
// ReadCanonical, and fails the test when the stream gives other bytes or
// gives a layer where the extraction fails.
func canonDiff(t testing.TB, archive []byte, epoch *time.Time, c Compression) canonResult {
	t.Helper()
	ctx := context.Background()
	tmp := t.TempDir()
	start := time.Now()
	dir := filepath.Join(tmp, "x")
	var oldBlob bytes.Buffer
	var oldW Written
	_, oldErr := Extract(ctx, bytes.NewReader(archive), dir, ExtractOptions{Mode: Flatten})
	if oldErr == nil {
		oldW, oldErr = WriteBlob(ctx, &oldBlob, dir, WriteOptions{Epoch: epoch, Compression: c})
	}
	a, err := ReadCanonical(ctx, bytes.NewReader(archive), CanonOptions{Write: WriteOptions{Epoch: epoch, Compression: c}, TmpDir: tmp, Start: start})
	if errors.Is(err, ErrNotCanonical) {
		return canonFellBack
	}
	if err != nil {
		t.Fatalf("ReadCanonical: %v", err)
	}
	defer a.Close()
	if oldErr != nil {
		t.Fatalf("the stream wrote a layer where extracting fails: %v", oldErr)
	}
	var newBlob bytes.Buffer
	diffID, err := a.WriteLayer(ctx, &newBlob)
	if err != nil {
		t.Fatalf("WriteLayer: %v", err)
	}
	sum := sha256.Sum256(newBlob.Bytes())
	if diffID != oldW.DiffID || "sha256:"+hex.EncodeToString(sum[:]) != oldW.Digest.String() {
		var want, got bytes.Buffer
		if err := WriteTar(ctx, &want, dir, WriteOptions{Epoch: epoch}); err != nil {
			t.Fatal(err)
		}
		if err := a.WriteTar(ctx, &got); err != nil {
			t.Fatal(err)
		}
		t.Fatalf("streamed layer differs: diffID %s, want %s\nstream:  %s\nextract: %s", diffID, oldW.DiffID, listTar(t, got.Bytes()), listTar(t, want.Bytes()))
	}
	return canonStreamed
}

// listTar describes a tar stream's headers, for failure messages.
func listTar(t testing.TB, b []byte) string {
	var out []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				out = append(out, err.Error())
			}
			return strings.Join(out, " | ")
		}
		out = append(out, fmt.Sprintf("%s %c %o %d:%d %d %s %d %v", h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.ModTime.Unix(), h.Linkname, h.Size, h.PAXRecords))
	}
}

func at(e ent, mode int64) ent { e.mode = mode; return e }

// canonCases are generated archives for the differential test; want says
// whether the stream must take them (so a regression to falling back on
// everything fails too).
func canonCases() []struct {
	name    string
	ents    []ent
	streams bool
} {
	long := strings.Repeat("long-name-", 25)
	dev := func(name string, typ byte, major, minor int64) ent {
		return ent{name: name, typ: typ, major: major, minor: minor, mode: 0o666}
	}
	pax := func(e ent, recs map[string]string) ent { e.pax = recs; return e }
	return []struct {
		name    string
		ents    []ent
		streams bool
	}{
		{"in order", []ent{dir("a/"), file("a/b", "b"), dir("a/c/"), file("a/c/d", "d"), file("z", "z")}, true},
		{"reversed", []ent{file("z", "z"), file("a/c/d", "d"), dir("a/c/"), file("a/b", "b"), dir("a/")}, true},
		{"root entries", []ent{dir("./"), dir("/"), file("./x", "x"), dir("."), file("y", "y")}, true},
		{"dot and dotdot names", []ent{file("./a/./b", "1"), file("../c", "2"), file("d/../e", "3"), file("/abs/f", "4"), file("//g//h", "5"), dir("a/")}, true},
		{"duplicate file later wins", []ent{file("f", "first"), at(file("f", "second, longer"), 0o600)}, true},
		{"duplicate dir first time last mode", []ent{at(dir("d/"), 0o700), file("d/x", "x"), at(dir("d/"), 0o755)}, true},
		{"file replaces dir", []ent{dir("d/"), file("d/x", "x"), dir("d/e/"), file("d", "now a file")}, false},
		{"file replaces dir with files", []ent{dir("d/"), file("d/x", "x"), file("d", "now a file")}, true},
		{"dir replaces file", []ent{file("d", "file"), dir("d/"), file("d/x", "x")}, true},
		{"symlink replaces dir", []ent{dir("d/"), file("d/x", "x"), symlink("d", "elsewhere")}, false},
		{"symlink replaces implied dir", []ent{file("d/x", "x"), symlink("d", "elsewhere")}, true},
		{"dir replaces symlink", []ent{symlink("d", "elsewhere"), dir("d/"), file("d/x", "x")}, true},
		{"hardlinks", []ent{file("a", "content"), hardlink("b", "a"), hardlink("c", "/a"), hardlink("0first", "b")}, true},
		{"hardlink to replaced name", []ent{file("a", "old"), hardlink("b", "a"), file("a", "new"), hardlink("c", "a")}, true},
		{"hardlink whose target goes away", []ent{file("z", "z"), hardlink("y", "z"), dir("z/")}, true},
		{"hardlink in removed dir", []ent{dir("d/"), file("d/f", "f"), hardlink("l", "d/f"), file("d", "gone")}, true},
		{"hardlink to itself", []ent{file("h", "x"), hardlink("h", "h")}, false},
		{"hardlink to later", []ent{hardlink("h", "later"), file("later", "x")}, false},
		{"hardlink to dir", []ent{dir("d/"), hardlink("h", "d")}, false},
		{"hardlink to symlink", []ent{symlink("s", "/etc/passwd"), hardlink("h", "s")}, true},
		{"symlinks", []ent{symlink("abs", "/usr/bin"), symlink("rel", "../x"), symlink("dot", ".")}, true},
		{"through symlink", []ent{dir("usr/lib/"), symlink("lib", "usr/lib"), file("lib/x", "x")}, false},
		{"implied parents", []ent{file("a/b/c/d", "deep"), dir("a/b/"), file("e/f", "f")}, true},
		{"long names", []ent{dir(long + "/"), file(long+"/"+long, "x"), symlink("s", long+"/"+long), hardlink("h", long+"/"+long)}, true},
		{"component too long", []ent{file(strings.Repeat("x", 256), "x")}, false},
		{"pax records", []ent{pax(file("p", "p"), map[string]string{"comment": "hi", "SCHILY.xattr.security.selinux": "label", "SCHILY.xattr.trusted.overlay.opaque": "y"})}, true},
		{"user xattr", []ent{pax(file("x", "x"), map[string]string{"SCHILY.xattr.user.k": "v"})}, false},
		{"capability", []ent{pax(file("x", "x"), map[string]string{"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"})}, false},
		{"devices", []ent{dev("dev/null", tar.TypeChar, 1, 3), dev("dev/sda", tar.TypeBlock, 8, 0), {name: "fifo", typ: tar.TypeFifo, mode: 0o644}, hardlink("dev/null2", "dev/null"), hardlink("fifo2", "fifo")}, true},
		{"device numbers too large", []ent{dev("big", tar.TypeChar, 5000, 1)}, false},
		{"char 0:0", []ent{dev("wh", tar.TypeChar, 0, 0)}, false},
		{"whiteout name", []ent{file("a/.wh.b", "")}, false},
		{"whiteout parent", []ent{file("a/.wh.b/c", "")}, false},
		{"whiteout parent made", []ent{dir("a/.wh.b/"), file("a/.wh.b/c", "")}, false},
		{"special bits", []ent{at(file("suid", "x"), 0o4755), at(file("sgid", "x"), 0o2755), at(dir("sticky/"), 0o1777), at(dir("sgid-dir/"), 0o2775), file("sgid-dir/f", "f"), at(file("odd", "x"), 0o100644)}, true},
		{"implied dir in setgid dir", []ent{at(dir("g/"), 0o2775), file("g/sub/f", "f")}, false},
		{"replace root", []ent{file("a/..", "x")}, false},
		{"unknown type", []ent{{name: "c", typ: 'Z'}}, false},
	}
}

func TestCanonicalMatchesExtraction(t *testing.T) {
	requireRoot(t)
	epoch := time.Unix(1700000000, 0)
	for _, tc := range canonCases() {
		t.Run(tc.name, func(t *testing.T) {
			archive := makeArchive(t, tc.ents...)
			for _, c := range []Compression{Gzip, None} {
				got := canonDiff(t, archive, &epoch, c)
				if (got == canonStreamed) != tc.streams {
					t.Errorf("streamed = %v, want %v", got == canonStreamed, tc.streams)
				}
			}
		})
	}
}

// TestCanonicalTimes: mtimes past the epoch are clamped both ways; a
// directory the archive only implies has the wall clock's time, which only
// an epoch in the past makes reproducible, so without one (or with one
// still to come) the stream leaves it to the extraction.
func TestCanonicalTimes(t *testing.T) {
	requireRoot(t)
	epoch := time.Unix(1700000000, 500)
	future := time.Now().Add(time.Hour)
	timed := func(name string, typ byte, mt time.Time) rawEnt {
		return rawEnt{hdr: tar.Header{Name: name, Typeflag: typ, ModTime: mt}, data: map[bool]string{true: "x"}[typ == tar.TypeReg]}
	}
	late := []rawEnt{timed("d/", tar.TypeDir, time.Unix(1800000000, 0)), timed("d/f", tar.TypeReg, time.Unix(1800000000, 0)), timed("old", tar.TypeReg, time.Unix(1000, 0))}
	implied := []rawEnt{timed("d/f", tar.TypeReg, time.Unix(1000, 0))}
	for _, tc := range []struct {
		name    string
		ents    []rawEnt
		epoch   *time.Time
		streams bool
	}{
		{"past epoch", late, &epoch, true},
		{"no epoch", late, nil, true},
		{"sub-second", []rawEnt{{hdr: tar.Header{Name: "f", ModTime: time.Unix(5, 999999999)}, pax: map[string]string{"mtime": "5.999999999"}}}, nil, true},
		{"implied with epoch", implied, &epoch, true},
		{"implied without epoch", implied, nil, false},
		{"implied with future epoch", implied, &future, false},
		{"before 1970", []rawEnt{{hdr: tar.Header{Name: "f"}, pax: map[string]string{"mtime": "-5"}}}, nil, false},
		{"far future", []rawEnt{{hdr: tar.Header{Name: "f"}, pax: map[string]string{"mtime": "99999999999"}}}, &epoch, false},
		{"big ids", []rawEnt{{hdr: tar.Header{Name: "f"}, pax: map[string]string{"uid": "2147483648"}}}, nil, false},
		{"ids and names", []rawEnt{{hdr: tar.Header{Name: "f", Uid: 1000, Gid: 1001, Uname: "someone", Gname: "group"}}}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := canonDiff(t, rawArchive(t, tc.ents...), tc.epoch, Gzip); (got == canonStreamed) != tc.streams {
				t.Errorf("streamed = %v, want %v", got == canonStreamed, tc.streams)
			}
		})
	}
}

// TestCanonicalHostileArchives: the extraction's hostile seeds give the
// same layer both ways (or are left to the extraction).
func TestCanonicalHostileArchives(t *testing.T) {
	requireRoot(t)
	epoch := time.Unix(1700000000, 0)
	for i, archive := range nastyArchives(t) {
		t.Run(fmt.Sprint(i), func(t *testing.T) { canonDiff(t, archive, &epoch, Gzip) })
	}
}

// TestCanonicalSparse: a GNU sparse file (written by GNU tar) is its
// expanded content both ways.
func TestCanonicalSparse(t *testing.T) {
	requireRoot(t)
	gnutar, err := exec.LookPath("tar")
	if err != nil {
		t.Skip("no tar to write a sparse archive")
	}
	src := t.TempDir()
	f, err := os.Create(filepath.Join(src, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("head"), 0)
	f.WriteAt([]byte("tail"), 5<<20)
	f.Close()
	epoch := time.Unix(1700000000, 0)
	for _, format := range []string{"gnu", "posix"} {
		out, err := exec.Command(gnutar, "--sparse", "--format="+format, "-C", src, "-cf", "-", ".").Output()
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if got := canonDiff(t, out, &epoch, Gzip); got != canonStreamed {
			t.Errorf("%s sparse archive not streamed", format)
		}
	}
}

// TestCanonicalRootfsArchives: real base images' archives, where present.
func TestCanonicalRootfsArchives(t *testing.T) {
	requireRoot(t)
	paths, _ := filepath.Glob("../../shared/rootfs/*.tar.gz")
	paths = append(paths, "../testdata/examples/hello/rootfs.tar.gz")
	if !testing.Short() {
		paths = append(paths, os.Getenv("STRATA_CANON_ARCHIVE"))
	}
	epoch := time.Unix(1700000000, 0)
	for _, p := range paths {
		if p == "" {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Logf("skipping %s: %v", p, err)
			continue
		}
		t.Run(filepath.Base(p), func(t *testing.T) {
			if got := canonDiff(t, data, &epoch, Gzip); got != canonStreamed {
				t.Errorf("%s not streamed", p)
			}
			a, err := ReadCanonical(context.Background(), bytes.NewReader(data), CanonOptions{Write: WriteOptions{Epoch: &epoch}, TmpDir: t.TempDir(), Start: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if err := a.WriteTar(context.Background(), io.Discard); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: entries already in canonical order: %v", filepath.Base(p), a.InOrder())
		})
	}
}

// FuzzCanonical: whatever the archive, the stream gives the extraction's
// layer or leaves it to the extraction. Run it by hand with:
//
//	go test ./layer -run '^$' -fuzz FuzzCanonical -fuzztime 2m -fuzzminimizetime 50x
func FuzzCanonical(f *testing.F) {
	requireRoot(f)
	for _, tc := range canonCases() {
		f.Add(makeArchive(f, tc.ents...))
	}
	for _, archive := range nastyArchives(f) {
		f.Add(archive)
	}
	epoch := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, archive []byte) {
		canonDiff(t, archive, &epoch, None)
	})
}

// TestCanonicalIndexBound: an archive whose index would pass MaxIndex is
// left to the extraction.
func TestCanonicalIndexBound(t *testing.T) {
	var ents []ent
	for i := range 100 {
		ents = append(ents, file(fmt.Sprintf("f%03d", i), "x"))
	}
	archive := makeArchive(t, ents...)
	for _, tc := range []struct {
		max  int64
		want bool
	}{{100 * (canonEntryCost + 4), true}, {99 * (canonEntryCost + 4), false}} {
		a, err := ReadCanonical(context.Background(), bytes.NewReader(archive), CanonOptions{TmpDir: t.TempDir(), Start: time.Now(), MaxIndex: tc.max})
		if (err == nil) != tc.want || (err != nil && !errors.Is(err, ErrNotCanonical)) {
			t.Errorf("MaxIndex %d: %v, want success %v", tc.max, err, tc.want)
		}
		if a != nil {
			a.Close()
		}
	}
}

// TestCanonicalSetgidRoot: directories the extraction makes in a setgid
// directory take its group, so the stream leaves an archive implying one
// to the extraction when told the root is setgid.
func TestCanonicalSetgidRoot(t *testing.T) {
	requireRoot(t)
	tmp := t.TempDir()
	if err := os.Chown(tmp, 0, 4321); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, os.ModeSetgid|0o755); err != nil {
		t.Fatal(err)
	}
	archive := makeArchive(t, file("implied/f", "x"))
	epoch := time.Unix(1700000000, 0)
	if _, err := Extract(context.Background(), bytes.NewReader(archive), filepath.Join(tmp, "x"), ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(tmp, "x", "implied"), &st); err != nil || st.Gid != 4321 {
		t.Fatalf("implied directory's group %d (%v), want the setgid root's 4321", st.Gid, err)
	}
	_, err := ReadCanonical(context.Background(), bytes.NewReader(archive), CanonOptions{Write: WriteOptions{Epoch: &epoch}, TmpDir: tmp, Start: time.Now(), RootSetgid: true})
	if !errors.Is(err, ErrNotCanonical) {
		t.Errorf("ReadCanonical under a setgid root: %v, want ErrNotCanonical", err)
	}
}

// BenchmarkCanonical reads an archive (STRATA_CANON_ARCHIVE, else the
// Alpine minirootfs when present) into its index and writes its gzip
// layer, reporting the index's heap bytes per entry. Compare with
// `gzip -dc <archive> >/dev/null` (issue #16: within 1.5x):
//
//	STRATA_CANON_ARCHIVE=rootfs.tar.gz go test ./layer -run '^$' -bench Canonical -benchtime 3x
func BenchmarkCanonical(b *testing.B) {
	requireRoot(b)
	p := os.Getenv("STRATA_CANON_ARCHIVE")
	if p == "" {
		p = "../../shared/rootfs/alpine-minirootfs-3.20.3-x86_64.tar.gz"
	}
	data, err := os.ReadFile(p)
	if err != nil {
		b.Skip(err)
	}
	epoch := time.Unix(1700000000, 0)
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		var before, after runtime.MemStats
		// Twice: sync.Pool's victims of the last round go in the second.
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		a, err := ReadCanonical(ctx, bytes.NewReader(data), CanonOptions{Write: WriteOptions{Epoch: &epoch}, TmpDir: b.TempDir(), Start: time.Now()})
		if err != nil {
			b.Fatal(err)
		}
		read := time.Since(start)
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&after)
		// The index, and the reader's 256 KiB copy buffer.
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(a.seq), "index-B/entry")
		b.ReportMetric(float64(a.opts.MaxIndex-a.budget)/float64(a.seq), "budget-B/entry")
		b.ReportMetric(read.Seconds(), "read-s")
		start = time.Now()
		if _, err := a.WriteLayer(ctx, io.Discard); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "write-s")
		a.Close()
	}
}
