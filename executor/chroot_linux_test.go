package executor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestChrootGivesTheSandboxUpper: under chroot isolation a step's changes are the ones the
// namespaced sandbox records, with the mounts' content and the system files left out.
func TestChrootGivesTheSandboxUpper(t *testing.T) {
	base := newBase(t)
	layer := writeTree(t, map[string]string{
		"a/file": "x", "a/keep": "k", "d/x": "x", "d/y": "y", "e/z": "z", "f/g/h": "h",
		"mod/file": "old\n", "chmod/file": "c", "link/target": "t", "ren/dir/x": "x",
		"typ/file2dir": "f", "typ/dir2file/x": "x", "same/file": "same\n", "untouched/file": "u",
	})
	cache := t.TempDir()
	ro := writeTree(t, map[string]string{"in-ro": "read only\n"})
	script := equivalenceScript + `
echo scratch > /tmp/t/f
cat /ro/in-ro > /from-ro
echo cached >> /cache/log
echo junk >> /etc/hosts
ls /dev/null /dev/zero /dev/urandom >/dev/null
`
	var uppers [2]string
	for i, iso := range []Isolation{IsolationSandbox, IsolationChroot} {
		s := newStep(t, []string{layer, base}, script)
		s.spec.Network = NetworkHost
		s.spec.Mounts = []Mount{
			{Type: MountTmpfs, Target: "/tmp/t"},
			{Type: MountBind, Source: ro, Target: "/ro", ReadOnly: true},
			{Type: MountBind, Source: cache, Target: "/cache"},
		}
		s.mustRun(t, New(Options{Isolation: iso}))
		uppers[i] = listUpper(t, s.spec.UpperDir)
	}
	if uppers[0] != uppers[1] {
		t.Errorf("sandbox and chroot isolation differ:\nsandbox:\n%s\nchroot:\n%s", uppers[0], uppers[1])
	}
	if b, err := os.ReadFile(filepath.Join(cache, "log")); err != nil || string(b) != "cached\ncached\n" {
		t.Errorf("the cache holds %q (%v), want both steps' lines", b, err)
	}
	for _, absent := range []string{"dev", "etc", "tmp", "ro", "cache"} {
		if strings.Contains("\n"+uppers[1], "\n"+absent) {
			t.Errorf("the upper holds %s:\n%s", absent, uppers[1])
		}
	}
}

// TestChrootStepStaysInside: the step cannot chroot out, its leftovers die with it, and the
// symlinks it leaves where its mounts were do not lead strata to host files.
func TestChrootStepStaysInside(t *testing.T) {
	base := newBase(t)
	victim := t.TempDir()
	if err := os.WriteFile(filepath.Join(victim, "hosts"), []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(victim, "c"), 0o755); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	marker := "strata-chroot-leftover-" + filepath.Base(t.TempDir())
	script := `mkdir -p /x/bin && cp /bin/busybox /x/bin/ && if chroot /x /bin/busybox true 2>/dev/null; then echo escaped; else echo refused; fi
rm -rf /etc /m && ln -s ` + victim + ` /etc && ln -s ` + victim + ` /m
(exec -a ` + marker + ` sleep 60) &
true`
	s := newStep(t, []string{base}, script)
	s.spec.Network = NetworkHost
	s.spec.Mounts = []Mount{{Type: MountBind, Source: cache, Target: "/m/c"}}
	s.mustRun(t, New(Options{Isolation: IsolationChroot}))
	if s.out() != "refused" {
		t.Errorf("chroot inside the step: %q, want refused", s.out())
	}
	if b, _ := os.ReadFile(filepath.Join(victim, "hosts")); string(b) != "precious\n" {
		t.Errorf("a host file behind the step's symlink changed: %q", b)
	}
	if _, err := os.Stat(filepath.Join(victim, "c")); err != nil {
		t.Errorf("a host directory behind the step's symlink moved: %v", err)
	}
	if fi, err := os.Stat(cache); err != nil || !fi.IsDir() {
		t.Errorf("the cache directory is gone: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(processesWith(t, marker)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the step's background process outlived it: %v", processesWith(t, marker))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
