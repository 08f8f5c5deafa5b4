package fsroot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// FuzzDirResolveClean builds a small tree of directories, files and
// symlinks (absolute, relative, ".."-laden, through missing directories,
// looping, naming the root's own host path) and resolves a path in it as
// layer.ResolvePath, the extractor and the sandbox's mount targets do: Dir
// with the path cleaned as text first. Whatever the tree and the path, the
// result must (a) lie inside root, (b) have no symlink among its existing
// components, which must be directories but for the last, (c) equal what
// refResolve, an independent walk of the documented contract, gives, and
// (d) equal what the kernel resolves with RESOLVE_IN_ROOT whenever the
// kernel finds the whole path. Run it by hand with (Go's default minute of
// minimising each new input would take most of a short run):
//
//	go test ./internal/fsroot -run '^$' -fuzz FuzzDirResolveClean -fuzztime 2m -fuzzminimizetime 50x
func FuzzDirResolveClean(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte, p string) { checkResolve(t, data, p, true) })
}

// FuzzResolve is FuzzDirResolveClean for Resolve itself, the path walked
// as written (as COPY resolves in the merged view and the context): a ".."
// after a symlink climbs from the link's target, as in the kernel, so (d)
// compares with the kernel's walk of the same text. Every call the
// resolver makes is also held to FS's contract (see checkedFS).
//
//	go test ./internal/fsroot -run '^$' -fuzz 'FuzzResolve$' -fuzztime 2m -fuzzminimizetime 50x
func FuzzResolve(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte, p string) { checkResolve(t, data, p, false) })
}

func addSeeds(f *testing.F) {
	seeds := []struct{ tree, path string }{
		{"d a\nl a/b ../c/b\nd c", "/a/b"},
		{"l d ../../..\nd a/b\nl a/b/c ../../d/c", "/a/b/c/a"},
		{"l d /a\nd a/b\nl a/c .", "/d/c/c/b/../../d"},
		{"d c/d\nl a/b/c /c", "/a/b/c/d"},
		{"l a a", "/a/b"},
		{"l a b\nl b a/c", "a/d"},
		{"l a b\nl b c\nl c /d\nd d", "/a/b"},
		{"l a $ROOT/b\nd b", "/a/../a/c"},
		{"l c ../d\nl b a/../c", "/b/d"},
		{"f a\nl b a/..", "/b/c"},
		{"f a", "/a/b"},
		{"l a ../..\nl b /\nd c", "/a/b/a/c/../../.."},
		{"d a\nl a/b ../c/../../a\nd c", "a/b/b/b/d"},
		{"l a b/c\nl b d/..\nl d /c\nd c", "/a"},
		// A ".." in the path after a symlink: dropped with the link as text,
		// walked from the link's target as written.
		{"d c/d\nl a c/d", "/a/../d"},
		// The link budget's edges: 255 follows resolve, the 256th fails.
		{"l a .", "/" + strings.Repeat("a/", 255) + "b"},
		{"l a .", "/" + strings.Repeat("a/", 256) + "b"},
	}
	for _, s := range seeds {
		f.Add(encodeTree(f, s.tree), s.path)
	}
}

// checkResolve builds the tree data describes and resolves p in it, with
// p cleaned as text first when clean is set, checking (a) to (d).
func checkResolve(t *testing.T, data []byte, p string, clean bool) {
	tree := decodeTree(data)
	// The kernel's answer (d) is a real path: so must root be.
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	buildFuzzTree(root, tree)
	var got string
	if clean {
		got, err = Dir(root).Resolve(Clean(p))
	} else {
		var r string
		r, err = Resolve(&checkedFS{t: t, fs: Dir(root)}, p)
		got = filepath.Join(root, r)
	}
	want, wantErr := refResolve(root, p, clean)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("resolving %q = %q, %v; the reference walk gives %q, %v\ntree:\n%s", p, got, err, want, wantErr, tree)
	}
	if err != nil {
		if errors.Is(wantErr, errRefLoop) && !errors.Is(err, syscall.ELOOP) {
			t.Fatalf("resolving %q: %v, want ELOOP\ntree:\n%s", p, err, tree)
		}
		return
	}
	if got != want {
		t.Fatalf("resolving %q = %q; the reference walk gives %q\ntree:\n%s", p, got, want, tree)
	}
	if err := checkResolved(root, got); err != nil {
		t.Fatalf("resolving %q = %q: %v\ntree:\n%s", p, got, err, tree)
	}
	kernel, err := kernelResolve(root, p, clean)
	if err == nil && kernel != got {
		t.Fatalf("resolving %q = %q; the kernel resolves it in root to %q\ntree:\n%s", p, got, kernel, tree)
	}
}

// checkedFS fails the test when the resolver asks fs for what FS's
// contract rules out: a path that is not clean and absolute, one below a
// symlink, or a link it did not just lstat as one. COPY's view of a tree
// reads a link through the entry of the lstat before it, so the last rule
// is load-bearing.
type checkedFS struct {
	t    *testing.T
	fs   FS
	link string // the path the last Lstat found to be a symlink
}

func (c *checkedFS) check(op, p string) {
	c.t.Helper()
	if !path.IsAbs(p) || path.Clean(p) != p {
		c.t.Fatalf("%s(%q): not a clean absolute path", op, p)
	}
	for d := path.Dir(p); d != "/"; d = path.Dir(d) {
		if fi, err := c.fs.Lstat(d); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			c.t.Fatalf("%s(%q): %s is a symlink", op, p, d)
		}
	}
}

func (c *checkedFS) Lstat(p string) (fs.FileInfo, error) {
	c.check("Lstat", p)
	fi, err := c.fs.Lstat(p)
	c.link = ""
	if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		c.link = p
	}
	return fi, err
}

func (c *checkedFS) Readlink(p string) (string, error) {
	c.check("Readlink", p)
	if p != c.link {
		c.t.Fatalf("Readlink(%q) not right after an Lstat that found a symlink there", p)
	}
	return c.fs.Readlink(p)
}

// A fuzzed tree is bytes, so that every mutation is a tree: per node, a
// byte for kind (d, f, l) and depth (1 to 3), a byte per name component
// and, for a link, a byte for the number of target tokens (1 to 7) and a
// byte per token. The names are few so that paths often meet, and a
// leading empty token makes a target absolute.
var (
	fuzzKinds  = "dfl"
	fuzzNames  = []string{"a", "b", "c", "d"}
	fuzzTokens = []string{"a", "b", "c", "d", "..", ".", "", "$ROOT"}
)

// decodeTree turns fuzz bytes into a tree spec for buildFuzzTree.
func decodeTree(data []byte) string {
	next := func() (int, bool) {
		if len(data) == 0 {
			return 0, false
		}
		b := data[0]
		data = data[1:]
		return int(b), true
	}
	var lines []string
	for len(lines) < 16 {
		b, ok := next()
		if !ok {
			break
		}
		kind, depth := fuzzKinds[b%3], b/3%3+1
		var comps []string
		for range depth {
			n, _ := next()
			comps = append(comps, fuzzNames[n%len(fuzzNames)])
		}
		line := string(kind) + " " + strings.Join(comps, "/")
		if kind == 'l' {
			n, _ := next()
			var target []string
			for range n%7 + 1 {
				tok, _ := next()
				target = append(target, fuzzTokens[tok%len(fuzzTokens)])
			}
			line += " " + strings.Join(target, "/")
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}

// encodeTree is decodeTree's inverse, for writing seeds as readable specs.
func encodeTree(t testing.TB, spec string) []byte {
	t.Helper()
	var out []byte
	for _, line := range strings.Split(spec, "\n") {
		fields := strings.Fields(line)
		comps := strings.Split(fields[1], "/")
		out = append(out, byte(strings.IndexByte(fuzzKinds, fields[0][0])+3*(len(comps)-1)))
		for _, c := range comps {
			out = append(out, byte(slices.Index(fuzzNames, c)))
		}
		if fields[0] == "l" {
			toks := strings.Split(fields[2], "/")
			out = append(out, byte(len(toks)-1))
			for _, tok := range toks {
				out = append(out, byte(slices.Index(fuzzTokens, tok)))
			}
		}
	}
	if got := decodeTree(out); got != spec {
		t.Fatalf("seed tree %q encodes as %q", spec, got)
	}
	return out
}

// buildFuzzTree creates the nodes a tree spec lists, one a line: "d PATH",
// "f PATH" or "l PATH TARGET", where $ROOT in TARGET is root's host path
// (a link to it must not lead back to the real root). A node that cannot
// be made is left out, and so is one whose parent holds a symlink: the
// tree is built inside root, not through the links it holds.
func buildFuzzTree(root, spec string) {
	for _, line := range strings.Split(spec, "\n") {
		kind, rest, _ := strings.Cut(line, " ")
		name, target, _ := strings.Cut(rest, " ")
		if !filepath.IsLocal(name) || !realDirs(root, path.Dir(name)) {
			continue
		}
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			continue
		}
		switch kind {
		case "d":
			os.Mkdir(p, 0o755)
		case "f":
			os.WriteFile(p, nil, 0o644)
		case "l":
			os.Symlink(strings.ReplaceAll(target, "$ROOT", root), p)
		}
	}
}

// realDirs reports whether no existing component of dir (a local path) is
// anything but a directory.
func realDirs(root, dir string) bool {
	p := root
	for _, c := range strings.Split(dir, "/") {
		if c == "." {
			continue
		}
		p = filepath.Join(p, c)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return true
		}
		if err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

// errRefLoop is refResolve's ELOOP.
var errRefLoop = errors.New("too many symbolic links")

// refResolve is the reference for Resolve, written from its contract
// rather than its code. With clean, p is first cleaned as text (so "l/.."
// is "/" even when l is a symlink, as for archive names and Docker's
// destinations); then it is a stack of components to walk: a symlink
// pushes its target's components (an absolute target also empties the
// resolved path: root is "/"); ".." pops a resolved component and does
// nothing at the root; a component that does not exist is kept as a name
// and the walk goes on (it may be popped again by a later ".."); any other
// lookup error (a file used as a directory, a name too long) is an error,
// as is following a 256th link.
func refResolve(root, p string, clean bool) (string, error) {
	var resolved []string
	if clean {
		p = path.Clean("/" + p)
	}
	todo := strings.Split(p, "/")
	follows := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(resolved) > 0 {
				resolved = resolved[:len(resolved)-1]
			}
			continue
		}
		host := root + "/" + strings.Join(append(resolved, c), "/")
		fi, err := os.Lstat(host)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			resolved = append(resolved, c)
		case err != nil:
			return "", err
		case fi.Mode()&fs.ModeSymlink != 0:
			if follows++; follows > 255 {
				return "", errRefLoop
			}
			target, err := os.Readlink(host)
			if err != nil {
				return "", err
			}
			if strings.HasPrefix(target, "/") {
				resolved = nil
			}
			todo = append(strings.Split(target, "/"), todo...)
		default:
			resolved = append(resolved, c)
		}
	}
	if len(resolved) == 0 {
		return root, nil
	}
	return root + "/" + strings.Join(resolved, "/"), nil
}

// checkResolved checks what any result of Dir.Resolve must be, whatever
// the input: a clean path inside root whose existing components are real
// directories (the last one may be anything but a symlink), so that
// creating or opening it cannot leave root.
func checkResolved(root, got string) error {
	if got != filepath.Clean(got) || (got != root && !strings.HasPrefix(got, root+"/")) {
		return errors.New("not a clean path inside root")
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(got, root), "/")
	if rel == "" {
		return nil
	}
	comps := strings.Split(rel, "/")
	p := root
	for i, c := range comps {
		p = filepath.Join(p, c)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symlink", p)
		}
		if i < len(comps)-1 && !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", p)
		}
	}
	return nil
}

// kernelResolve asks the kernel to resolve p in root as a chroot would
// (openat2 with RESOLVE_IN_ROOT) and returns where it lands. With clean, p
// is cleaned as text first, as Dir.Resolve(Clean(p)) does; the kernel then
// fails where the contract differs: a missing component, more than its 40
// links.
func kernelResolve(root, p string, clean bool) (string, error) {
	dirfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(dirfd)
	if clean {
		p = path.Clean("/" + p)
	}
	fd, err := unix.Openat2(dirfd, "./"+p, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	return os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
}

// TestResolveAgreesWithKernel pins kernelResolve itself: an oracle that
// always failed would let the fuzz tests' check (d) pass vacuously.
func TestResolveAgreesWithKernel(t *testing.T) {
	root := t.TempDir()
	buildFuzzTree(root, "d a/b\nl up ../../..\nl abs /a\nl a/b/c ../../abs/b")
	paths := map[bool][]string{
		true: {"/", "", "a", "/up/a/b", "/abs/b/c/c/c", "../../a/b", "up/../a/b/c/../c"},
		// Walked as written, c/.. is the parent of c's target.
		false: {"/", "", "a", "/up/a/b", "/abs/b/c/c/c", "../../a/b", "/a/b/c/../b", "abs/b/c/../../a"},
	}
	for _, clean := range []bool{true, false} {
		for _, p := range paths[clean] {
			got, err := kernelResolve(root, p, clean)
			if errors.Is(err, unix.ENOSYS) {
				t.Skip("no openat2 on this kernel")
			}
			var want string
			var rerr error
			if clean {
				want, rerr = Dir(root).Resolve(Clean(p))
			} else {
				want, rerr = Dir(root).Resolve(p)
			}
			if err != nil || rerr != nil || got != want {
				t.Errorf("clean=%t: the kernel resolves %q to %q (%v), fsroot to %q (%v)", clean, p, got, err, want, rerr)
			}
		}
	}
}
