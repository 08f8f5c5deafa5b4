package builder

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/strata-build/strata/executor"
)

// The cache property: for a random small context and a random sequence of
// mutations of it, every build on the store that built the earlier
// versions (warm) gives the image a build in a fresh store gives (cold).
// A mutation the image cannot show (mtime, owner, an xattr a layer does
// not keep, a file .dockerignore excludes) must keep every step CACHED,
// and so must a context whose image the warm store has already built.

var cachePropIters = flag.Int("cacheprop.iters", 0, "iterations of TestCachePropertyWarmEqualsCold (default 40, or $STRATA_CACHEPROP_ITERS)")

var cachePropSeed = flag.Uint64("cacheprop.seed", 0, "first seed of TestCachePropertyWarmEqualsCold (default 1, or $STRATA_CACHEPROP_SEED)")

func propSetting(flagValue uint64, env string, def uint64) uint64 {
	if flagValue != 0 {
		return flagValue
	}
	if v, err := strconv.ParseUint(os.Getenv(env), 10, 64); err == nil && v > 0 {
		return v
	}
	return def
}

// propDockerfile copies the context and sub. Before that, two RUNs (run
// by recordRunner, which writes down what their binds show) bind sub and
// the whole context: they come first so that the COPYs' keys do not hide
// a bind's key missing a change.
const propDockerfile = "FROM scratch\n" +
	"RUN --mount=type=bind,source=sub,target=/m record\n" +
	"RUN --mount=type=bind,target=/c record\n" +
	"COPY . /ctx/\n" +
	"COPY sub /x/\n"

// recordRunner stands in for the sandbox: it writes, into the upper dir,
// everything a RUN could see of each bind mount but times and owners
// (binds show context files as 0:0): names, types, modes, sizes, contents,
// link targets, device numbers, xattrs and which names are one inode.
type recordRunner struct{}

func (recordRunner) Run(_ context.Context, spec executor.Spec) (executor.Result, error) {
	res := executor.Result{UpperDir: spec.UpperDir}
	for _, m := range spec.Mounts {
		if m.Type != executor.MountBind {
			continue
		}
		rec, err := recordTree(m.Source)
		if err != nil {
			return res, err
		}
		p := filepath.Join(spec.UpperDir, "rec", strings.ReplaceAll(strings.Trim(m.Target, "/"), "/", "_")+".txt")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return res, err
		}
		if err := os.WriteFile(p, []byte(rec), 0o644); err != nil {
			return res, err
		}
	}
	return res, nil
}

func recordTree(root string) (string, error) {
	var b strings.Builder
	links := map[[2]uint64]string{}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		fmt.Fprintf(&b, "%s %v %d:%d", rel, fi.Mode(), st.Uid, st.Gid)
		if !fi.IsDir() && st.Nlink > 1 {
			id := [2]uint64{st.Dev, st.Ino}
			if first, ok := links[id]; ok {
				fmt.Fprintf(&b, " link=%s", first)
			}
			links[id] = rel
		}
		switch {
		case fi.Mode().IsRegular():
			c, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " %q", c)
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			fmt.Fprintf(&b, " -> %s", l)
		case fi.Mode()&fs.ModeDevice != 0:
			fmt.Fprintf(&b, " %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		names, _ := listXattrs(p, false)
		slices.Sort(names)
		for _, n := range names {
			if n == "security.selinux" {
				continue
			}
			v, _ := getXattr(p, n, false)
			fmt.Fprintf(&b, " %s=%q", n, v)
		}
		b.WriteString("\n")
		return nil
	})
	return b.String(), err
}

// TestCachePropertyWarmEqualsCold checks the property on seeded random
// contexts: 40 iterations, more with -cacheprop.iters=N (or
// STRATA_CACHEPROP_ITERS); a failure names its seed, which
// -cacheprop.seed=S -cacheprop.iters=1 replays.
func TestCachePropertyWarmEqualsCold(t *testing.T) {
	needRoot(t)
	iters := propSetting(uint64(*cachePropIters), "STRATA_CACHEPROP_ITERS", 40)
	first := propSetting(*cachePropSeed, "STRATA_CACHEPROP_SEED", 1)
	// Contexts first, then one pause past the stat cache's racy window, so
	// the first build caches the hashes of files the mutations leave alone.
	root := t.TempDir()
	gens := make([]*propGen, iters)
	for i := range gens {
		seed := first + uint64(i)
		gens[i] = newPropGen(t, filepath.Join(root, fmt.Sprint(seed)), seed)
	}
	time.Sleep(racyWindow + 100*time.Millisecond)
	start := time.Now()
	var mu sync.Mutex
	stats := map[string]int{}
	t.Cleanup(func() {
		var lines []string
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range stats {
				if !yield(k) {
					return
				}
			}
		}) {
			lines = append(lines, fmt.Sprintf("%s=%d", k, stats[k]))
		}
		t.Logf("%d iterations in %v: %s", iters, time.Since(start).Round(time.Millisecond), strings.Join(lines, " "))
	})
	for _, g := range gens {
		t.Run(fmt.Sprintf("seed=%d", g.seed), func(t *testing.T) {
			t.Parallel()
			g.t = t
			s := runProp(t, g, 2+g.rng.IntN(4))
			mu.Lock()
			for k, v := range s {
				stats[k] += v
			}
			mu.Unlock()
		})
	}
}

// FuzzCacheWarmEqualsCold is the property as a fuzz target: its seed
// corpus runs with plain go test; go test -fuzz explores further.
func FuzzCacheWarmEqualsCold(f *testing.F) {
	for _, s := range []uint64{1, 7, 42, 1000, 123456789} {
		f.Add(s, uint8(4))
	}
	f.Fuzz(func(t *testing.T, seed uint64, steps uint8) {
		needRoot(t)
		g := newPropGen(t, t.TempDir(), seed)
		runProp(t, g, 1+int(steps%6))
	})
}

// runProp builds g's context on a warm store, then mutates it steps times,
// building it on the warm store and on a fresh one after each mutation.
func runProp(t *testing.T, g *propGen, steps int) map[string]int {
	stats := map[string]int{}
	warm := newMutBuilder(t, g.dir, recordRunner{})
	res, out, err := warm.tryBuild(t, propDockerfile, nil)
	if err != nil {
		t.Fatalf("seed %d: the first build failed: %v\n%s\ncontext:\n%s", g.seed, err, out, g.listing())
	}
	seen := map[string]bool{res.Descriptor.Digest.String(): true}
	prev := res.Descriptor.Digest.String()
	var history []string
	for step := range steps {
		n := 1 + g.rng.IntN(2)
		inert := true
		for range n {
			m, isInert := g.mutate()
			history = append(history, m)
			inert = inert && isInert
		}
		stats["mutations"] += n
		w, wout, werr := warm.tryBuild(t, propDockerfile, nil)
		cold := newMutBuilder(t, g.dir, recordRunner{})
		c, cout, cerr := cold.tryBuild(t, propDockerfile, nil)
		where := fmt.Sprintf("seed %d, step %d, after:\n  %s", g.seed, step+1, strings.Join(history, "\n  "))
		if werr != nil || cerr != nil {
			stats["both failed"]++
			if (werr == nil) != (cerr == nil) {
				t.Fatalf("%s\nwarm build error %v, cold build error %v\nwarm:\n%s\ncold:\n%s", where, werr, cerr, wout, cout)
			}
			continue
		}
		stats["builds"]++
		if w.Descriptor.Digest != c.Descriptor.Digest {
			t.Fatalf("WRONG CACHE HIT: %s\nwarm %s, cold %s\n%s\ncontext:\n%s\nwarm progress:\n%s", where,
				w.Descriptor.Digest, c.Descriptor.Digest, imageDiff(t, w.Image, c.Image), g.listing(), wout)
		}
		reran := 0
		for _, s := range parseProgress(wout) {
			if !s.from && !s.cached {
				reran++
			}
		}
		d := c.Descriptor.Digest.String()
		switch {
		case inert && reran > 0:
			t.Errorf("NEEDLESS REBUILD: %s\nchanges the image cannot show re-ran %d steps (image unchanged: %t):\n%s\ncontext:\n%s", where, reran, d == prev, wout, g.listing())
		case inert && d != prev:
			t.Errorf("%s\nchanges the image should not show changed it:\n%s", where, imageDiff(t, mustLoad(t, warm, prev), c.Image))
		case seen[d] && reran > 0:
			t.Errorf("NEEDLESS REBUILD: %s\nthe warm store built this image before, yet %d steps re-ran:\n%s", where, reran, wout)
		}
		if reran > 0 {
			stats["warm builds re-running a step"]++
		} else {
			stats["warm builds all CACHED"]++
		}
		seen[d] = true
		prev = d
		history = history[:0]
	}
	return stats
}

func propMust(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustLoad(t *testing.T, b *mutBuilder, digest string) v1.Image {
	t.Helper()
	for _, d := range b.built {
		if d.Descriptor.Digest.String() == digest {
			return d.Image
		}
	}
	t.Fatalf("no image %s built", digest)
	return nil
}

// propGen makes a random context and mutates it, deterministically from
// its seed (directory listings are sorted; nothing depends on inode
// numbers or times).
type propGen struct {
	t    testing.TB
	dir  string
	seed uint64
	rng  *rand.Rand
	n    int // names made so far
}

var (
	propNames     = []string{"a", "b", "c", "d1", "d2", "e", "f.log", "keep.log", "ign1", "x", "zz", "h"}
	propFileModes = []fs.FileMode{0o644, 0o600, 0o755, 0o444, 0o640, 0o755 | fs.ModeSetuid, 0o755 | fs.ModeSetgid, 0o711}
	propDirModes  = []fs.FileMode{0o755, 0o700, 0o750, 0o777 | fs.ModeSticky, 0o775 | fs.ModeSetgid}
	propTargets   = []string{"a", "../b", "sub/a", "/etc/passwd", "d1", "nonexistent", ".", "x/../a", "../../outside"}
	propIgnore    = []string{"*.log", "sub/*.log", "**/ign*", "d?", "!sub/keep.log", "sub/z*", "!**/keep*", "e", "**/h"}
	propXattrVals = []string{"", "1", "22", "v3", "\x00bin"}
)

func newPropGen(t testing.TB, dir string, seed uint64) *propGen {
	g := &propGen{t: t, dir: dir, seed: seed, rng: rand.New(rand.NewPCG(seed, 0x5eed))}
	propMust(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
	g.writeIgnore()
	for range 4 + g.rng.IntN(11) {
		g.add()
	}
	return g
}

// writeIgnore writes a random .dockerignore; **/*.tmp comes last, so
// no exception re-includes a .tmp file.
func (g *propGen) writeIgnore() string {
	var pats []string
	for _, p := range propIgnore {
		if g.rng.IntN(3) == 0 {
			pats = append(pats, p)
		}
	}
	pats = append(pats, "**/*.tmp")
	propMust(g.t, os.WriteFile(filepath.Join(g.dir, ".dockerignore"), []byte(strings.Join(pats, "\n")+"\n"), 0o644))
	return strings.Join(pats, ",")
}

func (g *propGen) pick(xs []string) string { return xs[g.rng.IntN(len(xs))] }

// entries lists the context's paths (relative, sorted) that pass keep.
func (g *propGen) entries(keep func(rel string, fi fs.FileInfo) bool) []string {
	var out []string
	filepath.WalkDir(g.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == g.dir {
			return nil
		}
		rel, _ := filepath.Rel(g.dir, p)
		fi, err := os.Lstat(p)
		if err == nil && keep(rel, fi) {
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// isReg: a regular file whose content mutations may change (not the
// .dockerignore, which only writeIgnore writes).
func isReg(rel string, fi fs.FileInfo) bool { return fi.Mode().IsRegular() && rel != ".dockerignore" }

// movable are the entries a mutation may remove, rename or retype: not
// sub (COPY sub needs it) nor .dockerignore.
func movable(rel string, _ fs.FileInfo) bool { return rel != "sub" && rel != ".dockerignore" }

func (g *propGen) dirs() []string {
	return append([]string{"."}, g.entries(func(_ string, fi fs.FileInfo) bool { return fi.IsDir() })...)
}

// newName is a fresh name in a random directory.
func (g *propGen) newName(suffix string) string {
	dir := g.pick(g.dirs())
	for {
		name := filepath.Join(dir, g.pick(propNames)+suffix)
		if g.n > 0 && g.rng.IntN(3) == 0 {
			name = filepath.Join(dir, fmt.Sprintf("%s%d%s", g.pick(propNames), g.n, suffix))
		}
		g.n++
		if _, err := os.Lstat(filepath.Join(g.dir, name)); err != nil {
			return name
		}
	}
}

func (g *propGen) content(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = "ab\n"[g.rng.IntN(3)]
	}
	return b
}

func (g *propGen) abs(rel string) string { return filepath.Join(g.dir, rel) }

// add makes one random entry and returns what it did.
func (g *propGen) add() string {
	name := g.newName("")
	p := g.abs(name)
	t := g.t
	switch k := g.rng.IntN(100); {
	case k < 45:
		propMust(t, os.WriteFile(p, g.content(g.rng.IntN(13)), 0o600))
		propMust(t, os.Chmod(p, propFileModes[g.rng.IntN(len(propFileModes))]))
		g.maybeXattr(p)
		return "add file " + name
	case k < 60:
		propMust(t, os.Mkdir(p, 0o700))
		propMust(t, os.Chmod(p, propDirModes[g.rng.IntN(len(propDirModes))]))
		g.maybeXattr(p)
		return "add dir " + name
	case k < 72:
		target := g.pick(propTargets)
		propMust(t, os.Symlink(target, p))
		return "add symlink " + name + " -> " + target
	case k < 84:
		if files := g.entries(isReg); len(files) > 0 {
			from := g.pick(files)
			propMust(t, os.Link(g.abs(from), p))
			return "add hard link " + name + " = " + from
		}
		propMust(t, os.WriteFile(p, nil, 0o644))
		return "add empty file " + name
	case k < 90:
		propMust(t, unix.Mkfifo(p, 0o644))
		return "add fifo " + name
	default:
		typ := uint32(unix.S_IFCHR)
		if g.rng.IntN(3) == 0 {
			typ = unix.S_IFBLK
		}
		maj, min := 1+uint32(g.rng.IntN(3)), uint32(g.rng.IntN(10))
		propMust(t, unix.Mknod(p, typ|0o640, int(unix.Mkdev(maj, min))))
		return fmt.Sprintf("add device %s %o %d:%d", name, typ, maj, min)
	}
}

// maybeXattr sets a random xattr on p, one a layer keeps or not.
func (g *propGen) maybeXattr(p string) {
	switch g.rng.IntN(6) {
	case 0:
		propMust(g.t, unix.Lsetxattr(p, "user.k", []byte(g.pick(propXattrVals)), 0))
	case 1:
		propMust(g.t, unix.Lsetxattr(p, "trusted.t", []byte("t"), 0))
	case 2:
		if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
			propMust(g.t, unix.Lsetxattr(p, "security.capability", capV2, 0))
		}
	}
}

// mutate applies one random mutation; inert says the image cannot show it.
func (g *propGen) mutate() (desc string, inert bool) {
	t := g.t
	for {
		switch g.rng.IntN(21) {
		case 0, 1: // content, same size (and the same mtime)
			files := g.entries(isReg)
			if len(files) == 0 {
				continue
			}
			f := g.pick(files)
			fi, err := os.Stat(g.abs(f))
			propMust(t, err)
			old, _ := os.ReadFile(g.abs(f))
			b := g.content(len(old))
			if len(b) > 0 && string(b) == string(old) {
				b[0] = 'Z'
			}
			// Only the content: writing drops a file capability, and
			// setuid for a writer without CAP_FSETID.
			restore := g.keepMeta(f)
			propMust(t, os.WriteFile(g.abs(f), b, 0))
			restore()
			propMust(t, os.Chtimes(g.abs(f), fi.ModTime(), fi.ModTime()))
			return fmt.Sprintf("content of %s %q -> %q (same size, same mtime)", f, old, b), len(old) == 0
		case 2: // content, other size
			files := g.entries(isReg)
			if len(files) == 0 {
				continue
			}
			f := g.pick(files)
			old, _ := os.ReadFile(g.abs(f))
			b := g.content(len(old) + 1 + g.rng.IntN(3))
			propMust(t, os.WriteFile(g.abs(f), b, 0))
			return fmt.Sprintf("content of %s %q -> %q", f, old, b), false
		case 3: // mode
			es := g.entries(func(_ string, fi fs.FileInfo) bool { return fi.Mode()&fs.ModeSymlink == 0 })
			if len(es) == 0 {
				continue
			}
			e := g.pick(es)
			fi, _ := os.Lstat(g.abs(e))
			m := propFileModes[g.rng.IntN(len(propFileModes))]
			if fi.IsDir() {
				m = propDirModes[g.rng.IntN(len(propDirModes))]
			}
			propMust(t, os.Chmod(g.abs(e), m))
			return fmt.Sprintf("chmod %v %s (was %v)", m, e, fi.Mode()), fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) == m
		case 4: // mtime, after the epoch
			es := g.entries(func(string, fs.FileInfo) bool { return true })
			if len(es) == 0 {
				continue
			}
			e := g.pick(es)
			when := time.Unix(mutEpoch+1+g.rng.Int64N(100_000_000), int64(g.rng.IntN(1e9)))
			ts := unix.NsecToTimespec(when.UnixNano())
			propMust(t, unix.UtimesNanoAt(unix.AT_FDCWD, g.abs(e), []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW))
			return fmt.Sprintf("touch %s to %v", e, when), true
		case 5: // owner
			es := g.entries(func(string, fs.FileInfo) bool { return true })
			if len(es) == 0 {
				continue
			}
			e := g.pick(es)
			id := []int{0, 1, 1000, 65534}[g.rng.IntN(4)]
			// A chown drops setuid, setgid and file capabilities: put
			// them back, as a tool that keeps them would.
			restore := g.keepMeta(e)
			propMust(t, os.Lchown(g.abs(e), id, id))
			restore()
			return fmt.Sprintf("chown %d:%d %s", id, id, e), true
		case 6, 7:
			return g.add(), false
		case 8: // remove
			es := g.entries(movable)
			if len(es) == 0 {
				continue
			}
			e := g.pick(es)
			propMust(t, os.RemoveAll(g.abs(e)))
			return "remove " + e, false
		case 9: // rename
			es := g.entries(movable)
			if len(es) == 0 {
				continue
			}
			e := g.pick(es)
			to := g.newName("")
			if to == e || strings.HasPrefix(to, e+"/") {
				continue
			}
			propMust(t, os.Rename(g.abs(e), g.abs(to)))
			return "rename " + e + " -> " + to, false
		case 10: // empty directory
			name := g.newName("")
			propMust(t, os.Mkdir(g.abs(name), 0o755))
			return "mkdir " + name, false
		case 11: // symlink target
			links := g.entries(func(_ string, fi fs.FileInfo) bool { return fi.Mode()&fs.ModeSymlink != 0 })
			if len(links) == 0 {
				continue
			}
			l := g.pick(links)
			old, _ := os.Readlink(g.abs(l))
			target := g.pick(propTargets)
			propMust(t, os.Remove(g.abs(l)))
			propMust(t, os.Symlink(target, g.abs(l)))
			return fmt.Sprintf("retarget %s %s -> %s", l, old, target), old == target
		case 12: // hard link becomes a copy
			linked := g.entries(func(rel string, fi fs.FileInfo) bool {
				return isReg(rel, fi) && fi.Sys().(*syscall.Stat_t).Nlink > 1
			})
			if len(linked) == 0 {
				continue
			}
			f := g.pick(linked)
			b, _ := os.ReadFile(g.abs(f))
			fi, _ := os.Lstat(g.abs(f))
			xs, _ := keptXattrs(g.abs(f), false)
			propMust(t, os.Remove(g.abs(f)))
			propMust(t, os.WriteFile(g.abs(f), b, 0))
			propMust(t, os.Chmod(g.abs(f), fi.Mode()))
			for _, x := range xs {
				propMust(t, unix.Lsetxattr(g.abs(f), x.Name, x.Value, 0))
			}
			return "hard link " + f + " becomes a copy", false
		case 13: // a file becomes a hard link of another
			files := g.entries(isReg)
			if len(files) < 2 {
				continue
			}
			a, b := g.pick(files), g.pick(files)
			if a == b {
				continue
			}
			propMust(t, os.Remove(g.abs(b)))
			propMust(t, os.Link(g.abs(a), g.abs(b)))
			return "replace " + b + " with a hard link of " + a, false
		case 14: // a kept xattr
			es := g.entries(func(_ string, fi fs.FileInfo) bool { return fi.Mode().IsRegular() || fi.IsDir() })
			if len(es) == 0 {
				continue
			}
			e := g.pick(es)
			switch g.rng.IntN(3) {
			case 0:
				unix.Lremovexattr(g.abs(e), "user.k")
				return "remove user.k of " + e, false
			case 1:
				v := g.pick(propXattrVals)
				propMust(t, unix.Lsetxattr(g.abs(e), "user.k", []byte(v), 0))
				return fmt.Sprintf("user.k=%q on %s", v, e), false
			default:
				if fi, _ := os.Lstat(g.abs(e)); fi.IsDir() {
					continue
				}
				if unix.Lremovexattr(g.abs(e), "security.capability") == nil {
					return "remove security.capability of " + e, false
				}
				propMust(t, unix.Lsetxattr(g.abs(e), "security.capability", capV2, 0))
				return "add security.capability to " + e, false
			}
		case 15: // an xattr a layer does not keep
			es := g.entries(func(_ string, fi fs.FileInfo) bool { return fi.Mode().IsRegular() || fi.IsDir() })
			if len(es) == 0 {
				continue
			}
			e := g.pick(es)
			name := []string{"trusted.t", "user.overlay.x"}[g.rng.IntN(2)]
			propMust(t, unix.Lsetxattr(g.abs(e), name, g.content(3), 0))
			return name + " on " + e, true
		case 16: // .dockerignore
			return ".dockerignore = " + g.writeIgnore(), false
		case 17: // a file .dockerignore excludes
			name := g.newName(".tmp")
			propMust(t, os.WriteFile(g.abs(name), g.content(4), 0o644))
			return "add ignored " + name, true
		case 18: // device numbers or type
			devs := g.entries(func(_ string, fi fs.FileInfo) bool { return fi.Mode()&fs.ModeDevice != 0 })
			if len(devs) == 0 {
				continue
			}
			d := g.pick(devs)
			typ := uint32(unix.S_IFCHR)
			if g.rng.IntN(2) == 0 {
				typ = unix.S_IFBLK
			}
			maj, min := 1+uint32(g.rng.IntN(3)), uint32(g.rng.IntN(10))
			propMust(t, os.Remove(g.abs(d)))
			propMust(t, unix.Mknod(g.abs(d), typ|0o640, int(unix.Mkdev(maj, min))))
			return fmt.Sprintf("device %s becomes %o %d:%d", d, typ, maj, min), false
		case 19: // kind: a file becomes a symlink, a fifo or a directory
			es := g.entries(func(rel string, fi fs.FileInfo) bool { return movable(rel, fi) && !fi.IsDir() })
			if len(es) == 0 {
				continue
			}
			e := g.pick(es)
			propMust(t, os.Remove(g.abs(e)))
			switch g.rng.IntN(3) {
			case 0:
				propMust(t, os.Symlink(g.pick(propTargets), g.abs(e)))
				return e + " becomes a symlink", false
			case 1:
				propMust(t, unix.Mkfifo(g.abs(e), 0o644))
				return e + " becomes a fifo", false
			default:
				propMust(t, os.Mkdir(g.abs(e), 0o755))
				return e + " becomes a directory", false
			}
		case 20: // two entries swap names
			es := g.entries(movable)
			if len(es) < 2 {
				continue
			}
			a, b := g.pick(es), g.pick(es)
			if a == b || strings.HasPrefix(a, b+"/") || strings.HasPrefix(b, a+"/") {
				continue
			}
			propMust(t, unix.Renameat2(unix.AT_FDCWD, g.abs(a), unix.AT_FDCWD, g.abs(b), unix.RENAME_EXCHANGE))
			return "swap " + a + " and " + b, false
		}
	}
}

// keepMeta records the mode and kept xattrs of rel; the func returned
// puts them back.
func (g *propGen) keepMeta(rel string) func() {
	p := g.abs(rel)
	fi, err := os.Lstat(p)
	propMust(g.t, err)
	if fi.Mode()&fs.ModeSymlink != 0 {
		return func() {}
	}
	xs, err := keptXattrs(p, false)
	propMust(g.t, err)
	return func() {
		propMust(g.t, os.Chmod(p, fi.Mode()))
		for _, x := range xs {
			propMust(g.t, unix.Lsetxattr(p, x.Name, x.Value, 0))
		}
	}
}

// listing describes the context for a failure message.
func (g *propGen) listing() string {
	var b strings.Builder
	ign, _ := os.ReadFile(g.abs(".dockerignore"))
	fmt.Fprintf(&b, "  .dockerignore: %q\n", ign)
	for _, e := range g.entries(func(string, fs.FileInfo) bool { return true }) {
		fi, _ := os.Lstat(g.abs(e))
		st := fi.Sys().(*syscall.Stat_t)
		extra := ""
		switch {
		case fi.Mode().IsRegular():
			c, _ := os.ReadFile(g.abs(e))
			extra = fmt.Sprintf("%q ino=%d nlink=%d", c, st.Ino, st.Nlink)
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(g.abs(e))
			extra = "-> " + l
		case fi.Mode()&fs.ModeDevice != 0:
			extra = fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		xs, _ := listXattrs(g.abs(e), false)
		fmt.Fprintf(&b, "  %s %v %d:%d %s xattrs=%v\n", e, fi.Mode(), st.Uid, st.Gid, extra, xs)
	}
	return b.String()
}
