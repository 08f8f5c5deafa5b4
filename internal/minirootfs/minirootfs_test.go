package minirootfs

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func needBusybox(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(DefaultBusybox); err != nil {
		t.Skipf("needs %s (Debian package busybox-static): %v", DefaultBusybox, err)
	}
}

// fingerprint lists every entry with its type, mode, owner, mtime, link target and content hash.
func fingerprint(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(&b, "%s %v %d %s", rel, fi.Mode(), fi.ModTime().Unix(), ownerOf(fi))
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			fmt.Fprintf(&b, " -> %s", target)
		case fi.Mode().IsRegular():
			data, _ := os.ReadFile(p)
			fmt.Fprintf(&b, " %x", sha256.Sum256(data))
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestMakeIsDeterministic(t *testing.T) {
	needBusybox(t)
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	epoch := time.Unix(1700000000, 0)
	for _, dir := range []string{a, b} {
		if err := Make(dir, Options{ModTime: epoch}); err != nil {
			t.Fatal(err)
		}
	}
	if fa, fb := fingerprint(t, a), fingerprint(t, b); fa != fb {
		t.Errorf("two trees from the same busybox differ:\n%s\n---\n%s", fa, fb)
	}
}

func TestMakeContents(t *testing.T) {
	needBusybox(t)
	dir := filepath.Join(t.TempDir(), "rootfs")
	if err := Make(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		mode fs.FileMode
	}{
		{"bin/busybox", 0o755},
		{"tmp", fs.ModeDir | fs.ModeSticky | 0o777},
		{"root", fs.ModeDir | 0o700},
		{"proc", fs.ModeDir | 0o755},
		{"sys", fs.ModeDir | 0o755},
		{"dev", fs.ModeDir | 0o755},
		{"etc/passwd", 0o644},
		{"bin/sh", fs.ModeSymlink | 0o777},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			fi, err := os.Lstat(filepath.Join(dir, tt.path))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != tt.mode {
				t.Errorf("mode = %v, want %v", fi.Mode(), tt.mode)
			}
			if fi.ModTime().Unix() != 0 {
				t.Errorf("mtime = %v, want the Unix epoch", fi.ModTime())
			}
		})
	}
	target, err := os.Readlink(filepath.Join(dir, "bin/sh"))
	if err != nil || target != "/bin/busybox" {
		t.Errorf("bin/sh -> %q (%v), want /bin/busybox", target, err)
	}
	group, _ := os.ReadFile(filepath.Join(dir, "etc/group"))
	if !strings.Contains(string(group), "staff:x:50:app\n") {
		t.Errorf("etc/group lacks the supplementary group of app:\n%s", group)
	}
}

func TestMakeRefusesDynamicBusybox(t *testing.T) {
	// The test binary itself is a convenient ELF; it is dynamic unless built with CGO off,
	// so look for a dynamic one among common host binaries instead.
	var dynamic string
	for _, p := range []string{"/bin/ls", "/usr/bin/ls", "/bin/true"} {
		if _, err := checkStatic(p); err != nil {
			dynamic = p
			break
		}
	}
	if dynamic == "" {
		t.Skip("no dynamically linked host binary found to play a dynamic busybox")
	}
	err := Make(filepath.Join(t.TempDir(), "r"), Options{Busybox: dynamic})
	if err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Errorf("Make with %s: err = %v, want a dynamically-linked refusal", dynamic, err)
	}
}

func TestMakeRefusesNonELF(t *testing.T) {
	p := filepath.Join(t.TempDir(), "busybox")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Make(filepath.Join(t.TempDir(), "r"), Options{Busybox: p}); err == nil {
		t.Error("Make accepted a script as busybox")
	}
}
