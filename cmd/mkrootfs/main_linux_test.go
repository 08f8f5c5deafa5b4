package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-build/strata/internal/minirootfs"
)

func needBusybox(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(minirootfs.DefaultBusybox); err != nil {
		t.Skipf("needs %s (Debian's busybox-static): %v", minirootfs.DefaultBusybox, err)
	}
}

// TestDeterministic checks two runs write the same bytes, and another epoch other bytes.
func TestDeterministic(t *testing.T) {
	needBusybox(t)
	dir := t.TempDir()
	write := func(name string, epoch int64) []byte {
		out := filepath.Join(dir, name)
		if err := run(context.Background(), options{busybox: minirootfs.DefaultBusybox, epoch: epoch, out: out}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b := write("a.tar.gz", 0), write("b.tar.gz", 0)
	if !bytes.Equal(a, b) {
		t.Error("two runs with the same busybox and epoch wrote different tarballs")
	}
	if bytes.Equal(a, write("c.tar.gz", 1700000000)) {
		t.Error("a different epoch wrote the same tarball")
	}
	entries := tarEntries(t, a)
	for name, typ := range map[string]byte{"bin/busybox": tar.TypeReg, "bin/sh": tar.TypeSymlink, "etc/passwd": tar.TypeReg, "tmp": tar.TypeDir} {
		h, ok := entries[name]
		if !ok || h.Typeflag != typ {
			t.Errorf("entry %s: %+v, want type %q", name, h, typ)
			continue
		}
		if !h.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("entry %s has mtime %v, want the epoch 0", name, h.ModTime)
		}
	}
}

// TestRefusesDynamicBusybox checks a dynamically linked binary is refused and no output is left.
func TestRefusesDynamicBusybox(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.tar.gz")
	err := run(context.Background(), options{busybox: "/bin/ls", out: out})
	if err == nil {
		t.Fatal("mkrootfs accepted /bin/ls as a static busybox")
	}
	if _, serr := os.Stat(out); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("a failed run left %s behind (stat: %v)", out, serr)
	}
}

func tarEntries(t *testing.T, gz []byte) map[string]*tar.Header {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]*tar.Header{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return entries
		}
		if err != nil {
			t.Fatal(err)
		}
		entries[filepath.Clean(h.Name)] = h
	}
}
