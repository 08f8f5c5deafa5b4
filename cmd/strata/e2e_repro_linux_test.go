package main

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/builder"
)

// The repro-anywhere case: testdata/e2e/repro-anywhere built twice per layer compression, from
// two copies of one context, by two strata processes that share nothing but the registry's
// base image. What differs between the two builds of a pair:
//
//	store         <tmp>/x/s1                    <tmp>/yyyyyyy/zz/store2
//	context       <tmp>/c                       <tmp>/context/much/deeper/copy-two
//	inode order   created in name order         created in reverse name order, after decoys
//	mtimes        10 min ago, 0.7 s apart       1 h ahead, 1.3 s apart (all after the epoch)
//	pre-epoch     1600000000.25, 1650000000.5   1600000000.75, 1650000000.125
//	umask         077                           022
//	TMPDIR        <tmp>/t                       <tmp>/tmpdir-number-two/deeper
//	TZ            UTC                           Pacific/Kiritimati (UTC+14)
//	cwd           /                             the context
//	output file   <tmp>/o/i.tar                 <tmp>/output-two/image-two.tar
//	wall clock    -                             starts >= 1.1 s after the first ended
//
// SOURCE_DATE_EPOCH is set in both environments. Mtimes before the epoch are data (BuildKit
// keeps them too), so the two pre-epoch times differ only below the second, which layers drop.
const (
	raDir       = "repro-anywhere"
	raOldFile   = "tree/a/old.txt" // mtime before the epoch
	raOldDir    = "tree/a/b"       // mtime before the epoch
	raOldFileTS = 1600000000
	raOldDirTS  = 1650000000
)

// raEntry is one path of the generated build context.
type raEntry struct {
	rel    string
	kind   byte // 'd' dir, 'f' file, 'l' symlink, 'h' hard link to target
	data   []byte
	mode   os.FileMode
	target string
	xattrs map[string]string
}

// raBuild is what differs between the two builds of a pair.
type raBuild struct {
	label, store, ctx, tmp, cwd, umask, tz, archive string
}

// raResult is one build's output.
type raResult struct {
	archive, archiveSHA, iid, indexDigest string
	took                                  time.Duration
}

func (e *e2eEnv) testReproAnywhere(t *testing.T) {
	start := time.Now()
	entries := e.raEntries(t)
	epochTS, _ := strconv.ParseInt(epoch, 10, 64)
	type pair struct{ a, b raResult }
	results := map[string]pair{}
	comps := []string{"gzip", "zstd", "none"}
	for _, comp := range comps {
		root := t.TempDir()
		mk := func(p string) string {
			p = filepath.Join(root, p)
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			return p
		}
		a := raBuild{label: comp + "/A", store: filepath.Join(mk("x"), "s1"), ctx: filepath.Join(root, "c"),
			tmp: mk("t"), cwd: "/", umask: "077", tz: "UTC", archive: filepath.Join(mk("o"), "i.tar")}
		b := raBuild{label: comp + "/B", store: filepath.Join(mk("yyyyyyy/zz"), "store2"),
			ctx: filepath.Join(mk("context/much/deeper"), "copy-two"), tmp: mk("tmpdir-number-two/deeper"),
			umask: "022", tz: "Pacific/Kiritimati", archive: filepath.Join(mk("output-two"), "image-two.tar")}
		b.cwd = b.ctx

		now := time.Now()
		raWriteContext(t, a.ctx, entries, false, func(i int) time.Time {
			return now.Add(-10 * time.Minute).Add(time.Duration(i) * 700 * time.Millisecond)
		}, 250*time.Millisecond, 500*time.Millisecond)
		raWriteContext(t, b.ctx, entries, true, func(i int) time.Time {
			return now.Add(time.Hour).Add(time.Duration(i) * 1300 * time.Millisecond)
		}, 750*time.Millisecond, 125*time.Millisecond)
		raCheckContextsDiffer(t, a.ctx, b.ctx, epochTS)

		ra := e.raRun(t, a, comp)
		// Every timestamp the second build makes must fall in another second than the first's.
		if wait := 1100*time.Millisecond - time.Since(ra.doneAt()); wait > 0 {
			time.Sleep(wait)
		}
		rb := e.raRun(t, b, comp)
		t.Logf("%s: build A %v, build B %v; archive %s, manifest %s", comp, ra.took.Round(time.Millisecond),
			rb.took.Round(time.Millisecond), ra.archiveSHA[:19], ra.iid)
		results[comp] = pair{ra, rb}

		same := true
		if ra.archiveSHA != rb.archiveSHA {
			same = false
			t.Errorf("%s: the OCI archives differ: A %s, B %s", comp, ra.archiveSHA, rb.archiveSHA)
		}
		if ra.iid != rb.iid || ra.indexDigest != rb.indexDigest {
			same = false
			t.Errorf("%s: manifest digests differ: A --iidfile %s index.json %s, B --iidfile %s index.json %s",
				comp, ra.iid, ra.indexDigest, rb.iid, rb.indexDigest)
		}
		if ra.iid != ra.indexDigest {
			t.Errorf("%s: --iidfile says %s, the archive's index.json %s", comp, ra.iid, ra.indexDigest)
		}
		if !same {
			t.Errorf("%s: first difference: %s", comp, raExplain(t, ra.archive, rb.archive))
		}
	}

	// The layer tars do not depend on the compression: one config, one set of diff IDs.
	var configs, diffIDs []string
	for _, comp := range comps {
		img, _ := ociArchiveImage(t, results[comp].a.archive)
		cd, err := img.ConfigName()
		if err != nil {
			t.Fatal(err)
		}
		configs = append(configs, cd.String())
		diffIDs = append(diffIDs, fmt.Sprint(configOf(t, img).RootFS.DiffIDs))
		if comp == "gzip" {
			raCheckImage(t, img, epochTS)
			checkHistory(t, img)
		}
	}
	for i := range comps[1:] {
		if diffIDs[i+1] != diffIDs[0] {
			t.Errorf("--compression %s gives diff IDs %s, gzip %s", comps[i+1], diffIDs[i+1], diffIDs[0])
		}
		if configs[i+1] != configs[0] {
			t.Errorf("--compression %s gives config %s, gzip %s", comps[i+1], configs[i+1], configs[0])
		}
	}
	if got := runImage(t, results["gzip"].a.archive); got != "made by RUN\none\nhello from a tar\nfinal stage\n" {
		t.Errorf("running the image printed %q", got)
	}
	t.Logf("repro-anywhere: 6 builds and checks took %v", time.Since(start).Round(time.Millisecond))
}

func (r raResult) doneAt() time.Time {
	fi, err := os.Stat(r.archive)
	if err != nil {
		return time.Now()
	}
	return fi.ModTime()
}

// raRun builds the case as b says with --compression comp.
func (e *e2eEnv) raRun(t *testing.T, b raBuild, comp string) raResult {
	t.Helper()
	iid := b.archive + ".iid"
	args := []string{"build", "--progress", "plain", "--root", b.store, "--compression", comp,
		"--build-arg", "BASE=" + e.base("busybox:latest"), "--iidfile", iid,
		"-o", "type=oci,dest=" + b.archive, b.ctx}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", `umask ` + b.umask + `; exec "$0" "$@"`, e.strata}, args...)...)
	cmd.Env = append(cleanEnv(), "TMPDIR="+b.tmp, "SOURCE_DATE_EPOCH="+epoch, "TZ="+b.tz)
	cmd.Dir = b.cwd
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("build %s (umask %s, store %s, context %s): %v\n%s", b.label, b.umask, b.store, b.ctx, err, out)
	}
	b2, err := os.ReadFile(b.archive)
	if err != nil {
		t.Fatal(err)
	}
	_, index := ociArchiveImage(t, b.archive)
	return raResult{archive: b.archive, archiveSHA: fmt.Sprintf("sha256:%x", sha256.Sum256(b2)),
		iid: readDigest(t, iid), indexDigest: index, took: took}
}

// raEntries is the context: the case directory plus what git cannot hold or the test makes.
func (e *e2eEnv) raEntries(t *testing.T) []raEntry {
	t.Helper()
	src := filepath.Join(e2eRoot, raDir)
	var entries []raEntry
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == src {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			entries = append(entries, raEntry{rel: rel, kind: 'd', mode: 0o755})
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			mode := os.FileMode(0o644)
			if fi.Mode()&0o100 != 0 {
				mode = 0o755
			}
			entries = append(entries, raEntry{rel: rel, kind: 'f', data: b, mode: mode})
		default:
			return fmt.Errorf("%s: unexpected file type %v", p, fi.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	need := filepath.Join(t.TempDir(), "files.tar")
	if err := e.addNeed(t, "files.tar", need); err != nil {
		t.Fatal(err)
	}
	filesTar, err := os.ReadFile(need)
	if err != nil {
		t.Fatal(err)
	}
	helper, err := os.ReadFile(raSetxattrHelper(t))
	if err != nil {
		t.Fatal(err)
	}
	entries = append(entries,
		raEntry{rel: "files.tar", kind: 'f', data: filesTar, mode: 0o644},
		raEntry{rel: "tools", kind: 'd', mode: 0o755},
		raEntry{rel: "tools/setxattr", kind: 'f', data: helper, mode: 0o755},
		raEntry{rel: "tree/empty", kind: 'd', mode: 0o755},
		raEntry{rel: "tree/empty/nested-empty", kind: 'd', mode: 0o700},
		raEntry{rel: "tree/a/hard.txt", kind: 'h', target: "tree/a/one.txt"},
		raEntry{rel: "tree/a/sym", kind: 'l', target: "b/two.txt"},
	)
	for i := range entries {
		switch entries[i].rel {
		case "tree/top.txt":
			entries[i].xattrs = map[string]string{"user.origin": "context", "user.another": "second xattr"}
		case "tree/a/b":
			entries[i].mode = 0o750
		case "tree/a/b/two.txt":
			entries[i].mode = 0o640
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].rel < entries[j].rel })
	return entries
}

// raSetxattrHelper builds a static `setxattr FILE NAME VALUE` for RUN steps (busybox has no
// setfattr), outside this module.
func raSetxattrHelper(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "go.mod"), "module setxattr\n\ngo 1.21\n")
	writeFile(t, filepath.Join(dir, "main.go"), `package main

import (
	"fmt"
	"os"
	"syscall"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: setxattr FILE NAME VALUE")
		os.Exit(2)
	}
	if err := syscall.Setxattr(os.Args[1], os.Args[2], []byte(os.Args[3]), 0); err != nil {
		fmt.Fprintln(os.Stderr, "setxattr:", err)
		os.Exit(1)
	}
}
`)
	out := filepath.Join(dir, "setxattr")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the setxattr helper: %v\n%s", err, b)
	}
	return out
}

// raWriteContext writes entries under dst, in name order or reversed (after making and removing
// decoy files, so inode numbers shift too), then sets modes, xattrs and mtimes: entry i gets
// mtime(i); the two pre-epoch paths get their whole second plus the given fractions.
func raWriteContext(t *testing.T, dst string, entries []raEntry, reverse bool, mtime func(int) time.Time, oldFileFrac, oldDirFrac time.Duration) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	order := slices.Clone(entries)
	if reverse {
		slices.Reverse(order)
		for i := range 25 {
			p := filepath.Join(dst, fmt.Sprintf("decoy-%d", i))
			writeFile(t, p, "decoy\n")
		}
	}
	byRel := map[string]raEntry{}
	for _, en := range entries {
		byRel[en.rel] = en
	}
	// Hard-linked names are one inode: whichever name comes first is written, the others link.
	made := map[string]string{}
	for _, en := range order {
		p := filepath.Join(dst, en.rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		group := en.rel
		if en.kind == 'h' {
			group = en.target
		}
		var err error
		switch en.kind {
		case 'd':
			err = os.MkdirAll(p, 0o755)
		case 'l':
			err = os.Symlink(en.target, p)
		case 'f', 'h':
			if first, ok := made[group]; ok {
				err = os.Link(first, p)
				break
			}
			src := byRel[group]
			err = os.WriteFile(p, src.data, 0o600)
			made[group] = p
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, en := range entries {
		p := filepath.Join(dst, en.rel)
		mode := en.mode
		if en.kind == 'h' {
			mode = byRel[en.target].mode
		}
		if en.kind != 'l' {
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
		}
		for _, name := range slices.Sorted(maps.Keys(en.xattrs)) {
			if err := unix.Lsetxattr(p, name, []byte(en.xattrs[name]), 0); err != nil {
				t.Fatalf("setting %s on %s: %v", name, p, err)
			}
		}
	}
	// Decoys go before the times are set: removing them touches the root's mtime.
	if reverse {
		for i := range 25 {
			os.Remove(filepath.Join(dst, fmt.Sprintf("decoy-%d", i)))
		}
	}
	setTime := func(p string, tm time.Time) {
		ts := []unix.Timespec{unix.NsecToTimespec(tm.UnixNano()), unix.NsecToTimespec(tm.UnixNano())}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatalf("setting the times of %s: %v", p, err)
		}
	}
	for i, en := range entries {
		tm := mtime(i + 1)
		switch en.rel {
		case raOldFile:
			tm = time.Unix(raOldFileTS, 0).Add(oldFileFrac)
		case raOldDir:
			tm = time.Unix(raOldDirTS, 0).Add(oldDirFrac)
		}
		setTime(filepath.Join(dst, en.rel), tm)
	}
	setTime(dst, mtime(0))
}

// raCheckContextsDiffer checks the two copies hold the same tree with a different mtime on
// every path, all after the epoch but the two pinned ones, and different inode numbers.
func raCheckContextsDiffer(t *testing.T, a, b string, epochTS int64) {
	t.Helper()
	type info struct {
		mtime time.Time
		ino   uint64
	}
	stat := func(root string) map[string]info {
		m := map[string]info{}
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(root, p)
			m[rel] = info{time.Unix(st.Mtim.Unix()), st.Ino}
			return nil
		})
		return m
	}
	sa, sb := stat(a), stat(b)
	if len(sa) != len(sb) {
		t.Fatalf("the context copies have %d and %d paths", len(sa), len(sb))
	}
	sameIno := 0
	for rel, ia := range sa {
		ib, ok := sb[rel]
		if !ok {
			t.Fatalf("%s is only in the first context copy", rel)
		}
		if ia.mtime.Equal(ib.mtime) && rel != "tree/a/hard.txt" && rel != "tree/a/one.txt" {
			t.Errorf("context copies: %s has mtime %v in both", rel, ia.mtime)
		}
		if ia.ino == ib.ino {
			sameIno++
		}
		pinned := rel == raOldFile || rel == raOldDir
		if !pinned && (ia.mtime.Unix() <= epochTS || ib.mtime.Unix() <= epochTS) {
			t.Errorf("context copies: %s mtimes %v, %v, want both after the epoch", rel, ia.mtime, ib.mtime)
		}
		if pinned && (ia.mtime.Unix() >= epochTS || ia.mtime.Unix() != ib.mtime.Unix()) {
			t.Errorf("context copies: %s mtimes %v, %v, want one second before the epoch", rel, ia.mtime, ib.mtime)
		}
	}
	if sameIno > 0 {
		t.Logf("context copies: %d of %d paths happen to share inode numbers", sameIno, len(sa))
	}
}

// raCheckImage checks the image holds what the Dockerfile made, with the times SOURCE_DATE_EPOCH
// gives: the comparison is only worth what the image holds.
func raCheckImage(t *testing.T, img v1.Image, epochTS int64) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	final := map[string]*tar.Header{}
	late := 0
	for i := range layers {
		forEachEntry(t, img, i, func(h *tar.Header) {
			name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
			final[name] = h
			if h.ModTime.Unix() > epochTS {
				late++
				if late <= 5 {
					t.Errorf("layer %d: %s has mtime %d, after SOURCE_DATE_EPOCH %d", i, name, h.ModTime.Unix(), epochTS)
				}
			}
		})
	}
	get := func(name string) *tar.Header {
		h := final[name]
		if h == nil {
			t.Errorf("no layer has %s", name)
		}
		return h
	}
	expect := func(name, what string, ok func(h *tar.Header) bool) {
		t.Helper()
		if h := get(name); h != nil && !ok(h) {
			t.Errorf("%s: want %s; entry: type %q mode %o mtime %d link %q xattrs %v", name, what,
				h.Typeflag, h.Mode, h.ModTime.Unix(), h.Linkname, h.PAXRecords)
		}
	}
	isType := func(tf byte) func(h *tar.Header) bool { return func(h *tar.Header) bool { return h.Typeflag == tf } }
	xattr := func(name, val string) func(h *tar.Header) bool {
		return func(h *tar.Header) bool { return h.PAXRecords["SCHILY.xattr."+name] == val }
	}
	expect("out/suid-busybox", "a setuid 4755 file", func(h *tar.Header) bool {
		return h.Typeflag == tar.TypeReg && h.Mode&0o7777 == 0o4755
	})
	expect("out/fifo", "a fifo", isType(tar.TypeFifo))
	expect("out/d1/symlink", "a symlink to d2/d3/echoed.txt", func(h *tar.Header) bool {
		return h.Typeflag == tar.TypeSymlink && h.Linkname == "d2/d3/echoed.txt"
	})
	expect("out/d1/d2", "mode 0700", func(h *tar.Header) bool { return h.Mode&0o7777 == 0o700 })
	expect("out/d1/touched", "xattr user.made.by=run-step", xattr("user.made.by", "run-step"))
	expect("out/empty/again", "a directory", isType(tar.TypeDir))
	expect("app/work/tree/top.txt", "xattrs user.origin and user.another", func(h *tar.Header) bool {
		return xattr("user.origin", "context")(h) && xattr("user.another", "second xattr")(h)
	})
	expect("app/work/"+raOldFile, fmt.Sprintf("its pre-epoch mtime %d", raOldFileTS), func(h *tar.Header) bool {
		return h.ModTime.Unix() == raOldFileTS
	})
	expect("app/work/"+raOldDir, fmt.Sprintf("its pre-epoch mtime %d and mode 0750", raOldDirTS), func(h *tar.Header) bool {
		return h.ModTime.Unix() == raOldDirTS && h.Mode&0o7777 == 0o750
	})
	expect("app/work/tree/a/b/two.txt", "mode 0640, mtime clamped to the epoch", func(h *tar.Header) bool {
		return h.Mode&0o7777 == 0o640 && h.ModTime.Unix() == epochTS
	})
	expect("app/work/tree/a/sym", "a symlink to b/two.txt", func(h *tar.Header) bool {
		return h.Typeflag == tar.TypeSymlink && h.Linkname == "b/two.txt"
	})
	expect("app/work/tree/empty/nested-empty", "a 0700 directory", func(h *tar.Header) bool {
		return h.Typeflag == tar.TypeDir && h.Mode&0o7777 == 0o700
	})
	expect("app/work/tree/a/b/c/three.sh", "an executable", func(h *tar.Header) bool { return h.Mode&0o7777 == 0o755 })
	expect("app/work/flat/top.txt", "a regular file", isType(tar.TypeReg))
	expect("app/work/made/link", "a symlink", isType(tar.TypeSymlink))
	hardLink := func(target string) func(h *tar.Header) bool {
		return func(h *tar.Header) bool { return h.Typeflag == tar.TypeLink && h.Linkname == target }
	}
	// Hard links are kept, to the name that comes first in walk order, in RUN, ADD and COPY
	// (from a stage or the context) layers alike.
	expect("out/d1/hardlink", "a hard link to out/d1/d2/d3/echoed.txt", hardLink("out/d1/d2/d3/echoed.txt"))
	expect("out/d1/d2/d3/echoed.txt", "a regular file", isType(tar.TypeReg))
	expect("opt/pkg/hello.txt", "a hard link to opt/pkg/hardlink.txt", hardLink("opt/pkg/hardlink.txt"))
	expect("src/deep/er/tree/a/one.txt", "a hard link to src/deep/er/tree/a/hard.txt", hardLink("src/deep/er/tree/a/hard.txt"))
	expect("app/work/tree/a/one.txt", "a hard link to app/work/tree/a/hard.txt", hardLink("app/work/tree/a/hard.txt"))
	expect("app/work/tree/a/hard.txt", "a regular file", isType(tar.TypeReg))
	for _, gone := range []string{"opt/pkg/link.txt", "src/deep/er/tree/a/b/c"} {
		if final[gone] != nil {
			t.Errorf("%s was removed in the build stage but is in the image", gone)
		}
	}
}

// raExplain names the first difference between two OCI archives: what builder.DiffImages
// (the code behind --check-repro) finds in the images, else in the archives' own entries.
func raExplain(t *testing.T, a, b string) string {
	t.Helper()
	imgA, dA := ociArchiveImage(t, a)
	imgB, dB := ociArchiveImage(t, b)
	if dA != dB {
		d, err := builder.DiffImages(context.Background(), imgA, imgB)
		if err != nil {
			t.Fatal(err)
		}
		if d != nil {
			return d.String()
		}
	}
	ea, eb := raArchiveEntries(t, a), raArchiveEntries(t, b)
	for i := range max(len(ea), len(eb)) {
		switch {
		case i >= len(ea):
			return fmt.Sprintf("same manifest; archive entry %d: only B has %s", i, eb[i])
		case i >= len(eb):
			return fmt.Sprintf("same manifest; archive entry %d: only A has %s", i, ea[i])
		case ea[i] != eb[i]:
			return fmt.Sprintf("same manifest; archive entry %d: A %s, B %s", i, ea[i], eb[i])
		}
	}
	return "same manifest and archive entries; the archive tar bytes differ: " + raFirstByteDiff(t,
		func() (io.ReadCloser, error) { return os.Open(a) }, func() (io.ReadCloser, error) { return os.Open(b) })
}

// raEntryAttrs lists an entry's attributes in a fixed order; the content hash is the last one.
func raEntryAttrs(h *tar.Header, content []byte) [][2]string {
	attrs := [][2]string{
		{"type", strconv.Quote(string(h.Typeflag))},
		{"mode", fmt.Sprintf("%o", h.Mode)},
		{"uid", strconv.Itoa(h.Uid)}, {"gid", strconv.Itoa(h.Gid)},
		{"uname", h.Uname}, {"gname", h.Gname},
		{"mtime", h.ModTime.UTC().Format(time.RFC3339Nano)},
		{"atime", h.AccessTime.UTC().Format(time.RFC3339Nano)},
		{"ctime", h.ChangeTime.UTC().Format(time.RFC3339Nano)},
		{"size", strconv.FormatInt(h.Size, 10)},
		{"linkname", h.Linkname},
		{"devmajor", strconv.FormatInt(h.Devmajor, 10)}, {"devminor", strconv.FormatInt(h.Devminor, 10)},
		{"format", h.Format.String()},
	}
	for _, k := range slices.Sorted(maps.Keys(h.PAXRecords)) {
		attrs = append(attrs, [2]string{"pax " + k, strconv.Quote(h.PAXRecords[k])})
	}
	return append(attrs, [2]string{"content", fmt.Sprintf("sha256:%x", sha256.Sum256(content))})
}

// raArchiveEntries describes each entry of an OCI archive file, in order.
func raArchiveEntries(t *testing.T, archive string) []string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		content, _ := io.ReadAll(tr)
		var desc []string
		for _, kv := range raEntryAttrs(h, content) {
			desc = append(desc, kv[0]+"="+kv[1])
		}
		out = append(out, h.Name+" "+strings.Join(desc, " "))
	}
}

func raFirstByteDiff(t *testing.T, openA, openB func() (io.ReadCloser, error)) string {
	t.Helper()
	read := func(open func() (io.ReadCloser, error)) []byte {
		rc, err := open()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return raBytesDiff(read(openA), read(openB))
}

// raBytesDiff gives the first differing offset of two byte strings with some context.
func raBytesDiff(a, b []byte) string {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	if n == len(a) && n == len(b) {
		return "identical"
	}
	ctx := func(x []byte) string { return strconv.Quote(string(x[max(0, n-40):min(len(x), n+40)])) }
	return fmt.Sprintf("%d and %d bytes, first difference at offset %d: A %s, B %s", len(a), len(b), n, ctx(a), ctx(b))
}
