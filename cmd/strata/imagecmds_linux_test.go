package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// TestDockerUnits: sizes and ages as docker images shows them (go-units'
// HumanSizeWithPrecision and HumanDuration), --keep-storage's sizes as
// RAMInBytes reads them.
func TestDockerUnits(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 999: "999B", 7_800_000: "7.8MB", 1_234_567: "1.23MB", 12_345_678_901: "12.3GB"} {
		if got := humanSizePrec(n, 3); got != want {
			t.Errorf("humanSizePrec(%d) = %q, want %q", n, got, want)
		}
	}
	for d, want := range map[time.Duration]string{
		500 * time.Millisecond: "Less than a second", 45 * time.Second: "45 seconds", 90 * time.Second: "About a minute",
		2*time.Hour + 10*time.Minute: "2 hours", 50 * time.Hour: "2 days", 20 * 24 * time.Hour: "2 weeks",
		24 * 365 * 3 * time.Hour: "3 years",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
	for s, want := range map[string]int64{"10GB": 10 << 30, "512m": 512 << 20, "1.5g": 3 << 29, "100": 100, "2 KiB": 2048} {
		if got, err := parseRAMSize(s); err != nil || got != want {
			t.Errorf("parseRAMSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "10XB", "-1", "g"} {
		if _, err := parseRAMSize(s); err == nil {
			t.Errorf("parseRAMSize(%q) accepted", s)
		}
	}
}

func TestResolveImage(t *testing.T) {
	h := func(c string) v1.Hash { return v1.Hash{Algorithm: "sha256", Hex: strings.Repeat(c, 64)} }
	named := func(n string, d v1.Hash) v1.Descriptor {
		return v1.Descriptor{Digest: d, Annotations: map[string]string{refNameAnnotation: n}}
	}
	idx := &v1.IndexManifest{Manifests: []v1.Descriptor{named("app:1", h("a")), named("app:latest", h("a")), named("other:1", h("b"))}}
	for _, c := range []struct{ arg, digest, names, err string }{
		{"app", h("a").String(), "app:1 app:latest", ""},
		{"other:1", h("b").String(), "other:1", ""},
		{"bbbb", h("b").String(), "other:1", ""},
		{"sha256:" + strings.Repeat("a", 64), h("a").String(), "app:1 app:latest", ""},
		{"app:2", "", "", "no such image: app:2"},
		{"cccc", "", "", "no such image: cccc"},
	} {
		d, names, err := resolveImage(idx, c.arg)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%s: error %v, want %q", c.arg, err, c.err)
			}
			continue
		}
		if err != nil || d.Digest.String() != c.digest || strings.Join(names, " ") != c.names {
			t.Errorf("%s: %s %v %v, want %s %s", c.arg, d.Digest, names, err, c.digest, c.names)
		}
	}
	if r, tag := splitName("localhost:5000/app@sha256:00"); r != "localhost:5000/app" || tag != "<none>" {
		t.Errorf("splitName by digest: %s %s", r, tag)
	}
	if r, tag := splitName("localhost:5000/app:1"); r != "localhost:5000/app" || tag != "1" {
		t.Errorf("splitName: %s %s", r, tag)
	}
}

// cli runs strata in-process with stdin and stdout given, stderr apart.
func cli(t *testing.T, stdin io.Reader, stdout io.Writer, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var errb bytes.Buffer
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.Execute()
	return errb.String(), err
}

func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if stderr, err := cli(t, nil, &out, args...); err != nil {
		t.Fatalf("strata %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out.String()
}

// TestStoreCommands: a built image tagged, listed, inspected, saved to
// stdout, loaded into another store with its digest, untagged.
func TestStoreCommands(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("builds need root: the store is root's")
	}
	t.Setenv("BUILDKIT_PROGRESS", "quiet")
	st := filepath.Join(t.TempDir(), "store")
	ctx := writeContext(t, "FROM scratch\nLABEL a=b\nENV X=1\n")
	id := strings.TrimSpace(mustCLI(t, "build", "--root", st, "-t", "app:1", ctx))
	mustCLI(t, "tag", "--root", st, "app:1", "example.com/app")
	out := mustCLI(t, "images", "--root", st)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "REPOSITORY TAG IMAGE ID CREATED SIZE" ||
		!strings.HasPrefix(strings.Join(strings.Fields(lines[2]), " "), "example.com/app latest "+shortID(id)+" ") || !strings.Contains(out, " ago ") {
		t.Errorf("strata images:\n%s", out)
	}
	if out := mustCLI(t, "images", "--root", st, "-q"); out != shortID(id)+"\n"+shortID(id)+"\n" {
		t.Errorf("images -q: %q", out)
	}
	if out := mustCLI(t, "images", "--root", st, "--format", "{{.Repository}}:{{.Tag}} {{.Digest}}"); out != "app:1 "+id+"\nexample.com/app:latest "+id+"\n" {
		t.Errorf("images --format: %q", out)
	}
	var images []inspectImage
	if err := json.Unmarshal([]byte(mustCLI(t, "inspect", "--root", st, "app:1")), &images); err != nil {
		t.Fatal(err)
	}
	if len(images) != 1 || images[0].Id != id || len(images[0].RepoTags) != 2 || images[0].Config.Labels["a"] != "b" || len(images[0].History) != 2 {
		t.Errorf("inspect: %+v", images)
	}
	if out := mustCLI(t, "inspect", "--root", st, "-f", "{{.Id}} {{json .Config.Env}}", id[:19]); !strings.HasPrefix(out, id+` ["`) || !strings.Contains(out, `"X=1"`) {
		t.Errorf("inspect --format: %q", out)
	}

	var archive bytes.Buffer
	if stderr, err := cli(t, nil, &archive, "save", "--root", st, "app:1", "-o", "-"); err != nil || stderr != "" {
		t.Fatalf("save -o -: %v, stderr %q", err, stderr)
	}
	other := filepath.Join(t.TempDir(), "store")
	var loaded bytes.Buffer
	if stderr, err := cli(t, &archive, &loaded, "load", "--root", other); err != nil {
		t.Fatalf("load: %v\n%s", err, stderr)
	}
	if loaded.String() != "Loaded image: app:1\n" {
		t.Errorf("load printed %q", loaded.String())
	}
	if out := mustCLI(t, "images", "--root", other, "--format", "{{.Digest}}"); out != id+"\n" {
		t.Errorf("loaded image %q, want %s", out, id)
	}

	if _, err := cli(t, nil, io.Discard, "rmi", "--root", st, id); err == nil || !strings.Contains(err.Error(), "must be forced") {
		t.Errorf("rmi of an ID with two names: %v", err)
	}
	if out := mustCLI(t, "rmi", "--root", st, "app:1"); out != "Untagged: app:1\n" {
		t.Errorf("rmi app:1 printed %q", out)
	}
	stderr, err := cli(t, nil, io.Discard, "rmi", "--root", st, "nope", "example.com/app")
	if err == nil || err.Error() != "no such image: nope" && !strings.Contains(stderr, "no such image: nope") {
		t.Errorf("rmi of a missing name: %v %q", err, stderr)
	}
	if out := mustCLI(t, "images", "--root", st, "-q"); out != "" {
		t.Errorf("after rmi, images -q: %q", out)
	}
	if out := mustCLI(t, "prune", "--root", st); !strings.Contains(out, "removed 2 blobs") || !strings.Contains(out, "Total reclaimed space: ") {
		t.Errorf("prune after rmi: %q", out)
	}
}

// openPTY is a pseudo-terminal's two ends.
func openPTY(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	var unlock int32
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, ptmx.Fd(), unix.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Skipf("unlockpt: %v", e)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("ptsname: %v", err)
	}
	pts, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("opening the pty: %v", err)
	}
	t.Cleanup(func() { pts.Close(); ptmx.Close() })
	return ptmx, pts
}

// TestArchiveToStdoutRefused: an archive never goes to a terminal, a
// directory never to stdout, stdout carries one archive; each refused in
// one line before the store is opened.
func TestArchiveToStdoutRefused(t *testing.T) {
	_, pts := openPTY(t)
	ctx := writeContext(t, "FROM scratch\n")
	for _, c := range []struct {
		stdout io.Writer
		args   []string
		want   string
	}{
		{pts, []string{"build", "-o", "type=docker,dest=-", ctx}, "--output type=docker,dest=-: refusing to write an archive to a terminal"},
		{pts, []string{"save", "app:1"}, "save -o -: refusing to write an archive to a terminal"},
		// Refused by parseOutputs or checkStdoutOutputs, whichever reads it first.
		{io.Discard, []string{"build", "-o", "type=local,dest=-", ctx}, "--output "},
		{io.Discard, []string{"build", "-o", "type=oci,dest=-", "-o", "type=tar,dest=-", ctx}, "--output: two outputs with dest=-"},
	} {
		root := filepath.Join(t.TempDir(), "store")
		stderr, err := cli(t, nil, c.stdout, append([]string{c.args[0], "--root", root}, c.args[1:]...)...)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: %v, want one line %q", c.args, err, c.want)
		}
		if _, serr := os.Stat(root); !errors.Is(serr, os.ErrNotExist) || stderr != "" {
			t.Errorf("%q: the store was opened (%v) or stderr %q", c.args, serr, stderr)
		}
	}
}
