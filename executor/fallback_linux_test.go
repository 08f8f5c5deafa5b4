package executor

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// equivalenceScript touches every kind of change a layer can hold.
const equivalenceScript = `set -e
rm a/file
rm -rf d && mkdir d && touch d/new
rm -rf e
echo new > newfile
mkdir -p n1/n2 && echo deep > n1/n2/f
echo more >> mod/file
chmod 600 chmod/file
ln -s /link/target link/sym
ln newfile hardlink
mv ren/dir ren/moved
rm typ/file2dir && mkdir typ/file2dir && echo in > typ/file2dir/f
rm -rf typ/dir2file && echo file > typ/dir2file
mkfifo fifo
chown 1000:1000 newfile
touch -d '2001-01-01 00:00:00' a/keep
echo same > same/file
`

func TestCopyFallbackGivesTheSameUpper(t *testing.T) {
	base := newBase(t)
	layer := writeTree(t, map[string]string{
		"a/file": "x", "a/keep": "k", "d/x": "x", "d/y": "y", "e/z": "z", "f/g/h": "h",
		"mod/file": "old\n", "chmod/file": "c", "link/target": "t", "ren/dir/x": "x",
		"typ/file2dir": "f", "typ/dir2file/x": "x", "same/file": "same\n", "untouched/file": "u",
	})
	var uppers [2]string
	for i, copyMode := range []bool{false, true} {
		s := newStep(t, []string{layer, base}, equivalenceScript)
		s.mustRun(t, New(Options{ForceCopy: copyMode}))
		if copyMode != (s.res.CopyFallback != "") {
			t.Errorf("copy=%v: Result.CopyFallback = %q", copyMode, s.res.CopyFallback)
		}
		uppers[i] = listUpper(t, s.spec.UpperDir)
	}
	if uppers[0] != uppers[1] {
		t.Errorf("overlay and copy fallback differ:\noverlay:\n%s\ncopy:\n%s", uppers[0], uppers[1])
	}
	for _, want := range []string{"d/ dir 755 opaque", "e whiteout", "typ/file2dir/ dir 755 opaque", "ren/dir whiteout"} {
		if !strings.Contains(uppers[0]+"\n", want+"\n") {
			t.Errorf("upper lacks %q:\n%s", want, uppers[0])
		}
	}
	if strings.Contains(uppers[0], "untouched") {
		t.Errorf("upper holds an untouched directory:\n%s", uppers[0])
	}
}

// TestFallbackWhenOverlayUnsupported runs with the upper dir on an overlayfs, which cannot be
// an upper dir itself: the situation of strata running inside a container.
func TestFallbackWhenOverlayUnsupported(t *testing.T) {
	base := newBase(t)
	dir := t.TempDir()
	for _, d := range []string{"l", "u", "w", "m"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	m := filepath.Join(dir, "m")
	opts := fmt.Sprintf("lowerdir=%s/l,upperdir=%s/u,workdir=%s/w", dir, dir, dir)
	if err := unix.Mount("overlay", m, "overlay", 0, opts); err != nil {
		t.Skipf("cannot mount an overlay to host the upper dir: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(m, unix.MNT_DETACH) })
	var warnings bytes.Buffer
	e := New(Options{Warnings: &warnings})
	for i := range 2 {
		s := newStep(t, []string{base}, "echo hi > /newfile")
		s.spec.UpperDir = filepath.Join(m, "upper"+strconv.Itoa(i))
		s.spec.WorkDir = filepath.Join(m, "work"+strconv.Itoa(i))
		s.mustRun(t, e)
		if !strings.Contains(s.res.CopyFallback, "mounting overlay") {
			t.Errorf("step %d: CopyFallback = %q, want the overlay mount failure", i, s.res.CopyFallback)
		}
		if got, want := listUpper(t, s.spec.UpperDir), `newfile file 644 "hi\n"`; got != want {
			t.Errorf("step %d: upper dir:\n%s\nwant:\n%s", i, got, want)
		}
	}
	if n := strings.Count(warnings.String(), "overlayfs unavailable"); n != 1 {
		t.Errorf("warned %d times, want once:\n%s", n, warnings.String())
	}
}

func TestManyLowers(t *testing.T) {
	base := newBase(t)
	lowers := make([]string, 0, 60)
	parent := filepath.Join(t.TempDir(), strings.Repeat("long-snapshot-directory-name-", 3))
	for i := 59; i >= 1; i-- {
		// Names longer than a sha256 keyed snapshot's, to overflow a page of mount options.
		dir := filepath.Join(parent, fmt.Sprintf("%080d", i))
		files := map[string]string{"layers/" + strconv.Itoa(i): "", "top": strconv.Itoa(i)}
		for name, content := range files {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		lowers = append(lowers, dir)
	}
	lowers = append(lowers, base)
	script := "ls /layers | wc -l; cat /top; echo; grep -o 'lowerdir=0:1:2:' /proc/mounts"
	got := newStep(t, lowers, script).mustRun(t, New(Options{})).out()
	// lowers[0] is layer 59, the top-most, so its /top wins; the overlay was mounted with the
	// lowers under short names.
	if want := "59\n59\nlowerdir=0:1:2:"; got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
}
