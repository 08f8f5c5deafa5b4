package layer

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
	"testing"

	"golang.org/x/sys/unix"
)

// FuzzResolvePath builds a small tree of directories, files and symlinks
// (absolute, relative, ".."-laden, through missing directories, looping,
// naming the root's own host path) and resolves a path in it. Whatever
// the tree and the path, the result must (a) lie inside root, (b) have no
// symlink among its existing components, which must be directories but
// for the last, (c) equal what refResolve, an independent walk of the
// documented contract, gives, and (d) equal what the kernel resolves
// with RESOLVE_IN_ROOT whenever the kernel finds the whole path. Run it by
// hand with (Go's default minute of minimising each new input would take
// most of a short run):
//
//	go test ./layer -run '^$' -fuzz FuzzResolvePath -fuzztime 2m -fuzzminimizetime 50x
func FuzzResolvePath(f *testing.F) {
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
		// The link budget's edges: 255 follows resolve, the 256th fails.
		{"l a .", "/" + strings.Repeat("a/", 255) + "b"},
		{"l a .", "/" + strings.Repeat("a/", 256) + "b"},
	}
	for _, s := range seeds {
		f.Add(encodeTree(f, s.tree), s.path)
	}
	f.Fuzz(func(t *testing.T, data []byte, p string) {
		tree := decodeTree(data)
		// The kernel's answer (d) is a real path: so must root be.
		root, err := filepath.EvalSymlinks(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		buildFuzzTree(root, tree)
		got, err := ResolvePath(root, p)
		want, wantErr := refResolve(root, p)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("ResolvePath(%q) = %q, %v; the reference walk gives %q, %v\ntree:\n%s", p, got, err, want, wantErr, tree)
		}
		if err != nil {
			return
		}
		if got != want {
			t.Fatalf("ResolvePath(%q) = %q; the reference walk gives %q\ntree:\n%s", p, got, want, tree)
		}
		if err := checkResolved(root, got); err != nil {
			t.Fatalf("ResolvePath(%q) = %q: %v\ntree:\n%s", p, got, err, tree)
		}
		kernel, err := kernelResolve(root, p)
		if err == nil && kernel != got {
			t.Fatalf("ResolvePath(%q) = %q; the kernel resolves it in root to %q\ntree:\n%s", p, got, kernel, tree)
		}
	})
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

// refResolve is the reference for ResolvePath, written from its contract
// rather than its code. p is first cleaned as text (so "l/.." is "/" even
// when l is a symlink, as for archive names and Docker's destinations);
// then it is a stack of components to walk: a symlink
// pushes its target's components (an absolute target also empties the
// resolved path: root is "/"); ".." pops a resolved component and does
// nothing at the root; a component that does not exist is kept as a name
// and the walk goes on (it may be popped again by a later ".."); any other
// lookup error (a file used as a directory, a name too long) is an error,
// as is following a 256th link.
func refResolve(root, p string) (string, error) {
	var resolved []string
	todo := strings.Split(path.Clean("/"+p), "/")
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

// checkResolved checks what any result of ResolvePath must be, whatever
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
// (openat2 with RESOLVE_IN_ROOT) and returns where it lands. p is cleaned
// as text first, as ResolvePath does; the kernel then fails where the
// contract differs: a missing component, more than its 40 links.
func kernelResolve(root, p string) (string, error) {
	dirfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(dirfd)
	fd, err := unix.Openat2(dirfd, "."+path.Clean("/"+p), &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	return os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
}

// TestResolvePathAgreesWithKernel pins kernelResolve itself: an oracle that
// always failed would let FuzzResolvePath's check (d) pass vacuously.
func TestResolvePathAgreesWithKernel(t *testing.T) {
	root := t.TempDir()
	buildFuzzTree(root, "d a/b\nl up ../../..\nl abs /a\nl a/b/c ../../abs/b")
	for _, p := range []string{"/", "", "a", "/up/a/b", "/abs/b/c/c/c", "../../a/b", "up/../a/b/c/../c"} {
		got, err := kernelResolve(root, p)
		if errors.Is(err, unix.ENOSYS) {
			t.Skip("no openat2 on this kernel")
		}
		want, rerr := ResolvePath(root, p)
		if err != nil || rerr != nil || got != want {
			t.Errorf("kernel resolves %q to %q (%v), ResolvePath to %q (%v)", p, got, err, want, rerr)
		}
	}
}
