package builder

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/strata-build/strata/executor"
	"github.com/strata-build/strata/internal/minirootfs"
)

// scriptRunner records what a RUN's script mount holds while the step
// runs; the step changes nothing.
type scriptRunner struct {
	mu    sync.Mutex
	specs []executor.Spec
	files map[string]string // name below the mount's source -> mode and content
}

func (r *scriptRunner) Run(_ context.Context, spec executor.Spec) (executor.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.specs = append(r.specs, spec)
	r.files = map[string]string{}
	for _, m := range spec.Mounts {
		if m.Target != scriptDir {
			continue
		}
		err := filepath.WalkDir(m.Source, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(m.Source, p)
			data, _ := os.ReadFile(p)
			r.files[rel] = fi.Mode().String() + " " + string(data)
			return nil
		})
		if err != nil {
			return executor.Result{}, err
		}
	}
	return executor.Result{UpperDir: spec.UpperDir}, nil
}

// TestRunHeredocScriptSpec checks what the builder hands the sandbox for
// a heredoc with a #! line: BuildKit's argv and history text, and a
// read-only /dev/pipes holding the body alone, mode 0755, removed after
// the step.
func TestRunHeredocScriptSpec(t *testing.T) {
	tb := newTestBuild(t, nil)
	r := &scriptRunner{}
	tb.runner = r
	res, out := tb.mustBuild("FROM scratch\nARG X=1\nRUN <<-EOF\n\t#!/bin/sh -e\n\techo $X\n\tEOF\n")
	if len(r.specs) != 1 {
		t.Fatalf("%d runs, want 1\n%s", len(r.specs), out)
	}
	spec := r.specs[0]
	if want := []string{"/bin/sh", "-c", "/dev/pipes/EOF"}; !reflect.DeepEqual(spec.Args, want) {
		t.Errorf("args %q, want %q", spec.Args, want)
	}
	i := slices.IndexFunc(spec.Mounts, func(m executor.Mount) bool { return m.Target == scriptDir })
	if i < 0 {
		t.Fatalf("no mount on %s: %+v", scriptDir, spec.Mounts)
	}
	if m := spec.Mounts[i]; m.Type != executor.MountBind || !m.ReadOnly {
		t.Errorf("script mount %+v, want a read-only bind", m)
	}
	want := map[string]string{".": "drwxr-xr-x ", "EOF": "-rwxr-xr-x #!/bin/sh -e\necho $X\n"}
	if !reflect.DeepEqual(r.files, want) {
		t.Errorf("the script mount holds %q, want %q", r.files, want)
	}
	if _, err := os.Lstat(spec.Mounts[i].Source); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the script is left after the step: %v", err)
	}
	h := configOf(t, res.Image).History
	if got, want := h[len(h)-1].CreatedBy, "RUN |1 X=1 /bin/sh -c /dev/pipes/EOF # buildkit"; got != want {
		t.Errorf("created_by %q, want %q", got, want)
	}
}

// TestRunHeredocScript runs heredocs with a #! line in the real sandbox:
// the interpreter named runs the script, from /dev/pipes, and only what
// the script writes reaches the layer.
func TestRunHeredocScript(t *testing.T) {
	needRoot(t)
	if _, err := os.Stat(minirootfs.DefaultBusybox); err != nil {
		t.Skip("needs busybox-static's /bin/busybox")
	}
	cases := []struct {
		name string
		run  string
		file string // what the script writes, in the image
		want string
	}{
		{"sh", "RUN <<EOF\n#!/bin/sh\necho \"$0 $#\" > /out\nEOF", "out", "/dev/pipes/EOF 0\n"},
		{"env sh", "RUN <<EOF\n#!/usr/bin/env sh\necho \"$0\" > /out\nEOF", "out", "/dev/pipes/EOF\n"},
		{"interpreter arg", "RUN <<EOF\n#!/bin/sh -e\ncase $- in *e*) echo errexit > /out;; esac\nEOF", "out", "errexit\n"},
		{"own name, tabs stripped", "RUN <<-SCRIPT\n\t#!/bin/sh\n\techo \"$0\" > /out\n\tSCRIPT", "out", "/dev/pipes/SCRIPT\n"},
		{"read-only, root's, 0755", "RUN <<EOF\n#!/bin/sh\n{ stat -c '%a %u %g' /dev/pipes /dev/pipes/EOF; touch /dev/pipes/x || echo ro; } > /out 2>/dev/null\nEOF", "out", "755 0 0\n755 0 0\nro\n"},
		{"as another user", "USER 1000\nRUN <<EOF\n#!/bin/sh\nid -u > /tmp/out\nEOF", "tmp/out", "1000\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb := newTestBuild(t, nil)
			tb.runner = executor.New(executor.Options{})
			writeRootfsTarball(t, filepath.Join(tb.dir, "rootfs.tar.gz"))
			res, out := tb.mustBuild("FROM scratch\nADD rootfs.tar.gz /\n" + c.run + "\n")
			if got, err := readImageFile(t, res, c.file); err != nil || got != c.want {
				t.Errorf("/%s = %q, %v; want %q\n%s", c.file, got, err, c.want, out)
			}
			layers, err := res.Image.Layers()
			if err != nil {
				t.Fatal(err)
			}
			want := []string{c.file}
			if dir := filepath.Dir(c.file); dir != "." {
				want = []string{dir + "/", c.file}
			}
			if names := tarNames(t, layers[len(layers)-1]); !slices.Equal(names, want) {
				t.Errorf("the RUN's layer holds %q, want %q", names, want)
			}
		})
	}
}

// tarNames lists the entries of a layer.
func tarNames(t *testing.T, l v1.Layer) []string {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var names []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}
